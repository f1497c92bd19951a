package signaling_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"strings"
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
// unsigned).
func cert(t *testing.T, identity string, k ed25519.PrivateKey, ca ed25519.PrivateKey) []byte {
	t.Helper()
	id, err := netmsg.ParseIdentity(identity)
	if err != nil {
		t.Fatal(err)
	}
	c, err := crypto.NewCert(crypto.CertTemplate{
		PublicKey: k.Public().(ed25519.PublicKey), Identity: id, AppIDs: []uint32{0},
		Created: time.Now().Add(-time.Hour), Expiry: time.Now().Add(time.Hour),
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
		if _, _, err := b.Recv(context.Background()); !errors.Is(err, signaling.ErrClosed) {
			t.Errorf("replaced conn: %v", err)
		}
		a.Send("str:bob", []byte("to the new one"))
		if _, blob := recv(t, b2); string(blob) != "to the new one" {
			t.Errorf("got %q", blob)
		}
	})
}

// TestHubFaults: loss, duplication and reordering happen at about the
// configured rates and are the same for a seed.
func TestHubFaults(t *testing.T) {
	run := func() signaling.HubStats {
		var st signaling.HubStats
		synctest.Test(t, func(t *testing.T) {
			h, _ := signaling.NewHub(signaling.HubConfig{LossPercent: 30, DuplicatePercent: 50, ReorderPercent: 20, Seed: 7, QueueLen: 10000})
			a, _ := h.Connect("str:a")
			b, _ := h.Connect("str:b")
			for i := range 1000 {
				a.Send("str:b", []byte{byte(i)})
			}
			time.Sleep(time.Second)
			st = h.Stats()
			a.Close()
			b.Close()
		})
		return st
	}
	st := run()
	if st != run() {
		t.Fatal("same seed, different faults")
	}
	if st.Lost < 250 || st.Lost > 350 || st.Duplicated < 280 || st.Duplicated > 420 || st.Reordered == 0 {
		t.Errorf("faults %+v", st)
	}
	if st.Delivered != st.Sent-st.Lost+st.Duplicated {
		t.Errorf("delivered %d of %d sent, %d lost, %d duplicated", st.Delivered, st.Sent, st.Lost, st.Duplicated)
	}
	if _, err := signaling.NewHub(signaling.HubConfig{LossPercent: 101}); err == nil {
		t.Error("loss 101% accepted")
	}
}

func startServer(t *testing.T, cfg signaling.ServerConfig) (*signaling.Server, string) {
	t.Helper()
	s, err := signaling.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return s, l.Addr().String()
}

// rawClient is a TCP client speaking the trivial protocol by hand.
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

type sigVectors struct {
	Runs []struct {
		Signaling []struct {
			Direction string `json:"direction"`
			Client    string `json:"client"`
			Kind      string `json:"kind"`
			Line      string `json:"line"`
		} `json:"signaling"`
	} `json:"runs"`
}

// TestTrivialVectors replays what two GNS peers sent the trivial server and
// checks that each line reaches the other peer exactly as GNS's server
// forwarded it.
func TestTrivialVectors(t *testing.T) {
	var v sigVectors
	vectors.Load(t, "p2p_signaling.json", &v)
	for ri, run := range v.Runs {
		_, addr := startServer(t, signaling.ServerConfig{})
		peers := map[string]*rawClient{}
		var sent, got []string
		for _, s := range run.Signaling {
			if s.Direction != "client->server" {
				if s.Kind == "rendezvous" {
					got = append(got, s.Client+"|"+s.Line)
				}
				continue
			}
			if s.Kind == "identity" {
				peers[s.Client] = dialRaw(t, addr, s.Line)
				continue
			}
			sent = append(sent, s.Client)
		}
		time.Sleep(100 * time.Millisecond) // both registered
		var i int
		for _, s := range run.Signaling {
			if s.Direction != "client->server" || s.Kind != "rendezvous" {
				continue
			}
			fmt.Fprintf(peers[s.Client].c, "%s\n", s.Line)
			// The forwarded line GNS's server wrote, in capture order.
			want := got[i]
			i++
			to, line, _ := strings.Cut(want, "|")
			if l := peers[to].line(t); l != line {
				t.Fatalf("run %d: %s got\n %q\nwant\n %q", ri, to, l, line)
			}
		}
		if i == 0 || len(sent) != len(got) {
			t.Fatalf("run %d: %d lines sent, %d forwarded in the capture", ri, len(sent), len(got))
		}
	}
}

// TestTrivialClients: two DialTrivial clients exchange blobs through the
// server; a client whose server drops it reconnects.
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
	// A third client as bob takes bob's signals; the old bob reconnects
	// and takes them back (as GNS's server: the latest registration wins).
	b2, err := signaling.DialTrivial(ctx, addr, "str:bob")
	if err != nil {
		t.Fatal(err)
	}
	b2.Close()
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
}

