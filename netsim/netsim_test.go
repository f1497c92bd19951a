package netsim

import (
	"errors"
	"math"
	"net/netip"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netmsg-go/netmsg/transport"
)

// run sends count datagrams of size bytes from a to b, one every interval,
// then waits long enough for every one to arrive, closes the network and
// returns what b received.
func run(t *testing.T, n *Network, a, b *Endpoint, count int, size int, interval time.Duration) []rxd {
	t.Helper()
	c := collect(b)
	for i := range count {
		send(t, a, b.LocalAddr(), payload(uint64(i), size))
		if interval > 0 {
			time.Sleep(interval)
		}
	}
	time.Sleep(time.Minute)
	synctest.Wait()
	n.Close()
	return c.stop(t)
}

func indices(got []rxd) []uint64 {
	out := make([]uint64, len(got))
	for i, r := range got {
		out[i] = r.idx
	}
	return out
}

func TestPerfectLinkInOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{})
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		got := run(t, n, a, b, 1000, 100, 0)
		if len(got) != 1000 {
			t.Fatalf("got %d datagrams, want 1000", len(got))
		}
		for i, r := range got {
			if r.idx != uint64(i) || r.latency != 0 || r.from != a.LocalAddr() || r.size != 100 {
				t.Fatalf("datagram %d: %+v", i, r)
			}
		}
		st := n.LinkStats(a.LocalAddr(), b.LocalAddr())
		if st.Sent != 1000 || st.Delivered != 1000 || st.SentBytes != 100000 || st.DeliveredBytes != 100000 || st.Dropped() != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestDelayJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay, jitter = 40 * time.Millisecond, 10 * time.Millisecond
		n := mustNew(t, Config{Seed: 1, Link: LinkConfig{Delay: delay, Jitter: jitter}})
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		got := run(t, n, a, b, 2000, 32, time.Millisecond)
		if len(got) != 2000 {
			t.Fatalf("got %d datagrams, want 2000", len(got))
		}
		lo, hi := time.Duration(math.MaxInt64), time.Duration(0)
		inversions := 0
		for i, r := range got {
			lo, hi = min(lo, r.latency), max(hi, r.latency)
			if i > 0 && r.idx < got[i-1].idx {
				inversions++
			}
		}
		if lo < delay || hi > delay+jitter {
			t.Errorf("latency in [%v, %v], want within [%v, %v]", lo, hi, delay, delay+jitter)
		}
		// Uniform over 10 ms with 2000 samples: both ends are approached.
		if lo > delay+100*time.Microsecond || hi < delay+jitter-100*time.Microsecond {
			t.Errorf("latency in [%v, %v], want it to span [%v, %v]", lo, hi, delay, delay+jitter)
		}
		if inversions == 0 {
			t.Errorf("jitter of 10 ms over 1 ms spacing reordered nothing")
		}
		if st := n.Stats(); st.Reordered != 0 {
			t.Errorf("Reordered = %d, want 0 (jitter is not counted)", st.Reordered)
		}
	})
}

func TestLossRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const count = 100000
		n := mustNew(t, Config{Seed: 7, Link: LinkConfig{LossPercent: 10}})
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		got := run(t, n, a, b, count, 16, 10*time.Microsecond)
		st := n.LinkStats(a.LocalAddr(), b.LocalAddr())
		if st.Sent != count || st.Delivered+st.DroppedLoss != count || uint64(len(got)) != st.Delivered {
			t.Fatalf("stats %+v, received %d", st, len(got))
		}
		// 3 standard deviations of a binomial(100000, 0.1) is about 285.
		if d := math.Abs(float64(st.DroppedLoss) - count*0.1); d > 285 {
			t.Errorf("lost %d of %d, want about %d", st.DroppedLoss, count, count/10)
		}
		t.Logf("lost %d of %d", st.DroppedLoss, count)
	})
}

