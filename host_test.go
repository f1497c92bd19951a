package netmsg

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/transport"
	"go.uber.org/goleak"
)

// testPeer is a Host with a record of the status changes it saw.
type testPeer struct {
	*Host
	mu     sync.Mutex
	events []ConnStatusChanged
}

func (p *testPeer) seen() []ConnStatusChanged {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ConnStatusChanged(nil), p.events...)
}

// lastState returns the last state reported for c (StateNone if none).
func (p *testPeer) lastState(c ConnHandle) (ConnectionState, ConnectionInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := len(p.events) - 1; i >= 0; i-- {
		if p.events[i].Conn == c {
			return p.events[i].Info.State, p.events[i].Info
		}
	}
	return StateNone, ConnectionInfo{}
}

// newTestPeer opens a Host on pc (nil: a UDP socket on 127.0.0.1). A server
// (listen) accepts every incoming connection from its callback.
func newTestPeer(t *testing.T, cfg Config, listen bool) *testPeer {
	t.Helper()
	p := &testPeer{}
	cfg.OnConnectionStatusChanged = func(ev ConnStatusChanged) {
		p.mu.Lock()
		p.events = append(p.events, ev)
		p.mu.Unlock()
		if listen && ev.Info.State == StateConnecting && ev.Info.ListenSocket != InvalidListen {
			if err := p.AcceptConnection(ev.Conn); err != nil {
				t.Errorf("accept: %v", err)
			}
		}
	}
	if cfg.PacketConn == nil && !cfg.ListenAddr.IsValid() {
		cfg.ListenAddr = netip.MustParseAddrPort("127.0.0.1:0")
	}
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Host = h
	if listen {
		if _, err := h.Listen(); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// netsimEndpoints makes a network (seed 1) with link and two endpoints,
// 127.0.0.1:27015 and 127.0.0.2:27015.
func netsimEndpoints(t *testing.T, link netsim.LinkConfig) (nw *netsim.Network, ea, eb *netsim.Endpoint) {
	t.Helper()
	nw, err := netsim.New(netsim.Config{Seed: 1, Link: link})
	if err != nil {
		t.Fatal(err)
	}
	for i, ep := range []**netsim.Endpoint{&ea, &eb} {
		if *ep, err = nw.Listen(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)}), 27015)); err != nil {
			t.Fatal(err)
		}
	}
	return nw, ea, eb
}

// connectWait connects cli to srv and waits until the client is connected.
func connectWait(t *testing.T, cli, srv *testPeer) ConnHandle {
	t.Helper()
	c, err := cli.Connect(srv.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "connected", func() bool { st, _ := cli.lastState(c); return st == StateConnected })
	return c
}

// waitFor polls cond every 10 ms until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// serverConn returns the server's handle for its only connection.
func serverConn(t *testing.T, p *testPeer) ConnHandle {
	t.Helper()
	for _, ev := range p.seen() {
		if ev.Info.State == StateConnecting {
			return ev.Conn
		}
	}
	t.Fatal("server saw no incoming connection")
	return InvalidConn
}

func numbered(seq uint64, size int) []byte {
	b := make([]byte, max(size, 8))
	binary.LittleEndian.PutUint64(b, seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq + uint64(i))
	}
	return b
}

