// Package fakenet wraps a transport.PacketConn so that the datagrams it sends
// and receives suffer simulated bad network conditions: loss, lag, jitter,
// reordering, duplication and a rate limit. It implements netmsg's
// Config.FakeSend and Config.FakeRecv, GNS's FakePacketLoss_*,
// FakePacketLag_*, FakePacketReorder_*, FakePacketDup_* and FakeRateLimit_*
// settings.
//
// Each direction passes a datagram through the same stages, in GNS's order
// (CRawUDPSocketImpl::BSendRawPacketGather and the receive path in
// steamnetworkingsockets_socketthread.cpp):
//
//	rate limit -> loss -> lag + jitter -> reorder -> duplicate
//
// A datagram that is not due at once is copied and held in a heap ordered
// by due time, which one timer per direction drains: held datagrams are sent
// (send side) or queued for ReadBatch (receive side) when due. The receive
// side needs one goroutine, which reads the wrapped connection so that held
// datagrams can be handed to ReadBatch while no new one arrives. A
// direction whose Conditions are zero costs nothing: its calls go straight
// to the wrapped connection.
//
// The timers and the goroutine use package time, so a Conn works in real
// time and, created inside a testing/synctest bubble, on its fake clock.
package fakenet

import (
	"errors"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/netmsg-go/netmsg/internal/schedheap"
	"github.com/netmsg-go/netmsg/transport"
)

// Our tuning constants (GNS has no such bounds: its lag queues grow without
// limit and its rate limiter drops instead of queueing).
const (
	// MaxHeld is the most datagrams one direction holds at once: delayed,
	// waiting for the rate limit or, on the receive side, waiting for
	// ReadBatch. A datagram that would exceed it is dropped and counted in
	// Stats.DroppedFull. At 4096 datagrams of at most 1300 bytes (netmsg's
	// MTU) a direction holds at most about 5 MiB.
	MaxHeld = 4096

	// MaxRateQueue is the longest a datagram waits for the rate limit's
	// token bucket; one that would wait longer is dropped and counted in
	// Stats.DroppedRate. It is the depth of a bottleneck router's queue,
	// expressed in time so that it suits every rate.
	MaxRateQueue = 250 * time.Millisecond

	// readBatch is how many datagrams the receive goroutine reads from the
	// wrapped connection at once.
	readBatch = 64
)

// Conditions describes the simulated network conditions of one direction.
// Its fields are those of netmsg.FakeNetwork, in the same order, so that
// one converts to the other; see there for their meaning. The zero value
// simulates nothing.
//
// Wrap uses the values as given: it fills in no defaults (ReorderLag 0
// holds reordered datagrams back by nothing, RateBurst 0 paces datagrams
// with no burst at all). Negative durations and sizes count as 0; a percent
// above 100 counts as 100.
type Conditions struct {
	// LossPercent is the chance, 0 to 100, that a datagram is dropped.
	LossPercent float64

	// Lag delays every datagram by this much.
	Lag time.Duration

	// Jitter adds a further random delay, uniform in [0, Jitter). As in
	// GNS, jitter does not reorder: a datagram is never due before one
	// that was jittered before it (so a burst stays in order, "clumped").
	Jitter time.Duration

	// ReorderPercent is the chance, 0 to 100, that a datagram is held back
	// a further ReorderLag so that later ones overtake it.
	ReorderPercent float64
	ReorderLag     time.Duration

	// DuplicatePercent is the chance, 0 to 100, that a datagram is
	// delivered twice; the copy comes after the original, later by a random
	// time in [0, DuplicateLag].
	DuplicatePercent float64
	DuplicateLag     time.Duration

	// RateLimit caps the throughput in bytes per second with a token bucket
	// of RateBurst bytes; 0 means no limit. A datagram may leave once the
	// bucket is not negative, and takes its size from it (GNS's rule, so a
	// datagram larger than the burst still passes). Datagrams that find the
	// bucket negative wait in order, up to MaxRateQueue, then are dropped.
	RateLimit int
	RateBurst int
}

// IsZero reports whether c simulates nothing.
func (c Conditions) IsZero() bool { return c == Conditions{} }

// normalize clamps c's values into the ranges Wrap documents.
func (c Conditions) normalize() Conditions {
	for _, d := range []*time.Duration{&c.Lag, &c.Jitter, &c.ReorderLag, &c.DuplicateLag} {
		*d = max(*d, 0)
	}
	c.RateLimit = max(c.RateLimit, 0)
	c.RateBurst = max(c.RateBurst, 0)
	return c
}