func TestDropSeqs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{})
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		n.SetLink(a.LocalAddr(), b.LocalAddr(), LinkConfig{Delay: time.Millisecond, Drop: DropSeqs(0, 3, 4, 9)})
		got := run(t, n, a, b, 10, 16, time.Millisecond)
		if want := []uint64{1, 2, 5, 6, 7, 8}; !slices.Equal(indices(got), want) {
			t.Errorf("received %v, want %v", indices(got), want)
		}
		if st := n.LinkStats(a.LocalAddr(), b.LocalAddr()); st.DroppedFilter != 4 || st.Delivered != 6 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestDropFilterSeesContent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{})
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		// Drop datagrams whose index is odd; the filter reads the bytes.
		n.SetDefault(LinkConfig{Drop: func(seq uint64, p []byte) bool { return p[7]%2 == 1 }})
		got := run(t, n, a, b, 10, 16, 0)
		if want := []uint64{0, 2, 4, 6, 8}; !slices.Equal(indices(got), want) {
			t.Errorf("received %v, want %v", indices(got), want)
		}
	})
}

func TestReorder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const count = 10000
		n := mustNew(t, Config{Seed: 3, Link: LinkConfig{Delay: 5 * time.Millisecond, ReorderPercent: 5, ReorderDelay: 3 * time.Millisecond}})
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		got := run(t, n, a, b, count, 16, time.Millisecond)
		if len(got) != count {
			t.Fatalf("got %d, want %d", len(got), count)
		}
		st := n.Stats()
		if d := math.Abs(float64(st.Reordered) - count*0.05); d > 3*math.Sqrt(count*0.05*0.95) {
			t.Errorf("Reordered = %d, want about %d", st.Reordered, count/20)
		}
		late := 0
		for _, r := range got {
			switch r.latency {
			case 5 * time.Millisecond:
			case 8 * time.Millisecond:
				late++
			default:
				t.Fatalf("latency %v, want 5ms or 8ms", r.latency)
			}
		}
		if uint64(late) != st.Reordered {
			t.Errorf("%d datagrams held back, Reordered = %d", late, st.Reordered)
		}
		inversions := 0
		for i := 1; i < len(got); i++ {
			if got[i].idx < got[i-1].idx {
				inversions++
			}
		}
		if inversions == 0 {
			t.Error("no datagram arrived out of order")
		}
	})
}

func TestDuplicate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const count = 10000
		n := mustNew(t, Config{Seed: 4, Link: LinkConfig{Delay: time.Millisecond, DuplicatePercent: 20}})
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		got := run(t, n, a, b, count, 16, 100*time.Microsecond)
		st := n.Stats()
		if uint64(len(got)) != count+st.Duplicated || st.Delivered != uint64(len(got)) {
			t.Fatalf("received %d, stats %+v", len(got), st)
		}
		if d := math.Abs(float64(st.Duplicated) - count*0.2); d > 3*math.Sqrt(count*0.2*0.8) {
			t.Errorf("Duplicated = %d, want about %d", st.Duplicated, count/5)
		}
		seen := make(map[uint64]int)
		for _, r := range got {
			seen[r.idx]++
		}
		twice := 0
		for i := range uint64(count) {
			switch seen[i] {
			case 1:
			case 2:
				twice++
			default:
				t.Fatalf("datagram %d received %d times", i, seen[i])
			}
		}
		if uint64(twice) != st.Duplicated {
			t.Errorf("%d received twice, Duplicated = %d", twice, st.Duplicated)
		}
	})
}

func TestRateLimitThroughput(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const (
			rate  = 100_000 // bytes/s
			size  = 1000
			queue = 10_000
			delay = 20 * time.Millisecond
		)
		n := mustNew(t, Config{Link: LinkConfig{Rate: rate, QueueBytes: queue, Delay: delay}})
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		// Offer twice the rate for 10 s: 2000 datagrams, one every 5 ms.
		got := run(t, n, a, b, 2000, size, 5*time.Millisecond)
		st := n.Stats()
		// In 10 s the link serializes 1000 datagrams; those in the queue
		// at the end go out afterwards.
		if st.Delivered < 1000 || st.Delivered > 1000+queue/size+1 {
			t.Errorf("delivered %d, want about 1000", st.Delivered)
		}
		if st.DroppedQueue == 0 || st.Delivered+st.DroppedQueue != 2000 {
			t.Errorf("stats %+v", st)
		}
		// Once the queue is full, datagrams arrive exactly size/rate apart.
		for i := 20; i < len(got); i++ {
			if gap := got[i].at.Sub(got[i-1].at); gap != size*time.Second/rate {
				t.Fatalf("gap between arrivals %d and %d is %v, want 10ms", i-1, i, gap)
			}
		}
		// Latency = queueing + serialization + delay, bounded by a full queue.
		for _, r := range got {
			if r.latency < delay+size*time.Second/rate || r.latency > delay+queue*time.Second/rate {
				t.Fatalf("latency %v out of bounds", r.latency)
			}
		}
	})
}

