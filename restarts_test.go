package netmsg

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

// Restarts and moves: what a session does when something under it restarts
// or moves (a signaling server, a TURN server, the peer itself, the peer's
// NAT mapping).

// sessionLog records a Host's Messages callbacks for the tests below: it
// accepts every session request and keeps the failures and route changes.
type sessionLog struct {
	mu       sync.Mutex
	failures []ConnectionInfo
	failedAt []time.Time
	routes   []RouteChanged
}

// hook sets c's callbacks: accept every request (through *h, set once the
// Host is made), record failures and route changes.
func (l *sessionLog) hook(c *Config, h **Host) {
	c.OnSessionRequest = func(peer Identity) { (*h).Messages().AcceptSessionWithUser(peer) }
	c.OnSessionFailed = func(info ConnectionInfo) {
		l.mu.Lock()
		l.failures = append(l.failures, info)
		l.failedAt = append(l.failedAt, time.Now())
		l.mu.Unlock()
	}
	c.OnRouteChanged = func(rc RouteChanged) {
		l.mu.Lock()
		l.routes = append(l.routes, rc)
		l.mu.Unlock()
	}
}

func (l *sessionLog) gotFailures() []ConnectionInfo {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]ConnectionInfo(nil), l.failures...)
}

// firstFailure returns when the first failure was reported (zero: none).
func (l *sessionLog) firstFailure() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.failedAt) == 0 {
		return time.Time{}
	}
	return l.failedAt[0]
}

func (l *sessionLog) gotRoutes() []RouteChanged {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]RouteChanged(nil), l.routes...)
}

// seqStream is one direction of numbered reliable messages on a channel:
// a sender goroutine sends message i at start+i*every, a receiver
// goroutine records when each number arrived and how often.
type seqStream struct {
	mu      sync.Mutex
	sentAt  map[int]time.Time
	gotAt   map[int]time.Time
	count   map[int]int
	order   []int
	sendErr error // the first send that failed
}

// runStream sends n numbered messages from m to peer on channel ch, one
// every every, and receives them on to; it returns at once. ctx ends both
// goroutines; wg counts them.
func runStream(ctx context.Context, wg *sync.WaitGroup, m *Messages, peer Identity, to *Messages, ch, n int, every time.Duration) *seqStream {
	s := &seqStream{sentAt: map[int]time.Time{}, gotAt: map[int]time.Time{}, count: map[int]int{}}
	wg.Add(2)
	go func() {
		defer wg.Done()
		var b [8]byte
		for i := range n {
			binary.LittleEndian.PutUint64(b[:], uint64(i))
			err := m.SendMessageToUser(peer, b[:], SendReliable, ch)
			s.mu.Lock()
			s.sentAt[i] = time.Now()
			if err != nil && s.sendErr == nil {
				s.sendErr = err
			}
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			msg, err := to.Receive(ctx, ch)
			if err != nil {
				return
			}
			if len(msg.Payload) == 8 {
				i := int(binary.LittleEndian.Uint64(msg.Payload))
				s.mu.Lock()
				s.count[i]++
				if _, ok := s.gotAt[i]; !ok {
					s.gotAt[i] = time.Now()
				}
				s.order = append(s.order, i)
				s.mu.Unlock()
			}
			msg.Release()
		}
	}()
	return s
}

// received returns how many distinct numbers arrived.
func (s *seqStream) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.count)
}

// check reports numbers delivered twice or out of order, and the numbers
// sent that never arrived.
func (s *seqStream) check() (dups, disorder int, missing []int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.count {
		if c > 1 {
			dups += c - 1
		}
	}
	for i := 1; i < len(s.order); i++ {
		if s.order[i] < s.order[i-1] {
			disorder++
		}
	}
	for i := range s.sentAt {
		if s.count[i] == 0 {
			missing = append(missing, i)
		}
	}
	return dups, disorder, missing
}

// lastArrival returns when the last new number arrived.
func (s *seqStream) lastArrival() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last time.Time
	for _, at := range s.gotAt {
		if at.After(last) {
			last = at
		}
	}
	return last
}