// exchange runs the common end-to-end script between a client and a server
// Host: connect, reliable and unreliable traffic both ways, close with a
// reason seen by the peer.
func exchange(t *testing.T, cli, srv *testPeer, limit time.Duration, lossy bool) {
	t.Helper()
	c, err := cli.Connect(srv.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	// Messages sent before the connection is up are queued.
	const n = 200
	for i := range uint64(n / 2) {
		if _, err := cli.SendMessageToConnection(c, numbered(i, 100+int(i)*37), SendReliable); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	waitFor(t, limit, "client connected", func() bool { st, _ := cli.lastState(c); return st == StateConnected })
	s := serverConn(t, srv)
	waitFor(t, limit, "server connected", func() bool { st, _ := srv.lastState(s); return st == StateConnected })
	for i := uint64(n / 2); i < n; i++ {
		for {
			_, err := cli.SendMessageToConnection(c, numbered(i, 100+int(i)*37), SendReliable)
			if err == nil {
				break
			}
			if err != ResultLimitExceeded {
				t.Fatalf("send %d: %v", i, err)
			}
			time.Sleep(time.Millisecond)
		}
	}
	for i := range uint64(50) {
		if _, err := srv.SendMessageToConnection(s, numbered(i, 64), SendReliableNoNagle); err != nil {
			t.Fatal(err)
		}
		if _, err := srv.SendMessageToConnection(s, numbered(1000+i, 64), SendUnreliable); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint64
	waitFor(t, limit, "the client's reliable messages at the server", func() bool {
		for _, m := range srv.ReceiveMessagesOnConnection(s, 64) {
			seq := binary.LittleEndian.Uint64(m.Payload)
			if !bytes.Equal(m.Payload, numbered(seq, 100+int(seq)*37)) || m.Flags != SendReliable || m.Connection != s {
				t.Fatalf("message %d corrupt or mislabelled: flags %v conn %v", seq, m.Flags, m.Connection)
			}
			got = append(got, seq)
			m.Release()
		}
		return len(got) >= n
	})
	for i, seq := range got {
		if seq != uint64(i) {
			t.Fatalf("reliable message %d arrived as %d (order or duplicate)", i, seq)
		}
	}
	// A named server is known by its name; one with GNS's default
	// localhost identity by its address (as GNS reports it).
	peerID := srv.Identity()
	if peerID.IsLocalhost() {
		peerID, _ = IdentityFromAddr(srv.LocalAddr())
	}
	var rel, unrel int
	waitFor(t, limit, "the server's reliable messages at the client", func() bool {
		for _, m := range cli.ReceiveMessagesOnConnection(c, 64) {
			seq := binary.LittleEndian.Uint64(m.Payload)
			if m.Flags == SendReliable {
				if seq != uint64(rel) {
					t.Fatalf("reliable %d arrived as %d", rel, seq)
				}
				rel++
			} else {
				unrel++
			}
			if m.Identity != peerID {
				t.Fatalf("message from %v, want %v", m.Identity, peerID)
			}
			m.Release()
		}
		return rel == 50
	})
	if !lossy && unrel == 0 {
		t.Errorf("no unreliable message arrived on a lossless path")
	}
	info, err := cli.ConnectionInfo(c)
	if err != nil || info.State != StateConnected || info.RemoteAddress != srv.LocalAddr() || info.Identity != peerID {
		t.Errorf("client info %+v, %v", info, err)
	}
	if st, err := cli.RealTimeStatus(c); err != nil || st.State != StateConnected || st.Ping < 0 {
		t.Errorf("client status %+v, %v", st, err)
	}
	// Close with a reason: the server sees it.
	if !cli.CloseConnection(c, EndAppMin+7, "bye now", true) {
		t.Fatal("close failed")
	}
	waitFor(t, limit, "the server to see the close", func() bool { st, _ := srv.lastState(s); return st == StateClosedByPeer })
	_, sinfo := srv.lastState(s)
	if sinfo.EndReason != EndAppMin+7 || sinfo.EndDebug != "bye now" {
		t.Errorf("server saw end %v %q, want %v %q", sinfo.EndReason, sinfo.EndDebug, EndAppMin+7, "bye now")
	}
	if _, err := cli.SendMessageToConnection(c, []byte("late"), SendReliable); err == nil {
		t.Errorf("send on a closed handle succeeded")
	}
}

func netsimPair(t *testing.T, link netsim.LinkConfig) (cli, srv *testPeer, nw *netsim.Network) {
	t.Helper()
	nw, ea, eb := netsimEndpoints(t, link)
	cli, srv = peersOn(t, ea, eb)
	return cli, srv, nw
}

// peersOn makes a client str:alice on a and a server str:bob on b.
func peersOn(t *testing.T, a, b transport.PacketConn) (cli, srv *testPeer) {
	t.Helper()
	alice, _ := ParseIdentity("str:alice")
	bob, _ := ParseIdentity("str:bob")
	cli = newTestPeer(t, Config{PacketConn: a, Identity: alice}, false)
	srv = newTestPeer(t, Config{PacketConn: b, Identity: bob}, true)
	return cli, srv
}

func TestHostNetsim(t *testing.T) {
	for _, loss := range []float64{0, 10} {
		t.Run(fmt.Sprintf("loss%.0f", loss), func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: 20 * time.Millisecond, Jitter: 2 * time.Millisecond, LossPercent: loss})
				defer nw.Close()
				defer srv.Close()
				defer cli.Close()
				exchange(t, cli, srv, 2*time.Minute, loss > 0)
			})
		})
	}
}

