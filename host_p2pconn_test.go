package netmsg

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

// p2pcPeer is a Host of the P2P connection API tests, with a record of its
// callbacks.
type p2pcPeer struct {
	*Host
	id     Identity
	accept bool // accept every incoming connection from the callback

	mu     sync.Mutex
	evs    []ConnStatusChanged
	routes []RouteChanged
}

func (p *p2pcPeer) events() []ConnStatusChanged {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ConnStatusChanged(nil), p.evs...)
}

func (p *p2pcPeer) routeChanges() []RouteChanged {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]RouteChanged(nil), p.routes...)
}

// states returns the states reported for c, in order.
func (p *p2pcPeer) states(c ConnHandle) []ConnectionState {
	var out []ConnectionState
	for _, ev := range p.events() {
		if ev.Conn == c {
			out = append(out, ev.Info.State)
		}
	}
	return out
}

// reached reports whether c was reported in state st.
func (p *p2pcPeer) reached(c ConnHandle, st ConnectionState) bool {
	for _, s := range p.states(c) {
		if s == st {
			return true
		}
	}
	return false
}

// incoming returns the connections reported as new incoming ones.
func (p *p2pcPeer) incoming() []ConnStatusChanged {
	var out []ConnStatusChanged
	for _, ev := range p.events() {
		if ev.OldState == StateNone && ev.Info.State == StateConnecting && ev.Info.ListenSocket != InvalidListen {
			out = append(out, ev)
		}
	}
	return out
}

// p2pcEnv is where the peers of a test live: the in-memory network (with
// NATs, a STUN and a TURN server when asked) on fake time, or real UDP
// sockets on 127.0.0.1.
type p2pcEnv struct {
	nw    *netsim.Network // nil: real UDP on loopback
	hub   *signaling.Hub
	stun  []netip.AddrPort
	turns []TURNServer
	nats  []netsim.NATType // one NAT per peer, or none
	// natBoxes are the NATs, natBoxes[i] in front of peer i.
	natBoxes []*netsim.NAT
}

// newP2PCEnv makes the environment; with nats, each peer i sits behind
// its own NAT of type nats[i] (10.i.0.0/16 behind 203.0.113.(i+1)), a
// STUN server answers at 198.51.100.10 and, with withRelay, a TURN server
// (package relay) at 198.51.100.20.
func newP2PCEnv(t *testing.T, udp bool, nats []netsim.NATType, withRelay bool) *p2pcEnv {
	t.Helper()
	env := &p2pcEnv{nats: nats}
	env.hub, _ = signaling.NewHub(signaling.HubConfig{Delay: 20 * time.Millisecond})
	if udp {
		env.hub, _ = signaling.NewHub(signaling.HubConfig{})
		return env
	}
	env.nw, _ = netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 10 * time.Millisecond}})
	t.Cleanup(func() { env.nw.Close() })
	for i, typ := range nats {
		nat, err := env.nw.AddNAT(netsim.NATConfig{Inside: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i + 1), 0, 0}), 16), Public: netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}), Type: typ})
		if err != nil {
			t.Fatal(err)
		}
		env.natBoxes = append(env.natBoxes, nat)
	}
	if len(nats) > 0 {
		addr := netip.MustParseAddrPort("198.51.100.10:3478")
		ep, err := env.nw.Listen(addr)
		if err != nil {
			t.Fatal(err)
		}
		go stunResponder(ep)
		t.Cleanup(func() { ep.Close() })
		env.stun = []netip.AddrPort{addr}
	}
	if withRelay {
		rs, err := relay.NewServer(relay.Config{Logger: slog.New(slog.DiscardHandler), ListenPacket: env.nw.ListenPacket, ListenAddr: "198.51.100.20:3478", RelayIP: netip.MustParseAddr("198.51.100.20"), Users: map[string]string{"u": "p"}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rs.Close() })
		env.turns = []TURNServer{{Addr: rs.Addr(), Username: "u", Password: "p"}}
	}
	return env
}

