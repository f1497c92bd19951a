package netmsg

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netmsg-go/netmsg/transport"
)

// The role of reading the socket.
//
// One goroutine at a time reads the socket and runs (or hands to the
// workers) what it read: normally the reader goroutine. When the socket
// can be interrupted (transport.ReadInterrupter) and an application
// goroutine is about to block in a receive while the reader goroutine
// waits in its read, the receiver takes the role: it interrupts the
// reader's read, the reader hands the role over, and the receiver reads
// and runs the datagrams itself until its own receive has something (or
// its context ends, or the Host closes). A message for a receiver blocked
// on its own read then costs no wake-up of another goroutine, whose core
// may first have to be woken (about 10 µs on a virtual machine with an
// idle vCPU, most of a quiet round trip).
//
// A receiver that is done leaves the role free rather than waking the
// reader goroutine (a wake-up per receive, on the receiver's path: a
// goroutine to run, and with an idle core a futex call to wake a thread
// for it), and the next receive takes it without a word to anyone: an
// application that receives in a loop keeps the role. The reader
// goroutine looks every roleReclaim (see awaitRole): a role left free
// since its last look it takes back; one a single receive has held since
// then (an idle Host) it waits for without a timer, and giveBack signals
// it, as it does when other receivers wait without the role. So the
// socket goes unread for at most about twice roleReclaim while nobody
// receives.
//
//	reader --(a receiver asks: InterruptRead; the reader hands over)--> receiver
//	receiver --(its receive has something: giveBack)--> free
//	free --(a receiver asks)--> receiver
//	free --(the reader's reclaim timer, or giveBack's signal)--> reader
//
// A receiver that read a large batch (more than inlineBatch datagrams:
// bulk traffic) hands the role straight back to the reader goroutine
// instead: then the reader reading and the application taking messages
// on two cores go faster than one goroutine doing both (W1 through
// Messages.Receive lost a fifth of its rate so).
//
// A candidate that got its message some other way before the hand-over
// withdraws (readRole.withdraw), and leaves the role free at once if it
// was handed over meanwhile. While a receiver holds the role, a producer
// that pushes onto its queue from another goroutine (a worker, the timer)
// interrupts its read (recvQueue.reader), and so does the end of its
// context.
type readRole struct {
	ri transport.ReadInterrupter // nil: the reader goroutine keeps the role
	sr spinReader                // nil: the socket cannot spin (readOnce)

	// w is the scratch of whoever holds the role (its arena among it),
	// and stall its timer: handed over with the role.
	w     *worker
	stall *time.Timer
	// reclaim is the reader goroutine's timer while a receiver holds
	// the role (see awaitRole).
	reclaim *time.Timer
	// others counts the receivers that wait without the role: a role
	// left free then goes back to the reader goroutine at once.
	others atomic.Int32

	// waiting is set while the reader goroutine holds the role and goes
	// to its read or is in it, so that a receiver asks only when the
	// reader is idle (under load the reader is busy and keeps the role:
	// the application goroutine is better left to the application).
	waiting atomic.Bool
	// wanted mirrors candidate, for the reader to look at without mu.
	wanted atomic.Bool
	// reading is set while a receiver with the role is about to read or
	// in its read: a push onto its queue from another goroutine must then
	// interrupt the read (recvQueue.pushed). It is set before the
	// receiver's last look at its queue, and cleared when the read
	// returns, so the receiver's own pushes do not interrupt it.
	reading atomic.Bool

	mu        sync.Mutex
	holder    roleHolder
	candidate bool          // a receiver asked for it and waits on handed
	handed    chan struct{} // signalled (cap 1, under mu) when the role goes to the candidate
	// deep is set while the reader goroutine waits for the role without
	// its timer: giveBack must then signal back.
	deep  bool
	back  chan struct{} // signalled (cap 1, under mu) for the reader goroutine
	gives uint64        // giveBack's count, for the reader to see whether the role moved
	bulk  bool          // the role was left free after a large batch: the reader takes it back
	// ctxDone is the Done channel of the context of the latest receive
	// that read with the role, whose end interrupts the read (ctxStop
	// ends that): kept from one receive to the next, so that a receive
	// loop on one context registers once.
	ctxDone <-chan struct{}
	ctxStop func() bool
}