// maxGap returns the longest time within [from, to] with no new number
// arriving.
func (s *seqStream) maxGap(from, to time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ts []time.Time
	for _, at := range s.gotAt {
		if !at.Before(from) && !at.After(to) {
			ts = append(ts, at)
		}
	}
	slices.SortFunc(ts, time.Time.Compare)
	prev, gap := from, time.Duration(0)
	for _, at := range append(ts, to) {
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	return gap
}

// firstAfter returns when the first message sent at or after t arrived,
// and that message's number (-1: none yet).
func (s *seqStream) firstAfter(t time.Time) (time.Time, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	best := -1
	for i, at := range s.sentAt {
		if !at.Before(t) && (best < 0 || i < best) {
			best = i
		}
	}
	if best < 0 {
		return time.Time{}, -1
	}
	return s.gotAt[best], best
}

// TestNATRebindMidSession: a P2P session runs directly through two NATs
// (STUN, no relay) with messages flowing both ways; then peer A's NAT
// rebinds (netsim NAT.Rebind: its public port changes, the old one is
// dead). Where B's NAT lets A's new port in (B behind a full cone, A
// behind any NAT), B answers A's checks from the new address (a
// peer-reflexive candidate), its consent check on the old one fails, and
// the session moves to the new address: a RouteChanged names it, the
// messages sent meanwhile arrive late but exactly once and in order, and
// no session fails. Where B's NAT filters A's new port (both
// port-restricted), A's consent checks go unanswered too: A's lost path
// has its STUN server asked again at once, which reports A's new public
// address, signaled to B as a candidate; B's check to it opens B's NAT
// and the session moves there, within seconds. Without a STUN server to
// tell A (it stopped answering), nothing can open B's NAT: both sides
// fail cleanly, with EndMiscTimeout, within the connected timeout, and
// sends then fail with ResultNoConnection.
func TestNATRebindMidSession(t *testing.T) {
	cases := []struct {
		a, b     netsim.NATType
		stunGone bool // the STUN server stops answering before the rebinding
		recover  bool
	}{
		{netsim.FullCone, netsim.FullCone, false, true},
		{netsim.PortRestricted, netsim.FullCone, false, true},
		{netsim.Symmetric, netsim.FullCone, false, true},
		{netsim.PortRestricted, netsim.PortRestricted, false, true},
		{netsim.PortRestricted, netsim.PortRestricted, true, false},
	}
	for _, tc := range cases {
		name := tc.a.String() + "-" + tc.b.String()
		if tc.stunGone {
			name += "-no-stun"
		}
		t.Run(name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				env := newP2PCEnv(t, false, []netsim.NATType{tc.a, tc.b}, false)
				var la, lb sessionLog
				var ha, hb *Host
				a := env.peer(t, 0, false, func(c *Config) { la.hook(c, &ha) })
				b := env.peer(t, 1, false, func(c *Config) { lb.hook(c, &hb) })
				ha, hb = a.Host, b.Host
				ma, mb := a.Messages(), b.Messages()
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				defer wg.Wait()
				defer cancel()
				const n, every = 300, 100 * time.Millisecond // 30 s each way
				ab := runStream(ctx, &wg, ma, b.id, mb, 0, n, every)
				waitFor(t, time.Minute, "the session", func() bool { return ab.received() > 0 })
				ba := runStream(ctx, &wg, mb, a.id, ma, 0, n, every)
				time.Sleep(5 * time.Second)
				_, info, _ := mb.GetSessionConnectionInfo(a.id)
				oldA := info.RemoteAddress
				if !oldA.IsValid() || info.Flags&ConnInfoRelayed != 0 {
					t.Fatalf("B's session is not direct: %+v", info)
				}
				if tc.stunGone {
					env.nw.SetIngress(env.stun[0], netsim.LinkConfig{LossPercent: 100})
				}
				if dropped := env.natBoxes[0].Rebind(env.nw); dropped == 0 {
					t.Fatal("A's NAT had no mapping to drop")
				}
				rebound := time.Now()
				time.Sleep(n*every - 5*time.Second + 20*time.Second) // the streams end, and 20 s more
				for _, x := range []struct {
					name string
					s    *seqStream
				}{{"A to B", ab}, {"B to A", ba}} {
					at, i := x.s.firstAfter(rebound)
					dups, disorder, missing := x.s.check()
					if !at.IsZero() {
						t.Logf("%s: the first message sent after the rebinding (#%d) arrived %v after it", x.name, i, at.Sub(rebound))
					}
					if dups != 0 || disorder != 0 {
						t.Errorf("%s: %d duplicates, %d out of order", x.name, dups, disorder)
					}
					if tc.recover && (len(missing) != 0 || at.IsZero() || at.Sub(rebound) > 10*time.Second) {
						t.Errorf("%s: %d messages missing, the first sent after the rebinding arrived at %v", x.name, len(missing), at)
					}
				}
				fa, fb := la.gotFailures(), lb.gotFailures()
				t.Logf("failures: A %+v B %+v", fa, fb)
				t.Logf("routes: A %+v B %+v", la.gotRoutes(), lb.gotRoutes())
				if tc.recover {
					if len(fa)+len(fb) != 0 {
						t.Errorf("failures: A %+v, B %+v", fa, fb)
					}
					_, info, _ = mb.GetSessionConnectionInfo(a.id)
					if info.RemoteAddress == oldA || info.RemoteAddress.Addr() != oldA.Addr() {
						t.Errorf("B reaches A at %v; A's NAT moved it from %v", info.RemoteAddress, oldA)
					}
					rs := lb.gotRoutes()
					if len(rs) == 0 || rs[len(rs)-1].OldRemote != oldA || rs[len(rs)-1].Info.RemoteAddress != info.RemoteAddress {
						t.Errorf("B's route changes %+v, want one from %v to %v", rs, oldA, info.RemoteAddress)
					}
					return
				}
				for _, x := range []struct {
					name string
					f    []ConnectionInfo
					s    *seqStream
					m    *Messages
					peer Identity
					l    *sessionLog
				}{{"A", fa, ba, ma, b.id, &la}, {"B", fb, ab, mb, a.id, &lb}} {
					if len(x.f) != 1 || x.f[0].EndReason != EndMiscTimeout {
						t.Errorf("%s's failures %+v, want one with EndMiscTimeout", x.name, x.f)
						continue
					}
					// The failure came within the connected timeout (and
					// its few unanswered requests) of the rebinding.
					if d := x.l.firstFailure().Sub(rebound); d > 15*time.Second {
						t.Errorf("%s failed %v after the rebinding", x.name, d)
					} else {
						t.Logf("%s failed %v after the rebinding", x.name, d)
					}
					if last := x.s.lastArrival(); last.IsZero() || last.After(rebound.Add(time.Second)) {
						t.Errorf("%s: messages arrived until %v, after the rebinding at %v", x.name, last, rebound)
					}
					if err := x.m.SendMessageToUser(x.peer, []byte("x"), SendReliable, 1); !errors.Is(err, ResultNoConnection) {
						t.Errorf("%s: send after the failure: %v, want ResultNoConnection", x.name, err)
					}
				}
			})
		})
	}
}

