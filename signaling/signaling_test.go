package signaling_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/vectors"
	"github.com/netmsg-go/netmsg/signaling"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func key(name string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(s[:])
}

// cert makes a certificate for identity with key k, signed by ca (nil:
// unsigned), valid from an hour ago to an hour from now.
func cert(t testing.TB, identity string, k ed25519.PrivateKey, ca ed25519.PrivateKey) []byte {
	return certAt(t, identity, k, ca, time.Now().Add(-time.Hour))
}

// certAt makes a certificate valid for two hours from created.
func certAt(t testing.TB, identity string, k ed25519.PrivateKey, ca ed25519.PrivateKey, created time.Time) []byte {
	t.Helper()
	id, err := netmsg.ParseIdentity(identity)
	if err != nil {
		t.Fatal(err)
	}
	c, err := crypto.NewCert(crypto.CertTemplate{
		PublicKey: k.Public().(ed25519.PublicKey), Identity: id, AppIDs: []uint32{0},
		Created: created, Expiry: created.Add(2 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := crypto.UnsignedCert(c)
	if ca != nil {
		signed, err = crypto.SignCert(c, ca)
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(signed)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func recv(t *testing.T, c signaling.Conn) (string, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	from, blob, err := c.Recv(ctx)
	if err != nil {
		t.Fatalf("recv: %v", err)
	}
	return from, blob
}

func TestHub(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, err := signaling.NewHub(signaling.HubConfig{Delay: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		a, _ := h.Connect("str:alice")
		b, _ := h.Connect("str:bob")
		defer a.Close()
		defer b.Close()
		for i := range 5 {
			if err := a.Send("str:bob", []byte{byte(i)}); err != nil {
				t.Fatal(err)
			}
		}
		start := time.Now()
		for i := range 5 {
			from, blob := recv(t, b)
			if from != "str:alice" || blob[0] != byte(i) {
				t.Fatalf("got %q %v", from, blob)
			}
		}
		if d := time.Since(start); d != 10*time.Millisecond {
			t.Errorf("delivered after %v, want the 10 ms delay", d)
		}
		if err := a.Send("str:bob", make([]byte, signaling.MaxBlobSize+1)); !errors.Is(err, signaling.ErrTooLarge) {
			t.Errorf("oversized blob: %v", err)
		}
		if err := a.Send("bob", nil); !errors.Is(err, signaling.ErrBadIdentity) {
			t.Errorf("bad identity: %v", err)
		}
		a.Send("str:nobody", []byte("x"))
		time.Sleep(time.Second)
		if st := h.Stats(); st.NoRecipient != 1 || st.Delivered != 5 {
			t.Errorf("stats %+v", st)
		}
		// A second Connect takes the identity over; the first is closed.
		b2, _ := h.Connect("str:bob")
		defer b2.Close()
		if _, _, err := b.Recv(context.Background()); !errors.Is(err, signaling.ErrReplaced) || !errors.Is(err, signaling.ErrClosed) {
			t.Errorf("replaced conn: %v", err)
		}
		a.Send("str:bob", []byte("to the new one"))
		if _, blob := recv(t, b2); string(blob) != "to the new one" {
			t.Errorf("got %q", blob)
		}
	})
}

// TestHubFaults: loss, duplication and reordering happen at about the
// configured rates, and a seed gives the same faults and the same delivery
// order every time.
func TestHubFaults(t *testing.T) {
	run := func(seed uint64) (signaling.HubStats, string) {
		var st signaling.HubStats
		var got strings.Builder
		synctest.Test(t, func(t *testing.T) {
			h, _ := signaling.NewHub(signaling.HubConfig{LossPercent: 30, DuplicatePercent: 50, ReorderPercent: 20,
				Delay: 5 * time.Millisecond, Seed: seed, QueueLen: 10000})
			a, _ := h.Connect("str:a")
			b, _ := h.Connect("str:b")
			for i := range 1000 {
				a.Send("str:b", []byte{byte(i >> 8), byte(i)})
				if i%100 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
			time.Sleep(time.Second)
			st = h.Stats()
			for range st.Delivered {
				_, blob, err := b.Recv(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&got, "%x ", blob)
			}
			a.Close()
			b.Close()
		})
		return st, got.String()
	}
	st, order := run(7)
	if st2, order2 := run(7); st != st2 || order != order2 {
		t.Fatal("same seed, different faults")
	}
	if _, order3 := run(8); order == order3 {
		t.Error("another seed, same faults")
	}
	if st.Lost < 250 || st.Lost > 350 || st.Duplicated < 280 || st.Duplicated > 420 || st.Reordered < 100 || st.Reordered > 300 {
		t.Errorf("faults %+v", st)
	}
	if st.Delivered != st.Sent-st.Lost+st.Duplicated {
		t.Errorf("delivered %d of %d sent, %d lost, %d duplicated", st.Delivered, st.Sent, st.Lost, st.Duplicated)
	}
	// Reordered signals really arrive out of order.
	var prev, inversions int
	for f := range strings.FieldsSeq(order) {
		var v int
		fmt.Sscanf(f, "%x", &v)
		if v < prev {
			inversions++
		}
		prev = v
	}
	if inversions == 0 {
		t.Error("no signal overtook another")
	}
	for _, c := range []signaling.HubConfig{{LossPercent: 101}, {DuplicatePercent: -1}, {Delay: -1}} {
		if _, err := signaling.NewHub(c); err == nil {
			t.Errorf("%+v accepted", c)
		}
	}
}

// TestHubQueueBound: a peer that does not read keeps QueueLen signals;
// the rest are counted, not queued.
func TestHubQueueBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h, _ := signaling.NewHub(signaling.HubConfig{QueueLen: 10})
		a, _ := h.Connect("str:a")
		b, _ := h.Connect("str:b")
		defer a.Close()
		defer b.Close()
		for range 50 {
			a.Send("str:b", []byte("x"))
		}
		if st := h.Stats(); st.Delivered != 10 || st.Overflow != 40 {
			t.Errorf("stats %+v", st)
		}
		b.Close()
		if err := b.Send("str:a", nil); !errors.Is(err, signaling.ErrClosed) {
			t.Errorf("send after close: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, _, err := a.Recv(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("recv with nothing sent: %v", err)
		}
	})
}

func startServer(t *testing.T, cfg signaling.ServerConfig) (*signaling.Server, string) {
	t.Helper()
	s, err := signaling.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr().String() != addr.String() {
		t.Fatalf("Addr %v, listening on %v", s.Addr(), addr)
	}
	t.Cleanup(func() { s.Close() })
	return s, addr.String()
}

// rawClient is a TCP client speaking a protocol by hand.
type rawClient struct {
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr, first string) *rawClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if first != "" {
		fmt.Fprintf(c, "%s\n", first)
	}
	return &rawClient{c, bufio.NewReaderSize(c, 1<<16)}
}

func (r *rawClient) line(t *testing.T) string {
	t.Helper()
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	s, err := r.r.ReadString('\n')
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return strings.TrimSuffix(s, "\n")
}

// closed reports whether the server closes r (within 5 s) without
// writing anything more.
func (r *rawClient) closed() bool {
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := r.r.ReadString('\n')
	return errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)
}

func waitStats(t *testing.T, s *signaling.Server, cond func(signaling.ServerStats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(s.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats never matched: %+v", s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type sigLine struct {
	Direction string `json:"direction"`
	Client    string `json:"client"`
	Kind      string `json:"kind"`
	Line      string `json:"line"`
}

type sigVectors struct {
	Runs []struct {
		Signaling []sigLine `json:"signaling"`
	} `json:"runs"`
}

func loadSignaling(t *testing.T) sigVectors {
	var v sigVectors
	vectors.Load(t, "p2p_signaling.json", &v)
	if len(v.Runs) == 0 {
		t.Fatal("no runs in p2p_signaling.json")
	}
	return v
}

// TestTrivialVectors replays what two GNS peers sent GNS's trivial server
// through ours and checks that each line reaches the other peer exactly as
// GNS's server forwarded it. Between the captured lines, lines GNS's
// server ignores (no space, unknown destination, an empty identity) are
// ignored here too, and counted.
func TestTrivialVectors(t *testing.T) {
	v := loadSignaling(t)
	for ri, run := range v.Runs {
		s, addr := startServer(t, signaling.ServerConfig{})
		peers := map[string]*rawClient{}
		var forwarded []sigLine
		for _, l := range run.Signaling {
			switch {
			case l.Direction == "client->server" && l.Kind == "identity":
				peers[l.Client] = dialRaw(t, addr, l.Line)
			case l.Direction != "client->server" && l.Kind == "rendezvous":
				forwarded = append(forwarded, l)
			}
		}
		waitStats(t, s, func(st signaling.ServerStats) bool { return st.Trivial == len(peers) })
		var n int
		for _, l := range run.Signaling {
			if l.Direction != "client->server" || l.Kind != "rendezvous" {
				continue
			}
			fmt.Fprintf(peers[l.Client].c, "weird\nstr:nobody 00\n %s\n%s\n", l.Line[strings.IndexByte(l.Line, ' '):], l.Line)
			want := forwarded[n]
			n++
			if got := peers[want.Client].line(t); got != want.Line {
				t.Fatalf("run %d: %s got\n %q\nwant\n %q", ri, want.Client, got, want.Line)
			}
		}
		if n == 0 || n != len(forwarded) {
			t.Fatalf("run %d: %d lines sent, %d forwarded in the capture", ri, n, len(forwarded))
		}
		waitStats(t, s, func(st signaling.ServerStats) bool {
			return st.Forwarded == uint64(n) && st.NoRecipient == uint64(n) && st.Malformed == uint64(2*n)
		})
	}
}

// TestTrivialClientBytes: DialTrivial writes what GNS's client writes, byte
// for byte, and reads what GNS's server writes.
func TestTrivialClientBytes(t *testing.T) {
	v := loadSignaling(t)
	var sent, got sigLine
	for _, l := range v.Runs[0].Signaling {
		if l.Kind != "rendezvous" {
			continue
		}
		if l.Direction == "client->server" && sent.Line == "" {
			sent = l
		}
		if l.Direction != "client->server" && got.Line == "" {
			got = l
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srv := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			srv <- c
		}
		close(srv)
	}()
	c, err := signaling.DialTrivial(context.Background(), l.Addr().String(), sent.Client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sc := <-srv
	if sc == nil {
		t.Fatal("no connection")
	}
	defer sc.Close()
	to, h, _ := strings.Cut(sent.Line, " ")
	if err := c.Send(to, unhex(t, h)); err != nil {
		t.Fatal(err)
	}
	want := sent.Client + "\n" + sent.Line + "\n"
	buf := make([]byte, len(want))
	sc.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != want {
		t.Fatalf("client wrote %q (%v), want %q", buf, err, want)
	}
	fmt.Fprintf(sc, "bad line\n%s\n", got.Line)
	from, blob := recv(t, c)
	gotFrom, gotHex, _ := strings.Cut(got.Line, " ")
	if from != gotFrom || fmt.Sprintf("%x", blob) != gotHex {
		t.Fatalf("received %q %x, want %q %s", from, blob, gotFrom, gotHex)
	}
}

// TestTrivialClients: two DialTrivial clients exchange blobs through the
// server; a client whose server drops it reconnects; a later registration
// of an identity takes it over, as GNS's server does.
func TestTrivialClients(t *testing.T) {
	s, addr := startServer(t, signaling.ServerConfig{})
	ctx := context.Background()
	a, err := signaling.DialTrivial(ctx, addr, "str:alice")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := signaling.DialTrivial(ctx, addr, "str:bob")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Trivial == 2 })
	blob := make([]byte, signaling.MaxBlobSize)
	for i := range blob {
		blob[i] = byte(i)
	}
	if err := a.Send("str:bob", blob); err != nil {
		t.Fatal(err)
	}
	if from, got := recv(t, b); from != "str:alice" || string(got) != string(blob) {
		t.Fatalf("bob got %d bytes from %q", len(got), from)
	}
	b.Send("str:alice", []byte("hi"))
	if from, got := recv(t, a); from != "str:bob" || string(got) != "hi" {
		t.Fatalf("alice got %q from %q", got, from)
	}
	if err := a.Send("bob", nil); !errors.Is(err, signaling.ErrBadIdentity) {
		t.Errorf("bad identity: %v", err)
	}
	if err := a.Send("str:bob", make([]byte, signaling.MaxBlobSize+1)); !errors.Is(err, signaling.ErrTooLarge) {
		t.Errorf("oversized: %v", err)
	}
	// A raw client as bob takes bob's signals; the old bob, dropped,
	// reconnects and takes them back.
	raw := dialRaw(t, addr, "str:bob")
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Replaced >= 1 })
	a.Send("str:bob", []byte("to the newest"))
	if l := raw.line(t); l != "str:alice "+fmt.Sprintf("%x", "to the newest") {
		t.Fatalf("newest bob got %q", l)
	}
	if !raw.closed() {
		t.Fatal("the old bob did not come back")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.Send("str:bob", []byte("again"))
		rctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_, got, err := b.Recv(rctx)
		cancel()
		if err == nil && string(got) == "again" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("bob never came back")
		}
	}
	b.Close()
	if err := b.Send("str:alice", nil); !errors.Is(err, signaling.ErrClosed) {
		t.Errorf("send after close: %v", err)
	}
	if _, _, err := b.Recv(ctx); !errors.Is(err, signaling.ErrClosed) {
		t.Errorf("recv after close: %v", err)
	}
}

