package snp

import "github.com/netmsg-go/netmsg/internal/wire"

// sendLane is the sending state of one lane: its reliable stream and its
// queue of unreliable messages.
type sendLane struct {
	prio   int
	weight uint64
	vtime  uint64 // virtual finish time for weighted fair queuing

	lastMsgNum    int64 // the last message number given out (both kinds)
	lastRelMsgNum int64 // the last reliable message number

	// Reliable stream, in a ring: buf (nil, or a power of two long)
	// holds stream positions [bufBase, endPos), position bufBase at index
	// head. Bytes before ackedBelow are acked and may be dropped, which
	// moves nothing (freeAcked).
	buf        []byte
	head       int
	bufBase    int64
	ackedBelow int64
	sentPos    int64 // the next byte never sent
	endPos     int64 // the end of the stream
	acked      rangeSet
	retx       rangeSet
	retxBytes  int64

	// Unreliable messages: uq[uhead:] are queued, their bytes in ubuf.
	uq    []unrelMsg
	uhead int
	ubuf  []byte
}

type unrelMsg struct {
	num       int64
	off, size int32 // in ubuf
	sent      int32
}

func (l *sendLane) init(cfg Lane) {
	l.prio = cfg.Priority
	l.weight = uint64(cfg.Weight)
	if l.weight == 0 {
		l.weight = 1
	}
	l.bufBase, l.ackedBelow, l.sentPos, l.endPos = 1, 1, 1, 1
}

// activate starts a lane that was idle at the current virtual time of its
// priority class, so it cannot claim credit for the time it was idle.
func (l *sendLane) activate(c *Conn) {
	var vt uint64
	for i := range c.lanes {
		o := &c.lanes[i]
		if o != l && o.prio == l.prio && o.pendingNew() > 0 && (vt == 0 || o.vtime < vt) {
			vt = o.vtime
		}
	}
	if vt > l.vtime {
		l.vtime = vt
	}
}

func (l *sendLane) pendingNew() int {
	return int(l.endPos-l.sentPos) + len(l.ubuf) - l.unsentUnrelOff()
}

func (l *sendLane) unsentUnrelOff() int {
	if l.uhead >= len(l.uq) {
		return len(l.ubuf)
	}
	m := &l.uq[l.uhead]
	return int(m.off + m.sent)
}

func (l *sendLane) hasUnrel() bool { return l.uhead < len(l.uq) }

// queueReliable appends a message to the stream and returns the bytes added.
func (l *sendLane) queueReliable(num int64, prefix, data []byte) int {
	delta := uint64(num - l.lastRelMsgNum)
	l.lastRelMsgNum = num
	var hb [16]byte
	hdr := wire.AppendMsgHeader(hb[:0], delta, len(prefix)+len(data))
	n := len(hdr) + len(prefix) + len(data)
	l.reserve(n)
	l.put(hdr)
	l.put(prefix)
	l.put(data)
	return n
}

// reserve makes room in the ring for n more bytes of the stream: when
// full, the live bytes move to a pooled ring at least twice as long.
func (l *sendLane) reserve(n int) {
	live := int(l.endPos - l.bufBase)
	if live+n <= len(l.buf) {
		return
	}
	nb := bytePool.get(max(live+n, 2*len(l.buf)))
	nb = nb[:cap(nb)]
	if live > 0 {
		k := copy(nb, l.buf[l.head:min(l.head+live, len(l.buf))])
		copy(nb[k:live], l.buf)
	}
	bytePool.put(l.buf)
	l.buf, l.head = nb, 0
}

// put appends p to the stream, in room reserve made.
func (l *sendLane) put(p []byte) {
	if len(p) == 0 {
		return
	}
	t := (l.head + int(l.endPos-l.bufBase)) & (len(l.buf) - 1)
	if k := copy(l.buf[t:], p); k < len(p) {
		copy(l.buf, p[k:])
	}
	l.endPos += int64(len(p))
}

