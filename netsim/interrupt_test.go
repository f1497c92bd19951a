package netsim

import (
	"errors"
	"testing"
	"testing/synctest"

	"github.com/netmsg-go/netmsg/transport"
)

// TestInterruptRead checks that InterruptRead ends a blocked ReadBatch
// with ErrInterrupted, that one made before a read ends that read, and
// that a datagram waiting is returned rather than the interrupt and is
// never lost to one.
func TestInterruptRead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{})
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		pkts := []transport.Packet{{Buf: make([]byte, transport.MaxDatagram)}}

		errc := make(chan error, 1)
		go func() {
			_, err := b.ReadBatch(pkts)
			errc <- err
		}()
		synctest.Wait()
		select {
		case err := <-errc:
			t.Fatalf("ReadBatch returned %v before the interrupt", err)
		default:
		}
		b.InterruptRead()
		if err := <-errc; !errors.Is(err, transport.ErrInterrupted) {
			t.Fatalf("blocked ReadBatch: %v, want ErrInterrupted", err)
		}

		b.InterruptRead() // before the read
		if _, err := b.ReadBatch(pkts); !errors.Is(err, transport.ErrInterrupted) {
			t.Fatalf("ReadBatch after InterruptRead: %v, want ErrInterrupted", err)
		}

		b.InterruptRead()
		send(t, a, b.LocalAddr(), payload(7, 100))
		synctest.Wait()
		got, err := b.ReadBatch(pkts)
		if err != nil || got != 1 || pkts[0].N != 100 {
			t.Fatalf("ReadBatch with a datagram waiting: %d, %v (N %d), want the datagram", got, err, pkts[0].N)
		}
		if _, err := b.ReadBatch(pkts); !errors.Is(err, transport.ErrInterrupted) {
			t.Fatalf("ReadBatch after the datagram: %v, want the pending ErrInterrupted", err)
		}
		n.Close()
		if _, err := b.ReadBatch(pkts); !errors.Is(err, transport.ErrClosed) {
			t.Fatalf("ReadBatch after Close: %v, want ErrClosed", err)
		}
	})
}
