package signaling_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netmsg-go/netmsg/signaling"
)

// memAddr is an address on the in-memory listener ("10.0.0.1:1234").
type memAddr string

func (a memAddr) Network() string { return "mem" }
func (a memAddr) String() string  { return string(a) }

type memConn struct {
	net.Conn
	remote net.Addr
}

func (c memConn) RemoteAddr() net.Addr { return c.remote }

// memListener is a net.Listener whose connections are net.Pipe ends, each
// from the source address its dialer chose; made inside a synctest bubble,
// everything on it runs on fake time.
type memListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newMemListener() *memListener {
	return &memListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr("server:1") }

// memClient is the client end of an in-memory connection; a goroutine
// reads its lines into lines, which is closed when the server closes the
// connection.
type memClient struct {
	c      net.Conn
	lines  chan string
	closed time.Time // when the server closed it (set before lines closes)
}

func (l *memListener) dial(t *testing.T, from, first string) *memClient {
	t.Helper()
	srv, cli := net.Pipe()
	l.ch <- memConn{srv, memAddr(from)}
	m := &memClient{c: cli, lines: make(chan string, 1024)}
	go func() {
		r := bufio.NewReader(cli)
		for {
			s, err := r.ReadString('\n')
			if err != nil {
				m.closed = time.Now()
				close(m.lines)
				return
			}
			select {
			case m.lines <- strings.TrimSuffix(s, "\n"):
			default: // the test reads what it needs; the rest is dropped
			}
		}
	}()
	t.Cleanup(func() { cli.Close() })
	if first != "" {
		fmt.Fprintf(cli, "%s\n", first)
	}
	return m
}

// send writes lines without waiting for the server to read them.
func (m *memClient) send(s string) { go m.c.Write([]byte(s)) }

// isClosed reports whether the server has closed m (after
// synctest.Wait).
func (m *memClient) isClosed() bool {
	select {
	case _, ok := <-m.lines:
		if ok {
			return m.isClosed()
		}
		return true
	default:
		return false
	}
}

// next returns the next line, or "" if the connection closed.
func (m *memClient) next() string {
	s, ok := <-m.lines
	if !ok {
		return ""
	}
	return s
}

// memServer runs a Server on a memListener inside a synctest bubble.
func memServer(t *testing.T, cfg signaling.ServerConfig) (*signaling.Server, *memListener) {
	t.Helper()
	s, err := signaling.NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := newMemListener()
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return s, l
}

// TestDefaultTimeouts: with the zero config, a connection that never
// registers is closed at 5 s, a registered client with no traffic either
// way at 5 min; traffic towards a client keeps it, as does its own.
func TestDefaultTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, l := memServer(t, signaling.ServerConfig{})
		start := time.Now()
		silent := l.dial(t, "10.0.0.1:1", "")
		idle := l.dial(t, "10.0.0.2:1", "str:idle")
		rx := l.dial(t, "10.0.0.3:1", "str:rx")
		talker := l.dial(t, "10.0.0.4:1", "str:talker")
		synctest.Wait()
		if st := s.Stats(); st.Trivial != 3 || st.Pending != 1 {
			t.Fatalf("stats %+v", st)
		}
		// The talker signals rx every minute for 12 minutes.
		for i := range 12 {
			time.Sleep(time.Minute)
			talker.send("str:rx 0" + fmt.Sprint(i%10) + "\n")
			if got := rx.next(); got != "str:talker 0"+fmt.Sprint(i%10) {
				t.Fatalf("rx got %q", got)
			}
		}
		synctest.Wait()
		if !silent.isClosed() || silent.closed.Sub(start) != 5*time.Second {
			t.Errorf("silent connection closed at %v", silent.closed.Sub(start))
		}
		if !idle.isClosed() || idle.closed.Sub(start) != 5*time.Minute {
			t.Errorf("idle client closed at %v", idle.closed.Sub(start))
		}
		if rx.isClosed() || talker.isClosed() {
			t.Error("a client with traffic was dropped")
		}
		st := s.Stats()
		if st.HandshakeTimeouts != 1 || st.IdleTimeouts != 1 || st.Trivial != 2 || st.Forwarded != 12 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestPerAddressCaps: with the default caps, one source holds at most 16
