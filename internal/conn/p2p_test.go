package conn

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/internal/snp"
)

// p2pPair runs the P2P handshake between a client and a server Conn by
// handing the connect request and OK over directly, then joins them by an
// in-test datagram path.
func p2pPair(t *testing.T, ccfg, scfg Config) (cli, srv *Conn, now time.Time) {
	t.Helper()
	now = t0
	cli, err := DialP2P(ccfg, now, 0x1234_0001)
	if err != nil {
		t.Fatal(err)
	}
	// The request goes through signaling: serialize it as the host would.
	b, _ := proto.Marshal(&pb.P2PRendezvous{ConnectRequest: cli.P2PConnectRequest()})
	var rv pb.P2PRendezvous
	if err := proto.Unmarshal(b, &rv); err != nil {
		t.Fatal(err)
	}
	srv, err = AcceptP2P(scfg, now, 0x5678_0002, cli.LocalID(), rv.ConnectRequest)
	if err != nil {
		t.Fatal(err)
	}
	if srv.State() != StateConnecting || srv.RemoteIdentity() != ccfg.Identity {
		t.Fatalf("server %v, peer %q", srv.State(), srv.RemoteIdentity())
	}
	if err := srv.Accept(now); err != nil {
		t.Fatal(err)
	}
	if err := cli.HandleP2PConnectOK(now, srv.LocalID(), srv.P2PConnectOK()); err != nil {
		t.Fatal(err)
	}
	if cli.State() != StateConnected || srv.State() != StateConnected || cli.RemoteIdentity() != scfg.Identity {
		t.Fatalf("states %v %v, peer %q", cli.State(), srv.State(), cli.RemoteIdentity())
	}
	cli.SetRemoteAddr(serverAddr)
	srv.SetRemoteAddr(clientAddr)
	return cli, srv, now
}

// exchange moves datagrams between the two until both are quiet.
func p2pRun(t *testing.T, a, b *Conn, now time.Time, d time.Duration) time.Time {
	buf := make([]byte, 0, 2048)
	end := now.Add(d)
	for ; now.Before(end); now = now.Add(time.Millisecond) {
		for _, x := range [][2]*Conn{{a, b}, {b, a}} {
			for {
				dg, ok := x[0].Poll(now, buf)
				if !ok {
					break
				}
				if k, _ := Classify(dg); k == KindChallengeRequest || k == KindConnectRequest {
					t.Fatalf("a P2P connection sent a UDP %v", k)
				}
				x[1].HandleDatagram(now, x[1].RemoteAddr(), append([]byte(nil), dg...))
			}
		}
	}
	return now
}

func TestP2PHandshake(t *testing.T) {
	cc, sc := testConfig("str:alice"), testConfig("str:bob")
	cc.VirtualPort, cc.OfferLanes, sc.OfferLanes = 0x7fffffff, 8, 8
	cc.RemoteIdentity = "str:bob"
	cli, srv, now := p2pPair(t, cc, sc)
	if cli.NumLanes() != 8 || srv.NumLanes() != 8 || srv.VirtualPort() != 0x7fffffff {
		t.Fatalf("lanes %d/%d, vport %d", cli.NumLanes(), srv.NumLanes(), srv.VirtualPort())
	}
	for i := range 20 {
		cli.SendKeyed(now, uint32(i%3), nil, []byte{byte(i)}, snp.Reliable)
		srv.SendKeyed(now, uint32(i%3), nil, []byte{byte(i)}, snp.Reliable)
	}
	now = p2pRun(t, cli, srv, now, 200*time.Millisecond)
	if n := len(recvAll(srv)); n != 20 {
		t.Fatalf("server got %d of 20", n)
	}
	if n := len(recvAll(cli)); n != 20 {
		t.Fatalf("client got %d of 20", n)
	}
	// A duplicate connect OK is harmless.
	if err := cli.HandleP2PConnectOK(now, srv.LocalID(), srv.P2PConnectOK()); err != nil {
		t.Fatal(err)
	}
	srv.CloseByPeer(now, 1001, "bye")
	if srv.State() != StateClosedByPeer || srv.EndReason() != 1001 {
		t.Fatalf("after close by peer: %v %d", srv.State(), srv.EndReason())
	}
}