// Stats counts what happened to the datagrams of one direction. Every
// datagram offered is either passed on, in one or two copies, or dropped
// for one of the reasons below.
type Stats struct {
	Datagrams uint64 // datagrams offered (written, or read from the wrapped connection)
	Bytes     uint64 // their bytes
	Passed    uint64 // copies passed on: sent, or queued for ReadBatch

	DroppedLoss  uint64 // dropped by LossPercent
	DroppedRate  uint64 // dropped for waiting longer than MaxRateQueue
	DroppedFull  uint64 // dropped for exceeding MaxHeld
	DroppedClose uint64 // copies still held when the Conn was closed

	Reordered  uint64 // held back by ReorderLag
	Duplicated uint64 // sent twice
}

// Conn is a transport.PacketConn that applies Conditions to another one.
// Like every PacketConn, ReadBatch may be called by one goroutine at a time
// and WriteBatch by one goroutine at a time, concurrently with each other
// and with Close.
type Conn struct {
	pc         transport.PacketConn
	send, recv dir

	closing  chan struct{} // closed by Close
	errc     chan error    // the receive goroutine's read errors, for ReadBatch
	pumpDone chan struct{} // closed when the receive goroutine ends (nil if none)

	closeOnce sync.Once
	closeErr  error
}

// Wrap returns a Conn that sends through pc with the send conditions and
// receives from it with the recv conditions, its random choices drawn from
// a generator seeded with seed. Given the same seed, the same sequence of
// datagrams meets the same fate, so a run on fake time is reproducible (in
// real time, what the rate limit does depends on timing).
//
// The Conn owns pc: Close closes it. If recv is not zero, Wrap starts a
// goroutine that reads pc until Close.
func Wrap(pc transport.PacketConn, send, recv Conditions, seed uint64) *Conn {
	c := &Conn{
		pc:      pc,
		closing: make(chan struct{}),
		errc:    make(chan error),
	}
	epoch := time.Now()
	// Two streams of one seed (the constants are arbitrary), so that each
	// direction's choices depend only on its own traffic.
	c.send.init(c, true, send, epoch, rand.NewPCG(seed, 0x73656e64))
	c.recv.init(c, false, recv, epoch, rand.NewPCG(seed, 0x72656376))
	if !c.recv.off {
		c.pumpDone = make(chan struct{})
		go c.pump()
	}
	return c
}

// LocalAddr returns the wrapped connection's address.
func (c *Conn) LocalAddr() netip.AddrPort { return c.pc.LocalAddr() }

// Stats returns the counters of the send and the receive direction.
func (c *Conn) Stats() (send, recv Stats) {
	return c.send.getStats(), c.recv.getStats()
}

// WriteBatch applies the send conditions to each datagram: those due at
// once are written to the wrapped connection before it returns, the others
// are copied and written later. Dropped datagrams count as handed to the
// network. It returns transport.ErrClosed after Close, and the wrapped
// connection's error if a write fails.
func (c *Conn) WriteBatch(pkts []transport.Packet) (int, error) {
	s := &c.send
	if s.off {
		return c.pc.WriteBatch(pkts)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, transport.ErrClosed
	}
	now := s.now()
	out, idx := s.wout[:0], s.widx[:0]
	for i := range pkts {
		p := &pkts[i]
		at, n := s.planLocked(p.N, now)
		for _, t := range at[:n] {
			if s.dueNowLocked(t, now) {
				// Written before we return: no copy needed.
				out = append(out, *p)
				idx = append(idx, i)
				s.stats.Passed++
			} else {
				s.holdLocked(p.Bytes(), p.Addr, t, now)
			}
		}
	}
	s.wout, s.widx = out, idx
	if len(out) == 0 {
		s.mu.Unlock()
		return len(pkts), nil
	}
	// Taken before mu is let go, so that batches leave in the order
	// their datagrams were due (lock order: mu, then wmu).
	s.wmu.Lock()
	s.mu.Unlock()
	n, err := c.pc.WriteBatch(out)
	s.wmu.Unlock()
	clear(out) // keep no reference to the caller's buffers
	if err != nil {
		if n < len(idx) {
			return idx[n], err
		}
		return len(pkts), err
	}
	return len(pkts), nil
}

