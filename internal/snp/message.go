package snp

import (
	"sync"
	"sync/atomic"
)

// Message is a message received from the peer.
//
// Ownership: Data is backed by a pooled buffer that belongs to the receiver
// of the Message once Receive returns it. Call Release when done with Data;
// Data must not be used after that. Not calling Release is safe (the buffer
// is then left to the garbage collector) but costs an allocation later.
type Message struct {
	Lane     uint32
	MsgNum   int64
	Reliable bool
	Data     []byte
	buf      []byte // the pooled array Data is in (bytePool), or nil
	ar       *arena
}

// Release returns the message's buffer to the pool and clears Data. It is
// safe to call more than once, and on the zero Message.
func (m *Message) Release() {
	if m.buf != nil {
		bytePool.put(m.buf)
		m.buf = nil
	}
	if m.ar != nil {
		m.ar.release()
		m.ar = nil
	}
	m.Data = nil
}

// Buffer is what holds a received message's bytes, apart from the
// message: what a wrapper of the message keeps for Release.
type Buffer struct {
	buf []byte
	ar  *arena
}

// Buffer returns the holder of m's bytes; releasing it is releasing m.
func (m *Message) Buffer() Buffer { return Buffer{buf: m.buf, ar: m.ar} }

// Release returns the bytes to their pool; see Message.Release.
func (b *Buffer) Release() {
	if b.buf != nil {
		bytePool.put(b.buf)
		b.buf = nil
	}
	if b.ar != nil {
		b.ar.release()
		b.ar = nil
	}
}

// msgQueue is a ring of delivered messages waiting for Receive.
type msgQueue struct {
	a     []Message
	head  int
	n     int
	bytes int
}

func (q *msgQueue) push(m Message) {
	if q.n == len(q.a) {
		q.grow()
	}
	q.a[(q.head+q.n)&(len(q.a)-1)] = m
	q.n++
	q.bytes += len(m.Data)
}

// grow doubles the ring: small ones are made (most connections hold
// few), bigger ones come from and go back to messagePool.
func (q *msgQueue) grow() {
	var na []Message
	if n := 2 * len(q.a); n < 1<<poolMinShift {
		na = make([]Message, max(4, n))
	} else {
		na = messagePool.get(n)
		na = na[:cap(na)]
	}
	for i := 0; i < q.n; i++ {
		na[i] = q.a[(q.head+i)&(len(q.a)-1)]
	}
	if len(q.a) >= 1<<poolMinShift {
		messagePool.put(q.a)
	}
	q.a, q.head = na, 0
}

// Receive moves up to len(dst) received messages, oldest first, into dst and
// returns how many it moved. Reliable messages of a lane come in order;
// unreliable ones as soon as they complete. See Message for ownership.
func (c *Conn) Receive(dst []Message) int {
	q := &c.inbox
	k := 0
	for k < len(dst) && q.n > 0 {
		i := q.head
		dst[k] = q.a[i]
		q.a[i] = Message{}
		q.head = (q.head + 1) & (len(q.a) - 1)
		q.n--
		q.bytes -= len(dst[k].Data)
		k++
	}
	if q.n == 0 {
		if len(q.a) > 1<<poolMinShift {
			// Back to the size that most connections never pass, so
			// that the next burst does not regrow it from 4.
			messagePool.put(q.a)
			q.a, q.head = messagePool.get(1<<poolMinShift), 0
			q.a = q.a[:cap(q.a)]
		}
		// Idle: let go of the partly used arena.
		if c.arena != nil {
			c.arena.release()
			c.arena = nil
		}
	}
	return k
}

// Pending returns how many received messages wait for Receive.
func (c *Conn) Pending() int { return c.inbox.n }

// PendingBytes returns the bytes that count against RecvBufferSize: those
// of the messages waiting for Receive and of reliable data buffered for
// reassembly.
func (c *Conn) PendingBytes() int { return c.inbox.bytes + c.bufferedRel }

// deliver queues a copy of data as a received message.
func (c *Conn) deliver(lane uint32, num int64, reliable bool, data []byte) {
	if !reliable && (c.inbox.n >= c.cfg.RecvBufferMessages || c.inbox.bytes+len(data) > c.cfg.RecvBufferSize) {
		c.st.unreliableDroppedRecv++
		return
	}
	if len(data) <= arenaMaxMsg {
		// Small messages share a refcounted arena: one pool operation per
		// arena instead of two per message.
		cur := &c.arena
		if c.arenaSlot != nil {
			cur = &c.arenaSlot.a
		}
		a := *cur
		if a == nil || len(a.b)+len(data) > cap(a.b) {
			if a != nil {
				a.release() // the holder's own reference
			}
			a = getArena()
			*cur = a
		}
		off := len(a.b)
		a.b = append(a.b, data...)
		a.refs.Add(1)
		c.countRecv(reliable)
		c.inbox.push(Message{Lane: lane, MsgNum: num, Reliable: reliable, Data: a.b[off:len(a.b):len(a.b)], ar: a})
		return
	}
	buf := append(bytePool.get(len(data)), data...)
	c.deliverBuf(lane, num, reliable, buf, buf)
}

func (c *Conn) countRecv(reliable bool) {
	if reliable {
		c.st.msgsRecvRel++
	} else {
		c.st.msgsRecvUnrel++
	}
}

// arena holds the data of many small received messages; it returns to its
// pool when the engine has moved on and every message was released.
type arena struct {
	b    []byte
	refs atomic.Int32
}

// ArenaSlot holds an arena for engines run in turn by one goroutine.
//
// An engine keeps its own arena only while it has messages waiting (an
// idle connection holds none). A message the application never releases
// pins its arena until the garbage collector frees both; if each arena
// served only one datagram's messages (a connection that drains after
// every datagram), such a message would cost a whole arena. So the
// goroutine that runs many engines in turn gives them its own arena
// (UseArena): their messages fill it one after the other, and a message
// left to the garbage collector costs about its own size.
type ArenaSlot struct{ a *arena }

// Close lets go of the slot's arena (it returns to the pool once its
// messages are released).
func (s *ArenaSlot) Close() {
	if s.a != nil {
		s.a.release()
		s.a = nil
	}
}

// UseArena makes the engine copy small received messages into s's arena
// (s nil: its own) until the next UseArena. The caller holds s for as
// long as it is set, and uses it from one goroutine at a time.
func (c *Conn) UseArena(s *ArenaSlot) { c.arenaSlot = s }

const (
	arenaSize   = 16 << 10
	arenaMaxMsg = 1280
)

var arenaPool = sync.Pool{New: func() any { return &arena{b: make([]byte, 0, arenaSize)} }}

func getArena() *arena {
	a := arenaPool.Get().(*arena)
	a.b = a.b[:0]
	a.refs.Store(1)
	return a
}

func (a *arena) release() {
	if a.refs.Add(-1) == 0 {
		arenaPool.Put(a)
	}
}

// deliverBuf queues data, which lies in buf (from bytePool), as a
// received message that owns buf.
func (c *Conn) deliverBuf(lane uint32, num int64, reliable bool, buf, data []byte) {
	c.countRecv(reliable)
	c.inbox.push(Message{Lane: lane, MsgNum: num, Reliable: reliable, Data: data[:len(data):len(data)], buf: buf})
}
