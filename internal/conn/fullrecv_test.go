package conn

import (
	"errors"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/snp"
)

// TestFullReceiverStaysAlive: a receiver whose queue is full (it does not
// take its messages) discards the peer's new reliable data unacked, as GNS
// does, but still answers the peer's ack requests, so neither side times
// out however long it does not read; when it reads, everything comes.
func TestFullReceiverStaysAlive(t *testing.T) {
	cc, sc := testConfig("str:alice"), testConfig("str:bob")
	sc.SNP.RecvBufferMessages = 4
	cli, srv, now := p2pPair(t, cc, sc)
	for i := range 50 {
		if _, err := cli.SendKeyed(now, 0, nil, []byte{byte(i)}, snp.Reliable|snp.NoNagle); err != nil {
			t.Fatal(err)
		}
		now = p2pRun(t, cli, srv, now, 5*time.Millisecond)
	}
	now = p2pRun(t, cli, srv, now, 2*time.Minute)
	if cli.State() != StateConnected || srv.State() != StateConnected {
		t.Fatalf("after 2 min with a full receiver: client %v %q, server %v %q", cli.State(), cli.EndDebug(), srv.State(), srv.EndDebug())
	}
	if srv.ConnStats().AckRequestsRecv == 0 {
		t.Fatal("the receiver answered no ack request")
	}
	got := 0
	for range 1000 {
		got += len(recvAll(srv))
		if got == 50 {
			break
		}
		now = p2pRun(t, cli, srv, now, 50*time.Millisecond)
	}
	if got != 50 {
		t.Fatalf("received %d of 50 once reading", got)
	}
}

// TestDiscardedPacketAckRequestAnswered: a data packet whose reliable data
// the full receiver discards may also carry the peer's ack request (GNS
// puts its pings and keepalives on packets with data); the request is
// answered all the same, at once when asked to be.
func TestDiscardedPacketAckRequestAnswered(t *testing.T) {
	cc, sc := testConfig("str:alice"), testConfig("str:bob")
	sc.SNP.RecvBufferMessages = 2
	cli, srv, now := p2pPair(t, cc, sc)
	for i := range 2 {
		if _, err := cli.SendKeyed(now, 0, nil, []byte{byte(i)}, snp.Reliable|snp.NoNagle); err != nil {
			t.Fatal(err)
		}
	}
	now = p2pRun(t, cli, srv, now, 100*time.Millisecond)
	buf := make([]byte, 0, 2048)
	if _, ok := srv.Poll(now, buf); ok {
		t.Fatal("the receiver had something left to send")
	}
	// The next packet carries a new message and an immediate ack request.
	if _, err := cli.SendKeyed(now, 0, nil, []byte{2}, snp.Reliable|snp.NoNagle); err != nil {
		t.Fatal(err)
	}
	cli.replyTimeouts, cli.lastImmediate = 1, time.Time{}
	dg, ok := cli.Poll(now, buf)
	if !ok {
		t.Fatal("the sender sent nothing")
	}
	before := srv.ConnStats()
	if err := srv.HandleDatagram(now, srv.RemoteAddr(), append([]byte(nil), dg...)); !errors.Is(err, snp.ErrDiscarded) {
		t.Fatalf("a message past RecvBufferMessages: %v, want it discarded", err)
	}
	after := srv.ConnStats()
	if after.Discarded != before.Discarded+1 {
		t.Fatalf("discarded %d -> %d", before.Discarded, after.Discarded)
	}
	if after.AckRequestsRecv != before.AckRequestsRecv+1 {
		t.Fatalf("ack requests %d -> %d: the request in the discarded packet was ignored", before.AckRequestsRecv, after.AckRequestsRecv)
	}
	reply, ok := srv.Poll(now, buf)
	if !ok {
		t.Fatal("no immediate answer to the ack request")
	}
	if err := cli.HandleDatagram(now, cli.RemoteAddr(), append([]byte(nil), reply...)); err != nil {
		t.Fatal(err)
	}
	if cli.replyTimeouts != 0 {
		t.Fatalf("the sender still counts %d reply timeouts", cli.replyTimeouts)
	}
}
