package fakenet

import (
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netmsg-go/netmsg/internal/udp"
	"github.com/netmsg-go/netmsg/transport"
	"go.uber.org/goleak"
)

var (
	addrA = netip.MustParseAddrPort("10.0.0.1:1000")
	addrB = netip.MustParseAddrPort("10.0.0.2:2000")
)

// record is a datagram seen by a fakeConn's WriteBatch, or by a reader.
type record struct {
	at  time.Time
	seq uint64
	n   int
}

// fakeConn is the wrapped connection of these tests: WriteBatch records what
// it is given, with the time; ReadBatch returns what inject puts in.
type fakeConn struct {
	mu   sync.Mutex
	sent []record

	in        chan []byte
	closed    chan struct{}
	closeOnce sync.Once
	readErr   chan error
}

func newFakeConn() *fakeConn {
	return &fakeConn{in: make(chan []byte, 1<<16), closed: make(chan struct{}), readErr: make(chan error, 1)}
}

func (f *fakeConn) WriteBatch(pkts []transport.Packet) (int, error) {
	select {
	case <-f.closed:
		return 0, transport.ErrClosed
	default:
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range pkts {
		f.sent = append(f.sent, record{time.Now(), seqOf(pkts[i].Bytes()), pkts[i].N})
	}
	return len(pkts), nil
}

func (f *fakeConn) ReadBatch(pkts []transport.Packet) (int, error) {
	var b []byte
	select {
	case b = <-f.in:
	case err := <-f.readErr:
		return 0, err
	case <-f.closed:
		return 0, transport.ErrClosed
	}
	n := 0
	for {
		pkts[n].N = copy(pkts[n].Buf, b)
		pkts[n].Addr = addrB
		n++
		if n == len(pkts) {
			return n, nil
		}
		select {
		case b = <-f.in:
		default:
			return n, nil
		}
	}
}

func (f *fakeConn) LocalAddr() netip.AddrPort { return addrA }

func (f *fakeConn) Close() error {
	f.closeOnce.Do(func() { close(f.closed) })
	return nil
}

func (f *fakeConn) records() []record {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sent)
}

func datagram8(seq uint64, size int) []byte {
	b := make([]byte, max(size, 8))
	binary.LittleEndian.PutUint64(b, seq)
	return b
}

func seqOf(b []byte) uint64 {
	if len(b) < 8 {
		return math.MaxUint64
	}
	return binary.LittleEndian.Uint64(b)
}

// write sends datagrams first..first+n-1 of size bytes in one batch.
func write(t *testing.T, c *Conn, first uint64, n, size int) {
	t.Helper()
	pkts := make([]transport.Packet, n)
	for i := range pkts {
		b := datagram8(first+uint64(i), size)
		pkts[i] = transport.Packet{Buf: b, N: len(b), Addr: addrB}
	}
	if k, err := c.WriteBatch(pkts); k != n || err != nil {
		t.Fatalf("WriteBatch = %d, %v; want %d, nil", k, err, n)
	}
}

// paced writes n datagrams, one every gap, and returns their write times.
func paced(t *testing.T, c *Conn, n int, gap time.Duration) []time.Time {
	t.Helper()
	times := make([]time.Time, n)
	for i := range n {
		times[i] = time.Now()
		write(t, c, uint64(i), 1, 100)
		time.Sleep(gap)
	}
	return times
}

// reader reads c until it is closed, recording what arrives.
type reader struct {
	mu   sync.Mutex
	got  []record
	done chan error
}

func startReader(c *Conn) *reader {
	r := &reader{done: make(chan error, 1)}
	go func() {
		pkts := make([]transport.Packet, 8)
		for i := range pkts {
			pkts[i].Buf = make([]byte, transport.MaxDatagram)
		}
		for {
			n, err := c.ReadBatch(pkts)
			if err != nil {
				r.done <- err
				return
			}
			r.mu.Lock()
			for _, p := range pkts[:n] {
				r.got = append(r.got, record{time.Now(), seqOf(p.Bytes()), p.N})
			}
			r.mu.Unlock()
		}
	}()
	return r
}