// pipeAddr names an end of an in-memory signaling connection.
type pipeAddr string

func (a pipeAddr) Network() string { return "mem" }
func (a pipeAddr) String() string  { return string(a) }

type pipeConn struct {
	net.Conn
	remote net.Addr
}

func (c pipeConn) RemoteAddr() net.Addr { return c.remote }

// pipeListener is a net.Listener whose connections are net.Pipe ends:
// a signaling server on fake time.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr("signaling:1") }

// sigAddress is the signaling server's address on the in-memory network:
// the server listening there now (if any), and every client's dial
// attempts. A dial while no server listens is refused at once.
type sigAddress struct {
	mu    sync.Mutex
	srv   *signaling.Server
	l     *pipeListener
	dials map[string][]time.Time
}

// start runs a new signaling server at the address.
func (a *sigAddress) start(t *testing.T) {
	t.Helper()
	s, err := signaling.NewServer(signaling.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	l := &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
	go s.Serve(l)
	a.mu.Lock()
	a.srv, a.l = s, l
	a.mu.Unlock()
}

// stop ends the server (its clients are dropped).
func (a *sigAddress) stop() {
	a.mu.Lock()
	s := a.srv
	a.srv, a.l = nil, nil
	a.mu.Unlock()
	if s != nil {
		s.Close()
	}
}

func (a *sigAddress) dialTimes(id string) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.dials[id]...)
}