// Interrupter is the wrapped connection's transport.ReadInterrupter when
// there are no receive conditions (reads then go straight to it), and nil
// otherwise: whether, and how, a pending ReadBatch can be interrupted.
func (c *Conn) Interrupter() transport.ReadInterrupter {
	if !c.recv.off {
		return nil
	}
	ri, _ := c.pc.(transport.ReadInterrupter)
	return ri
}

// ReadBatchSpin is ReadBatch, through the wrapped connection's
// ReadBatchSpin (udp.Conn) when there are no receive conditions.
func (c *Conn) ReadBatchSpin(pkts []transport.Packet) (int, error) {
	if sr, ok := c.pc.(interface {
		ReadBatchSpin([]transport.Packet) (int, error)
	}); ok && c.recv.off {
		return sr.ReadBatchSpin(pkts)
	}
	return c.ReadBatch(pkts)
}

// ReadBatch returns datagrams that passed the receive conditions, blocking
// until there is at least one. It returns transport.ErrClosed after Close
// (or once the wrapped connection is closed and nothing is left to read),
// and passes on any other error of the wrapped connection's ReadBatch.
func (c *Conn) ReadBatch(pkts []transport.Packet) (int, error) {
	r := &c.recv
	if r.off {
		return c.pc.ReadBatch(pkts)
	}
	if len(pkts) == 0 {
		return 0, nil
	}
	for {
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			return 0, transport.ErrClosed
		}
		n := r.takeLocked(pkts)
		r.mu.Unlock()
		if n > 0 {
			return n, nil
		}
		select {
		case <-r.notify:
		case err := <-c.errc:
			return 0, err
		case <-c.closing:
			return 0, transport.ErrClosed
		case <-c.pumpDone:
			// The wrapped connection was closed beneath us: hand out
			// what is ready, then report it closed.
			r.mu.Lock()
			n := r.takeLocked(pkts)
			r.mu.Unlock()
			if n > 0 {
				return n, nil
			}
			return 0, transport.ErrClosed
		}
	}
}

// Close stops both directions' timers, drops the datagrams they hold,
// closes the wrapped connection and waits for the receive goroutine to
// end. It returns the wrapped connection's Close error and is safe to call
// more than once.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closing)
		c.send.shut()
		c.recv.shut()
		c.closeErr = c.pc.Close()
		if c.pumpDone != nil {
			<-c.pumpDone
		}
		// A barrier: wait for a timer callback that is still writing
		// held datagrams (it took wmu before shut could mark us closed).
		c.send.wmu.Lock()
		c.send.wmu.Unlock()
	})
	return c.closeErr
}

// pump is the receive goroutine: it reads the wrapped connection and puts
// each datagram through the receive conditions.
func (c *Conn) pump() {
	defer close(c.pumpDone)
	r := &c.recv
	pkts := make([]transport.Packet, readBatch)
	for i := range pkts {
		pkts[i].Buf = make([]byte, transport.MaxDatagram)
	}
	for {
		n, err := c.pc.ReadBatch(pkts)
		if n > 0 {
			r.mu.Lock()
			if !r.closed {
				now := r.now()
				for i := range pkts[:n] {
					p := &pkts[i]
					at, k := r.planLocked(p.N, now)
					for _, t := range at[:k] {
						if r.dueNowLocked(t, now) {
							if dg := r.copyLocked(p.Bytes(), p.Addr); dg != nil {
								r.readyLocked(dg)
							}
						} else {
							r.holdLocked(p.Bytes(), p.Addr, t, now)
						}
					}
				}
			}
			r.mu.Unlock()
		}
		if err != nil {
			if errors.Is(err, transport.ErrClosed) {
				return
			}
			select {
			case c.errc <- err:
			case <-c.closing:
				return
			}
		}
	}
}

// dir is the state of one direction.
//
// mu guards every field below it. On the send side, wmu serializes writes
// to the wrapped connection; it is taken while mu is held and mu is then
// let go (lock order: mu, then wmu), so datagrams are written in the order
// they left the heap.
type dir struct {
	c      *Conn
	isSend bool
	off    bool // the conditions are zero: pass straight through
	cond   Conditions
	epoch  time.Time
	timer  *time.Timer
	wmu    sync.Mutex
	notify chan struct{} // receive side: signalled when ready gains datagrams

	mu       sync.Mutex
	closed   bool
	rng      *rand.Rand
	sched    schedheap.Heap[*datagram]
	order    uint64        // next tie-break number for sched
	armed    bool          // the timer is set...
	armedAt  time.Duration // ...for this time
	held     int           // datagrams in sched and ready
	jitUntil time.Duration // no jittered datagram is due before this
	tokens   float64       // the rate limit's bucket, in bytes...
	tokensAt time.Duration // ...at this time (the last datagram's release)
	ready    []*datagram   // receive side: due datagrams waiting for ReadBatch
	readyAt  int           // the first of them
	stats    Stats
	wout     []transport.Packet // send side: WriteBatch's scratch
	widx     []int
}