// TestClientSendBounded: Send does not wait for a server that does not
// read; the queue fills and Send says so.
func TestClientSendBounded(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := signaling.DialTrivial(context.Background(), l.Addr().String(), "str:a")
	if err != nil {
		t.Fatal(err)
	}
	if sc := <-accepted; sc != nil {
		defer sc.Close()
	}
	blob := make([]byte, signaling.MaxBlobSize)
	start := time.Now()
	var full bool
	for range 4000 { // 128 MB: more than any socket buffer
		if err := c.Send("str:b", blob); errors.Is(err, signaling.ErrQueueFull) {
			full = true
			break
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if !full {
		t.Error("the queue never filled")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("sending took %v", d)
	}
	c.Close() // does not hang on the blocked write
}

// authEnv is a server trusting one CA, with helpers to dial it.
type authEnv struct {
	s    *signaling.Server
	addr string
	ca   ed25519.PrivateKey
}

func newAuthEnv(t *testing.T, cfg signaling.ServerConfig) *authEnv {
	ca := key("ca")
	cfg.TrustedCAs = append(cfg.TrustedCAs, ca.Public().(ed25519.PublicKey))
	s, addr := startServer(t, cfg)
	return &authEnv{s, addr, ca}
}

// dial connects as id with the key named keyName and a certificate for
// certID signed by signer (nil: unsigned).
func (e *authEnv) dial(t *testing.T, id, keyName, certID string, signer ed25519.PrivateKey) (signaling.Conn, error) {
	t.Helper()
	return signaling.Dial(context.Background(), e.addr, signaling.ClientConfig{Identity: id, Key: key(keyName), Certificate: cert(t, certID, key(keyName), signer)})
}

func (e *authEnv) mustDial(t *testing.T, id string) signaling.Conn {
	t.Helper()
	c, err := e.dial(t, id, id, id, e.ca)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestAuthenticated: clients prove their identities and exchange signals;
// impersonation attempts fail and are counted; an authenticated identity
// cannot be taken by a trivial client, even after its holder left.
func TestAuthenticated(t *testing.T) {
	e := newAuthEnv(t, signaling.ServerConfig{})
	a := e.mustDial(t, "str:alice")
	b := e.mustDial(t, "str:bob")
	a.Send("str:bob", []byte("signed hello"))
	if from, got := recv(t, b); from != "str:alice" || string(got) != "signed hello" {
		t.Fatalf("bob got %q from %q", got, from)
	}

	mallory := key("mallory")
	bad := []struct {
		name    string
		key     string
		cert    []byte
		refused bool // by the server (else the client refuses to start)
	}{
		{"certificate of another identity", "mallory", cert(t, "str:mallory", mallory, e.ca), true},
		{"someone else's certificate (wrong key)", "mallory", cert(t, "str:bob", key("str:bob"), e.ca), true},
		{"untrusted CA", "mallory", cert(t, "str:bob", mallory, key("other ca")), true},
		{"unsigned", "mallory", cert(t, "str:bob", mallory, nil), true},
		{"expired", "mallory", certAt(t, "str:bob", mallory, e.ca, time.Now().Add(-3*time.Hour)), true},
		{"garbage certificate", "mallory", []byte("not a certificate"), true},
	}
	for i, c := range bad {
		_, err := signaling.Dial(context.Background(), e.addr, signaling.ClientConfig{Identity: "str:bob", Key: key(c.key), Certificate: c.cert})
		if !errors.Is(err, signaling.ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", c.name, err)
		}
		waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.AuthFailed == uint64(i+1) })
	}
	// bob still gets his signals.
	a.Send("str:bob", []byte("still yours"))
	if _, got := recv(t, b); string(got) != "still yours" {
		t.Fatalf("bob got %q", got)
	}
	// A trivial client claiming bob is refused.
	if !dialRaw(t, e.addr, "str:bob").closed() {
		t.Fatal("the trivial impersonator was kept")
	}
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.TakeoverRefused == 1 && st.Authenticated == 2 })
	// Also once bob has gone: his identity is reserved.
	b.Close()
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.Authenticated == 1 && st.Reserved == 1 })
	if !dialRaw(t, e.addr, "str:bob").closed() {
		t.Fatal("the trivial impersonator took a reserved identity")
	}
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.TakeoverRefused == 2 })
	a.Send("str:bob", []byte("nobody"))
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.NoRecipient == 1 })
	// bob comes back.
	b = e.mustDial(t, "str:bob")
	a.Send("str:bob", []byte("back"))
	if _, got := recv(t, b); string(got) != "back" {
		t.Fatalf("bob got %q", got)
	}
}