// connect opens a signaling client (GNS's trivial protocol) for id.
func (a *sigAddress) connect(t *testing.T, id string, from netip.AddrPort) signaling.Conn {
	t.Helper()
	dial := func(ctx context.Context, network, _ string) (net.Conn, error) {
		a.mu.Lock()
		if a.dials == nil {
			a.dials = map[string][]time.Time{}
		}
		a.dials[id] = append(a.dials[id], time.Now())
		l := a.l
		a.mu.Unlock()
		refused := &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
		if l == nil {
			return nil, refused
		}
		srv, cli := net.Pipe()
		select {
		case l.ch <- pipeConn{srv, pipeAddr(from.String())}:
			return cli, nil
		case <-l.done:
			return nil, refused
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c, err := signaling.DialURL(context.Background(), "tcp://signaling:1", signaling.ClientConfig{Identity: id, DialContext: dial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestSignalingServerRestart: the signaling server (netmsg signal's
// server, GNS's trivial protocol, on an in-memory network under fake time)
// goes away for 20 s while A and B stream messages both ways over their
// established P2P session: the session keeps its data path (ICE picked it
// and it needs no signaling) and every message arrives, exactly once, in
// order, with no stall. Meanwhile the clients try to reconnect with
// backoff, never waiting more than 5 s, and a new session tried while
// the server is down fails with a reason. Once a server listens again
// every client is back within the 5 s bound and new sessions (A to C, B
// to C) connect.
func TestSignalingServerRestart(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 10 * time.Millisecond}})
		defer nw.Close()
		var sig sigAddress
		sig.start(t)
		defer sig.stop()
		var logs [3]sessionLog
		var hs [3]*Host
		for i := range hs {
			id := fmt.Sprintf("str:s%d", i)
			addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 27015)
			ep, err := nw.Listen(addr)
			if err != nil {
				t.Fatal(err)
			}
			cfg := Config{PacketConn: ep, Identity: mustIdentity(t, id), Signaling: sig.connect(t, id, addr)}
			logs[i].hook(&cfg, &hs[i])
			h, err := NewHost(cfg)
			if err != nil {
				t.Fatal(err)
			}
			hs[i] = h
			defer h.Close()
		}
		a, b, c := hs[0], hs[1], hs[2]
		ma, mb, mc := a.Messages(), b.Messages(), c.Messages()
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		const n, every = 300, 100 * time.Millisecond // 30 s each way
		ab := runStream(ctx, &wg, ma, b.Identity(), mb, 0, n, every)
		waitFor(t, time.Minute, "the session", func() bool { return ab.received() > 0 })
		ba := runStream(ctx, &wg, mb, a.Identity(), ma, 0, n, every)
		time.Sleep(5 * time.Second)

		sig.stop()
		down := time.Now()
		// A new session while the server is down: its connect request
		// cannot be signaled.
		if err := ma.SendMessageToUser(c.Identity(), []byte("while down"), SendReliable, 1); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Second)
		// It times out as an unanswered connection does (GNS's reason),
		// not as if ICE had found no path.
		if f := logs[0].gotFailures(); len(f) != 1 || f[0].Identity != c.Identity() || f[0].EndReason != EndMiscTimeout {
			t.Errorf("A's failures while the server is down: %+v, want the session to C, EndMiscTimeout", f)
		} else {
			t.Logf("the session tried while down failed with %v (%s)", f[0].EndReason, f[0].EndDebug)
		}
		// The application acknowledges the failed session (GNS: sends
		// on it fail until it is closed).
		if err := ma.SendMessageToUser(c.Identity(), []byte("x"), SendReliable, 1); !errors.Is(err, ResultNoConnection) {
			t.Errorf("send on the failed session: %v", err)
		}
		ma.CloseSessionWithUser(c.Identity())
		sig.start(t)
		back := time.Now()
		waitFor(t, 6*time.Second, "the clients reconnected", func() bool { return sig.clients() == len(hs) })
		t.Logf("the clients are back %v after the server", time.Since(back))
		time.Sleep(n*every - 25*time.Second + 5*time.Second) // the streams end
		for _, x := range []struct {
			name string
			s    *seqStream
		}{{"A to B", ab}, {"B to A", ba}} {
			dups, disorder, missing := x.s.check()
			if dups != 0 || disorder != 0 || len(missing) != 0 {
				t.Errorf("%s: %d duplicates, %d out of order, %d missing", x.name, dups, disorder, len(missing))
			}
			if gap := x.s.maxGap(down, back); gap > time.Second {
				t.Errorf("%s: no message arrived for %v while the server was down", x.name, gap)
			}
		}
		if f := logs[1].gotFailures(); len(f) != 0 {
			t.Errorf("B's failures: %+v", f)
		}
		for _, id := range []string{"str:s0", "str:s1", "str:s2"} {
			ds := sig.dialTimes(id)
			var waits []time.Duration
			for i := 2; i < len(ds); i++ {
				waits = append(waits, ds[i].Sub(ds[i-1]))
				if w := ds[i].Sub(ds[i-1]); w > 5*time.Second {
					t.Errorf("%s waited %v between attempts, beyond the 5 s bound", id, w)
				}
			}
			if len(ds) < 2+20/5 {
				t.Errorf("%s: %d dials", id, len(ds))
			}
			t.Logf("%s: %d attempts while down, waits %v", id, len(ds)-2, waits)
		}

		// New sessions after the server is back.
		for _, from := range []*Host{a, b} {
			if err := from.Messages().SendMessageToUser(c.Identity(), []byte("after"), SendReliable, 2); err != nil {
				t.Fatal(err)
			}
			rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
			m, err := mc.Receive(rctx, 2)
			rcancel()
			if err != nil {
				t.Fatalf("C got nothing from %v: %v", from.Identity(), err)
			}
			if string(m.Payload) != "after" || m.Identity != from.Identity() {
				t.Fatalf("C got %q from %v", m.Payload, m.Identity)
			}
			m.Release()
			if err := mc.SendMessageToUser(from.Identity(), []byte("reply"), SendReliable, 2); err != nil {
				t.Fatal(err)
			}
			rctx, rcancel = context.WithTimeout(context.Background(), 30*time.Second)
			m, err = from.Messages().Receive(rctx, 2)
			rcancel()
			if err != nil || string(m.Payload) != "reply" {
				t.Fatalf("%v got %v %v", from.Identity(), m, err)
			}
			m.Release()
		}
		if ms := mc.ReceiveMessagesOnChannel(1, 10); len(ms) != 0 {
			t.Errorf("C got %q sent on the session that failed", ms[0].Payload)
		}
	})
}