// roleHolder says who holds the role of reading.
type roleHolder int

const (
	heldByReader   roleHolder = iota // the reader goroutine
	heldByReceiver                   // a receiver (in Host.readFor)
	roleFree                         // nobody: the next receiver, or the reader after roleReclaim
)

// roleReclaim is how often the reader goroutine looks whether receivers
// left the role of reading free, while it does not have it: the socket
// goes unread for at most about twice this while the application does
// not receive (with no other receiver waiting). Ours: a receive loop's
// pauses are far shorter, so it keeps the role; it is short beside the
// protocol's timers (a peer retransmits after 3 x RTT + 60 ms); and the
// reader's periodic wake-up costs the loop nothing measurable (at 1 ms,
// W4's median round trip was 1-2 us slower than with none; at 4 ms,
// still about 1 us; at 10 ms, the same as with none).
const roleReclaim = 10 * time.Millisecond

func (r *readRole) init(pc transport.PacketConn) {
	r.ri, _ = pc.(transport.ReadInterrupter)
	r.sr, _ = pc.(spinReader)
	if w, ok := pc.(interruptWrapper); ok {
		r.ri = w.Interrupter() // fakenet: the wrapped socket's, when reads go straight to it
	}
	r.w = newWorker()
	r.stall = time.NewTimer(time.Hour)
	r.stall.Stop()
	r.reclaim = time.NewTimer(time.Hour)
	r.reclaim.Stop()
	r.handed = make(chan struct{}, 1)
	r.back = make(chan struct{}, 1)
}

// ask takes the role if it is free (got), or else makes the caller the
// candidate for it when the reader goroutine holds it and waits in its
// read, and interrupts that read (asked): the caller must then wait on
// handed and call withdraw unless it received from it. It does not
// block: the interrupt is a signal.
func (r *readRole) ask() (asked, got bool) {
	if r.ri == nil {
		return false, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.holder == roleFree && !r.bulk:
		r.holder = heldByReceiver
		return false, true
	case r.holder == heldByReader && r.waiting.Load() && !r.candidate:
		r.candidate = true
		r.wanted.Store(true)
		r.ri.InterruptRead()
		return true, false
	}
	return false, false
}

// handOver gives the role to the candidate, if there is one; the reader
// goroutine calls it between two reads, and when it returns true waits
// for the role to be free again (awaitRole).
func (r *readRole) handOver() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wanted.Store(false)
	if !r.candidate {
		return false
	}
	r.candidate = false
	r.holder = heldByReceiver
	signal(r.handed)
	return true
}

// withdraw ends the caller's candidacy. It reports whether the role had
// been handed to it meanwhile (the caller then holds it and must give it
// back).
func (r *readRole) withdraw() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.candidate {
		r.candidate = false
		r.wanted.Store(false)
		return false
	}
	<-r.handed // signalled under mu by handOver
	return true
}

// giveBack leaves the role free, and tells the reader goroutine when it
// waits without its timer, other receivers wait, or the receiver read a
// large batch (bulk): traffic that the reader goroutine and the
// application are better taking on two cores, the reader reading while
// the application takes messages, so the reader takes the role back at
// once and receivers do not take it while it is free so.
func (r *readRole) giveBack(bulk bool) {
	r.mu.Lock()
	r.holder = roleFree
	r.gives++
	r.bulk = r.bulk || bulk
	if r.deep || r.bulk || r.others.Load() > 0 {
		signal(r.back)
	}
	r.mu.Unlock()
}