// TestReplayedProof: a proof is good for one challenge only.
func TestReplayedProof(t *testing.T) {
	e := newAuthEnv(t, signaling.ServerConfig{})
	hello := "NETMSG-SIGNAL/1 str:carol " + fmt.Sprintf("%x", cert(t, "str:carol", key("carol"), e.ca))
	r1 := dialRaw(t, e.addr, hello)
	ch1 := strings.TrimPrefix(r1.line(t), "CHALLENGE ")
	r2 := dialRaw(t, e.addr, hello)
	ch2 := strings.TrimPrefix(r2.line(t), "CHALLENGE ")
	if ch1 == ch2 || len(ch1) != 64 {
		t.Fatalf("challenges %q and %q", ch1, ch2)
	}
	msg := append([]byte("netmsg-signal/1\x00str:carol\x00"), unhex(t, ch1)...)
	sig := ed25519.Sign(key("carol"), msg)
	fmt.Fprintf(r1.c, "PROOF %x\n", sig)
	if l := r1.line(t); l != "OK" {
		t.Fatalf("good proof: %q", l)
	}
	fmt.Fprintf(r2.c, "PROOF %x\n", sig)
	if l := r2.line(t); !strings.HasPrefix(l, "ERR ") {
		t.Fatalf("replayed proof: %q", l)
	}
	if !r2.closed() {
		t.Fatal("kept after a replayed proof")
	}
	// A proof over the right challenge for another identity fails too.
	r3 := dialRaw(t, e.addr, hello)
	ch3 := unhex(t, strings.TrimPrefix(r3.line(t), "CHALLENGE "))
	fmt.Fprintf(r3.c, "PROOF %x\n", ed25519.Sign(key("carol"), append([]byte("netmsg-signal/1\x00str:dave\x00"), ch3...)))
	if l := r3.line(t); !strings.HasPrefix(l, "ERR ") {
		t.Fatalf("proof for another identity: %q", l)
	}
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.AuthFailed == 2 && st.Authenticated == 1 })
}