// peer opens Host i of env, named str:c<i>.
func (env *p2pcEnv) peer(t *testing.T, i int, accept bool, adjust func(*Config)) *p2pcPeer {
	t.Helper()
	p := &p2pcPeer{id: mustIdentity(t, fmt.Sprintf("str:c%d", i)), accept: accept}
	sc, err := env.hub.Connect(p.id.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	cfg := Config{Identity: p.id, Signaling: sc, STUNServers: env.stun, TURNServers: env.turns,
		OnConnectionStatusChanged: func(ev ConnStatusChanged) {
			p.mu.Lock()
			p.evs = append(p.evs, ev)
			p.mu.Unlock()
			if p.accept && ev.OldState == StateNone && ev.Info.State == StateConnecting && ev.Info.ListenSocket != InvalidListen {
				p.AcceptConnection(ev.Conn)
			}
		},
		OnRouteChanged: func(rc RouteChanged) {
			p.mu.Lock()
			p.routes = append(p.routes, rc)
			p.mu.Unlock()
		},
	}
	switch {
	case env.nw == nil:
		cfg.ListenAddr = netip.MustParseAddrPort("127.0.0.1:0")
	default:
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 27015)
		if len(env.nats) > 0 {
			addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i + 1), 0, 2}), 27015)
		}
		ep, err := env.nw.Listen(addr)
		if err != nil {
			t.Fatal(err)
		}
		cfg.PacketConn = ep
	}
	if adjust != nil {
		adjust(&cfg)
	}
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Host = h
	t.Cleanup(func() { h.Close() })
	return p
}

// bothWays runs body over the in-memory network on fake time and over
// real UDP on loopback: one scenario, two transports.
func bothWays(t *testing.T, body func(t *testing.T, udp bool)) {
	t.Run("netsim", func(t *testing.T) {
		bubble(t, func(t *testing.T) { body(t, false) })
	})
	t.Run("udp", func(t *testing.T) { body(t, true) })
}

// recvConn waits for one message on c and returns its text.
func recvConn(t *testing.T, p *p2pcPeer, c ConnHandle) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ms, err := p.ReceiveBatch(ctx, c, 1)
	if err != nil {
		t.Fatalf("%v: receive on %d: %v", p.id, c, err)
	}
	defer ms[0].Release()
	return string(ms[0].Payload)
}

// wantStates checks that the states reported for c begin with want.
func wantStates(t *testing.T, p *p2pcPeer, c ConnHandle, want ...ConnectionState) {
	t.Helper()
	got := p.states(c)
	if len(got) < len(want) || fmt.Sprint(got[:len(want)]) != fmt.Sprint(want) {
		t.Errorf("%v: states of %d: %v, want %v first", p.id, c, got, want)
	}
}

