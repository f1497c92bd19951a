package udp

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/transport"
)

// TestSpinDecisions pins when ReadBatchSpin spins, on the state alone
// with made-up times: a spin as long as the last wait was caught by a
// spin or ended in the poller within spinWaitMax; an empty spin turns
// spinning off; every spinProbe-th wait spins anyway; an interrupt ends a
// spin.
func TestSpinDecisions(t *testing.T) {
	var intr atomic.Bool
	r := &recvState{intr: &intr, spinOK: true}
	t0 := time.Unix(1000, 0)
	at := func(us int) time.Time { return t0.Add(time.Duration(us) * time.Microsecond) }

	// Spinning at first, for spinFor at most.
	if !r.spinMore(at(0)) || !r.spinMore(at(10)) {
		t.Fatal("the first wait does not spin")
	}
	r.spinEnd(at(15)) // caught
	if !r.spinOK {
		t.Fatal("a wait caught by its spin turned spinning off")
	}
	if !r.spinMore(at(100)) {
		t.Fatal("no spin after a caught wait")
	}
	if r.spinMore(at(100 + int(spinFor/time.Microsecond))) {
		t.Fatal("spun past spinFor")
	}
	if r.spinOK {
		t.Fatal("an empty spin left spinning on")
	}
	r.spinEnd(at(500)) // came later, in the poller
	if r.spinOK {
		t.Fatal("a long wait turned spinning on")
	}

	// Off: waits go to the poller; a short one turns spinning back on.
	if r.spinMore(at(1000)) {
		t.Fatal("spun while off")
	}
	r.spinEnd(at(1000 + int(spinWaitMax/time.Microsecond) + 1))
	if r.spinOK {
		t.Fatal("a wait of more than spinWaitMax turned spinning on")
	}
	if r.spinMore(at(2000)) {
		t.Fatal("spun while off")
	}
	r.spinEnd(at(2030))
	if !r.spinOK {
		t.Fatal("a wait of 30 µs in the poller left spinning off")
	}

	// Off for good (every wait long): one wait in spinProbe spins.
	r.spinOK = false
	spins := 0
	for i := range 4 * spinProbe {
		base := 10_000 + i*1000
		if r.spinMore(at(base)) {
			spins++
			if r.spinMore(at(base + int(spinFor/time.Microsecond))) {
				t.Fatal("a probe spun past spinFor")
			}
		}
		r.spinEnd(at(base + 500))
	}
	if spins != 4 {
		t.Fatalf("%d spins in %d long waits, want 4", spins, 4*spinProbe)
	}

	// An interrupt ends a spin.
	r.spinOK = true
	if !r.spinMore(at(100_000)) {
		t.Fatal("no spin")
	}
	intr.Store(true)
	if r.spinMore(at(100_001)) {
		t.Fatal("spun on after an interrupt")
	}
}

// TestReadBatchSpin reads through ReadBatchSpin on real sockets, each
// read mode: a datagram that comes during a spin, one that comes after
// the spin gave up, and an interrupt of a spinning or waiting read.
func TestReadBatchSpin(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			a := listen(t, "udp4", lo4, m.opts)
			b := listen(t, "udp4", lo4, m.opts)
			defer watchdog(t, a, b)()
			var sending sync.Mutex // WriteBatch: one goroutine at a time (a send can end after its datagram was read)
			send := func(seq int) {
				sending.Lock()
				defer sending.Unlock()
				out := newPackets(1, 100)
				payload(out[0].Buf, seq)
				out[0].N, out[0].Addr = 100, b.LocalAddr()
				if _, err := a.WriteBatch(out); err != nil {
					t.Error(err)
				}
			}
			in := newPackets(4, transport.MaxDatagram)
			for i, delay := range []time.Duration{0, 5 * time.Microsecond, 2 * time.Millisecond, 0, 10 * time.Millisecond} {
				go func() {
					time.Sleep(delay)
					send(i)
				}()
				n, err := b.ReadBatchSpin(in)
				if err != nil || n != 1 || in[0].N != 100 || in[0].Addr != a.LocalAddr() {
					t.Fatalf("read %d (sent after %v): %d, %v (N %d from %v), want the datagram", i, delay, n, err, in[0].N, in[0].Addr)
				}
			}

			done := make(chan error, 1)
			for _, wait := range []time.Duration{0, 10 * time.Millisecond} {
				go func() {
					_, err := b.ReadBatchSpin(in)
					done <- err
				}()
				time.Sleep(wait) // in its spin, or waiting in the poller
				b.InterruptRead()
				if err := <-done; !errors.Is(err, transport.ErrInterrupted) {
					t.Fatalf("ReadBatchSpin interrupted after %v: %v, want ErrInterrupted", wait, err)
				}
			}
			send(9)
			if n, err := b.ReadBatchSpin(in); err != nil || n != 1 {
				t.Fatalf("read after interrupts: %d, %v", n, err)
			}
		})
	}
}