// TestLatestAuthenticatedWins: a second authenticated connection with the
// same identity takes it over; the first is told and stops (it does not
// take the identity back).
func TestLatestAuthenticatedWins(t *testing.T) {
	e := newAuthEnv(t, signaling.ServerConfig{})
	a := e.mustDial(t, "str:alice")
	b1 := e.mustDial(t, "str:bob")
	b2 := e.mustDial(t, "str:bob")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := b1.Recv(ctx); !errors.Is(err, signaling.ErrReplaced) {
		t.Fatalf("replaced client: %v", err)
	}
	if err := b1.Send("str:alice", nil); !errors.Is(err, signaling.ErrReplaced) {
		t.Errorf("send on a replaced client: %v", err)
	}
	a.Send("str:bob", []byte("to the latest"))
	if _, got := recv(t, b2); string(got) != "to the latest" {
		t.Fatalf("got %q", got)
	}
	b2.Send("str:alice", []byte("from the latest"))
	if from, got := recv(t, a); from != "str:bob" || string(got) != "from the latest" {
		t.Fatalf("got %q from %q", got, from)
	}
	if st := e.s.Stats(); st.Replaced != 1 || st.Authenticated != 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestUnsignedKeyBinding: with unsigned certificates allowed, an identity
// is bound to the key that proved it while that client is connected; a
// CA-signed certificate still takes it, and then it is reserved for
// CA-signed certificates; trivial clients never take it.
func TestUnsignedKeyBinding(t *testing.T) {
	e := newAuthEnv(t, signaling.ServerConfig{AllowUnsigned: true})
	c1, err := e.dial(t, "str:carol", "carol", "str:carol", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	if _, err := e.dial(t, "str:carol", "mallory", "str:carol", nil); !errors.Is(err, signaling.ErrRefused) {
		t.Fatalf("another key's unsigned certificate: %v", err)
	}
	if !dialRaw(t, e.addr, "str:carol").closed() {
		t.Fatal("a trivial client took an authenticated identity")
	}
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.TakeoverRefused == 2 })
	// A CA-signed certificate (another key) takes over.
	c2, err := e.dial(t, "str:carol", "carol2", "str:carol", e.ca)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, _, err := c1.Recv(ctx); !errors.Is(err, signaling.ErrReplaced) {
		t.Fatalf("unsigned holder after a CA-signed registration: %v", err)
	}
	if _, err := e.dial(t, "str:carol", "carol", "str:carol", nil); !errors.Is(err, signaling.ErrRefused) {
		t.Fatalf("unsigned over CA-signed: %v", err)
	}
	// Gone, it is reserved for CA-signed certificates.
	c2.Close()
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.Reserved == 1 && st.Authenticated == 0 })
	if _, err := e.dial(t, "str:carol", "carol", "str:carol", nil); !errors.Is(err, signaling.ErrRefused) {
		t.Fatalf("unsigned over a reserved identity: %v", err)
	}
	if !dialRaw(t, e.addr, "str:carol").closed() {
		t.Fatal("a trivial client took a reserved identity")
	}
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.TakeoverRefused == 5 })
	c3, err := e.dial(t, "str:carol", "carol3", "str:carol", e.ca)
	if err != nil {
		t.Fatal(err)
	}
	c3.Close()
	// An identity held with an unsigned certificate is free once its
	// holder has gone.
	d1, err := e.dial(t, "str:dave", "dave", "str:dave", nil)
	if err != nil {
		t.Fatal(err)
	}
	d1.Close()
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.Authenticated == 0 && st.Reserved == 1 })
	d2, err := e.dial(t, "str:dave", "dave2", "str:dave", nil)
	if err != nil {
		t.Fatalf("a fresh key after the holder left: %v", err)
	}
	d2.Close()
}