// TestP2PConnDirect: the connection API over P2P (GNS's ConnectP2P and
// CreateListenSocketP2P): a listens on virtual port 7, b connects to it;
// a sees the request on its listen socket and accepts it; both report
// Connecting, then FindingRoute (handshake done, no ICE path yet), then
// Connected; messages go both ways on the direct ICE path; b's close
// reaches a.
func TestP2PConnDirect(t *testing.T) {
	bothWays(t, func(t *testing.T, udp bool) {
		env := newP2PCEnv(t, udp, nil, false)
		a := env.peer(t, 0, true, nil)
		b := env.peer(t, 1, false, nil)
		l, err := a.ListenP2P(7, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.ListenP2P(7, nil); !errors.Is(err, ResultInvalidParam) {
			t.Errorf("second listen socket on port 7: %v, want ResultInvalidParam", err)
		}
		cb, err := b.ConnectP2P(a.id, 7, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.SendMessageToConnection(cb, []byte("early"), SendReliable); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "b connected", func() bool { return b.reached(cb, StateConnected) })
		in := a.incoming()
		if len(in) != 1 || in[0].Info.ListenSocket != l || in[0].Info.Identity != b.id {
			t.Fatalf("a's incoming connections: %+v", in)
		}
		ca := in[0].Conn
		waitFor(t, time.Minute, "a connected", func() bool { return a.reached(ca, StateConnected) })
		wantStates(t, b, cb, StateConnecting, StateFindingRoute, StateConnected)
		wantStates(t, a, ca, StateConnecting, StateFindingRoute, StateConnected)
		for _, ev := range b.events() {
			if ev.Conn == cb && ev.Info.State == StateFindingRoute && (ev.Info.Identity != a.id || !strings.HasPrefix(ev.Info.Description, fmt.Sprintf("#%d P2P", cb))) {
				t.Errorf("b's info while finding route: %+v", ev.Info)
			}
		}
		if got := recvConn(t, a, ca); got != "early" {
			t.Fatalf("a got %q", got)
		}
		if _, err := a.SendMessageToConnection(ca, []byte("hello b"), SendReliable); err != nil {
			t.Fatal(err)
		}
		if got := recvConn(t, b, cb); got != "hello b" {
			t.Fatalf("b got %q", got)
		}
		ia, _ := a.ConnectionInfo(ca)
		ib, _ := b.ConnectionInfo(cb)
		if ia.State != StateConnected || ia.ListenSocket != l || ia.Identity != b.id || !strings.Contains(ia.Description, "P2P ICE direct") {
			t.Errorf("a's info: %+v", ia)
		}
		if ib.State != StateConnected || ib.ListenSocket != InvalidListen || ib.Identity != a.id || ib.RemoteAddress != a.LocalAddr() {
			t.Errorf("b's info: %+v (a is at %v)", ib, a.LocalAddr())
		}
		if rs, _ := b.RealTimeStatus(cb); rs.State != StateConnected {
			t.Errorf("b's status: %v", rs.State)
		}
		b.CloseConnection(cb, EndAppMin+5, "bye", false)
		waitFor(t, time.Minute, "a hears the close", func() bool { return a.reached(ca, StateClosedByPeer) })
		if info, _ := a.ConnectionInfo(ca); info.EndReason != EndAppMin+5 || info.EndDebug != "bye" {
			t.Errorf("a's end: %v %q", info.EndReason, info.EndDebug)
		}
		if len(b.routeChanges()) != 0 || len(a.routeChanges()) != 0 {
			t.Errorf("route changes on a path that never changed: %+v %+v", a.routeChanges(), b.routeChanges())
		}
	})
}

// TestP2PConnRefused: a connect request to a virtual port nobody listens
// on is refused (the connection ends ClosedByPeer with EndMiscGeneric at
// once, not at its timeout); the Messages port and ports outside
// 0-0xffff are not the connection API's; P2P needs signaling.
func TestP2PConnRefused(t *testing.T) {
	bothWays(t, func(t *testing.T, udp bool) {
		env := newP2PCEnv(t, udp, nil, false)
		a := env.peer(t, 0, true, nil)
		b := env.peer(t, 1, false, nil)
		if _, err := a.ListenP2P(7, nil); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		cb, err := b.ConnectP2P(a.id, 9, nil)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "the refusal", func() bool { return b.reached(cb, StateClosedByPeer) })
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("refused after %v", d)
		}
		info, _ := b.ConnectionInfo(cb)
		if info.EndReason != EndMiscGeneric || !strings.Contains(info.EndDebug, "virtual port 9") {
			t.Errorf("refused with %v %q", info.EndReason, info.EndDebug)
		}
		if len(a.incoming()) != 0 {
			t.Errorf("a reported %+v", a.incoming())
		}
		if st := a.Stats(); st.ConnectsRefused == 0 {
			t.Errorf("a counted no refusal: %+v", st)
		}
		for _, port := range []int{messagesVirtualPort, -1, MaxP2PVirtualPort + 1} {
			if _, err := b.ConnectP2P(a.id, port, nil); !errors.Is(err, ResultInvalidParam) {
				t.Errorf("connect to port %d: %v", port, err)
			}
			if _, err := b.ListenP2P(port, nil); !errors.Is(err, ResultInvalidParam) {
				t.Errorf("listen on port %d: %v", port, err)
			}
		}
		plain, err := NewHost(Config{PacketConn: nil, ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"), Identity: mustIdentity(t, "str:nosig")})
		if err != nil {
			t.Fatal(err)
		}
		defer plain.Close()
		if _, err := plain.ListenP2P(1, nil); !errors.Is(err, ResultInvalidState) {
			t.Errorf("listen without signaling: %v", err)
		}
	})
}

// TestP2PConnClosedListener: closing a P2P listen socket closes the
// connections on it, the one waiting to be accepted and the accepted one
// (GNS's CloseListenSocket): their handles go, their peers hear the close;
// a new request to the port is refused.
func TestP2PConnClosedListener(t *testing.T) {
	bothWays(t, func(t *testing.T, udp bool) {
		env := newP2PCEnv(t, udp, nil, false)
		a := env.peer(t, 0, false, nil)
		b := env.peer(t, 1, false, nil)
		c := env.peer(t, 2, false, nil)
		l, err := a.ListenP2P(3, nil)
		if err != nil {
			t.Fatal(err)
		}
		cb, _ := b.ConnectP2P(a.id, 3, nil)
		cc, _ := c.ConnectP2P(a.id, 3, nil)
		waitFor(t, time.Minute, "two requests", func() bool { return len(a.incoming()) == 2 })
		var fromB ConnHandle
		for _, ev := range a.incoming() {
			if ev.Info.Identity == b.id {
				fromB = ev.Conn
			}
		}
		if err := a.AcceptConnection(fromB); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "b connected", func() bool { return b.reached(cb, StateConnected) })
		if !a.CloseListen(l) {
			t.Fatal("CloseListen refused the P2P listen socket")
		}
		if a.CloseListen(l) {
			t.Error("CloseListen closed it twice")
		}
		for _, ev := range a.incoming() {
			if _, err := a.ConnectionInfo(ev.Conn); !errors.Is(err, ErrNoSuchConn) {
				t.Errorf("a's connection %d after its listen socket closed: %v", ev.Conn, err)
			}
		}
		waitFor(t, time.Minute, "b hears the close", func() bool { return b.reached(cb, StateClosedByPeer) })
		waitFor(t, time.Minute, "c hears the close", func() bool { return c.reached(cc, StateClosedByPeer) })
		for _, x := range []struct {
			p *p2pcPeer
			c ConnHandle
		}{{b, cb}, {c, cc}} {
			if info, _ := x.p.ConnectionInfo(x.c); info.EndReason != EndAppGeneric || info.EndDebug != "listen socket closed" {
				t.Errorf("%v: ended %v %q", x.p.id, info.EndReason, info.EndDebug)
			}
		}
		again, _ := b.ConnectP2P(a.id, 3, nil)
		waitFor(t, time.Minute, "the refusal", func() bool { return b.reached(again, StateClosedByPeer) })
	})
}

