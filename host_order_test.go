package netmsg

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/udp"
	"github.com/netmsg-go/netmsg/transport"
)

// pnRecorder is a PacketConn that notes the packet number (its low 16
// bits, in the clear in the header) of every data packet written, in the
// order written. Before each batch it lets other goroutines run, so that
// goroutines that built packets meanwhile race for the write.
type pnRecorder struct {
	transport.PacketConn
	mu  sync.Mutex
	pns []uint16
}

func (r *pnRecorder) WriteBatch(pkts []transport.Packet) (int, error) {
	runtime.Gosched()
	r.mu.Lock()
	for i := range pkts {
		if b := pkts[i].Bytes(); len(b) >= 7 && b[0]&0x80 != 0 {
			r.pns = append(r.pns, binary.LittleEndian.Uint16(b[5:7]))
		}
	}
	r.mu.Unlock()
	return r.PacketConn.WriteBatch(pkts)
}

// outOfOrder returns how many data packets were written, how many after
// a later-numbered one, and a description of the first of those.
func (r *pnRecorder) outOfOrder() (n, bad int, first string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := 1; i < len(r.pns); i++ {
		if int16(r.pns[i]-r.pns[i-1]) <= 0 {
			if bad == 0 {
				first = fmt.Sprintf("packet %d written after %d (datagram %d of %d)", r.pns[i], r.pns[i-1], i, len(r.pns))
			}
			bad++
		}
	}
	return len(r.pns), bad, first
}

// TestHostOneBatchPerConn: a connection's packets leave the Host in
// packet-number order while several goroutines make them at once (the
// timer's batched sends, sends that write on the caller's goroutine, the
// worker answering acks): a packet written before a lower-numbered one
// looks lost to the peer (a hole in the numbers), which then reports it
// and its sender retransmits and slows down.
//
// It runs over loopback UDP: over netsim in a synctest bubble the
// goroutines did not overlap enough to show the fault even on the code
// that had it.
func TestHostOneBatchPerConn(t *testing.T) {
	var pcs [2]transport.PacketConn
	for i := range pcs {
		u, err := udp.Listen("udp4", netip.MustParseAddrPort("127.0.0.1:0"), udp.Options{})
		if err != nil {
			t.Fatal(err)
		}
		pcs[i] = u
	}
	oneBatchPerConn(t, pcs[0], pcs[1], 20000)
}

// oneBatchPerConn is TestHostOneBatchPerConn's body over the two packet
// connections given.
func oneBatchPerConn(t *testing.T, ea, eb transport.PacketConn, perSender int) {
	alice, _ := ParseIdentity("str:alice")
	bob, _ := ParseIdentity("str:bob")
	rc := &pnRecorder{PacketConn: ea}
	rs := &pnRecorder{PacketConn: eb}
	cli := newTestPeer(t, Config{PacketConn: rc, Identity: alice}, false)
	srv := newTestPeer(t, Config{PacketConn: rs, Identity: bob}, true)
	defer srv.Close()
	defer cli.Close()
	c := connectWait(t, cli, srv)
	s := serverConn(t, srv)

	const size = 300
	flags := []SendFlags{SendReliable, SendReliable | SendNoNagle, SendReliable | SendNoDelay}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(flags)+2)
	for i, f := range flags {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perSender {
				if _, err := cli.Send(ctx, c, numbered(uint64(i*perSender+j), size), f); err != nil {
					errs <- err
					return
				}
			}
		}()
		// The server answers on the same connection, so that its acks
		// ride on data too.
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perSender / 10 {
				if _, err := srv.Send(ctx, s, numbered(uint64(j), size), f); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	recv := func(p *testPeer, h ConnHandle, n int) {
		defer wg.Done()
		for range n {
			m, err := p.Receive(ctx, h)
			if err != nil {
				errs <- err
				return
			}
			m.Release()
		}
	}
	wg.Add(2)
	go recv(srv, s, len(flags)*perSender)
	go recv(cli, c, len(flags)*(perSender/10))
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for _, p := range []struct {
		name string
		r    *pnRecorder
	}{{"client", rc}, {"server", rs}} {
		n, bad, first := p.r.outOfOrder()
		if bad > 0 {
			t.Errorf("%s: %d of %d data packets written out of packet-number order; first: %s", p.name, bad, n, first)
		}
	}
}
