package udp

import (
	"errors"
	"os"
	"runtime"
	"sync"
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

// TestOwnDeadlineNotInterrupt checks that a read deadline the socket's
// owner sets itself (package relay does) still ends a read with a
// deadline error, not ErrInterrupted, and is left in place.
func TestOwnDeadlineNotInterrupt(t *testing.T) {
	for _, m := range modes {
		if m.opts.DisableBatch {
			continue // the portable path retries such errors
		}
		t.Run(m.name, func(t *testing.T) {
			b := listen(t, "udp4", lo4, m.opts)
			defer watchdog(t, b)()
			_ = b.uc.SetReadDeadline(time.Unix(1, 0))
			for range 2 {
				_, err := b.ReadBatch(newPackets(4, transport.MaxDatagram))
				if !errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, transport.ErrInterrupted) {
					t.Fatalf("ReadBatch past the owner's deadline: %v, want a deadline error", err)
				}
			}
		})
	}
}

// TestInterruptStorm fires InterruptRead from two goroutines while a
// reader reads: every read ends with ErrInterrupted or a datagram, never
// with a deadline error (an interrupt whose deadline outlived its flag),
// and once the interrupts stop, a read waits for and returns the next
// datagram.
func TestInterruptStorm(t *testing.T) {
	a := listen(t, "udp4", lo4, Options{})
	b := listen(t, "udp4", lo4, Options{})
	defer watchdog(t, a, b)()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					b.InterruptRead()
					runtime.Gosched()
				}
			}
		}()
	}
	in := newPackets(4, transport.MaxDatagram)
	for range 20000 {
		if _, err := b.ReadBatch(in); err != nil && !errors.Is(err, transport.ErrInterrupted) {
			close(stop)
			wg.Wait()
			t.Fatalf("ReadBatch during interrupts: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	out := newPackets(1, 50)
	out[0].N, out[0].Addr = 50, b.LocalAddr()
	if _, err := a.WriteBatch(out); err != nil {
		t.Fatal(err)
	}
	for {
		n, err := b.ReadBatch(in)
		if errors.Is(err, transport.ErrInterrupted) {
			continue // one left over from the storm
		}
		if err != nil || n != 1 || in[0].N != 50 {
			t.Fatalf("after the storm: %d, %v", n, err)
		}
		break
	}
}
