package conn

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/internal/snp"
)

// TestP2PControlFromPeerOnly: a P2P connection takes a connection closed
// only from the selected path's address or an address SetPeerAddrs
// approves (a candidate); from anywhere else it is ErrWrongAddr, counted,
// and the connection goes on. Data packets, which their encryption
// proves, are taken from any address (ICE may move the path).
func TestP2PControlFromPeerOnly(t *testing.T) {
	cli, srv, now := p2pPair(t, testConfig("str:alice"), testConfig("str:bob"))
	candidate := netip.MustParseAddrPort("192.0.2.7:4000")
	srv.SetPeerAddrs(func(a netip.AddrPort) bool { return a == candidate })
	closed, err := pb.AppendControl(nil, pb.UDPMsgID_UDP_MSG_CONNECTION_CLOSED, &pb.UDPConnectionClosed{
		ToConnectionId: proto.Uint32(srv.LocalID()), FromConnectionId: proto.Uint32(cli.LocalID()), ReasonCode: proto.Uint32(1000),
	})
	if err != nil {
		t.Fatal(err)
	}
	noConn, err := pb.AppendControl(nil, pb.UDPMsgID_UDP_MSG_NO_CONNECTION, &pb.UDPNoConnection{
		ToConnectionId: proto.Uint32(srv.LocalID()), FromConnectionId: proto.Uint32(cli.LocalID()),
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, from := range []string{"10.9.9.9:1", "[::ffff:10.9.9.9]:1", "192.0.2.7:4001"} {
		for _, b := range [][]byte{closed, noConn} {
			if err := srv.HandleDatagram(now, netip.MustParseAddrPort(from), b); !errors.Is(err, ErrWrongAddr) {
				t.Errorf("control from %s: %v, want ErrWrongAddr", from, err)
			}
		}
	}
	if srv.State() != StateConnected {
		t.Fatalf("forged closes ended the connection: %v %q", srv.State(), srv.EndDebug())
	}
	if n := srv.ConnStats().WrongAddr; n != 6 {
		t.Errorf("WrongAddr %d, want 6", n)
	}
	// Data from the candidate address (the path moved): taken.
	cli.SendKeyed(now, 0, nil, []byte("moved"), snp.Reliable)
	cli.Flush(now)
	buf := make([]byte, 0, 2048)
	d, ok := cli.Poll(now, buf)
	if !ok {
		t.Fatal("client sent nothing")
	}
	if err := srv.HandleDatagram(now, netip.MustParseAddrPort("198.51.100.1:9"), d); err != nil {
		t.Fatalf("data from an unknown address: %v", err)
	}
	// The close from a candidate is the peer's: it ends the connection.
	if err := srv.HandleDatagram(now.Add(time.Millisecond), candidate, closed); err != nil {
		t.Fatal(err)
	}
	if srv.State() != StateClosedByPeer {
		t.Fatalf("close from a candidate: state %v", srv.State())
	}
}

// TestDirectFromPeerOnly: a direct connection takes nothing from another
// address, control or data.
func TestDirectFromPeerOnly(t *testing.T) {
	cli, srv, now := p2pPair(t, testConfig("str:alice"), testConfig("str:bob"))
	cli.p2p, srv.p2p = false, false // the address rule of a direct connection
	closed, _ := pb.AppendControl(nil, pb.UDPMsgID_UDP_MSG_CONNECTION_CLOSED, &pb.UDPConnectionClosed{
		ToConnectionId: proto.Uint32(srv.LocalID()), FromConnectionId: proto.Uint32(cli.LocalID()),
	})
	if err := srv.HandleDatagram(now, netip.MustParseAddrPort("10.9.9.9:1"), closed); !errors.Is(err, ErrWrongAddr) {
		t.Errorf("close from elsewhere: %v", err)
	}
	if srv.State() != StateConnected {
		t.Fatalf("state %v", srv.State())
	}
}

// TestIdle: a connection that ends with nothing in flight is idle
// (GNS's Messages rule); one with reliable data unacked, or one that never
// connected, is not.
func TestIdle(t *testing.T) {
	cli, srv, now := p2pPair(t, testConfig("str:alice"), testConfig("str:bob"))
	cli.SendKeyed(now, 0, nil, []byte("x"), snp.Reliable)
	now = p2pRun(t, cli, srv, now, 500*time.Millisecond)
	recvAll(srv)
	if !cli.Idle(now) || !srv.Idle(now) {
		t.Fatal("an acked, received connection is not idle")
	}
	cli.SendKeyed(now, 0, nil, []byte("y"), snp.Reliable)
	if cli.Idle(now) {
		t.Fatal("a connection with queued reliable data is idle")
	}
	fresh, err := DialP2P(testConfig("str:carol"), now, 77)
	if err != nil {
		t.Fatal(err)
	}
	if fresh.Idle(now) {
		t.Fatal("a connection that never connected is idle")
	}
}
