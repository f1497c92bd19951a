package netmsg

import (
	"context"
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/transport"
)

// spinCounter is a socket that can spin (as udp.Conn on Linux), counting
// the reads that asked to.
type spinCounter struct {
	*netsim.Endpoint
	spins atomic.Int64
}

func (s *spinCounter) ReadBatchSpin(pkts []transport.Packet) (int, error) {
	s.spins.Add(1)
	return s.Endpoint.ReadBatch(pkts)
}

// TestReceiverSpinsForAnswers pins who reads with ReadBatchSpin: an
// application's receiver that reads the socket itself after a send with
// SendNoNagle (it likely waits for the answer), in every read until one
// brings it a message, not one whose Host sent
// nothing with SendNoNagle since (one-way traffic: spinning through
// every gap would cost a server most of a core), nor the reader
// goroutine.
func TestReceiverSpinsForAnswers(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, ea, eb := netsimEndpoints(t, netsim.LinkConfig{Delay: roleReclaim / 5})
		defer nw.Close()
		sc := &spinCounter{Endpoint: eb}
		cli, srv := peersOn(t, ea, sc)
		defer srv.Close()
		defer cli.Close()
		c := connectWait(t, cli, srv)
		s := serverConn(t, srv)
		ctx := context.Background()
		synctest.Wait()
		base := sc.spins.Load()

		// startReceive starts a receive on s; its error comes on the
		// channel once a message came.
		startReceive := func() chan error {
			ch := make(chan error, 1)
			go func() {
				m, err := srv.Receive(ctx, s)
				if err == nil {
					m.Release()
				}
				ch <- err
			}()
			synctest.Wait() // the receiver holds the role, in its read
			return ch
		}
		receive := func() {
			t.Helper()
			ch := startReceive()
			if _, err := cli.SendMessageToConnection(c, numbered(1, 64), SendReliableNoNagle); err != nil {
				t.Fatal(err)
			}
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
		}

		// One-way: the server only receives.
		for range 3 {
			receive()
		}
		if got := sc.spins.Load() - base; got != 0 {
			t.Fatalf("%d spinning reads by a receiver of one-way traffic, want 0", got)
		}
		// Request-answer: the server sends with SendNoNagle, then waits.
		for i := range 3 {
			if _, err := srv.SendMessageToConnection(s, numbered(2, 64), SendReliableNoNagle); err != nil {
				t.Fatal(err)
			}
			before := sc.spins.Load()
			receive()
			if got := sc.spins.Load() - before; got != 1 {
				t.Fatalf("round %d: %d spinning reads after a SendNoNagle, want 1", i, got)
			}
		}
		// Datagrams that bring the waiting receiver no message (here
		// another connection's) are no answer: its read after them
		// spins too.
		ec, err := nw.Listen(netip.MustParseAddrPort("127.0.0.3:27015"))
		if err != nil {
			t.Fatal(err)
		}
		carol, _ := ParseIdentity("str:carol")
		cli2 := newTestPeer(t, Config{PacketConn: ec, Identity: carol}, false)
		defer cli2.Close()
		c2 := connectWait(t, cli2, srv)
		synctest.Wait()
		if _, err := srv.SendMessageToConnection(s, numbered(4, 64), SendReliableNoNagle); err != nil {
			t.Fatal(err)
		}
		before := sc.spins.Load()
		ch := startReceive()
		if _, err := cli2.SendMessageToConnection(c2, numbered(5, 64), SendReliableNoNagle); err != nil {
			t.Fatal(err)
		}
		time.Sleep(roleReclaim) // delivered and read: not the answer
		if _, err := cli.SendMessageToConnection(c, numbered(6, 64), SendReliableNoNagle); err != nil {
			t.Fatal(err)
		}
		if err := <-ch; err != nil {
			t.Fatal(err)
		}
		if got := sc.spins.Load() - before; got < 2 {
			t.Fatalf("%d spinning reads for an answer that came after another connection's message, want 2 or more", got)
		}
		// A send with Nagle (throughput first) asks for no spin.
		if _, err := srv.SendMessageToConnection(s, numbered(3, 64), SendReliable); err != nil {
			t.Fatal(err)
		}
		before = sc.spins.Load()
		receive()
		if got := sc.spins.Load() - before; got != 0 {
			t.Fatalf("%d spinning reads after a Nagled send, want 0", got)
		}
	})
}