func TestP2PRefused(t *testing.T) {
	cc, sc := testConfig("str:alice"), testConfig("str:bob")
	cc.RemoteIdentity = "str:carol" // expects someone else
	cli, err := DialP2P(cc, t0, 1)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := AcceptP2P(sc, t0, 2, 1, cli.P2PConnectRequest())
	if err != nil {
		t.Fatal(err)
	}
	srv.Accept(t0)
	if err := cli.HandleP2PConnectOK(t0, 2, srv.P2PConnectOK()); err == nil || cli.State() != StateProblemDetectedLocally {
		t.Fatalf("wrong identity accepted: %v %v", err, cli.State())
	}
	// Garbage requests.
	for _, req := range []*pb.P2PRendezvous_ConnectRequest{nil, {}, {Cert: &pb.CertificateSigned{Cert: []byte("x")}, Crypt: &pb.SessionCryptInfoSigned{}}} {
		if _, err := AcceptP2P(sc, t0, 2, 1, req); err == nil {
			t.Errorf("request %v accepted", req)
		}
	}
	if _, err := AcceptP2P(sc, t0, 2, 0, cli.P2PConnectRequest()); err == nil {
		t.Error("remote id 0 accepted")
	}
	// Timeout while connecting, without sending any UDP handshake.
	c2, _ := DialP2P(cc, t0, 3)
	buf := make([]byte, 0, 2048)
	for now := t0; now.Before(t0.Add(15 * time.Second)); now = now.Add(100 * time.Millisecond) {
		if d, ok := c2.Poll(now, buf); ok {
			if k, _ := Classify(d); k == KindChallengeRequest {
				t.Fatal("P2P client sent a challenge request")
			}
		}
	}
	if c2.State() != StateProblemDetectedLocally || c2.EndReason() != EndMiscTimeout {
		t.Fatalf("connecting P2P client: %v %d", c2.State(), c2.EndReason())
	}
}

// TestP2PNoBusyWake: a connecting P2P client wakes only for its timeout.
func TestP2PNoBusyWake(t *testing.T) {
	c, _ := DialP2P(testConfig("str:alice"), t0, 7)
	c.Poll(t0, nil)
	if w := c.NextWake(); !w.After(t0) {
		t.Fatalf("wakes at %v, not after %v", w, t0)
	}
}

// TestP2PChangeRole: a connecting client takes the peer's connect request
// as the server (symmetric connect), and the two connect with one pair of
// ids; a connected or server connection refuses.
func TestP2PChangeRole(t *testing.T) {
	a, _ := DialP2P(testConfig("str:alice"), t0, 11)
	b, _ := DialP2P(testConfig("str:bob"), t0, 22)
	if err := a.BecomeP2PServer(t0, 22, b.P2PConnectRequest()); err != nil {
		t.Fatal(err)
	}
	if !a.IsServer() || a.State() != StateConnected || a.RemoteID() != 22 {
		t.Fatalf("a: server %v state %v remote %d", a.IsServer(), a.State(), a.RemoteID())
	}
	if err := b.HandleP2PConnectOK(t0, 11, a.P2PConnectOK()); err != nil {
		t.Fatal(err)
	}
	a.SetRemoteAddr(clientAddr)
	b.SetRemoteAddr(serverAddr)
	a.SendKeyed(t0, 0, nil, []byte("hi"), snp.Reliable)
	b.SendKeyed(t0, 0, nil, []byte("ho"), snp.Reliable)
	p2pRun(t, a, b, t0, 100*time.Millisecond)
	if len(recvAll(a)) != 1 || len(recvAll(b)) != 1 {
		t.Fatal("no exchange after the role change")
	}
	if err := a.BecomeP2PServer(t0, 22, b.P2PConnectRequest()); err == nil {
		t.Error("a connected server changed role again")
	}
}