// TestP2PConnSymmetric: with SymmetricConnect, two peers that connect to
// each other at once on one port end up with one connection between them
// (one side's connection turns into the accepting side of the other's),
// and a ConnectP2P while the peer's connection waits to be accepted
// accepts it and returns it.
func TestP2PConnSymmetric(t *testing.T) {
	bothWays(t, func(t *testing.T, udp bool) {
		env := newP2PCEnv(t, udp, nil, false)
		a := env.peer(t, 0, false, nil)
		b := env.peer(t, 1, false, nil)
		sym := &P2POptions{SymmetricConnect: true}
		// Symmetric listen sockets first, as GNS has it: a request that
		// reaches a side before its own connect waits there and the
		// connect takes it (without one, such a request would be refused
		// for want of a listen socket, as GNS refuses it).
		for _, p := range []*p2pcPeer{a, b} {
			if _, err := p.ListenP2P(5, sym); err != nil {
				t.Fatal(err)
			}
		}
		ca, err := a.ConnectP2P(b.id, 5, sym)
		if err != nil {
			t.Fatal(err)
		}
		cb, err := b.ConnectP2P(a.id, 5, sym)
		if err != nil {
			t.Fatal(err)
		}
		if !waitUntil(time.Minute, func() bool { return a.reached(ca, StateConnected) && b.reached(cb, StateConnected) }) {
			for _, p := range []*p2pcPeer{a, b} {
				for _, ev := range p.events() {
					t.Logf("%v: conn %d: %v (%v %s)", p.id, ev.Conn, ev.Info.State, ev.Info.EndReason, ev.Info.EndDebug)
				}
				t.Logf("%v: %+v", p.id, p.Stats())
			}
			t.Fatal("timed out waiting for both connected")
		}
		// One connection each: an incoming one is the symmetric one
		// itself (the peer's request came first and the connect took it).
		early := 0
		for _, x := range []struct {
			p *p2pcPeer
			c ConnHandle
		}{{a, ca}, {b, cb}} {
			for _, ev := range x.p.incoming() {
				if ev.Conn != x.c {
					t.Errorf("%v: an incoming connection %d besides the symmetric one %d", x.p.id, ev.Conn, x.c)
				}
				early++
			}
		}
		a.SendMessageToConnection(ca, []byte("to b"), SendReliable)
		b.SendMessageToConnection(cb, []byte("to a"), SendReliable)
		if got := recvConn(t, b, cb); got != "to b" {
			t.Fatalf("b got %q", got)
		}
		if got := recvConn(t, a, ca); got != "to a" {
			t.Fatalf("a got %q", got)
		}
		if _, err := a.ConnectP2P(b.id, 5, sym); !errors.Is(err, ResultDuplicateRequest) {
			t.Errorf("a second symmetric connection: %v", err)
		}
		if r := a.Stats().ICERestarts + b.Stats().ICERestarts; (early == 0 && r != 1) || r > 1 {
			t.Errorf("ICE restarts %d + %d (%d requests taken by a connect), want one side to turn around when both asked", a.Stats().ICERestarts, b.Stats().ICERestarts, early)
		}

		// A symmetric listen socket, and a connect while the peer's
		// request waits: that request is accepted and returned.
		c := env.peer(t, 2, false, nil)
		if _, err := a.ListenP2P(6, sym); err != nil {
			t.Fatal(err)
		}
		cc, _ := c.ConnectP2P(a.id, 6, sym)
		waitFor(t, time.Minute, "c's request", func() bool { return len(a.incoming()) == 1 })
		pending := a.incoming()[0].Conn
		got, err := a.ConnectP2P(c.id, 6, nil)
		if err != nil || got != pending {
			t.Fatalf("connect while c's request waits: %d %v, want %d", got, err, pending)
		}
		waitFor(t, time.Minute, "c connected", func() bool { return c.reached(cc, StateConnected) })
	})
}