// clients returns how many clients the server has registered now.
func (a *sigAddress) clients() int {
	a.mu.Lock()
	s := a.srv
	a.mu.Unlock()
	if s == nil {
		return 0
	}
	return s.Stats().Trivial
}

// appStream is an application's numbered reliable messages to a peer, as
// an application sends them: a send that fails because the session ended
// (ResultNoConnection) closes the session, as GNS asks, and is tried once
// more on a new one; numbers whose send failed both times are not counted
// as sent.
type appStream struct {
	mu     sync.Mutex
	sentAt map[int]time.Time // accepted by SendMessageToUser
	closes int               // sessions closed after a failed send
}

func runAppSender(ctx context.Context, wg *sync.WaitGroup, m *Messages, peer Identity, ch, first, n int, every time.Duration) *appStream {
	s := &appStream{sentAt: map[int]time.Time{}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var b [8]byte
		for i := first; i < first+n; i++ {
			binary.LittleEndian.PutUint64(b[:], uint64(i))
			err := m.SendMessageToUser(peer, b[:], SendReliable, ch)
			if errors.Is(err, ResultNoConnection) {
				m.CloseSessionWithUser(peer)
				s.mu.Lock()
				s.closes++
				s.mu.Unlock()
				err = m.SendMessageToUser(peer, b[:], SendReliable, ch)
			}
			if err == nil {
				s.mu.Lock()
				s.sentAt[i] = time.Now()
				s.mu.Unlock()
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(every):
			}
		}
	}()
	return s
}

// recvLog records the numbered messages a Host received on a channel.
type recvLog struct {
	mu    sync.Mutex
	count map[int]int
	at    map[int]time.Time
}

func runReceiver(ctx context.Context, wg *sync.WaitGroup, m *Messages, ch int) *recvLog {
	r := &recvLog{count: map[int]int{}, at: map[int]time.Time{}}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			msg, err := m.Receive(ctx, ch)
			if err != nil {
				return
			}
			if len(msg.Payload) == 8 {
				i := int(binary.LittleEndian.Uint64(msg.Payload))
				r.mu.Lock()
				r.count[i]++
				if _, ok := r.at[i]; !ok {
					r.at[i] = time.Now()
				}
				r.mu.Unlock()
			}
			msg.Release()
		}
	}()
	return r
}

func (r *recvLog) snapshot() (count map[int]int, at map[int]time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.count), maps.Clone(r.at)
}