// watch makes the end of ctx interrupt the read, unless the context of
// an earlier receive with the same Done channel does already; it does
// nothing once done is closed (see unwatch).
func (r *readRole) watch(ctx context.Context, done <-chan struct{}) {
	d := ctx.Done()
	if d == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if d == r.ctxDone {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	if r.ctxStop != nil {
		r.ctxStop()
	}
	r.ctxDone, r.ctxStop = d, context.AfterFunc(ctx, r.ri.InterruptRead)
}

// unwatch drops the context watch explains, so that a context that
// outlives the Host does not keep it; Close calls it after closing done.
func (r *readRole) unwatch() {
	r.mu.Lock()
	if r.ctxStop != nil {
		r.ctxStop()
	}
	r.ctxDone, r.ctxStop = nil, nil
	r.mu.Unlock()
}

// awaitRole is the reader goroutine's wait after it handed the role over,
// until it takes it back (false: the Host closed). Every roleReclaim it
// looks: a role left free since its last look (no receive gave it back
// meanwhile) it takes back, so a receive loop keeps it; a role one
// receive has held since its last look (blocked in its read) it waits
// for without its timer, and giveBack signals it. A role left free while
// other receivers wait it takes back at once.
func (h *Host) awaitRole() bool {
	r := &h.role
	r.mu.Lock()
	last := r.gives
	r.mu.Unlock()
	r.reclaim.Reset(roleReclaim)
	for {
		timer := false
		select {
		case <-r.reclaim.C:
			timer = true
		case <-r.back:
		case <-h.done:
			return false
		}
		r.mu.Lock()
		free := r.holder == roleFree
		if free && (r.bulk || r.others.Load() > 0 || (timer && r.gives == last)) {
			r.holder = heldByReader
			r.deep = false
			r.bulk = false
			r.waiting.Store(true)
			r.mu.Unlock()
			r.reclaim.Stop()
			return true
		}
		switch {
		case timer && !free && r.gives == last:
			r.deep = true
		case timer || r.deep:
			r.deep = false
			r.reclaim.Reset(roleReclaim)
		}
		last = r.gives
		r.mu.Unlock()
	}
}

// readLoop is the reader goroutine: it reads the socket until it is
// closed, handing the role of reading to a receiver that asks for it and
// waiting for it to come back.
func (h *Host) readLoop() {
	defer h.wg.Done()
	r := &h.role
	for {
		r.waiting.Store(true)
		if _, closed := h.readOnce(r.w, r.stall, &r.waiting); closed {
			return
		}
		if r.wanted.Load() && r.handOver() && !h.awaitRole() {
			return
		}
	}
}

// await is q.await for the Host's receives: it waits for try to report
// that it is done, reading the socket itself when it can take the role of
// reading (see readRole). It returns ctx's error when ctx ends first and
// ErrHostClosed once the Host closes.
func (h *Host) await(ctx context.Context, q *recvQueue, try func() bool) error {
	r := &h.role
	if r.ri == nil {
		return q.await(ctx, h.done, try)
	}
	for {
		if try() {
			return nil
		}
		q.waiters.Add(1)
		if try() {
			q.waiters.Add(-1)
			return nil
		}
		r.others.Add(1)
		asked, got := r.ask()
		var handed chan struct{}
		if asked {
			handed = r.handed
		}
		var err error
		if !got {
			select {
			case <-q.ready:
			case <-handed:
				got = true
			case <-ctx.Done():
				err = ctx.Err()
			case <-h.done:
				err = ErrHostClosed
			}
			if asked && !got {
				got = r.withdraw()
			}
		}
		r.others.Add(-1)
		done := false
		if got {
			done, err = h.readFor(ctx, q, try, err)
		}
		q.waiters.Add(-1)
		if done || err != nil {
			return err
		}
	}
}

// readFor reads the socket with the role of reading, on behalf of a
// receiver waiting on q (registered in q.waiters), until try reports
// done, ctx ends or the Host closes; then it gives the role back. err is
// an error the wait already ended with (the role is then only given
// back).
func (h *Host) readFor(ctx context.Context, q *recvQueue, try func() bool, err error) (done bool, _ error) {
	r := &h.role
	bulk := false
	defer func() { r.giveBack(bulk) }()
	if err != nil {
		return false, err
	}
	// A push from another goroutine must end the read: set reader
	// before trying again, so that a push after the try interrupts.
	q.reader.Store(r)
	defer q.reader.Store(nil)
	r.watch(ctx, h.done)
	r.w.own = q
	defer func() { r.w.own = nil }()
	read := false
	for {
		r.reading.Store(true)
		if try() {
			r.reading.Store(false)
			if read && h.repliesAwaited.Load() {
				// The answer came: the reads after it wait for
				// nothing in particular. (Until then every read
				// spins: datagrams that bring no message, an ack
				// or a tail's copy, are no answer.) Read first:
				// a receiver of one-way traffic writes nothing.
				h.repliesAwaited.Store(false)
			}
			return true, nil
		}
		if err := ctx.Err(); err != nil {
			r.reading.Store(false)
			return false, err
		}
		n, closed := h.readOnce(r.w, r.stall, &r.reading)
		read = true
		if closed {
			return false, ErrHostClosed
		}
		bulk = bulk || n > inlineBatch
		// What this read pushed onto q signalled q.ready for its waiters,
		// this goroutine among them: the try that follows sees it all
		// (a take that leaves messages signals again), and a stale signal
		// would cut the next wait short.
		select {
		case <-q.ready:
		default:
		}
	}
}

// interruptWrapper is a socket wrapper (fakenet.Conn) that tells whether,
// and how, its reads can be interrupted (nil: they cannot).
type interruptWrapper interface {
	Interrupter() transport.ReadInterrupter
}

// spinReader is a socket that can spin before it waits for datagrams
// (udp.Conn.ReadBatchSpin).
type spinReader interface {
	ReadBatchSpin(pkts []transport.Packet) (int, error)
}

// readOnce reads one batch of datagrams from the socket and handles it:
// the datagrams that concern the Host as a whole (handshakes, STUN, TURN)
// under mu, those of connections by their shard's worker (or itself: see
// inlineBatch), so that decryption and the engines of several connections
// run on several cores while each connection's datagrams are handled in
// order. The caller holds the role of reading; w and stall are the role's.
// It clears inRead when the read returns. It reports whether the socket
// is closed.
//
// An application's receiver in the role (w.own set) reads with
// ReadBatchSpin where the socket has it (package udp on Linux) when a
// send with SendNoNagle came before (repliesAwaited), until a read brings
// its receiver a message: it likely waits for the answer to that send,
// so it spins briefly rather than sleep in the poller while its recent
// waits were short. A receiver of one-way traffic (a
// server taking its clients' messages) never spins: at tens of
// thousands of messages a second, spinning through every gap would cost
// it most of a core.
func (h *Host) readOnce(w *worker, stall *time.Timer, inRead *atomic.Bool) (n int, closed bool) {
	rb := h.rxPool.Get().(*rxBatch)
	var err error
	if h.role.sr != nil && w.own != nil && h.repliesAwaited.Load() {
		n, err = h.role.sr.ReadBatchSpin(rb.pkts)
	} else {
		n, err = h.pc.ReadBatch(rb.pkts)
	}
	inRead.Store(false)
	if err != nil {
		h.rxPool.Put(rb)
		if errors.Is(err, transport.ErrClosed) {
			return 0, true
		}
		select {
		case <-h.done:
			return 0, true
		default:
		}
		if !errors.Is(err, transport.ErrInterrupted) {
			h.cfg.Logger.Warn("netmsg: read", "err", err)
		}
		return 0, false
	}
	var others uint64 // bit s: shard s has datagrams in this batch
	h.mu.Lock()
	now := h.cfg.Now()
	h.clock.Store(now.UnixNano())
	for i := range rb.pkts[:n] {
		p := &rb.pkts[i]
		p.Addr = netip.AddrPortFrom(p.Addr.Addr().Unmap(), p.Addr.Port())
		rb.conns[i] = nil
		if hc := h.sortLocked(now, p); hc != nil {
			rb.conns[i] = hc
			rb.shard[i] = hc.shard
			others |= 1 << rb.shard[i]
		}
	}
	h.unlockFlush()
	// A shard's datagrams go to its worker, unless the batch is small
	// (the socket had little waiting: the reader keeps up) and the
	// worker has none of the shard's batches left to run, so that the
	// reader runs them at once without a handoff (latency). With one
	// core the reader runs everything.
	inline := others
	if h.shards > 1 {
		inline = 0
		for s := range h.shards {
			if others&(1<<s) != 0 && n <= inlineBatch && h.inflight[s].Load() == 0 {
				inline |= 1 << s
			}
		}
	}
	rb.refs.Store(1)
	for s, in := range h.workers {
		if (others&^inline)&(1<<s) != 0 {
			h.inflight[s].Add(1)
			rb.refs.Add(1)
			in <- rb
		}
	}
	for s := range h.shards {
		if inline&(1<<s) != 0 {
			h.runBatch(w, rb, n, s, stall, false)
		}
	}
	h.releaseBatch(rb)
	return n, false
}