func (r *reader) records() []record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

func checkStats(t *testing.T, st Stats) {
	t.Helper()
	drops := st.DroppedLoss + st.DroppedRate + st.DroppedFull
	if st.Passed+st.DroppedClose != st.Datagrams-drops+st.Duplicated {
		t.Errorf("stats do not add up: %+v", st)
	}
}

func near(t *testing.T, what string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.4g, want %.4g ± %.2g", what, got, want, tol)
	}
}

func TestZeroPassesThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConn()
		c := Wrap(f, Conditions{}, Conditions{}, 1)
		defer c.Close()
		if c.pumpDone != nil {
			t.Error("a zero receive direction started a goroutine")
		}
		write(t, c, 0, 3, 50)
		if got := len(f.records()); got != 3 {
			t.Errorf("sent %d, want 3", got)
		}
		f.in <- datagram8(7, 20)
		pkts := []transport.Packet{{Buf: make([]byte, 100)}}
		if n, err := c.ReadBatch(pkts); n != 1 || err != nil || seqOf(pkts[0].Bytes()) != 7 {
			t.Errorf("ReadBatch = %d, %v, %v", n, err, pkts[0].Bytes())
		}
		if c.LocalAddr() != addrA {
			t.Errorf("LocalAddr = %v", c.LocalAddr())
		}
	})
}

func TestLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConn()
		c := Wrap(f, Conditions{LossPercent: 20}, Conditions{LossPercent: 50}, 1)
		r := startReader(c)
		const n = 20000
		for i := 0; i < n; i += 100 {
			write(t, c, uint64(i), 100, 100)
			for j := range 100 {
				f.in <- datagram8(uint64(i+j), 100)
			}
			synctest.Wait() // the reader keeps up: nothing exceeds MaxHeld
		}
		sent, got := f.records(), r.records()
		near(t, "send loss", 1-float64(len(sent))/n, 0.20, 0.015)
		near(t, "receive loss", 1-float64(len(got))/n, 0.50, 0.015)
		for _, rs := range [][]record{sent, got} {
			if !slices.IsSortedFunc(rs, func(a, b record) int { return int(a.seq) - int(b.seq) }) {
				t.Error("loss alone reordered datagrams")
			}
		}
		st, rt := c.Stats()
		if st.Datagrams != n || st.DroppedLoss != n-uint64(len(sent)) || rt.DroppedLoss != n-uint64(len(got)) {
			t.Errorf("stats: send %+v, recv %+v", st, rt)
		}
		checkStats(t, st)
		checkStats(t, rt)
		c.Close()
		if err := <-r.done; !errors.Is(err, transport.ErrClosed) {
			t.Errorf("ReadBatch after Close: %v", err)
		}
	})
}

func TestLagJitter(t *testing.T) {
	const lag, jitter = 50 * time.Millisecond, 10 * time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConn()
		cond := Conditions{Lag: lag, Jitter: jitter}
		c := Wrap(f, cond, cond, 2)
		defer c.Close()
		r := startReader(c)
		const n = 1000
		times := make([]time.Time, n)
		for i := range n {
			times[i] = time.Now()
			write(t, c, uint64(i), 1, 100)
			f.in <- datagram8(uint64(i), 100)
			time.Sleep(time.Millisecond / 2)
		}
		time.Sleep(lag + jitter)
		synctest.Wait()
		for dir, rs := range map[string][]record{"send": f.records(), "receive": r.records()} {
			if len(rs) != n {
				t.Fatalf("%s: %d datagrams, want %d", dir, len(rs), n)
			}
			var spread time.Duration
			lo, hi := time.Hour, time.Duration(0)
			for i, rec := range rs {
				if rec.seq != uint64(i) {
					t.Fatalf("%s: datagram %d arrived as %d: jitter reordered", dir, i, rec.seq)
				}
				d := rec.at.Sub(times[i])
				lo, hi = min(lo, d), max(hi, d)
				spread += d - lag
			}
			if lo < lag || hi >= lag+jitter {
				t.Errorf("%s: delays in [%v, %v], want [%v, %v)", dir, lo, hi, lag, lag+jitter)
			}
			// Clumping pushes the mean above Jitter/2; uniform jitter
			// alone would put it at 5 ms.
			if mean := spread / n; mean < 3*time.Millisecond {
				t.Errorf("%s: mean jitter %v; is it applied?", dir, mean)
			}
		}
	})
}