// connections still registering and 128 in all (an IPv6 /64 counts as one
// source); more are refused with a reason and counted, while other
// sources are served.
func TestPerAddressCaps(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, l := memServer(t, signaling.ServerConfig{})
		for i := range 16 {
			l.dial(t, fmt.Sprintf("10.0.0.1:%d", i), "")
		}
		extra := l.dial(t, "10.0.0.1:99", "")
		if got := extra.next(); got != "ERR too many registrations in progress from your address" {
			t.Errorf("17th registering connection told %q", got)
		}
		other := l.dial(t, "10.0.0.2:1", "str:other")
		synctest.Wait()
		if st := s.Stats(); st.Pending != 16 || st.RefusedAddr != 1 || st.Refused != 1 || st.Trivial != 1 {
			t.Fatalf("stats %+v", st)
		}
		for i := range 128 {
			l.dial(t, fmt.Sprintf("[2001:db8::%x]:1", i), fmt.Sprintf("str:v6-%d", i))
			synctest.Wait() // registered before the next one
		}
		v6 := l.dial(t, "[2001:db8::ffff]:2", "str:v6-extra")
		if got := v6.next(); got != "ERR too many connections from your address" {
			t.Errorf("129th connection from a /64 told %q", got)
		}
		if v6.next() != "" {
			t.Error("refused connection kept open")
		}
		l.dial(t, "[2001:db8:0:1::1]:1", "str:next-64")
		synctest.Wait()
		st := s.Stats()
		if st.RefusedAddr != 2 || st.Trivial != 1+128+1 {
			t.Errorf("stats %+v", st)
		}
		// The silent ones time out; their source may register again.
		time.Sleep(5 * time.Second)
		synctest.Wait()
		again := l.dial(t, "10.0.0.1:100", "str:again")
		synctest.Wait()
		other.send("str:again 01\n")
		if got := again.next(); got != "str:other 01" {
			t.Errorf("got %q", got)
		}
		if st := s.Stats(); st.Pending != 0 || st.HandshakeTimeouts != 16 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestPendingEviction: past MaxPending connections still registering, a
// new connection closes the oldest, so a client that registers at once is
// served however many silent connections arrive first.
func TestPendingEviction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, l := memServer(t, signaling.ServerConfig{MaxPending: 4})
		var silent []*memClient
		for i := range 10 {
			silent = append(silent, l.dial(t, fmt.Sprintf("10.0.1.%d:1", i), ""))
			time.Sleep(10 * time.Millisecond)
		}
		good := l.dial(t, "10.0.2.1:1", "str:good")
		synctest.Wait()
		peer := l.dial(t, "10.0.2.2:1", "str:peer")
		synctest.Wait()
		peer.send("str:good 0a\n")
		if got := good.next(); got != "str:peer 0a" {
			t.Fatalf("good client got %q", got)
		}
		for i, c := range silent {
			if want := i < 7; c.isClosed() != want {
				t.Errorf("silent connection %d closed: %v", i, !want)
			}
		}
		if st := s.Stats(); st.PendingEvicted != 7 || st.Pending != 3 || st.Trivial != 2 || st.Malformed != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestAbsentBudget: signals to identities nobody holds cost a source its
// budget (default 100 at once, 20/s); a client over it is told and
// disconnected (and so is its immediate reconnection), one under it is
// kept.
func TestAbsentBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, l := memServer(t, signaling.ServerConfig{})
		burst := l.dial(t, "10.0.0.1:1", "str:burst")
		synctest.Wait()
		burst.send(strings.Repeat("str:nobody 00\n", 150))
		if got := burst.next(); got != "ERR too many signals to absent identities" {
			t.Errorf("told %q", got)
		}
		if burst.next() != "" {
			t.Error("kept open")
		}
		if st := s.Stats(); st.NoRecipient != 101 || st.AbsentFloods != 1 {
			t.Errorf("stats %+v", st)
		}
		// The budget is the source's: reconnecting does not refill it.
		time.Sleep(time.Second)
		again := l.dial(t, "10.0.0.1:2", "str:burst")
		synctest.Wait()
		again.send(strings.Repeat("str:nobody 00\n", 30))
		if got := again.next(); got != "ERR too many signals to absent identities" {
			t.Errorf("reconnected, told %q", got)
		}
		if st := s.Stats(); st.NoRecipient != 101+21 || st.AbsentFloods != 2 {
			t.Errorf("stats %+v", st)
		}

		slow := l.dial(t, "10.0.0.2:1", "str:slow") // 10/s: within the budget
		fast := l.dial(t, "10.0.0.3:1", "str:fast") // 30/s: 10/s over it
		start := time.Now()
		for range 600 { // a minute
			slow.send("str:nobody 00\n")
			fast.send("str:nobody 00\nstr:nobody 00\nstr:nobody 00\n")
			time.Sleep(100 * time.Millisecond)
		}
		synctest.Wait()
		if slow.isClosed() {
			t.Error("a client within the budget was dropped")
		}
		if !fast.isClosed() {
			t.Fatal("a client over the budget was kept")
		}
		// 100 + 20/s*t = 30/s*t: t = 10 s.
		if d := fast.closed.Sub(start); d < 9*time.Second || d > 11*time.Second {
			t.Errorf("fast client dropped after %v, want 10 s", d)
		}
		if st := s.Stats(); st.AbsentFloods != 3 {
			t.Errorf("stats %+v", st)
		}
	})
}