// TestNoReservation: with ReserveFor negative, a trivial client may take
// an identity once its authenticated holder has gone.
func TestNoReservation(t *testing.T) {
	e := newAuthEnv(t, signaling.ServerConfig{ReserveFor: -1})
	b := e.mustDial(t, "str:bob")
	b.Close()
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.Authenticated == 0 })
	dialRaw(t, e.addr, "str:bob")
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.Trivial == 1 && st.Reserved == 0 })
}

// TestMixing: by default trivial and authenticated clients signal each
// other; with IsolateTrivial they do not.
func TestMixing(t *testing.T) {
	for _, isolate := range []bool{false, true} {
		e := newAuthEnv(t, signaling.ServerConfig{IsolateTrivial: isolate})
		a := e.mustDial(t, "str:alice")
		tr, err := signaling.DialTrivial(context.Background(), e.addr, "str:gns")
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		tr2, err := signaling.DialTrivial(context.Background(), e.addr, "str:gns2")
		if err != nil {
			t.Fatal(err)
		}
		defer tr2.Close()
		waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.Trivial == 2 })
		a.Send("str:gns", []byte("a->t"))
		tr.Send("str:alice", []byte("t->a"))
		tr.Send("str:gns2", []byte("t->t"))
		if _, got := recv(t, tr2); string(got) != "t->t" {
			t.Fatalf("trivial to trivial: %q", got)
		}
		if isolate {
			waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.Isolated == 2 && st.Forwarded == 1 })
			continue
		}
		if from, got := recv(t, tr); from != "str:alice" || string(got) != "a->t" {
			t.Fatalf("trivial got %q from %q", got, from)
		}
		if from, got := recv(t, a); from != "str:gns" || string(got) != "t->a" {
			t.Fatalf("authenticated got %q from %q", got, from)
		}
	}
}