// TestPeerRestartFreshKey: B restarts while its session with A is busy
// (numbered reliable messages every 100 ms both ways): the Host closes
// (gracefully, or crashed: nothing it sends gets out), and a new Host
// with a fresh key (a new certificate) takes the same identity (the same
// str: name through signaling, or the same address for ip:) and goes on
// sending to A, or only receives. A's old session ends (replaced by the
// restarted peer's new one when that one sends; otherwise
// OnSessionFailed: closed by the peer, or, after a crash, the restarted
// Host's answer to the old connection's packets), the new session
// connects, and nothing is delivered twice: no number reaches B twice
// (the old and the new Host together), none reaches A twice; what A sent
// once the new session is up reaches the new B, and everything the new B
// sent reaches A.
func TestPeerRestartFreshKey(t *testing.T) {
	type tc struct {
		mode          string
		crash, silent bool
	}
	var cases []tc
	for _, mode := range []string{"direct", "p2p"} {
		for _, crash := range []bool{false, true} {
			for _, silent := range []bool{false, true} {
				cases = append(cases, tc{mode, crash, silent})
			}
		}
	}
	for _, c := range cases {
		mode, crash, silent := c.mode, c.crash, c.silent
		name := mode + map[bool]string{false: "-close", true: "-crash"}[crash] + map[bool]string{false: "", true: "-silent"}[silent]
		t.Run(name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 10 * time.Millisecond}})
				defer nw.Close()
				var hub *signaling.Hub
				if mode == "p2p" {
					hub, _ = signaling.NewHub(signaling.HubConfig{Delay: 20 * time.Millisecond})
				}
				var la, lb1, lb2 sessionLog
				// peer opens Host i (B is 1) on its address, with its
				// callbacks, a fresh key and, for P2P, a new signaling
				// connection under the same name.
				peer := func(i int, l *sessionLog) (*Host, signaling.Conn) {
					addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 27015)
					ep, err := nw.Listen(addr)
					if err != nil {
						t.Fatal(err)
					}
					var h *Host
					cfg := Config{PacketConn: ep}
					var sc signaling.Conn
					if hub != nil {
						id := fmt.Sprintf("str:k%d", i)
						cfg.Identity = mustIdentity(t, id)
						if sc, err = hub.Connect(id); err != nil {
							t.Fatal(err)
						}
						cfg.Signaling = sc
					}
					l.hook(&cfg, &h)
					if h, err = NewHost(cfg); err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() {
						h.Close()
						if sc != nil {
							sc.Close()
						}
					})
					return h, sc
				}
				a, _ := peer(0, &la)
				b1, sc1 := peer(1, &lb1)
				idA, idB := a.Identity(), b1.Identity()
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				defer wg.Wait()
				defer cancel()
				const every = 100 * time.Millisecond
				toB := runAppSender(ctx, &wg, a.Messages(), idB, 0, 0, 400, every) // 40 s
				atA := runReceiver(ctx, &wg, a.Messages(), 0)
				ctx1, cancel1 := context.WithCancel(ctx)
				var wg1 sync.WaitGroup
				atB1 := runReceiver(ctx1, &wg1, b1.Messages(), 0)
				fromB1 := runAppSender(ctx1, &wg1, b1.Messages(), idA, 0, 100000, 100, every)
				time.Sleep(5 * time.Second)
				_, info1, _ := a.Messages().GetSessionConnectionInfo(idB)
				if info1.State != StateConnected {
					t.Fatalf("A's session with B: %+v", info1)
				}

				if crash {
					// Nothing B sends from now on gets out.
					nw.SetEgress(b1.LocalAddr(), netsim.LinkConfig{LossPercent: 100})
					if sc1 != nil {
						sc1.Close()
					}
				}
				cancel1()
				wg1.Wait()
				b1.Close()
				if sc1 != nil {
					sc1.Close()
				}
				nw.SetEgress(b1.LocalAddr(), netsim.LinkConfig{Delay: 10 * time.Millisecond}) // the default again
				restart := time.Now()
				b2, _ := peer(1, &lb2)
				if b2.Identity() != idB {
					t.Fatalf("the restarted B is %v, was %v", b2.Identity(), idB)
				}
				atB2 := runReceiver(ctx, &wg, b2.Messages(), 0)
				fromB2 := &appStream{sentAt: map[int]time.Time{}}
				if !silent {
					fromB2 = runAppSender(ctx, &wg, b2.Messages(), idA, 0, 200000, 300, every)
				}
				time.Sleep(45 * time.Second) // A's sender ends at 40 s; B2's at 35 s

				// A: the old session ended, a new one connected.
				_, info2, _ := a.Messages().GetSessionConnectionInfo(idB)
				if info2.State != StateConnected || info2.Description == info1.Description {
					t.Errorf("A's session with B after the restart: %v %q (before: %q)", info2.State, info2.Description, info1.Description)
				}
				fa := la.gotFailures()
				for _, f := range fa {
					t.Logf("A's old session failed %v after the restart: %v %s", la.firstFailure().Sub(restart), f.EndReason, f.EndDebug)
				}
				if silent && (len(fa) != 1 || la.firstFailure().Sub(restart) > 15*time.Second) {
					t.Errorf("A's failures %+v (the first %v after the restart), want one within 15 s", fa, la.firstFailure().Sub(restart))
				}
				if !silent && !crash && len(fa) != 1 {
					t.Errorf("A's failures %+v, want the old session closed by the peer", fa)
				}

				cB1, _ := atB1.snapshot()
				cB2, atB2t := atB2.snapshot()
				cA, _ := atA.snapshot()
				for i, c := range cB1 {
					if c > 1 || cB2[i] > 0 {
						t.Errorf("A's #%d reached B %d times before the restart and %d after", i, c, cB2[i])
					}
				}
				var firstNew time.Time
				for _, at := range atB2t {
					if firstNew.IsZero() || at.Before(firstNew) {
						firstNew = at
					}
				}
				if firstNew.IsZero() || firstNew.Sub(restart) > 15*time.Second {
					t.Fatalf("the restarted B got A's first message at %v, %v after the restart", firstNew, firstNew.Sub(restart))
				}
				t.Logf("the restarted B got A's first message %v after the restart", firstNew.Sub(restart))
				toB.mu.Lock()
				lostOld, lostNew := 0, 0
				for i, at := range toB.sentAt {
					c := cB1[i] + cB2[i]
					switch {
					case c > 1:
						t.Errorf("A's #%d delivered %d times", i, c)
					case c == 0 && at.After(firstNew):
						lostNew++
					case c == 0:
						lostOld++
					}
				}
				toB.mu.Unlock()
				if lostNew != 0 {
					t.Errorf("%d of A's messages sent after the new session was up never arrived", lostNew)
				}
				t.Logf("A's messages lost with the old session: %d", lostOld)
				fromB1.mu.Lock()
				for i := range fromB1.sentAt {
					if cA[i] > 1 {
						t.Errorf("the old B's #%d reached A %d times", i, cA[i])
					}
				}
				fromB1.mu.Unlock()
				fromB2.mu.Lock()
				for i := range fromB2.sentAt {
					if cA[i] != 1 {
						t.Errorf("the new B's #%d reached A %d times, want once", i, cA[i])
					}
				}
				if (len(fromB2.sentAt) == 0) != silent || fromB2.closes != 0 {
					t.Errorf("the new B sent %d, closed %d sessions", len(fromB2.sentAt), fromB2.closes)
				}
				fromB2.mu.Unlock()
				if f := lb2.gotFailures(); len(f) != 0 {
					t.Errorf("the new B's failures %+v", f)
				}
			})
		})
	}
}