func TestReorder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConn()
		c := Wrap(f, Conditions{ReorderPercent: 10, ReorderLag: 15 * time.Millisecond}, Conditions{}, 3)
		defer c.Close()
		const n = 5000
		times := paced(t, c, n, time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		sent := f.records()
		if len(sent) != n {
			t.Fatalf("sent %d, want %d", len(sent), n)
		}
		late := 0
		for _, rec := range sent {
			switch d := rec.at.Sub(times[rec.seq]); d {
			case 0:
			case 15 * time.Millisecond:
				late++
			default:
				t.Fatalf("datagram %d delayed %v, want 0 or 15ms", rec.seq, d)
			}
		}
		near(t, "reordered share", float64(late)/n, 0.10, 0.015)
		// A late datagram is overtaken by the 14 sent after it.
		inversions := 0
		for i := 1; i < len(sent); i++ {
			if sent[i].seq < sent[i-1].seq {
				inversions++
			}
		}
		if inversions == 0 || inversions > late {
			t.Errorf("%d inversions for %d late datagrams", inversions, late)
		}
		if st, _ := c.Stats(); st.Reordered != uint64(late) {
			t.Errorf("Stats.Reordered = %d, want %d", st.Reordered, late)
		}
	})
}

func TestDuplicate(t *testing.T) {
	const dupLag = 10 * time.Millisecond
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConn()
		c := Wrap(f, Conditions{Lag: 5 * time.Millisecond, DuplicatePercent: 10, DuplicateLag: dupLag}, Conditions{}, 4)
		defer c.Close()
		const n = 5000
		times := paced(t, c, n, time.Millisecond)
		time.Sleep(20 * time.Millisecond)
		copies := map[uint64][]time.Duration{}
		for _, rec := range f.records() {
			copies[rec.seq] = append(copies[rec.seq], rec.at.Sub(times[rec.seq]))
		}
		dups := 0
		for seq := range uint64(n) {
			ds := copies[seq]
			switch {
			case len(ds) == 0 || len(ds) > 2:
				t.Fatalf("datagram %d sent %d times", seq, len(ds))
			case ds[0] != 5*time.Millisecond:
				t.Fatalf("datagram %d delayed %v, want 5ms", seq, ds[0])
			case len(ds) == 2:
				dups++
				if extra := ds[1] - ds[0]; extra < 0 || extra > dupLag {
					t.Fatalf("copy of %d came %v after it, want [0, %v]", seq, extra, dupLag)
				}
			}
		}
		near(t, "duplicated share", float64(dups)/n, 0.10, 0.015)
		st, _ := c.Stats()
		if st.Duplicated != uint64(dups) || st.Passed != n+uint64(dups) {
			t.Errorf("stats %+v, %d duplicates", st, dups)
		}
		checkStats(t, st)
	})
}