// TestNoTrivialAndUnsigned: a server can refuse the trivial protocol and
// accept unsigned certificates (proof of key only).
func TestNoTrivialAndUnsigned(t *testing.T) {
	s, addr := startServer(t, signaling.ServerConfig{NoTrivial: true, AllowUnsigned: true})
	tr := dialRaw(t, addr, "str:alice")
	if l := tr.line(t); l != "ERR trivial protocol refused" {
		t.Errorf("a trivial client was told %q", l)
	}
	if !tr.closed() {
		t.Fatal("a trivial client was kept")
	}
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Refused == 1 && st.RefusedTrivial == 1 })
	c, err := signaling.Dial(context.Background(), addr, signaling.ClientConfig{Identity: "str:alice", Key: key("alice"), Certificate: cert(t, "str:alice", key("alice"), nil)})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if _, err := signaling.Dial(context.Background(), addr, signaling.ClientConfig{Identity: "str:alice", Key: key("alice")}); err == nil {
		t.Error("Dial without a certificate")
	}
}

// TestServerLimits: a flood is rate limited; an oversized line closes the
// client; the client limit holds; a client that does not register in time
// is dropped.
func TestServerLimits(t *testing.T) {
	s, addr := startServer(t, signaling.ServerConfig{Rate: 10, Burst: 20, MaxClients: 4, HandshakeTimeout: 300 * time.Millisecond})
	reader := dialRaw(t, addr, "str:reader")
	flood := dialRaw(t, addr, "str:flood")
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Trivial == 2 })
	fmt.Fprint(flood.c, strings.Repeat("str:reader 00\n", 100))
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.RateLimited+st.Forwarded == 100 })
	if st := s.Stats(); st.RateLimited < 70 || st.Forwarded > 30 || st.Forwarded < 20 {
		t.Errorf("flood not limited: %+v", st)
	}
	for range s.Stats().Forwarded {
		if l := reader.line(t); l != "str:flood 00" {
			t.Fatalf("reader got %q", l)
		}
	}
	reader.c.Close()
	flood.c.Close()
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Clients == 0 })

	// A blob over MaxBlobSize in a line that fits: dropped, counted.
	big := dialRaw(t, addr, "str:big")
	fmt.Fprintf(big.c, "str:big %s\n", strings.Repeat("00", signaling.MaxBlobSize+1))
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Malformed == 1 && st.Clients == 1 })
	// A line longer than any signal: the client is closed.
	fmt.Fprintf(big.c, "str:big %s\n", strings.Repeat("00", signaling.MaxBlobSize+100))
	if !big.closed() {
		t.Error("a client with an oversized line was kept")
	}
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Malformed == 2 && st.Clients == 0 })
	// A connection reset: a read error, not a bad line.
	reset := dialRaw(t, addr, "str:reset")
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Trivial == 1 })
	reset.c.(*net.TCPConn).SetLinger(0)
	reset.c.Close()
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.ReadErrors == 1 && st.Malformed == 2 && st.Clients == 0 })

	silent := dialRaw(t, addr, "") // never registers
	if !silent.closed() {
		t.Error("a client that never registered was kept")
	}
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.HandshakeTimeouts == 1 })

	for i := range 5 {
		dialRaw(t, addr, fmt.Sprintf("str:extra%d", i))
	}
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Refused == 1 && st.Clients == 4 })
}

