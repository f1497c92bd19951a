package netmsg

import (
	"context"
	"sync"
	"sync/atomic"
)

// recvQueue is a FIFO of received messages between the goroutines that
// make them (a connection's, under the connection's lock) and the
// application's receive calls, with a lock for each end. Producers push
// onto in under inMu. A receive takes from out under outMu and, when out
// has too few, moves a run of messages from in to out under inMu as well
// (outMu is taken first). So a receive never waits for a connection's
// lock (held while a datagram is decrypted and run through the engine),
// and meets the producers' lock once per run of messages rather than per
// message; a single Receive costs one uncontended lock.
//
// The messages moved to out count as taken: the connection's flow-control
// count (hostConn.queued) and a browser session's (webSession.unread)
// cover what waits in in, and a move reports its messages to Host.took
// (after the locks are released) as tookRuns. out holds at most what one
// receive asked for, or recvMove.
type recvQueue struct {
	ready   chan struct{} // signalled (cap 1) for the waiters (see await)
	waiters atomic.Int32  // goroutines in await
	// reader is set while a waiter reads the socket with the role of
	// reading (host_readrole.go): pushed interrupts its read.
	reader atomic.Pointer[readRole]

	_     cacheLinePad
	outMu sync.Mutex
	out   msgQueue
	// refuse, when set (under outMu), is what takes fail with: a
	// connection in a poll group (its messages go to the group), a poll
	// group destroyed.
	refuse error

	_    cacheLinePad // the two ends are written from two cores
	inMu sync.Mutex
	in   msgQueue
	_    cacheLinePad
}

// cacheLinePad keeps the fields before it and after it on different
// cache lines (two, as a core's prefetcher fetches lines in pairs), so
// that goroutines on two cores writing one and the other do not take the
// line from each other.
type cacheLinePad [128]byte

// recvMove is the most messages a receive moves from in to out beyond
// what it asked for.
const recvMove = 64

func newRecvQueue() *recvQueue { return &recvQueue{ready: make(chan struct{}, 1)} }

// tookRun is a run of moved messages of one connection (hc) or one
// browser session (web).
type tookRun struct {
	hc  *hostConn
	web *webSession
	n   int32
}

// tookRuns collects the runs of a move: the first len(buf) in place (it
// lives on its caller's stack), more in more.
type tookRuns struct {
	buf  [16]tookRun
	n    int
	more []tookRun
}

func (r *tookRuns) add(m *Message) {
	if r.more != nil {
		if last := &r.more[len(r.more)-1]; last.hc == m.conn && last.web == m.web {
			last.n++
		} else {
			r.more = append(r.more, tookRun{hc: m.conn, web: m.web, n: 1})
		}
		return
	}
	if r.n > 0 {
		if last := &r.buf[r.n-1]; last.hc == m.conn && last.web == m.web {
			last.n++
			return
		}
	}
	if r.n < len(r.buf) {
		r.buf[r.n] = tookRun{hc: m.conn, web: m.web, n: 1}
		r.n++
		return
	}
	r.more = []tookRun{{hc: m.conn, web: m.web, n: 1}}
}

// all returns the runs in order (the ones beyond buf make a slice that
// is not the caller's stack).
func (r *tookRuns) all() []tookRun {
	if r.more == nil {
		return r.buf[:r.n]
	}
	return append(r.buf[:r.n:r.n], r.more...)
}

// moveLocked moves up to k messages from in to out, noting them in runs.
// outMu is held.
func (q *recvQueue) moveLocked(k int, runs *tookRuns) {
	q.inMu.Lock()
	k = min(k, q.in.len())
	for range k {
		m := q.in.pop()
		runs.add(m)
		q.out.push(m)
	}
	q.inMu.Unlock()
}

// take removes and returns up to n messages, oldest first (nil when
// there are none); the slice comes from slabs (see msgSlab). The caller
// passes runs to Host.took once it holds no lock. err is
// ResultNoConnection for a connection in a poll group.
func (q *recvQueue) take(n int, runs *tookRuns) ([]*Message, error) {
	q.outMu.Lock()
	if q.refuse != nil {
		q.outMu.Unlock()
		return nil, q.refuse
	}
	if q.out.len() < n {
		q.moveLocked(max(n-q.out.len(), recvMove), runs)
	}
	var out []*Message
	if n := min(n, q.out.len()); n > 0 {
		s := slabs.Get().(*msgSlab)
		out = q.out.take(n, s)
		slabs.Put(s)
	}
	q.wakeNextLocked()
	q.outMu.Unlock()
	return out, nil
}