func (d *dir) init(c *Conn, isSend bool, cond Conditions, epoch time.Time, src rand.Source) {
	d.c, d.isSend = c, isSend
	d.cond = cond.normalize()
	d.off = d.cond.IsZero()
	if d.off {
		return
	}
	d.epoch = epoch
	d.rng = rand.New(src)
	d.tokens = float64(d.cond.RateBurst)
	d.notify = make(chan struct{}, 1)
	d.timer = time.AfterFunc(time.Hour, d.fire)
	d.timer.Stop()
}

// now returns the time since the epoch; the monotonic clock makes it
// immune to wall-clock steps.
func (d *dir) now() time.Duration { return time.Since(d.epoch) }

func (d *dir) getStats() Stats {
	if d.off {
		return Stats{}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.stats
}

// chance draws whether an event of probability pct percent happens. It
// draws nothing for pct <= 0, so a feature that is off leaves the other
// features' draws unchanged.
func (d *dir) chance(pct float64) bool {
	return pct > 0 && d.rng.Float64()*100 < pct
}

// planLocked decides the fate of a datagram of size bytes offered at now:
// it returns the times its copies are due, none if it is dropped and two if
// it is duplicated.
//
// The random draws come first and their number depends only on the
// conditions and the draws themselves, so the k-th datagram's loss,
// reordering and duplication are the same for a seed whatever the timing.
func (d *dir) planLocked(size int, now time.Duration) (at [2]time.Duration, n int) {
	c := &d.cond
	st := &d.stats
	st.Datagrams++
	st.Bytes += uint64(size)

	lost := d.chance(c.LossPercent)
	var jitter time.Duration
	if c.Jitter > 0 {
		jitter = time.Duration(d.rng.Int64N(int64(c.Jitter)))
	}
	reorder := d.chance(c.ReorderPercent)
	dup := d.chance(c.DuplicatePercent)
	var dupLag time.Duration
	if dup && c.DuplicateLag > 0 {
		dupLag = time.Duration(d.rng.Int64N(int64(c.DuplicateLag) + 1))
	}

	base := now
	if c.RateLimit > 0 {
		release, ok := d.rateLocked(size, now)
		if !ok {
			st.DroppedRate++
			return at, 0
		}
		base = release
	}
	if lost {
		st.DroppedLoss++
		return at, 0
	}
	due := base + c.Lag
	if c.Jitter > 0 {
		// GNS's s_usecMinNextJitteredTime: jitter never reorders.
		due = max(due+jitter, d.jitUntil)
		d.jitUntil = due
	}
	if reorder {
		st.Reordered++
		due += c.ReorderLag
	}
	at[0], n = due, 1
	if dup {
		st.Duplicated++
		at[1], n = due+dupLag, 2
	}
	return at, n
}

// rateLocked runs a datagram of size bytes offered at now through the
// token bucket: it returns when the datagram may leave, or false if it would
// wait longer than MaxRateQueue. Datagrams leave in the order offered, so
// the bucket's state is kept at the last release time.
func (d *dir) rateLocked(size int, now time.Duration) (time.Duration, bool) {
	// Multiplying before dividing keeps whole numbers exact.
	rate := float64(d.cond.RateLimit)
	t := max(now, d.tokensAt)
	tokens := min(float64(d.cond.RateBurst), d.tokens+rate*float64(t-d.tokensAt)/float64(time.Second))
	if tokens < 0 {
		t += time.Duration(math.Ceil(-tokens * float64(time.Second) / rate))
		tokens = 0
	}
	if t-now > MaxRateQueue {
		return 0, false
	}
	d.tokens = tokens - float64(size)
	d.tokensAt = t
	return t, true
}

// dueNowLocked reports whether a copy due at at may be passed on at once:
// it is due, and no held datagram is due before it.
func (d *dir) dueNowLocked(at, now time.Duration) bool {
	return at <= now && (len(d.sched) == 0 || d.sched[0].at > now)
}

// copyLocked returns a held copy of b from addr, or nil (counted) if the
// direction holds MaxHeld datagrams already.
func (d *dir) copyLocked(b []byte, addr netip.AddrPort) *datagram {
	if d.held >= MaxHeld {
		d.stats.DroppedFull++
		return nil
	}
	d.held++
	dg := datagramPool.Get().(*datagram)
	dg.b = append(dg.b[:0], b...)
	dg.addr = addr
	return dg
}

// holdLocked copies b and schedules it for at, setting the timer if it is
// unset or set for later.
func (d *dir) holdLocked(b []byte, addr netip.AddrPort, at, now time.Duration) {
	dg := d.copyLocked(b, addr)
	if dg == nil {
		return
	}
	dg.at = at
	dg.order = d.order
	d.order++
	d.sched.Push(dg)
	if !d.armed || at < d.armedAt {
		d.armed = true
		d.armedAt = at
		d.timer.Reset(max(at-now, 0))
	}
}

// readyLocked queues dg for ReadBatch and wakes it.
func (d *dir) readyLocked(dg *datagram) {
	d.ready = append(d.ready, dg)
	d.stats.Passed++
	select {
	case d.notify <- struct{}{}:
	default:
	}
}

// takeLocked moves ready datagrams into pkts and returns how many.
func (d *dir) takeLocked(pkts []transport.Packet) int {
	n := 0
	for n < len(pkts) && d.readyAt < len(d.ready) {
		dg := d.ready[d.readyAt]
		d.ready[d.readyAt] = nil
		d.readyAt++
		p := &pkts[n]
		p.N = copy(p.Buf, dg.b)
		p.Addr = dg.addr
		putDatagram(dg)
		d.held--
		n++
	}
	if d.readyAt == len(d.ready) {
		d.ready, d.readyAt = d.ready[:0], 0
	}
	return n
}

// fire is the timer callback: it passes on every held datagram that is due
// and sets the timer for the next one.
//
// The timer may fire more often than needed (a Reset that raced with a
// firing); a firing with nothing due only sets the timer again. It never
// fires too late: whoever holds a datagram due before armedAt, or finds the
// timer unset, sets it, and fire sets it for the earliest datagram left.
func (d *dir) fire() {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return
	}
	now := d.now()
	var due []*datagram
	for len(d.sched) > 0 && d.sched[0].at <= now {
		dg := d.sched.Pop()
		if d.isSend {
			due = append(due, dg)
		} else {
			d.readyLocked(dg)
		}
	}
	d.armed = false
	if len(d.sched) > 0 {
		d.armed = true
		d.armedAt = d.sched[0].at
		d.timer.Reset(d.armedAt - now)
	}
	if !d.isSend || len(due) == 0 {
		d.mu.Unlock()
		return
	}
	// A fresh batch: another firing may build its own while this one
	// waits for wmu.
	out := make([]transport.Packet, len(due))
	for i, dg := range due {
		out[i] = transport.Packet{Buf: dg.b, N: len(dg.b), Addr: dg.addr}
	}
	d.held -= len(due)
	d.stats.Passed += uint64(len(due))
	d.wmu.Lock()
	d.mu.Unlock()
	// An error is a loss like any other: the datagrams were already
	// accepted by WriteBatch.
	_, _ = d.c.pc.WriteBatch(out)
	d.wmu.Unlock()
	for _, dg := range due {
		putDatagram(dg)
	}
}

// shut marks the direction closed, stops its timer and drops what it holds.
func (d *dir) shut() {
	if d.off {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	d.timer.Stop()
	d.armed = false
	for _, dg := range d.sched {
		putDatagram(dg)
	}
	for _, dg := range d.ready[d.readyAt:] {
		putDatagram(dg)
	}
	d.stats.DroppedClose += uint64(d.held)
	d.held = 0
	d.sched, d.ready, d.readyAt = nil, nil, 0
}

// datagram is a held copy of a datagram.
type datagram struct {
	b     []byte
	addr  netip.AddrPort
	at    time.Duration // when it is due, since the epoch
	order uint64        // tie-break among equal at: the order of holding
}

var datagramPool = sync.Pool{New: func() any {
	return &datagram{b: make([]byte, 0, transport.MaxDatagram)}
}}

func putDatagram(dg *datagram) {
	if cap(dg.b) > transport.MaxDatagram {
		return // do not keep rare oversized buffers
	}
	datagramPool.Put(dg)
}

// SchedKey orders datagrams in the scheduling heap.
func (d *datagram) SchedKey() (time.Duration, uint64) { return d.at, d.order }