func TestRateLimitTailDrop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{Link: LinkConfig{Rate: 100_000, QueueBytes: 10_000}})
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		// A burst of 50 datagrams of 1000 bytes: 10 fit in the queue.
		got := run(t, n, a, b, 50, 1000, 0)
		if want := []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}; !slices.Equal(indices(got), want) {
			t.Errorf("received %v, want %v", indices(got), want)
		}
		if st := n.Stats(); st.DroppedQueue != 40 {
			t.Errorf("DroppedQueue = %d, want 40", st.DroppedQueue)
		}
		if got[9].latency != 100*time.Millisecond {
			t.Errorf("last of the burst took %v, want 100ms", got[9].latency)
		}
	})
}

func TestMTU(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{Link: LinkConfig{MTU: 1200}})
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		c := collect(b)
		send(t, a, b.LocalAddr(), payload(0, 1200))
		send(t, a, b.LocalAddr(), payload(1, 1201))
		send(t, a, b.LocalAddr(), payload(2, 100))
		synctest.Wait()
		n.Close()
		if got := indices(c.stop(t)); !slices.Equal(got, []uint64{0, 2}) {
			t.Errorf("received %v", got)
		}
		if st := n.Stats(); st.DroppedMTU != 1 || st.Delivered != 2 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestOversizedDatagramDropped(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{})
		defer n.Close()
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		send(t, a, b.LocalAddr(), make([]byte, 65508))
		if st := n.Stats(); st.DroppedMTU != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestTruncation(t *testing.T) {
	n := mustNew(t, Config{})
	defer n.Close()
	a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
	send(t, a, b.LocalAddr(), payload(5, 3000))
	pkts := []transport.Packet{{Buf: make([]byte, 20)}}
	if k, err := b.ReadBatch(pkts); err != nil || k != 1 || pkts[0].N != 20 || pkts[0].Buf[7] != 5 {
		t.Fatalf("ReadBatch = %d, %v, packet %+v", k, err, pkts[0])
	}
}

func TestRecvQueueOverflow(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{RecvQueue: 8})
		defer n.Close()
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		for i := range 20 {
			send(t, a, b.LocalAddr(), payload(uint64(i), 16))
		}
		st := n.Stats()
		if st.Delivered != 8 || st.DroppedRecvQueue != 12 {
			t.Fatalf("stats %+v", st)
		}
		pkts := make([]transport.Packet, 16)
		for i := range pkts {
			pkts[i].Buf = make([]byte, 64)
		}
		k, err := b.ReadBatch(pkts)
		if err != nil || k != 8 {
			t.Fatalf("ReadBatch = %d, %v; want 8", k, err)
		}
		for i, p := range pkts[:k] {
			if p.Buf[7] != byte(i) || p.Addr != a.LocalAddr() {
				t.Errorf("packet %d: %v from %v", i, p.Buf[:8], p.Addr)
			}
		}
		// Room again.
		send(t, a, b.LocalAddr(), payload(99, 16))
		if k, err := b.ReadBatch(pkts); err != nil || k != 1 || pkts[0].Buf[7] != 99 {
			t.Fatalf("ReadBatch = %d, %v", k, err)
		}
	})
}

