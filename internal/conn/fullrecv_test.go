package conn

import (
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