// take1 is take for one message, without a slice.
func (q *recvQueue) take1(runs *tookRuns) (*Message, error) {
	q.outMu.Lock()
	if q.refuse != nil {
		q.outMu.Unlock()
		return nil, q.refuse
	}
	if q.out.len() == 0 {
		q.moveLocked(recvMove, runs)
	}
	var m *Message
	if q.out.len() > 0 {
		m = q.out.pop()
	}
	q.wakeNextLocked()
	q.outMu.Unlock()
	return m, nil
}

// wakeNextLocked passes the wake-up on to a waiter when a take left
// messages in out (it moved more than it took) or in. outMu is held.
func (q *recvQueue) wakeNextLocked() {
	if q.waiters.Load() > 0 && q.out.len() > 0 {
		signal(q.ready)
	}
}

// pushed tells the waiters that in gained messages (or that the queue's
// connection ended); the producer calls it after releasing inMu. A
// waiter blocked in a read of the socket (see readRole) has that read
// interrupted.
func (q *recvQueue) pushed() {
	if q.waiters.Load() > 0 {
		q.wake()
	}
}

// wake wakes a waiter (one that reads the socket has its read
// interrupted): the queue gained messages, or changed in a way a waiter
// must see (its connection ended or joined a poll group).
func (q *recvQueue) wake() {
	signal(q.ready)
	if r := q.reader.Load(); r != nil && r.reading.Load() {
		r.ri.InterruptRead()
	}
}

// await calls try until it reports that it is done (it took messages, or
// failed), waiting for the queue between calls: a waiter registers
// before its last try, and a producer or a take that leaves messages
// wakes one when there are waiters, so no message waits unseen while a
// waiter sleeps. It returns ctx's error when ctx ends first and
// ErrHostClosed once done is closed.
func (q *recvQueue) await(ctx context.Context, done <-chan struct{}, try func() bool) error {
	for {
		if try() {
			return nil
		}
		q.waiters.Add(1)
		if try() {
			q.waiters.Add(-1)
			return nil
		}
		var err error
		select {
		case <-q.ready:
		case <-ctx.Done():
			err = ctx.Err()
		case <-done:
			err = ErrHostClosed
		}
		q.waiters.Add(-1)
		if err != nil {
			return err
		}
	}
}

// len is how many messages the queue holds.
func (q *recvQueue) len() int {
	q.outMu.Lock()
	q.inMu.Lock()
	n := q.out.len() + q.in.len()
	q.inMu.Unlock()
	q.outMu.Unlock()
	return n
}

// takeAll removes every message, oldest first: those already counted as
// taken (out) and those still counted in their connection's or session's
// flow-control count (in).
func (q *recvQueue) takeAll() (out, in []*Message) {
	q.outMu.Lock()
	q.inMu.Lock()
	out = q.out.take(q.out.len(), nil)
	in = q.in.take(q.in.len(), nil)
	q.inMu.Unlock()
	q.outMu.Unlock()
	return out, in
}

// drop releases every message in the queue.
func (q *recvQueue) drop() {
	out, in := q.takeAll()
	for _, m := range append(out, in...) {
		m.Release()
	}
}

// filter keeps the messages for which keep is true, in order, and
// returns the others, each marked whether it was still counted (in).
func (q *recvQueue) filter(keep func(*Message) bool) (gone []*Message, counted []bool) {
	q.outMu.Lock()
	q.inMu.Lock()
	for _, part := range []struct {
		q       *msgQueue
		counted bool
	}{{&q.out, false}, {&q.in, true}} {
		for range part.q.len() {
			m := part.q.pop()
			if keep(m) {
				part.q.push(m)
				continue
			}
			gone = append(gone, m)
			counted = append(counted, part.counted)
		}
	}
	q.inMu.Unlock()
	q.outMu.Unlock()
	return gone, counted
}

// slabs hands out the msgSlabs the batch receives carve their slices
// from: a pool, so that receives on several cores do not share one.
var slabs = sync.Pool{New: func() any { return new(msgSlab) }}
