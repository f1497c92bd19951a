package netmsg

import (
	"net/netip"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/signaling"
	"github.com/netmsg-go/netmsg/transport"
)

// sessionIDs returns the local and remote connection ids of p's Messages
// session with peer.
func sessionIDs(t *testing.T, p *msgPeer, peer Identity) (local, remote uint32) {
	t.Helper()
	p.Host.mu.Lock()
	defer p.Host.mu.Unlock()
	s := p.m.sessions[peer]
	if s == nil || s.hc == nil {
		t.Fatalf("no session with %v", peer)
	}
	return s.hc.c.LocalID(), s.hc.c.RemoteID()
}

// forgeCloses sends victim, from another address on nw, a connection
// closed and a no connection naming the victim's connection (as GNS's
// close carries it: the victim's id in to_connection_id, the peer's in
// from_connection_id), which is what anyone who saw the connection id (it
// is in the ICE ufrag) can send.
func forgeCloses(t *testing.T, nw *netsim.Network, victim netip.AddrPort, local, remote uint32) {
	t.Helper()
	attacker, err := nw.Listen(netip.MustParseAddrPort("127.0.0.66:27015"))
	if err != nil {
		t.Fatal(err)
	}
	defer attacker.Close()
	closed, err := pb.AppendControl(nil, pb.UDPMsgID_UDP_MSG_CONNECTION_CLOSED, &pb.UDPConnectionClosed{
		ToConnectionId: proto.Uint32(local), FromConnectionId: proto.Uint32(remote),
		ReasonCode: proto.Uint32(1000), Debug: proto.String("forged"),
	})
	if err != nil {
		t.Fatal(err)
	}
	noConn, err := pb.AppendControl(nil, pb.UDPMsgID_UDP_MSG_NO_CONNECTION, &pb.UDPNoConnection{
		ToConnectionId: proto.Uint32(local), FromConnectionId: proto.Uint32(remote),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{closed, noConn} {
		attacker.WriteBatch([]transport.Packet{{Buf: b, N: len(b), Addr: victim}})
	}
}

// TestForgedCloseP2P: a connection closed (0x24) and a no connection
// (0x25) naming the victim's P2P connection, sent to the victim's shared
// port from an address that is neither the peer's selected path nor one of
// its candidates, do not end the session: they are counted (WrongAddr) and
// dropped, and messages go on both ways.
func TestForgedCloseP2P(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 10 * time.Millisecond}})
		defer nw.Close()
		hub, _ := signaling.NewHub(signaling.HubConfig{Delay: 20 * time.Millisecond})
		ps := p2pPeers(t, nw, hub, 2)
		defer closeAll(ps)
		alice, bob := ps[0], ps[1]
		openSession(t, alice, bob)

		local, remote := sessionIDs(t, bob, alice.id)
		before := bob.Stats().WrongAddr
		forgeCloses(t, nw, bob.LocalAddr(), local, remote)
		time.Sleep(5 * time.Second)

		if n := bob.Stats().WrongAddr - before; n != 2 {
			t.Errorf("%d forged datagrams counted, want 2", n)
		}
		if st, _, _ := bob.m.GetSessionConnectionInfo(alice.id); st != StateConnected {
			t.Fatalf("bob's session is %v after the forged close", st)
		}
		if _, closed := alice.gotEvents(); len(closed) != 0 {
			t.Fatalf("alice heard a close: %+v", closed)
		}
		if f := bob.gotFailures(); len(f) != 0 {
			t.Fatalf("bob's session failed: %+v", f)
		}
		bob.m.SendMessageToUser(alice.id, []byte("still here"), SendReliable, 0)
		if text, m := recvText(t, alice, 0); text != "still here" {
			t.Fatalf("alice got %q", text)
		} else {
			m.Release()
		}
		alice.m.SendMessageToUser(bob.id, []byte("me too"), SendReliable, 0)
		if text, m := recvText(t, bob, 0); text != "me too" {
			t.Fatalf("bob got %q", text)
		} else {
			m.Release()
		}

		// The same close from the peer's own address ends the session:
		// the check is on the address, not on the kind of datagram.
		alice.m.CloseSessionWithUser(bob.id)
		waitFor(t, time.Minute, "bob hears alice's real close", func() bool { _, c := bob.gotEvents(); return len(c) == 1 })
	})
}

// TestForgedCloseDirect: the same forged datagrams against a direct (UDP)
// Messages session are counted and dropped too.
func TestForgedCloseDirect(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 10 * time.Millisecond}})
		defer nw.Close()
		ps := newMsgPeers(t, nw, 2)
		defer closeAll(ps)
		alice, bob := ps[0], ps[1]
		openSession(t, alice, bob)

		local, remote := sessionIDs(t, bob, alice.id)
		before := bob.Stats().WrongAddr
		forgeCloses(t, nw, bob.LocalAddr(), local, remote)
		time.Sleep(5 * time.Second)
		if n := bob.Stats().WrongAddr - before; n != 2 {
			t.Errorf("%d forged datagrams counted, want 2", n)
		}
		if st, _, _ := bob.m.GetSessionConnectionInfo(alice.id); st != StateConnected {
			t.Fatalf("bob's session is %v after the forged close", st)
		}
		bob.m.SendMessageToUser(alice.id, []byte("still here"), SendReliable, 0)
		if text, m := recvText(t, alice, 0); text != "still here" {
			t.Fatalf("alice got %q", text)
		} else {
			m.Release()
		}
	})
}