func TestRateLimit(t *testing.T) {
	const rate, burst, size = 100_000, 10_000, 1000
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConn()
		c := Wrap(f, Conditions{RateLimit: rate, RateBurst: burst}, Conditions{}, 5)
		defer c.Close()
		start := time.Now()

		// A burst of 200 at once: the bucket's 10 KB leave at once (11
		// datagrams: one may leave while the bucket is not negative), the
		// rest one every 10 ms, for as long as MaxRateQueue allows.
		write(t, c, 0, 200, size)
		time.Sleep(time.Second)
		sent := f.records()
		wantPassed := burst/size + 1 + int(MaxRateQueue/(size*time.Second/rate))
		if len(sent) != wantPassed {
			t.Fatalf("burst: %d sent, want %d", len(sent), wantPassed)
		}
		for i, rec := range sent {
			want := time.Duration(max(0, i-burst/size)) * 10 * time.Millisecond
			if rec.seq != uint64(i) || rec.at.Sub(start) != want {
				t.Fatalf("burst: datagram %d (%d) left at %v, want %v", i, rec.seq, rec.at.Sub(start), want)
			}
		}
		st, _ := c.Stats()
		if st.DroppedRate != uint64(200-wantPassed) {
			t.Errorf("DroppedRate = %d, want %d", st.DroppedRate, 200-wantPassed)
		}

		// Offered twice the rate for 2 s: the bucket refilled, then the
		// throughput is the rate.
		mid := time.Now()
		for i := range 400 {
			write(t, c, uint64(1000+i), 1, size)
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(MaxRateQueue)
		var bytes int
		from, to := mid.Add(500*time.Millisecond), mid.Add(1500*time.Millisecond)
		for _, rec := range f.records() {
			if !rec.at.Before(from) && rec.at.Before(to) {
				bytes += rec.n
			}
		}
		near(t, "bytes per second", float64(bytes), rate, size)
		st, _ = c.Stats()
		checkStats(t, st)
	})
}

func TestRateNoBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConn()
		// RateBurst 0: pure pacing, and a datagram larger than the
		// bucket still passes.
		c := Wrap(f, Conditions{RateLimit: 10_000}, Conditions{}, 5)
		defer c.Close()
		start := time.Now()
		write(t, c, 0, 3, 1000)
		time.Sleep(time.Second)
		sent := f.records()
		if len(sent) != 3 {
			t.Fatalf("sent %d, want 3", len(sent))
		}
		for i, rec := range sent {
			if d := rec.at.Sub(start); d != time.Duration(i)*100*time.Millisecond {
				t.Errorf("datagram %d left at %v, want %v", i, d, time.Duration(i)*100*time.Millisecond)
			}
		}
	})
}

func TestMaxHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConn()
		c := Wrap(f, Conditions{Lag: time.Second}, Conditions{Lag: time.Millisecond}, 6)
		defer c.Close()
		const n = MaxHeld + 1000
		write(t, c, 0, n, 100)
		// Nobody reads: received datagrams pile up for ReadBatch.
		for i := range n {
			f.in <- datagram8(uint64(i), 100)
		}
		time.Sleep(2 * time.Second)
		if got := len(f.records()); got != MaxHeld {
			t.Errorf("sent %d, want %d", got, MaxHeld)
		}
		st, rt := c.Stats()
		if st.DroppedFull != n-MaxHeld || rt.DroppedFull != n-MaxHeld {
			t.Errorf("DroppedFull = %d send, %d receive; want %d", st.DroppedFull, rt.DroppedFull, n-MaxHeld)
		}
		pkts := make([]transport.Packet, 100)
		for i := range pkts {
			pkts[i].Buf = make([]byte, 50) // shorter than the datagrams
		}
		k, err := c.ReadBatch(pkts)
		if k != len(pkts) || err != nil || pkts[0].N != 50 || pkts[0].Addr != addrB || seqOf(pkts[99].Bytes()) != 99 {
			t.Errorf("ReadBatch = %d, %v, first %d bytes from %v", k, err, pkts[0].N, pkts[0].Addr)
		}
		checkStats(t, st)
		checkStats(t, rt)
	})
}

func TestClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConn()
		c := Wrap(f, Conditions{Lag: time.Second}, Conditions{Lag: time.Second}, 7)
		r := startReader(c)
		write(t, c, 0, 10, 100)
		for i := range 5 {
			f.in <- datagram8(uint64(i), 100)
		}
		time.Sleep(500 * time.Millisecond)
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-r.done; !errors.Is(err, transport.ErrClosed) {
			t.Errorf("pending ReadBatch: %v", err)
		}
		select {
		case <-f.closed:
		default:
			t.Error("the wrapped connection is still open")
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
		time.Sleep(2 * time.Second) // the held datagrams' time passes
		if n := len(f.records()); n != 0 {
			t.Errorf("%d datagrams sent after Close", n)
		}
		if n := len(r.records()); n != 0 {
			t.Errorf("%d datagrams read after Close", n)
		}
		st, rt := c.Stats()
		if st.DroppedClose != 10 || rt.DroppedClose != 5 {
			t.Errorf("DroppedClose = %d send, %d receive; want 10, 5", st.DroppedClose, rt.DroppedClose)
		}
		if _, err := c.WriteBatch([]transport.Packet{{Buf: []byte("x"), N: 1, Addr: addrB}}); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("WriteBatch after Close: %v", err)
		}
		if _, err := c.ReadBatch(make([]transport.Packet, 1)); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("ReadBatch after Close: %v", err)
		}
	})
}

// TestWrappedClosed: when the wrapped connection is closed beneath the Conn,
// ReadBatch reports it closed.
func TestWrappedClosed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFakeConn()
		c := Wrap(f, Conditions{}, Conditions{LossPercent: 1}, 8)
		defer c.Close()
		f.readErr <- errors.New("transient")
		pkts := []transport.Packet{{Buf: make([]byte, 100)}}
		if _, err := c.ReadBatch(pkts); err == nil || err.Error() != "transient" {
			t.Errorf("ReadBatch = %v, want the wrapped error", err)
		}
		f.Close()
		if _, err := c.ReadBatch(pkts); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("ReadBatch = %v, want ErrClosed", err)
		}
	})
}

// TestDeterministic: a seed gives the same run; another seed another.
func TestDeterministic(t *testing.T) {
	run := func(seed uint64) []record {
		var out []record
		synctest.Test(t, func(t *testing.T) {
			f := newFakeConn()
			c := Wrap(f, Conditions{
				LossPercent: 10, Lag: 5 * time.Millisecond, Jitter: 3 * time.Millisecond,
				ReorderPercent: 5, ReorderLag: 7 * time.Millisecond,
				DuplicatePercent: 5, DuplicateLag: 4 * time.Millisecond,
				RateLimit: 200_000, RateBurst: 5000,
			}, Conditions{}, seed)
			defer c.Close()
			start := time.Now()
			for i := range 300 {
				write(t, c, uint64(i*4), 4, 300)
				time.Sleep(time.Millisecond)
			}
			time.Sleep(time.Second)
			for _, rec := range f.records() {
				rec.at = time.Unix(0, int64(rec.at.Sub(start)))
				out = append(out, rec)
			}
		})
		return out
	}
	a, b, other := run(42), run(42), run(43)
	if len(a) == 0 || !slices.Equal(a, b) {
		t.Errorf("two runs with seed 42 differ (%d, %d datagrams)", len(a), len(b))
	}
	if slices.Equal(a, other) {
		t.Error("seeds 42 and 43 gave the same run")
	}
}

