package udp

import (
	"errors"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/transport"
)

// TestInterruptRead checks that InterruptRead ends a blocked ReadBatch
// (and one that starts after it) with ErrInterrupted, that the read after
// it blocks again until a datagram comes, and that no datagram is lost to
// an interrupt.
func TestInterruptRead(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			a := listen(t, "udp4", lo4, m.opts)
			b := listen(t, "udp4", lo4, m.opts)
			defer watchdog(t, a, b)()

			done := make(chan error, 1)
			go func() {
				_, err := b.ReadBatch(newPackets(4, transport.MaxDatagram))
				done <- err
			}()
			time.Sleep(10 * time.Millisecond) // let ReadBatch block (either way it must end)
			b.InterruptRead()
			if err := <-done; !errors.Is(err, transport.ErrInterrupted) {
				t.Fatalf("blocked ReadBatch: %v, want ErrInterrupted", err)
			}

			b.InterruptRead() // before the read
			if _, err := b.ReadBatch(newPackets(4, transport.MaxDatagram)); !errors.Is(err, transport.ErrInterrupted) {
				t.Fatalf("ReadBatch after InterruptRead: %v, want ErrInterrupted", err)
			}

			// An interrupt with a datagram waiting: the datagram comes
			// out of this read or the next.
			out := newPackets(1, 100)
			payload(out[0].Buf, 1)
			out[0].N, out[0].Addr = 100, b.LocalAddr()
			b.InterruptRead()
			if _, err := a.WriteBatch(out); err != nil {
				t.Fatal(err)
			}
			time.Sleep(10 * time.Millisecond)
			in := newPackets(4, transport.MaxDatagram)
			n, err := b.ReadBatch(in)
			if errors.Is(err, transport.ErrInterrupted) {
				n, err = b.ReadBatch(in)
			}
			if err != nil || n != 1 || in[0].N != 100 || in[0].Addr != a.LocalAddr() {
				t.Fatalf("read after interrupt: %d, %v (N %d from %v), want the datagram", n, err, in[0].N, in[0].Addr)
			}

			// The deadline is cleared: a read blocks for the next datagram.
			go func() {
				n, err := b.ReadBatch(in)
				if err == nil && n != 1 {
					err = errors.New("wrong count")
				}
				done <- err
			}()
			time.Sleep(10 * time.Millisecond)
			select {
			case err := <-done:
				if !errors.Is(err, transport.ErrInterrupted) {
					t.Fatalf("ReadBatch with nothing to read returned %v", err)
				}
				// The pending interrupt of the datagram's read; read again.
				go func() {
					_, err := b.ReadBatch(in)
					done <- err
				}()
			default:
			}
			if _, err := a.WriteBatch(out); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("ReadBatch after the interrupts: %v", err)
			}
		})
	}
}