func waitStats(t *testing.T, s *signaling.Server, cond func(signaling.ServerStats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond(s.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats never matched: %+v", s.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestAuthenticated: clients prove their identities; impersonation fails
// and is counted; an authenticated identity cannot be taken by a trivial
// client.
func TestAuthenticated(t *testing.T) {
	caKey := key("ca")
	otherCA := key("other ca")
	s, addr := startServer(t, signaling.ServerConfig{TrustedCAs: []ed25519.PublicKey{caKey.Public().(ed25519.PublicKey)}})
	ctx := context.Background()
	dial := func(id string, k ed25519.PrivateKey, c []byte) (signaling.Conn, error) {
		return signaling.Dial(ctx, addr, signaling.ClientConfig{Identity: id, Key: k, Certificate: c})
	}
	a, err := dial("str:alice", key("alice"), cert(t, "str:alice", key("alice"), caKey))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := dial("str:bob", key("bob"), cert(t, "str:bob", key("bob"), caKey))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	a.Send("str:bob", []byte("signed hello"))
	if from, got := recv(t, b); from != "str:alice" || string(got) != "signed hello" {
		t.Fatalf("bob got %q from %q", got, from)
	}

	bad := []struct {
		name string
		id   string
		k    ed25519.PrivateKey
		c    []byte
	}{
		{"certificate of another identity", "str:bob", key("mallory"), cert(t, "str:mallory", key("mallory"), caKey)},
		{"someone else's certificate", "str:bob", key("mallory"), cert(t, "str:bob", key("bob"), caKey)},
		{"untrusted CA", "str:bob", key("mallory"), cert(t, "str:bob", key("mallory"), otherCA)},
		{"unsigned", "str:bob", key("mallory"), cert(t, "str:bob", key("mallory"), nil)},
		{"garbage certificate", "str:bob", key("mallory"), []byte("not a certificate")},
	}
	for i, c := range bad {
		if _, err := dial(c.id, c.k, c.c); !errors.Is(err, signaling.ErrRefused) {
			t.Errorf("%s: %v, want ErrRefused", c.name, err)
		}
		waitStats(t, s, func(st signaling.ServerStats) bool { return st.AuthFailed == uint64(i+1) })
	}
	// bob still gets his signals.
	a.Send("str:bob", []byte("still yours"))
	if _, got := recv(t, b); string(got) != "still yours" {
		t.Fatalf("bob got %q", got)
	}
	// A trivial client claiming bob is refused.
	mal := dialRaw(t, addr, "str:bob")
	mal.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := mal.r.ReadString('\n'); err == nil {
		t.Fatal("the trivial impersonator was kept")
	}
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Refused == 1 && st.Authenticated == 2 })

	// A replayed proof fails: the challenge is fresh each time.
	r1 := dialRaw(t, addr, "NETMSG-SIGNAL/1 str:carol "+fmt.Sprintf("%x", cert(t, "str:carol", key("carol"), caKey)))
	ch1 := strings.TrimPrefix(r1.line(t), "CHALLENGE ")
	r2 := dialRaw(t, addr, "NETMSG-SIGNAL/1 str:carol "+fmt.Sprintf("%x", cert(t, "str:carol", key("carol"), caKey)))
	ch2 := strings.TrimPrefix(r2.line(t), "CHALLENGE ")
	if ch1 == ch2 {
		t.Fatal("two challenges are equal")
	}
	msg := append([]byte("netmsg-signal/1\x00str:carol\x00"), unhex(t, ch1)...)
	sig := ed25519.Sign(key("carol"), msg)
	fmt.Fprintf(r1.c, "PROOF %x\n", sig)
	if l := r1.line(t); l != "OK" {
		t.Fatalf("good proof: %q", l)
	}
	fmt.Fprintf(r2.c, "PROOF %x\n", sig)
	if l := r2.line(t); !strings.HasPrefix(l, "ERR") {
		t.Fatalf("replayed proof: %q", l)
	}
}

func unhex(t *testing.T, s string) []byte {
	var b []byte
	if _, err := fmt.Sscanf(s, "%x", &b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestNoTrivialAndUnsigned: a server can refuse the trivial protocol and
// accept unsigned certificates (proof of key only).
func TestNoTrivialAndUnsigned(t *testing.T) {
	s, addr := startServer(t, signaling.ServerConfig{NoTrivial: true, AllowUnsigned: true})
	tc, err := signaling.DialTrivial(context.Background(), addr, "str:alice")
	if err != nil {
		t.Fatal(err) // the TCP connection is made; the server then drops it
	}
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Refused >= 1 })
	tc.Close()
	c, err := signaling.Dial(context.Background(), addr, signaling.ClientConfig{Identity: "str:alice", Key: key("alice"), Certificate: cert(t, "str:alice", key("alice"), nil)})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

// TestServerLimits: an oversized line closes the client; a flood is rate
// limited; a client that does not read has its queue bounded; the client
// limit holds.
func TestServerLimits(t *testing.T) {
	s, addr := startServer(t, signaling.ServerConfig{Rate: 10, Burst: 20, QueueLen: 5, MaxClients: 4})
	reader := dialRaw(t, addr, "str:reader") // never reads
	flood := dialRaw(t, addr, "str:flood")
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Trivial == 2 })
	for range 100 {
		fmt.Fprintf(flood.c, "str:reader 00\n")
	}
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.RateLimited+st.Forwarded+st.QueueDropped == 100 })
	st := s.Stats()
	if st.RateLimited < 70 || st.Forwarded > 25 {
		t.Errorf("flood not limited: %+v", st)
	}
	_ = reader
	big := dialRaw(t, addr, "str:big")
	big.c.Write([]byte("str:reader " + strings.Repeat("00", signaling.MaxBlobSize+10) + "\n"))
	big.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := big.r.ReadString('\n'); err == nil {
		t.Error("a client with an oversized line was kept")
	}
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Malformed >= 1 })
	var extra []*rawClient
	for i := range 4 {
		extra = append(extra, dialRaw(t, addr, fmt.Sprintf("str:extra%d", i)))
	}
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Refused >= 1 })
	if st := s.Stats(); st.Clients > 4 {
		t.Errorf("%d clients, limit 4", st.Clients)
	}
}

func FuzzParseTrivialLine(f *testing.F) {
	f.Add([]byte("str:bob 0a0b\n"))
	f.Add([]byte("str:bob zz\n"))
	f.Add([]byte(" \n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		// Through a real server: whatever a client writes, the server
		// neither panics nor forwards a malformed blob.
		signaling.ParseLineForTest(b)
	})
}