func TestHostUDP(t *testing.T) {
	defer goleak.VerifyNone(t)
	srv := newTestPeer(t, Config{}, true)
	defer srv.Close()
	cli := newTestPeer(t, Config{}, false)
	defer cli.Close()
	exchange(t, cli, srv, 10*time.Second, false)
	cli.Close()
	srv.Close()
}

// TestHostPeerVanishes: when every packet from the server is lost, the
// client's idle connection ends in ProblemDetectedLocally with GNS's reason
// (5003) and timing.
func TestHostPeerVanishes(t *testing.T) {
	bubble(t, func(t *testing.T) {
		cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: 5 * time.Millisecond})
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		c := connectWait(t, cli, srv)
		// The server vanishes: nothing from it reaches the client any more.
		if err := nw.SetLink(srv.LocalAddr(), cli.LocalAddr(), netsim.LinkConfig{LossPercent: 100}); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		waitFor(t, time.Minute, "problem detected", func() bool { st, _ := cli.lastState(c); return st == StateProblemDetectedLocally })
		_, info := cli.lastState(c)
		// As GNS: an idle connection sends its first keepalive after 10 s
		// of silence, and gives up TimeoutConnected (10 s) after its
		// replies start timing out.
		if el := time.Since(start); el < 10*time.Second || el > 25*time.Second {
			t.Errorf("timed out after %v, want 20-25 s (keepalive interval + TimeoutConnected)", el)
		}
		if info.EndReason != EndMiscTimeout {
			t.Errorf("end reason %v %q, want %v", info.EndReason, info.EndDebug, EndMiscTimeout)
		}
	})
}

// TestHostRefused: connecting to a host that does not listen fails.
func TestHostRefused(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{})
		defer nw.Close()
		ea, _ := nw.Listen(netip.MustParseAddrPort("127.0.0.1:1"))
		eb, _ := nw.Listen(netip.MustParseAddrPort("127.0.0.2:1"))
		cli := newTestPeer(t, Config{PacketConn: ea}, false)
		defer cli.Close()
		srv := newTestPeer(t, Config{PacketConn: eb}, false) // not listening
		defer srv.Close()
		c, err := cli.Connect(srv.LocalAddr())
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "the connect to fail", func() bool {
			st, _ := cli.lastState(c)
			return st == StateProblemDetectedLocally || st == StateClosedByPeer
		})
		if srv.Stats().ChallengesAnswered != 0 {
			t.Errorf("a host that does not listen answered challenges")
		}
	})
}

func TestHostUDP6(t *testing.T) {
	lo := netip.MustParseAddrPort("[::1]:0")
	srv := newTestPeer(t, Config{ListenAddr: lo}, true)
	defer srv.Close()
	cli := newTestPeer(t, Config{ListenAddr: lo}, false)
	defer cli.Close()
	exchange(t, cli, srv, 10*time.Second, false)
}

