package netmsg

import (
	"sync"

	"github.com/netmsg-go/netmsg/internal/snp"
)

// msgPool recycles Messages given back with Release, so the steady-state
// receive path does not allocate one per message.
var msgPool = sync.Pool{New: func() any { return new(Message) }}

// newMessage wraps an engine message (taking over its buffer) in a pooled
// Message.
func newMessage(sm *snp.Message) *Message {
	m := msgPool.Get().(*Message)
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
// it twice is a bug, as with GNS's Release.
func (m *Message) Release() {
	if m == nil {
		return
	}
	m.buf.Release()
	*m = Message{}
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