// TestRealUDP runs both directions over real loopback sockets, in real time,
// and checks that nothing leaks.
func TestRealUDP(t *testing.T) {
	defer goleak.VerifyNone(t)
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	pa, err := udp.Listen("udp4", lo, udp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	pb, err := udp.Listen("udp4", lo, udp.Options{})
	if err != nil {
		pa.Close()
		t.Fatal(err)
	}
	cond := Conditions{Lag: 20 * time.Millisecond, Jitter: 5 * time.Millisecond, DuplicatePercent: 10, DuplicateLag: 2 * time.Millisecond}
	a := Wrap(pa, cond, Conditions{}, 1)
	b := Wrap(pb, Conditions{}, cond, 2)
	defer a.Close()
	defer b.Close()
	r := startReader(b)
	start := time.Now()
	const n = 200
	pkts := make([]transport.Packet, n)
	for i := range pkts {
		d := datagram8(uint64(i), 200)
		pkts[i] = transport.Packet{Buf: d, N: len(d), Addr: b.LocalAddr()}
	}
	if k, err := a.WriteBatch(pkts); k != n || err != nil {
		t.Fatalf("WriteBatch = %d, %v", k, err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(r.records()) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	got := r.records()
	seen := map[uint64]bool{}
	for _, rec := range got {
		seen[rec.seq] = true
		if d := rec.at.Sub(start); d < 40*time.Millisecond {
			t.Errorf("datagram %d arrived after %v, want >= 40ms (lag on both sides)", rec.seq, d)
		}
	}
	// Real UDP: a burst of 200 (and its duplicates) released at once can
	// overflow the receiving socket's buffer when the machine is busy, so a
	// few may be lost; the wrapper itself loses none (the netsim tests pin
	// that exactly).
	if len(seen) < n*95/100 {
		t.Errorf("%d distinct datagrams arrived, want at least %d of %d", len(seen), n*95/100, n)
	}
	a.Close()
	b.Close()
	if err := <-r.done; !errors.Is(err, transport.ErrClosed) {
		t.Errorf("ReadBatch after Close: %v", err)
	}
}

// spinConn is a fakeConn that can be interrupted and spin (as udp.Conn),
// counting both.
type spinConn struct {
	*fakeConn
	interrupts, spins int
}

func (s *spinConn) InterruptRead() { s.interrupts++ }

func (s *spinConn) ReadBatchSpin(pkts []transport.Packet) (int, error) {
	s.spins++
	return s.fakeConn.ReadBatch(pkts)
}

// TestReadsPassThrough: without receive conditions, reads go straight to
// the wrapped connection, so its interrupt and its spinning read are
// offered (Interrupter, ReadBatchSpin); with receive conditions, or a
// wrapped connection without them, they are not.
func TestReadsPassThrough(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := &spinConn{fakeConn: newFakeConn()}
		c := Wrap(inner, Conditions{LossPercent: 10}, Conditions{}, 1)
		defer c.Close()
		ri := c.Interrupter()
		if ri == nil {
			t.Fatal("send conditions only: no Interrupter")
		}
		ri.InterruptRead()
		if inner.interrupts != 1 {
			t.Fatalf("Interrupter did not reach the wrapped connection")
		}
		inner.in <- datagram8(7, 20)
		pkts := []transport.Packet{{Buf: make([]byte, 100)}}
		if n, err := c.ReadBatchSpin(pkts); n != 1 || err != nil || seqOf(pkts[0].Bytes()) != 7 || inner.spins != 1 {
			t.Fatalf("ReadBatchSpin = %d, %v, %v (spins %d), want datagram 7 through the wrapped ReadBatchSpin", n, err, pkts[0].Bytes(), inner.spins)
		}

		withRecv := Wrap(&spinConn{fakeConn: newFakeConn()}, Conditions{}, Conditions{LossPercent: 10}, 1)
		defer withRecv.Close()
		if withRecv.Interrupter() != nil {
			t.Fatal("receive conditions: an Interrupter, though reads wait on the pump")
		}
		plain := Wrap(newFakeConn(), Conditions{LossPercent: 10}, Conditions{}, 1)
		defer plain.Close()
		if plain.Interrupter() != nil {
			t.Fatal("a wrapped connection that cannot be interrupted: an Interrupter")
		}
	})
}