// turnAt runs a TURN server (package relay) at addr on nw.
func turnAt(t *testing.T, nw *netsim.Network, addr netip.AddrPort) *relay.Server {
	t.Helper()
	rs, err := relay.NewServer(relay.Config{Logger: slog.New(slog.DiscardHandler), ListenPacket: nw.ListenPacket, ListenAddr: addr.String(), RelayIP: addr.Addr(), Users: map[string]string{"u": "p"}})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestTURNRestartRelayedSession: a session whose only path is a TURN relay
// (both sides relay-only, P2PICEEnable ICEEnableRelay) while numbered
// messages stream both ways, and the TURN server it uses stops. A stopped
// server takes the allocations with it: the relayed path's consent checks
// go unanswered, each side checks its allocation (paths.CheckRelay: a
// CreatePermission the server no longer answers), drops it and allocates
// again, on the other configured server first, and signals the new relayed
// address; ICE finds the new path.
//   - two servers: the session moves to the other one (POPRelay says which)
//     within seconds, no session fails, every message arrives exactly once
//     and in order;
//   - one server, back on the same address a second later: the session
//     moves to new allocations on it, the same way;
//   - one server, away for a minute: the session fails with
//     EndMiscTimeout within the connected timeout, never hangs; once the
//     server is back the Hosts allocate again (retrying with backoff) and
//     a new session connects through it.
func TestTURNRestartRelayedSession(t *testing.T) {
	cases := []struct {
		name    string
		servers int
		down    time.Duration // until the stopped server is back (0: never)
		recover bool
	}{
		{"two-servers", 2, 0, true},
		{"restarted", 1, time.Second, true},
		{"away", 1, time.Minute, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 10 * time.Millisecond}})
				defer nw.Close()
				hub, _ := signaling.NewHub(signaling.HubConfig{Delay: 20 * time.Millisecond})
				var addrs []netip.AddrPort
				var servers []*relay.Server
				var turns []TURNServer
				for i := range tc.servers {
					a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(20 + i)}), 3478)
					addrs = append(addrs, a)
					servers = append(servers, turnAt(t, nw, a))
					turns = append(turns, TURNServer{Addr: a, Username: "u", Password: "p"})
				}
				defer func() {
					for _, rs := range servers {
						if rs != nil {
							rs.Close()
						}
					}
				}()
				var logs [2]sessionLog
				var hs [2]*Host
				for i := range hs {
					id := fmt.Sprintf("str:t%d", i)
					ep, err := nw.Listen(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 27015))
					if err != nil {
						t.Fatal(err)
					}
					sc, _ := hub.Connect(id)
					defer sc.Close()
					cfg := Config{PacketConn: ep, Identity: mustIdentity(t, id), Signaling: sc, TURNServers: turns, P2PICEEnable: ICEEnableRelay}
					logs[i].hook(&cfg, &hs[i])
					h, err := NewHost(cfg)
					if err != nil {
						t.Fatal(err)
					}
					hs[i] = h
					defer h.Close()
				}
				a, b := hs[0], hs[1]
				ma, mb := a.Messages(), b.Messages()
				ctx, cancel := context.WithCancel(context.Background())
				var wg sync.WaitGroup
				defer wg.Wait()
				defer cancel()
				const n, every = 300, 100 * time.Millisecond // 30 s each way
				ab := runStream(ctx, &wg, ma, b.Identity(), mb, 0, n, every)
				waitFor(t, time.Minute, "the session", func() bool { return ab.received() > 0 })
				ba := runStream(ctx, &wg, mb, a.Identity(), ma, 0, n, every)
				time.Sleep(5 * time.Second)
				_, info, _ := ma.GetSessionConnectionInfo(b.Identity())
				if info.Flags&ConnInfoRelayed == 0 {
					t.Fatalf("the session is not relayed: %+v", info)
				}
				var before [2]int // the server each Host's allocation is on
				for i, h := range hs {
					al, ok := h.paths.Allocation()
					if !ok {
						t.Fatalf("%v has no allocation", h.Identity())
					}
					before[i] = al.Index
				}
				used := before[0]
				t.Logf("before: %s (A's allocation on server %d)", info.Description, used)
				servers[used].Close()
				servers[used] = nil
				stopped := time.Now()
				if tc.down > 0 {
					time.Sleep(tc.down)
					servers[used] = turnAt(t, nw, addrs[used])
				}
				if rest := n*every - 5*time.Second - tc.down + 20*time.Second; rest > 0 {
					time.Sleep(rest) // the streams end, and 20 s more
				} else {
					time.Sleep(20 * time.Second)
				}

				for i, h := range hs {
					st := h.paths.Stats()
					al, _ := h.paths.Allocation()
					t.Logf("%v: relay checks %d, allocations lost %d, made again %d; on server %d, was on %d", h.Identity(), st.RelayChecks, st.AllocationsLost, st.Reallocations, al.Index, before[i])
					if tc.recover && before[i] == used && (st.AllocationsLost != 1 || st.Reallocations != 1) {
						t.Errorf("%v: %d allocations lost, %d made again, want 1 each", h.Identity(), st.AllocationsLost, st.Reallocations)
					}
					if before[i] != used && st.AllocationsLost != 0 {
						t.Errorf("%v: its allocation on the server that kept running was dropped", h.Identity())
					}
					if tc.servers == 2 && al.Index == used {
						t.Errorf("%v: the allocation in use is on server %d, which stopped", h.Identity(), al.Index)
					}
				}
				fa, fb := logs[0].gotFailures(), logs[1].gotFailures()
				if tc.recover {
					for _, x := range []struct {
						name string
						s    *seqStream
					}{{"A to B", ab}, {"B to A", ba}} {
						at, i := x.s.firstAfter(stopped)
						dups, disorder, missing := x.s.check()
						t.Logf("%s: the first message sent after the server stopped (#%d) arrived %v after", x.name, i, at.Sub(stopped))
						if dups != 0 || disorder != 0 || len(missing) != 0 {
							t.Errorf("%s: %d duplicates, %d out of order, %d missing", x.name, dups, disorder, len(missing))
						}
						if at.IsZero() || at.Sub(stopped) > 10*time.Second {
							t.Errorf("%s: the first message sent after the server stopped arrived %v after", x.name, at.Sub(stopped))
						}
					}
					if len(fa)+len(fb) != 0 {
						t.Errorf("failures: A %+v, B %+v", fa, fb)
					}
					_, info, _ = ma.GetSessionConnectionInfo(b.Identity())
					if info.State != StateConnected || info.Flags&ConnInfoRelayed == 0 {
						t.Errorf("after: %v %s", info.State, info.Description)
					}
					if tc.servers == 2 && info.POPRelay != 0 && int(info.POPRelay)-1 == used {
						t.Errorf("after: POPRelay %d, the server that stopped", info.POPRelay)
					}
					t.Logf("after: %s, POPRelay %d", info.Description, info.POPRelay)
					return
				}
				for _, x := range []struct {
					name string
					f    []ConnectionInfo
					l    *sessionLog
				}{{"A", fa, &logs[0]}, {"B", fb, &logs[1]}} {
					if len(x.f) != 1 || x.f[0].EndReason != EndMiscTimeout {
						t.Errorf("%s's failures %+v, want one, EndMiscTimeout", x.name, x.f)
						continue
					}
					if d := x.l.firstFailure().Sub(stopped); d > 15*time.Second {
						t.Errorf("%s failed %v after the server stopped", x.name, d)
					} else {
						t.Logf("%s failed %v after the server stopped: %v (%s)", x.name, d, x.f[0].EndReason, x.f[0].EndDebug)
					}
				}
				// The server is back: a new session (the application
				// closes the failed one, as GNS asks, and tries again
				// when one fails) goes through it.
				cancel()
				wg.Wait()
				back := stopped.Add(tc.down)
				for try := 0; ; try++ {
					ma.CloseSessionWithUser(b.Identity())
					mb.CloseSessionWithUser(a.Identity())
					if err := ma.SendMessageToUser(b.Identity(), []byte("again"), SendReliable, 1); err != nil {
						t.Fatal(err)
					}
					rctx, rcancel := context.WithTimeout(context.Background(), 15*time.Second)
					m, err := mb.Receive(rctx, 1)
					rcancel()
					if err == nil {
						m.Release()
						t.Logf("a new session through the server %v after it came back (attempt %d)", time.Since(back), try+1)
						break
					}
					if time.Since(back) > time.Minute {
						t.Fatalf("no new session through the server within a minute of its return; A's failures %+v", logs[0].gotFailures())
					}
				}
			})
		})
	}
}