func TestUnreachable(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{Link: LinkConfig{Delay: 10 * time.Millisecond}})
		defer n.Close()
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		nowhere := ap("10.9.9.9:9")
		send(t, a, nowhere, payload(0, 16))
		// b closes while a datagram to it is in flight.
		send(t, a, b.LocalAddr(), payload(1, 16))
		b.Close()
		time.Sleep(time.Second)
		if st := n.LinkStats(a.LocalAddr(), nowhere); st.DroppedUnreachable != 1 {
			t.Errorf("to nowhere: %+v", st)
		}
		if st := n.LinkStats(a.LocalAddr(), b.LocalAddr()); st.DroppedUnreachable != 1 {
			t.Errorf("to closed: %+v", st)
		}
		if _, err := b.WriteBatch(nil); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("WriteBatch after Close: %v", err)
		}
	})
}

func TestCloseUnblocksReadBatch(t *testing.T) {
	for _, closeNet := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			n := mustNew(t, Config{})
			defer n.Close()
			e := listen(t, n, "")
			errc := make(chan error)
			go func() {
				_, err := e.ReadBatch(make([]transport.Packet, 1))
				errc <- err
			}()
			synctest.Wait() // ReadBatch is durably blocked
			select {
			case err := <-errc:
				t.Fatalf("ReadBatch returned early: %v", err)
			default:
			}
			if closeNet {
				n.Close()
			} else {
				e.Close()
			}
			if err := <-errc; !errors.Is(err, transport.ErrClosed) {
				t.Errorf("ReadBatch after Close: %v", err)
			}
			if _, err := e.ReadBatch(make([]transport.Packet, 1)); !errors.Is(err, transport.ErrClosed) {
				t.Errorf("second ReadBatch after Close: %v", err)
			}
			e.Close()
		})
	}
}

func TestCloseWithDatagramsInFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{Link: LinkConfig{Delay: time.Second}})
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		for i := range 5 {
			send(t, a, b.LocalAddr(), payload(uint64(i), 16))
		}
		n.Close()
		time.Sleep(2 * time.Second)
		if st := n.Stats(); st.DroppedClosed != 5 || st.InFlight() != 0 {
			t.Errorf("stats %+v", st)
		}
		if _, err := n.Listen(netip.AddrPort{}); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("Listen after Close: %v", err)
		}
	})
}

func TestSenderMayReuseBuffer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{Link: LinkConfig{Delay: time.Millisecond}})
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		c := collect(b)
		buf := payload(0, 16)
		for i := range 10 {
			buf[7] = byte(i)
			send(t, a, b.LocalAddr(), buf)
		}
		time.Sleep(time.Second)
		n.Close()
		if got := indices(c.stop(t)); !slices.Equal(got, []uint64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}) {
			t.Errorf("received %v", got)
		}
	})
}

func TestListenAddresses(t *testing.T) {
	n := mustNew(t, Config{})
	defer n.Close()
	e1 := listen(t, n, "")
	e2 := listen(t, n, "")
	e3 := listen(t, n, "10.1.1.1:0")
	e4 := listen(t, n, "10.1.1.1:0")
	e6 := listen(t, n, "[::]:0")
	want := []string{"10.0.0.1:49152", "10.0.0.2:49152", "10.1.1.1:49152", "10.1.1.1:49153", "[fd00::3]:49152"}
	for i, e := range []*Endpoint{e1, e2, e3, e4, e6} {
		if got := e.LocalAddr().String(); got != want[i] {
			t.Errorf("endpoint %d at %s, want %s", i, got, want[i])
		}
	}
	if _, err := n.Listen(e3.LocalAddr()); !errors.Is(err, ErrAddrInUse) {
		t.Errorf("Listen on used address: %v", err)
	}
	e3.Close()
	if e, err := n.Listen(e3.LocalAddr()); err != nil {
		t.Errorf("Listen on freed address: %v", err)
	} else if e.LocalAddr() != e3.LocalAddr() {
		t.Errorf("got %v", e.LocalAddr())
	}
}

func TestChangeConditionsMidRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{Seed: 9})
		a, b := listen(t, n, "10.0.0.1:1"), listen(t, n, "10.0.0.2:2")
		c := collect(b)
		for i := range 200 {
			if i == 100 {
				n.SetLink(a.LocalAddr(), b.LocalAddr(), LinkConfig{LossPercent: 100})
			}
			send(t, a, b.LocalAddr(), payload(uint64(i), 16))
			time.Sleep(time.Millisecond)
		}
		n.ClearLink(a.LocalAddr(), b.LocalAddr())
		send(t, a, b.LocalAddr(), payload(200, 16))
		synctest.Wait()
		n.Close()
		got := c.stop(t)
		if len(got) != 101 || got[99].idx != 99 || got[100].idx != 200 {
			t.Errorf("received %d, last %v", len(got), indices(got)[max(0, len(got)-3):])
		}
		if st := n.Stats(); st.DroppedLoss != 100 {
			t.Errorf("stats %+v", st)
		}
	})
}