// countHandler counts log records and keeps their text.
type countHandler struct {
	mu  sync.Mutex
	buf bytes.Buffer
	n   int
}

func (h *countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.n++
	fmt.Fprintf(&h.buf, "%s", r.Message)
	r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&h.buf, " %s=%v", a.Key, a.Value); return true })
	h.buf.WriteByte('\n')
	return nil
}
func (h *countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countHandler) WithGroup(string) slog.Handler      { return h }

// TestRefusalLogsLimited: a thousand refusals in ten seconds make a few
// log lines a second, and the next line says how many were suppressed.
func TestRefusalLogsLimited(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := &countHandler{}
		s, l := memServer(t, signaling.ServerConfig{MaxClients: 1, Logger: slog.New(h)})
		l.dial(t, "10.0.0.1:1", "str:only")
		synctest.Wait()
		h.mu.Lock()
		before := h.n
		h.mu.Unlock()
		for i := range 1000 {
			c := l.dial(t, fmt.Sprintf("10.0.%d.%d:1", i/200, i%200), "")
			c.next()
			time.Sleep(10 * time.Millisecond)
		}
		synctest.Wait()
		if st := s.Stats(); st.RefusedFull != 1000 {
			t.Errorf("stats %+v", st)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		// 5 at once, then one a second for 10 s.
		if n := h.n - before; n < 10 || n > 16 {
			t.Errorf("%d log lines for 1000 refusals:\n%s", n, h.buf.String())
		}
		if !strings.Contains(h.buf.String(), "suppressed=99") {
			t.Errorf("no count of suppressed lines:\n%s", h.buf.String())
		}
	})
}

// TestServerFull: a client over MaxClients is told why and reports it:
// Dial (authenticated) fails with ErrRefused, a trivial client's Send
// says ErrRefused while it retries, and gets in once there is room.
func TestServerFull(t *testing.T) {
	e := newAuthEnv(t, signaling.ServerConfig{MaxClients: 2})
	a := e.mustDial(t, "str:alice")
	raw := dialRaw(t, e.addr, "str:raw")
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.Trivial == 1 && st.Authenticated == 1 })
	_, err := e.dial(t, "str:bob", "str:bob", "str:bob", e.ca)
	if !errors.Is(err, signaling.ErrRefused) || !strings.Contains(err.Error(), "server full") {
		t.Errorf("Dial to a full server: %v", err)
	}
	c, err := signaling.DialTrivial(context.Background(), e.addr, "str:carol")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := c.Send("str:alice", []byte("x"))
		if errors.Is(err, signaling.ErrRefused) && errors.Is(err, signaling.ErrNotUp) && strings.Contains(err.Error(), "server full") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("trivial Send to a full server: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	raw.c.Close() // room for carol, who retries
	deadline = time.Now().Add(10 * time.Second)
	for {
		c.Send("str:alice", []byte("in"))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		from, blob, err := a.Recv(ctx)
		cancel()
		if err == nil && from == "str:carol" && string(blob) == "in" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("carol never got in: %+v", e.s.Stats())
		}
	}
	if st := e.s.Stats(); st.RefusedFull < 2 {
		t.Errorf("stats %+v", st)
	}
}