// TestHostReceive: the blocking receive waits for a message, gives up with
// the context, takes one message (Receive) or up to max (ReceiveBatch),
// and reports a connection that ended.
func TestHostReceive(t *testing.T) {
	bubble(t, func(t *testing.T) {
		cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: 10 * time.Millisecond})
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		c := connectWait(t, cli, srv)
		s := serverConn(t, srv)

		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := srv.ReceiveBatch(ctx, s, 10); err != context.DeadlineExceeded {
			t.Fatalf("receive with nothing sent: %v, want the deadline", err)
		}
		go func() {
			time.Sleep(3 * time.Second)
			cli.SendMessageToConnection(c, []byte("late hello"), SendReliableNoNagle)
		}()
		start := time.Now()
		ms, err := srv.ReceiveBatch(context.Background(), s, 10)
		if err != nil || len(ms) != 1 || string(ms[0].Payload) != "late hello" {
			t.Fatalf("receive: %v, %d messages", err, len(ms))
		}
		if el := time.Since(start); el < 3*time.Second || el > 3*time.Second+100*time.Millisecond {
			t.Errorf("the message came after %v, want 3 s + one-way delay", el)
		}
		ms[0].Release()
		// Receive is one message at a time, ReceiveBatch up to max.
		for i := range 3 {
			cli.SendMessageToConnection(c, fmt.Appendf(nil, "m%d", i), SendReliableNoNagle)
		}
		for i := range 2 {
			m, err := srv.Receive(context.Background(), s)
			if err != nil || string(m.Payload) != fmt.Sprintf("m%d", i) {
				t.Fatalf("Receive: %v, %q, want m%d", err, m.Payload, i)
			}
			m.Release()
		}
		if ms, err := srv.ReceiveBatch(context.Background(), s, 10); err != nil || len(ms) != 1 || string(ms[0].Payload) != "m2" {
			t.Fatalf("ReceiveBatch after two Receives: %v, %d messages, want m2 alone", err, len(ms))
		}
		if _, err := srv.ReceiveBatch(context.Background(), s, 0); !errors.Is(err, ResultInvalidParam) {
			t.Fatalf("ReceiveBatch with max 0: %v, want ResultInvalidParam", err)
		}
		cli.CloseConnection(c, 0, "done", false)
		_, err = srv.Receive(context.Background(), s)
		var ce *ConnError
		if !errors.Is(err, ResultNoConnection) || !errors.As(err, &ce) || ce.State != StateClosedByPeer || ce.Reason != EndAppMin || ce.Debug != "done" {
			t.Fatalf("receive on a connection closed by the peer: %v, want a ConnError with the peer's reason", err)
		}
	})
}

// TestHostDefaults: an unknown handle is ResultInvalidParam with a clear
// message; a connection's user data is -1 until set (GNS's default).
func TestHostDefaults(t *testing.T) {
	bubble(t, func(t *testing.T) {
		cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: time.Millisecond})
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		_, err := cli.ConnectionInfo(12345)
		if !errors.Is(err, ResultInvalidParam) || err.Error() != "netmsg: no such connection" {
			t.Errorf("unknown handle: %v", err)
		}
		c, _ := cli.Connect(srv.LocalAddr())
		if info, _ := cli.ConnectionInfo(c); info.UserData != -1 {
			t.Errorf("user data %d before any was set, want -1", info.UserData)
		}
		cli.SetConnectionUserData(c, 42)
		if info, _ := cli.ConnectionInfo(c); info.UserData != 42 {
			t.Errorf("user data %d, want 42", info.UserData)
		}
	})
}

// TestHostReceivePollGroup: the blocking poll-group receives wait for a
// message on any connection of the group, one (ReceiveOnPollGroup) or up
// to max (ReceiveBatchOnPollGroup), give up with the context, and refuse
// an unknown group.
func TestHostReceivePollGroup(t *testing.T) {
	bubble(t, func(t *testing.T) {
		cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: 10 * time.Millisecond})
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		c := connectWait(t, cli, srv)
		s := serverConn(t, srv)
		g := srv.CreatePollGroup()
		if !srv.SetConnectionPollGroup(s, g) {
			t.Fatal("SetConnectionPollGroup failed")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := srv.ReceiveOnPollGroup(ctx, g); err != context.DeadlineExceeded {
			t.Fatalf("receive with nothing sent: %v, want the deadline", err)
		}
		for i := range 3 {
			cli.SendMessageToConnection(c, fmt.Appendf(nil, "m%d", i), SendReliableNoNagle)
		}
		m, err := srv.ReceiveOnPollGroup(context.Background(), g)
		if err != nil || string(m.Payload) != "m0" || m.Connection != s {
			t.Fatalf("ReceiveOnPollGroup: %v, %+v, want m0 on %v", err, m, s)
		}
		m.Release()
		time.Sleep(100 * time.Millisecond)
		ms, err := srv.ReceiveBatchOnPollGroup(context.Background(), g, 10)
		if err != nil || len(ms) != 2 || string(ms[0].Payload) != "m1" || string(ms[1].Payload) != "m2" {
			t.Fatalf("ReceiveBatchOnPollGroup: %v, %d messages, want m1 and m2", err, len(ms))
		}
		if _, err := srv.ReceiveOnPollGroup(context.Background(), g+100); !errors.Is(err, ResultInvalidParam) {
			t.Fatalf("unknown group: %v, want ResultInvalidParam", err)
		}
	})
}

// waitUntil polls cond every 10 ms until it holds (true) or limit passed
// (false), for tests that report more than waitFor does on a timeout.
func waitUntil(limit time.Duration, cond func() bool) bool {
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