func TestConditionPrecedence(t *testing.T) {
	n := mustNew(t, Config{Link: LinkConfig{Delay: 1}})
	defer n.Close()
	a, b, c := ap("10.0.0.1:1"), ap("10.0.0.2:2"), ap("10.0.0.3:3")
	n.SetIngress(b, LinkConfig{Delay: 2})
	n.SetEgress(a, LinkConfig{Delay: 3})
	n.SetLink(a, b, LinkConfig{Delay: 4})
	for _, tc := range []struct {
		from, to netip.AddrPort
		want     time.Duration
	}{{a, b, 4}, {a, c, 3}, {c, b, 2}, {c, a, 1}} {
		if got := n.Link(tc.from, tc.to).Delay; got != tc.want {
			t.Errorf("%v -> %v: delay %v, want %v", tc.from, tc.to, got, tc.want)
		}
	}
}

func TestInvalidConfig(t *testing.T) {
	for _, c := range []LinkConfig{{Delay: -1}, {Jitter: -1}, {ReorderDelay: -1}, {LossPercent: 101}, {LossPercent: -1},
		{ReorderPercent: math.NaN()}, {DuplicatePercent: 200}, {Rate: -1}, {QueueBytes: -1}, {MTU: -1}} {
		if n, err := New(Config{Link: c}); !errors.Is(err, ErrInvalidConfig) || n != nil {
			t.Errorf("New(%+v) = %v, %v; want ErrInvalidConfig", c, n, err)
		}
		n := mustNew(t, Config{})
		a := netip.MustParseAddrPort("127.0.0.1:1")
		for name, set := range map[string]func() error{
			"SetDefault": func() error { return n.SetDefault(c) },
			"SetLink":    func() error { return n.SetLink(a, a, c) },
			"SetEgress":  func() error { return n.SetEgress(a, c) },
			"SetIngress": func() error { return n.SetIngress(a, c) },
		} {
			if err := set(); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("%s(%+v) = %v; want ErrInvalidConfig", name, c, err)
			}
		}
		if got := n.Link(a, a); got.Delay != 0 || got.LossPercent != 0 {
			t.Errorf("an invalid config was applied: %+v", got)
		}
		n.Close()
	}
	if _, err := New(Config{RecvQueue: -1}); !errors.Is(err, ErrInvalidConfig) {
		t.Errorf("New with RecvQueue -1 = %v; want ErrInvalidConfig", err)
	}
}

// scenario runs traffic in both directions over a link with every random
// condition on and returns what each side received.
func scenario(t *testing.T, seed uint64) (ab, ba []rxd) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{Seed: seed, Link: LinkConfig{
			Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond,
			LossPercent: 5, ReorderPercent: 5, DuplicatePercent: 5,
			Rate: 1_000_000, QueueBytes: 20_000,
		}})
		a, b := listen(t, n, ""), listen(t, n, "")
		ca, cb := collect(a), collect(b)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := range 3000 {
				send(t, b, a.LocalAddr(), payload(uint64(i), 500))
				time.Sleep(700 * time.Microsecond)
			}
		}()
		for i := range 2000 {
			send(t, a, b.LocalAddr(), payload(uint64(i), 1200))
			time.Sleep(time.Millisecond)
		}
		<-done
		time.Sleep(time.Second)
		n.Close()
		ab, ba = cb.stop(t), ca.stop(t)
	})
	return ab, ba
}

func TestReproducible(t *testing.T) {
	ab1, ba1 := scenario(t, 42)
	ab2, ba2 := scenario(t, 42)
	ab3, _ := scenario(t, 43)
	if !slices.Equal(ab1, ab2) || !slices.Equal(ba1, ba2) {
		t.Error("same seed, same sends: different deliveries")
	}
	if slices.Equal(ab1, ab3) {
		t.Error("different seeds: same deliveries")
	}
	t.Logf("a->b %d of 2000, b->a %d of 3000", len(ab1), len(ba1))
}