// TestP2PConnRelayed: behind two symmetric NATs ICE finds no direct path;
// the connection goes through the TURN relay (package relay on the
// in-memory network), and its info says so.
func TestP2PConnRelayed(t *testing.T) {
	bubble(t, func(t *testing.T) {
		env := newP2PCEnv(t, false, []netsim.NATType{netsim.Symmetric, netsim.Symmetric}, true)
		a := env.peer(t, 0, true, nil)
		b := env.peer(t, 1, false, nil)
		if _, err := a.ListenP2P(1, nil); err != nil {
			t.Fatal(err)
		}
		cb, _ := b.ConnectP2P(a.id, 1, nil)
		waitFor(t, time.Minute, "b connected", func() bool { return b.reached(cb, StateConnected) })
		wantStates(t, b, cb, StateConnecting, StateFindingRoute, StateConnected)
		ca := a.incoming()[0].Conn
		b.SendMessageToConnection(cb, []byte("via the relay"), SendReliable)
		if got := recvConn(t, a, ca); got != "via the relay" {
			t.Fatalf("a got %q", got)
		}
		for _, x := range []struct {
			p *p2pcPeer
			c ConnHandle
		}{{a, ca}, {b, cb}} {
			info, _ := x.p.ConnectionInfo(x.c)
			if info.Flags&ConnInfoRelayed == 0 || info.RemoteAddress.IsValid() || !strings.Contains(info.Description, "relay") {
				t.Errorf("%v: %+v, want relayed", x.p.id, info)
			}
		}
	})
}