func (l *sendLane) queueUnreliable(num int64, prefix, data []byte) int {
	off := len(l.ubuf)
	l.ubuf = bytePool.grow(l.ubuf, len(prefix)+len(data))
	l.uq = unrelPool.grow(l.uq, 1)
	l.ubuf = append(l.ubuf, prefix...)
	l.ubuf = append(l.ubuf, data...)
	n := len(prefix) + len(data)
	l.uq = append(l.uq, unrelMsg{num: num, off: int32(off), size: int32(n)})
	return n
}

// popUnrel drops the head unreliable message, compacting when worthwhile.
func (l *sendLane) popUnrel() {
	l.uhead++
	if l.uhead == len(l.uq) {
		l.uq, l.uhead = l.uq[:0], 0
		l.ubuf = l.ubuf[:0]
		if cap(l.ubuf) > 64*1024 {
			bytePool.put(l.ubuf)
			unrelPool.put(l.uq)
			l.ubuf = nil
			l.uq = nil
		}
		return
	}
	if l.uhead >= 64 && l.uhead*2 >= len(l.uq) {
		shift := l.uq[l.uhead].off
		copy(l.ubuf, l.ubuf[shift:])
		l.ubuf = l.ubuf[:len(l.ubuf)-int(shift)]
		n := copy(l.uq, l.uq[l.uhead:])
		l.uq = l.uq[:n]
		l.uhead = 0
		for i := range l.uq {
			l.uq[i].off -= shift
		}
	}
}

// stream returns the bytes of the stream at [b, e), which must not pass
// contig(b).
func (l *sendLane) stream(b, e int64) []byte {
	i := (l.head + int(b-l.bufBase)) & (len(l.buf) - 1)
	return l.buf[i : i+int(e-b)]
}

// contig returns how many bytes from stream position b (held in the
// ring) lie before the ring's end: what one stream call can return.
func (l *sendLane) contig(b int64) int64 {
	return int64(len(l.buf) - (l.head+int(b-l.bufBase))&(len(l.buf)-1))
}

// markAcked records that [b, e) of the stream arrived.
func (l *sendLane) markAcked(b, e int64) {
	if e <= l.ackedBelow {
		return
	}
	b = max(b, l.ackedBelow)
	l.removeRetx(b, e)
	l.acked.add(b, e)
	if s := l.acked.s; len(s) > 0 && s[0].b == l.ackedBelow {
		l.ackedBelow = s[0].e
		l.acked.s = append(s[:0], s[1:]...)
		l.freeAcked()
	}
}

func (l *sendLane) removeRetx(b, e int64) {
	if l.retx.empty() {
		return
	}
	before := l.retx.total()
	l.retx.remove(b, e)
	l.retxBytes -= before - l.retx.total()
}

// queueRetx queues [b, e) for retransmission, leaving out what was acked.
func (l *sendLane) queueRetx(b, e int64) {
	b = max(b, l.ackedBelow)
	if b >= e {
		return
	}
	before := l.retx.total()
	l.retx.add(b, e)
	for _, a := range l.acked.s {
		if a.b >= e {
			break
		}
		if a.e > b {
			l.retx.remove(a.b, a.e)
		}
	}
	l.retxBytes += l.retx.total() - before
}

// freeAcked drops acked bytes from the front of the ring.
func (l *sendLane) freeAcked() {
	drop := l.ackedBelow - l.bufBase
	if drop <= 0 {
		return
	}
	if l.ackedBelow == l.endPos {
		l.head, l.bufBase = 0, l.endPos
		if len(l.buf) > 4096 {
			bytePool.put(l.buf)
			l.buf = nil
		}
		return
	}
	l.head = (l.head + int(drop)) & (len(l.buf) - 1)
	l.bufBase = l.ackedBelow
}

// sentUnacked returns the reliable bytes sent and not yet acked.
func (l *sendLane) sentUnacked() int64 {
	return l.sentPos - l.ackedBelow - l.acked.totalBelow(l.sentPos) - l.retxBytes
}

func (r *rangeSet) total() int64 {
	var n int64
	for _, x := range r.s {
		n += x.e - x.b
	}
	return n
}

func (r *rangeSet) totalBelow(p int64) int64 {
	var n int64
	for _, x := range r.s {
		if x.b >= p {
			break
		}
		n += min(x.e, p) - x.b
	}
	return n
}
