package netmsg

import (
	"sync"
	"sync/atomic"

	"github.com/netmsg-go/netmsg/internal/snp"
)

// msgPool recycles Messages given back with Release, so the steady-state
// receive path does not allocate one per message. A Message in the pool
// has released set, so that a second Release of it does not put it in
// twice.
var msgPool = sync.Pool{New: func() any { return new(Message) }}

// doubleReleases counts the Releases of a Message already released (and
// not handed out again): each is a no-op.
var doubleReleases atomic.Int64

// msgBatch is how many released Messages move between the application's
// goroutine and the one that makes a connection's messages at a time.
const msgBatch = 64

// Released Messages go back in batches: Release puts a connection's
// message in the connection's release list (hostConn.free); once that
// holds msgBatch, the list goes to msgFull whole and an empty one comes
// from msgEmpty. The goroutine that makes the connection's messages takes
// from its spare list (hostConn.spare), refilled from msgFull, or from
// the release list when msgFull has none. So a Message crosses between
// the cores of the two goroutines with one pool operation per msgBatch
// of them, where a shared pool of Messages would move each one from one
// core's pool shard to the other's; and a connection keeps at most
// 2 x msgBatch of them.
var (
	msgFull  sync.Pool // *[]*Message holding msgBatch Messages
	msgEmpty = sync.Pool{New: func() any { s := make([]*Message, 0, msgBatch); return &s }}
)

// msgFree is a connection's release list.
type msgFree struct {
	mu sync.Mutex
	ms *[]*Message // nil until the first Release
}

// put adds m (released) to the list, sending the list to msgFull when
// full.
func (f *msgFree) put(m *Message) {
	f.mu.Lock()
	if f.ms == nil {
		f.ms = msgEmpty.Get().(*[]*Message)
	}
	*f.ms = append(*f.ms, m)
	if len(*f.ms) < msgBatch {
		f.mu.Unlock()
		return
	}
	full := f.ms
	f.ms = msgEmpty.Get().(*[]*Message)
	f.mu.Unlock()
	msgFull.Put(full)
}

// newMessage wraps an engine message (taking over its buffer) in a pooled
// Message.
func newMessage(sm *snp.Message) *Message {
	return fillMessage(msgPool.Get().(*Message), sm)
}

// newMessage is newMessage for a message of hc, whose lock (or, for a
// P2P connection, the Host's mu) is held: it takes a released Message
// from hc.spare, refilled a batch at a time.
func (hc *hostConn) newMessage(sm *snp.Message) *Message {
	if hc.spare == nil || len(*hc.spare) == 0 {
		hc.refill()
	}
	if hc.spare == nil || len(*hc.spare) == 0 {
		return newMessage(sm)
	}
	s := *hc.spare
	m := s[len(s)-1]
	s[len(s)-1] = nil
	*hc.spare = s[:len(s)-1]
	return fillMessage(m, sm)
}

// refill makes hc.spare a batch of released Messages: a full one from
// msgFull, or else hc's own release list, however short.
func (hc *hostConn) refill() {
	if v := msgFull.Get(); v != nil {
		if hc.spare != nil {
			msgEmpty.Put(hc.spare)
		}
		hc.spare = v.(*[]*Message)
		return
	}
	hc.free.mu.Lock()
	if hc.free.ms != nil && len(*hc.free.ms) > 0 {
		hc.spare, hc.free.ms = hc.free.ms, hc.spare
	}
	hc.free.mu.Unlock()
}

func fillMessage(m *Message, sm *snp.Message) *Message {
	m.released = 0
	m.buf = sm.Buffer()
	m.Payload = sm.Data
	m.Size = len(sm.Data)
	m.MessageNumber = sm.MsgNum
	m.Channel = 0
	m.Flags = SendUnreliable
	if sm.Reliable {
		m.Flags = SendReliable
	}
	return m
}

// Release gives the message's buffers back to netmsg for reuse. The Message
// and its Payload must not be used afterwards. Calling it is optional (an
// unreleased message is garbage collected) but saves allocations; calling
// it on nil does nothing.
//
// Calling it twice is a bug, as with GNS's Release, but a harmless one
// while the Message has not been handed out again: the second call does
// nothing (it is counted), so the Message is never pooled twice and never
// given to two receivers. Once a receive has handed the same Message out
// again, a Release through the old pointer releases the new message.
func (m *Message) Release() {
	if m == nil {
		return
	}
	if !atomic.CompareAndSwapUint32(&m.released, 0, 1) {
		doubleReleases.Add(1)
		return
	}
	m.buf.Release()
	hc := m.conn
	*m = Message{released: 1}
	if hc != nil {
		hc.free.put(m)
	} else {
		msgPool.Put(m)
	}
}

// msgQueue is a FIFO of received messages (a ring buffer that grows to the
// largest backlog it has held; its length is bounded by the receive
// limits).
type msgQueue struct {
	buf        []*Message
	head, size int
}

func (q *msgQueue) len() int { return q.size }

func (q *msgQueue) push(m *Message) {
	if q.size == len(q.buf) {
		n := make([]*Message, max(16, 2*len(q.buf))) // a power of two
		for i := range q.size {
			n[i] = q.buf[(q.head+i)&(len(q.buf)-1)]
		}
		q.buf, q.head = n, 0
	}
	q.buf[(q.head+q.size)&(len(q.buf)-1)] = m
	q.size++
}

// pop removes and returns the oldest message; the queue is not empty.
func (q *msgQueue) pop() *Message {
	m := q.buf[q.head]
	q.buf[q.head] = nil
	q.head = (q.head + 1) & (len(q.buf) - 1)
	q.size--
	return m
}

// take removes and returns up to max messages, oldest first (nil if none),
// in a slice from slab (nil: a new one).
func (q *msgQueue) take(max int, slab *msgSlab) []*Message {
	n := min(max, q.size)
	if n == 0 {
		return nil
	}
	out := slab.get(n)
	for i := range out {
		out[i] = q.pop()
	}
	return out
}

// msgSlab hands out the slices the receive calls return, carved from
// shared chunks, so that a receive does not allocate one: a chunk of
// msgSlabChunk pointers serves many calls, and becomes garbage once the
// application dropped every slice carved from it. The slices are capped
// (an append copies), and never reused by the Host. One is used by one
// goroutine at a time (see slabs).
type msgSlab struct {
	buf []*Message
}

// msgSlabChunk is the size of a slab chunk (32 KiB on 64-bit); a take of
// more than a quarter of it gets a slice of its own.
const msgSlabChunk = 4096

// get returns a slice of n nil pointers; a nil slab allocates it.
func (s *msgSlab) get(n int) []*Message {
	if s == nil || n > msgSlabChunk/4 {
		return make([]*Message, n)
	}
	if n > len(s.buf) {
		s.buf = make([]*Message, msgSlabChunk)
	}
	out := s.buf[:n:n]
	s.buf = s.buf[n:]
	return out
}