// TestSimulatedHour runs an hour of fake time with a datagram every 10 ms
// each way (720,000 datagrams) and checks it takes seconds of real time.
// Under the race detector it simulates 10 minutes.
func TestSimulatedHour(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	simulated := time.Hour
	if raceEnabled {
		simulated = 10 * time.Minute
	}
	want := uint64(2 * simulated / (10 * time.Millisecond))
	start := time.Now()
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{Seed: 1, Link: LinkConfig{Delay: 25 * time.Millisecond, Jitter: 2 * time.Millisecond, LossPercent: 1}})
		a, b := listen(t, n, ""), listen(t, n, "")
		counts := make(chan int, 2)
		for _, e := range []*Endpoint{a, b} {
			go func() {
				pkts := []transport.Packet{{Buf: make([]byte, transport.MaxDatagram)}}
				total := 0
				for {
					k, err := e.ReadBatch(pkts)
					if err != nil {
						counts <- total
						return
					}
					total += k
				}
			}()
		}
		t0 := time.Now()
		buf := payload(0, 100)
		for time.Since(t0) < simulated {
			send(t, a, b.LocalAddr(), buf)
			send(t, b, a.LocalAddr(), buf)
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(time.Second)
		n.Close()
		got := <-counts + <-counts
		st := n.Stats()
		if st.Sent != want || st.InFlight() != 0 || st.Delivered != uint64(got) {
			t.Errorf("stats %+v, received %d", st, got)
		}
	})
	wall := time.Since(start)
	t.Logf("%v simulated, %d datagrams: %v of real time", simulated, want, wall)
	if wall > time.Minute { // generous for -race on a slow machine
		t.Errorf("took %v", wall)
	}
}

// TestRealTime checks delays outside a synctest bubble.
func TestRealTime(t *testing.T) {
	const delay = 30 * time.Millisecond
	n := mustNew(t, Config{Link: LinkConfig{Delay: delay}})
	defer n.Close()
	a, b := listen(t, n, ""), listen(t, n, "")
	start := time.Now()
	send(t, a, b.LocalAddr(), payload(1, 16))
	send(t, a, b.LocalAddr(), payload(2, 16))
	pkts := make([]transport.Packet, 2)
	for i := range pkts {
		pkts[i].Buf = make([]byte, 64)
	}
	got := 0
	for got < 2 {
		k, err := b.ReadBatch(pkts[got:])
		if err != nil {
			t.Fatal(err)
		}
		got += k
	}
	if el := time.Since(start); el < delay {
		t.Errorf("delivered after %v, want at least %v", el, delay)
	}
	if pkts[0].Buf[7] != 1 || pkts[1].Buf[7] != 2 {
		t.Errorf("order %d %d", pkts[0].Buf[7], pkts[1].Buf[7])
	}
}

func TestEndpointStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{})
		defer n.Close()
		a, b, c := listen(t, n, ""), listen(t, n, ""), listen(t, n, "")
		send(t, a, b.LocalAddr(), payload(0, 16))
		send(t, a, c.LocalAddr(), payload(0, 16))
		send(t, c, b.LocalAddr(), payload(0, 16))
		out, in := a.Stats()
		if out.Sent != 2 || in.Sent != 0 {
			t.Errorf("a: out %+v in %+v", out, in)
		}
		out, in = b.Stats()
		if out.Sent != 0 || in.Delivered != 2 {
			t.Errorf("b: out %+v in %+v", out, in)
		}
	})
}

// TestBubbleEndsWithoutClose checks that a Network left open with
// datagrams in flight does not keep a synctest bubble from ending: it
// starts no goroutine of its own, and a pending timer is not a goroutine.
func TestBubbleEndsWithoutClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := mustNew(t, Config{Link: LinkConfig{Delay: time.Hour}})
		a, b := listen(t, n, ""), listen(t, n, "")
		send(t, a, b.LocalAddr(), payload(0, 16))
	})
}
