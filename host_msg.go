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

// newMessage wraps an engine message (taking over its buffer) in a pooled
// Message.
func newMessage(sm *snp.Message) *Message {
	m := msgPool.Get().(*Message)
	m.released = 0
	m.buf = *sm
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
	*m = Message{released: 1}
	msgPool.Put(m)
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
		n := make([]*Message, max(16, 2*len(q.buf)))
		for i := range q.size {
			n[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = n, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = m
	q.size++
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
		out[i] = q.buf[q.head]
		q.buf[q.head] = nil
		q.head = (q.head + 1) % len(q.buf)
	}
	q.size -= n
	return out
}

// drop releases every message in the queue.
func (q *msgQueue) drop() {
	for _, m := range q.take(q.size, nil) {
		m.Release()
	}
	q.buf, q.head = nil, 0
}

// msgSlab hands out the slices the receive calls return, carved from
// shared chunks, so that a receive does not allocate one: a chunk of
// msgSlabChunk pointers serves many calls, and becomes garbage once the
// application dropped every slice carved from it. The slices are capped
// (an append copies), and never reused by the Host. Guarded by Host.mu.
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