// TestShutdown: Shutdown tells an authenticated client "ERR shutdown"
// after the signals already queued for it, closes a trivial client and a
// registering connection at once, and returns when all are gone; a
// client that does not read is disconnected when ctx ends, and Shutdown
// says so.
func TestShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ca := key("ca")
		s, l := memServer(t, signaling.ServerConfig{TrustedCAs: []ed25519.PublicKey{ca.Public().(ed25519.PublicKey)}})
		authed := memAuth(t, l, "10.0.0.1:1", "str:alice", ca)
		tr := l.dial(t, "10.0.0.2:1", "str:bob")
		pending := l.dial(t, "10.0.0.3:1", "")
		synctest.Wait()
		tr.send("str:alice 0a\n")
		synctest.Wait()
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"str:bob 0a", "ERR shutdown", ""} {
			if got := authed.next(); got != want {
				t.Errorf("authenticated client got %q, want %q", got, want)
			}
		}
		if !tr.isClosed() || !pending.isClosed() {
			t.Error("a trivial or registering connection was kept")
		}
		if st := s.Stats(); st.Clients != 0 {
			t.Errorf("stats %+v", st)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		ca := key("ca")
		s, l := memServer(t, signaling.ServerConfig{TrustedCAs: []ed25519.PublicKey{ca.Public().(ed25519.PublicKey)}})
		srv, cli := net.Pipe() // registers by hand and then reads nothing
		l.ch <- memConn{srv, memAddr("10.0.0.1:1")}
		defer cli.Close()
		r := bufio.NewReader(cli)
		authHello(t, cli, r, "str:alice", ca)
		synctest.Wait()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Errorf("Shutdown with a client that does not read: %v after %v", err, time.Since(start))
		}
		if st := s.Stats(); st.Clients != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

// authHello registers id over c (its reader r) with a certificate signed
// by ca, through to OK.
func authHello(t *testing.T, c net.Conn, r *bufio.Reader, id string, ca ed25519.PrivateKey) {
	t.Helper()
	k := key(id)
	fmt.Fprintf(c, "NETMSG-SIGNAL/1 %s %x\n", id, cert(t, id, k, ca))
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	ch, err := hex.DecodeString(strings.TrimSuffix(strings.TrimPrefix(line, "CHALLENGE "), "\n"))
	if err != nil {
		t.Fatal(err)
	}
	msg := append(append(append([]byte("netmsg-signal/1\x00"), id...), 0), ch...)
	fmt.Fprintf(c, "PROOF %x\n", ed25519.Sign(k, msg))
	if line, _ := r.ReadString('\n'); line != "OK\n" {
		t.Fatalf("registration: %q", line)
	}
}

// memAuth is an authenticated memClient.
func memAuth(t *testing.T, l *memListener, from, id string, ca ed25519.PrivateKey) *memClient {
	t.Helper()
	srv, cli := net.Pipe()
	l.ch <- memConn{srv, memAddr(from)}
	t.Cleanup(func() { cli.Close() })
	r := bufio.NewReader(cli)
	authHello(t, cli, r, id, ca)
	m := &memClient{c: cli, lines: make(chan string, 1024)}
	go func() {
		for {
			s, err := r.ReadString('\n')
			if err != nil {
				m.closed = time.Now()
				close(m.lines)
				return
			}
			m.lines <- strings.TrimSuffix(s, "\n")
		}
	}()
	return m
}