// TestIdleTimeout: a registered client that sends nothing for
// IdleTimeout is dropped; an authenticated client's keepalives are empty
// lines, which the server takes without complaint.
func TestIdleTimeout(t *testing.T) {
	s, addr := startServer(t, signaling.ServerConfig{IdleTimeout: 300 * time.Millisecond})
	idle := dialRaw(t, addr, "str:idle")
	talker := dialRaw(t, addr, "str:talker")
	for range 10 {
		fmt.Fprint(talker.c, "\n")
		time.Sleep(50 * time.Millisecond)
	}
	if !idle.closed() {
		t.Fatal("an idle client was kept")
	}
	waitStats(t, s, func(st signaling.ServerStats) bool {
		return st.IdleTimeouts == 1 && st.Trivial == 1 && st.Malformed == 0
	})
}

// TestSlowReader: signals to a client that does not read wait in a
// bounded queue (the rest dropped and counted), and the client is dropped
// once a write has waited WriteTimeout.
func TestSlowReader(t *testing.T) {
	s, addr := startServer(t, signaling.ServerConfig{Rate: 1e6, Burst: 1e6, AbsentBurst: 1e6, QueueLen: 1000, QueueBytes: 256 << 10, WriteTimeout: 500 * time.Millisecond})
	slow := dialRaw(t, addr, "str:slow")
	if tc, ok := slow.c.(*net.TCPConn); ok {
		tc.SetReadBuffer(4096)
	}
	fast := dialRaw(t, addr, "str:fast")
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Trivial == 2 })
	line := "str:slow " + strings.Repeat("ab", signaling.MaxBlobSize) + "\n"
	const n = 400 // 13 MB
	go func() {
		for range n {
			if _, err := io.WriteString(fast.c, line); err != nil {
				return
			}
		}
	}()
	waitStats(t, s, func(st signaling.ServerStats) bool {
		return st.Forwarded+st.QueueDropped+st.NoRecipient == n && st.SlowReaders == 1 && st.Clients == 1
	})
	st := s.Stats()
	t.Logf("%+v", st)
	if st.QueueDropped == 0 {
		t.Errorf("stats %+v", st)
	}
	if st.Forwarded > 600 {
		t.Errorf("%d signals forwarded to a client that reads nothing", st.Forwarded)
	}
}

func FuzzParseTrivialLine(f *testing.F) {
	f.Add([]byte("str:bob 0a0b\n"))
	f.Add([]byte("str:bob zz\n"))
	f.Add([]byte("str:bob 0A0B\r\n"))
	f.Add([]byte(" \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		signaling.ParseLineForTest(b)
	})
}