// TestP2PRouteChange: two peers behind full-cone NATs with a TURN server
// connect directly; when the direct path between the NATs is cut, ICE's
// keepalives go unanswered, the relay takes over, and OnRouteChanged
// reports it on both sides, for a connection of the connection API and
// for a Messages session; data flows on.
func TestP2PRouteChange(t *testing.T) {
	for _, messages := range []bool{false, true} {
		t.Run(map[bool]string{false: "conn", true: "messages"}[messages], func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				env := newP2PCEnv(t, false, []netsim.NATType{netsim.FullCone, netsim.FullCone}, true)
				a := env.peer(t, 0, true, nil)
				b := env.peer(t, 1, false, func(c *Config) {
					c.OnSessionRequest = func(peer Identity) {}
				})
				var ca, cb ConnHandle
				send := func(from *p2pcPeer, c ConnHandle, to Identity, text string) {
					t.Helper()
					var err error
					if messages {
						err = from.Messages().SendMessageToUser(to, []byte(text), SendReliable, 0)
					} else {
						_, err = from.SendMessageToConnection(c, []byte(text), SendReliable)
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				recv := func(p *p2pcPeer, c ConnHandle) string {
					t.Helper()
					if !messages {
						return recvConn(t, p, c)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					m, err := p.Messages().Receive(ctx, 0)
					if err != nil {
						t.Fatalf("%v: %v", p.id, err)
					}
					defer m.Release()
					return string(m.Payload)
				}
				info := func(p *p2pcPeer, c ConnHandle, peer Identity) ConnectionInfo {
					if messages {
						_, i, _ := p.Messages().GetSessionConnectionInfo(peer)
						return i
					}
					i, _ := p.ConnectionInfo(c)
					return i
				}
				if messages {
					a.Messages().SendMessageToUser(b.id, []byte("hi"), SendReliable, 0)
					waitFor(t, time.Minute, "the request", func() bool { return b.Messages().AcceptSessionWithUser(a.id) })
					waitFor(t, time.Minute, "the session", func() bool {
						return info(a, 0, b.id).State == StateConnected && info(b, 0, a.id).State == StateConnected
					})
				} else {
					if _, err := a.ListenP2P(2, nil); err != nil {
						t.Fatal(err)
					}
					cb, _ = b.ConnectP2P(a.id, 2, nil)
					waitFor(t, time.Minute, "b connected", func() bool { return b.reached(cb, StateConnected) && len(a.incoming()) == 1 })
					ca = a.incoming()[0].Conn
					send(b, cb, a.id, "hi")
				}
				if messages {
					if got := recv(b, cb); got != "hi" {
						t.Fatalf("b got %q", got)
					}
				} else if got := recv(a, ca); got != "hi" {
					t.Fatalf("a got %q", got)
				}
				ia, ib := info(a, ca, b.id), info(b, cb, a.id)
				if ia.Flags&ConnInfoRelayed != 0 || ib.Flags&ConnInfoRelayed != 0 || !ia.RemoteAddress.IsValid() || !ib.RemoteAddress.IsValid() {
					t.Fatalf("not direct: %+v %+v", ia, ib)
				}
				// Cut the direct path between the NATs, both ways.
				pubA, pubB := ib.RemoteAddress, ia.RemoteAddress
				env.nw.SetLink(pubA, pubB, netsim.LinkConfig{LossPercent: 100})
				env.nw.SetLink(pubB, pubA, netsim.LinkConfig{LossPercent: 100})
				cut := time.Now()
				for _, x := range []struct {
					p, peer *p2pcPeer
					c       ConnHandle
				}{{a, b, ca}, {b, a, cb}} {
					waitFor(t, time.Minute, "the route change", func() bool { return len(x.p.routeChanges()) > 0 })
					rc := x.p.routeChanges()[0]
					want := x.c
					if messages {
						want = InvalidConn
					}
					if rc.Conn != want || rc.Identity != x.peer.id || rc.OldRelayed || !rc.OldRemote.IsValid() ||
						rc.Info.Flags&ConnInfoRelayed == 0 || rc.Info.RemoteAddress.IsValid() || !strings.Contains(rc.Info.Description, "relay") {
						t.Errorf("%v: route change %+v", x.p.id, rc)
					}
					if i := info(x.p, x.c, x.peer.id); i.Flags&ConnInfoRelayed == 0 || i.State != StateConnected {
						t.Errorf("%v: info after the change %+v", x.p.id, i)
					}
				}
				t.Logf("relay took over %v after the cut", time.Since(cut))
				send(a, ca, b.id, "after the cut")
				if got := recv(b, cb); got != "after the cut" {
					t.Fatalf("b got %q", got)
				}
				send(b, cb, a.id, "back")
				if got := recv(a, ca); got != "back" {
					t.Fatalf("a got %q", got)
				}
			})
		})
	}
}