func FuzzParseAuthLines(f *testing.F) {
	f.Add([]byte("NETMSG-SIGNAL/1 str:a 0a0b"))
	f.Add([]byte("NETMSG-SIGNAL/1 str:a"))
	f.Add([]byte("CHALLENGE " + strings.Repeat("00", 32)))
	f.Add([]byte("PROOF " + strings.Repeat("ff", 64) + "\r"))
	f.Fuzz(func(t *testing.T, b []byte) {
		signaling.ParseAuthLinesForTest(b)
	})
}

// FuzzServerInput feeds arbitrary bytes to a server as one client's
// stream (on fake time and an in-memory pipe): the server neither panics
// nor hangs, nobody authenticates without a key, and whatever reaches
// another client is a well-formed signal line.
func FuzzServerInput(f *testing.F) {
	c := cert(f, "str:a", key("a"), nil)
	f.Add([]byte("str:a\nstr:sink 0a0b\nstr:sink zz\n\nstr:sink 00"))
	f.Add([]byte("NETMSG-SIGNAL/1 str:a " + fmt.Sprintf("%x", c) + "\nPROOF " + strings.Repeat("00", 64) + "\nstr:sink 00\n"))
	f.Add([]byte("NETMSG-SIGNAL/1 str:a 00\n"))
	f.Add([]byte("str:sink\nstr:sink 00\n"))
	f.Add([]byte("x\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		synctest.Test(t, func(t *testing.T) {
			s, err := signaling.NewServer(signaling.ServerConfig{AllowUnsigned: true, MaxClients: 3})
			if err != nil {
				t.Fatal(err)
			}
			sinkSrv, sink := net.Pipe()
			signaling.ServeConnForTest(s, sinkSrv)
			var got []byte
			sinkDone := make(chan struct{})
			go func() {
				defer close(sinkDone)
				got, _ = io.ReadAll(sink)
			}()
			sink.Write([]byte("str:sink\n"))
			srv, cli := net.Pipe()
			signaling.ServeConnForTest(s, srv)
			go io.Copy(io.Discard, cli)
			cli.Write(in)
			synctest.Wait()
			if st := s.Stats(); st.Authenticated != 0 {
				t.Fatalf("authenticated without a proof: %+v", st)
			}
			cli.Close()
			sink.Close()
			s.Close()
			<-sinkDone
			for l := range strings.Lines(string(got)) {
				if _, _, err := signaling.ParseLineForTest([]byte(l)); err != nil || !strings.HasSuffix(l, "\n") {
					t.Fatalf("sink got %q: %v", l, err)
				}
				if _, h, _ := strings.Cut(l, " "); strings.ToLower(h) != h {
					t.Fatalf("sink got upper case hex: %q", l)
				}
			}
		})
	})
}

func unhex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// silentListener accepts connections on addr and never answers.
func silentListener(t *testing.T, addr string) {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
}

// TestClientCancel: cancelling Dial's context ends a registration the
// server does not answer; Close ends a reconnection in progress.
func TestClientCancel(t *testing.T) {
	e := newAuthEnv(t, signaling.ServerConfig{})
	b := e.mustDial(t, "str:bob")
	e.s.Close()
	silentListener(t, e.addr) // the server "restarts" and hangs
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := signaling.Dial(ctx, e.addr, signaling.ClientConfig{Identity: "str:alice", Key: key("str:alice"), Certificate: cert(t, "str:alice", key("str:alice"), e.ca)})
	if err == nil || time.Since(start) > 2*time.Second {
		t.Fatalf("Dial to a silent server: %v after %v", err, time.Since(start))
	}
	if err := b.Send("str:alice", nil); !errors.Is(err, signaling.ErrNotUp) {
		t.Errorf("send while reconnecting: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // bob is now waiting for a challenge
	start = time.Now()
	b.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Close took %v", d)
	}
}

// BenchmarkServerForward: 300-byte signals (a typical rendezvous message)
// from one trivial client to another through the server on loopback.
func BenchmarkServerForward(b *testing.B) {
	s, err := signaling.NewServer(signaling.ServerConfig{Rate: 1e9, Burst: 1 << 30, QueueLen: 1 << 16, QueueBytes: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	addr, err := s.Listen("127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	a, _ := signaling.DialTrivial(ctx, addr.String(), "str:a")
	defer a.Close()
	c, _ := signaling.DialTrivial(ctx, addr.String(), "str:b")
	defer c.Close()
	for s.Stats().Trivial < 2 {
		time.Sleep(time.Millisecond)
	}
	blob := make([]byte, 300)
	b.SetBytes(int64(len(blob)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for a.Send("str:b", blob) != nil {
			time.Sleep(10 * time.Microsecond) // the client's queue is full
		}
		if i%32 == 31 {
			for range 32 {
				if _, _, err := c.Recv(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
