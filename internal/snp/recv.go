package snp

import (
	"errors"
	"time"

	"github.com/netmsg-go/netmsg/internal/wire"
)

// maxUnreliableMsgSizeRecv is k_cbMaxUnreliableMsgSizeRecv: 20 segments of
// the largest plaintext payload GNS receives (k_cbSteamNetworkingSocketsMaxUDPMsgLen, 1300).
const maxUnreliableMsgSizeRecv = maxBufferedUnreliableSegments * 1300

// recvLane is the receiving state of one lane.
type recvLane struct {
	// Reliable stream: buf[0] is stream position base, the start of the
	// next message to parse; end is the highest received end; gaps lists
	// the holes inside [base, end). buf is arr[off:off+len(buf)]: parsed
	// bytes are dropped from the front by moving off, and the live bytes
	// are moved back to arr[0] only once as many were dropped (see grow),
	// so a hole filled behind a large buffer costs no copy of it.
	buf           []byte
	arr           []byte
	off           int
	base, end     int64
	gaps          rangeSet
	lastRelMsgNum int64
	highestMsgNum int64 // highest message number seen (for the decoder)
	// want is how many bytes from base the message being received
	// takes in all, once its header is here (0: none pending): a new
	// array is made that large at once, within laneArrayBudget.
	want int
	// handed is set when parseMessages gave arr to a message it
	// delivered: consume then moves what is left to a new array.
	handed bool
}

// laneArrayBudget bounds the bytes of a connection's receive-lane arrays
// (Conn.laneArr) for which arrays sized for a whole message (recvLane.want)
// are made; beyond it lanes grow by doubling, as data comes.
const laneArrayBudget = maxBufferedRel

// handOverMin is the smallest reliable message delivered in its lane's
// array itself, rather than copied out of it (smaller ones go to arenas
// or their own buffer).
const handOverMin = 16 << 10

// handOverMaxRest bounds what follows a message handed over in its
// lane's array (data received beyond a hole), which consumeLane copies
// to a new array; with more, the message is copied out instead.
const handOverMaxRest = 64 << 10

// resolver lets the wire decoder see the receive lanes.
type resolver Conn

func (r *resolver) ReliableRef(lane uint32) int64 {
	if int(lane) < len(r.rlanes) {
		return r.rlanes[lane].end
	}
	return 1
}

func (r *resolver) UnreliableRef(lane uint32) int64 {
	if int(lane) < len(r.rlanes) {
		return r.rlanes[lane].highestMsgNum
	}
	return 0
}

func (c *Conn) recvLane(lane uint32) *recvLane {
	for int(lane) >= len(c.rlanes) {
		c.rlanes = append(c.rlanes, recvLane{base: 1, end: 1})
	}
	return &c.rlanes[lane]
}

// ReceivePacket processes the decrypted SNP payload of packet pktNum (the
// full packet number, expanded by the connection layer) received at now.
// The payload is not retained.
//
// It returns nil when the packet was processed; ErrDiscarded when it was
// dropped without being acked (a duplicate, too old, or data beyond the
// receive limits) — the connection goes on; or a *ProtocolError (errors.Is
// ErrProtocol) when the payload is malformed or violates the protocol — the
// connection must then be closed with its EndReason. Frames before the bad
// one may have been applied. Every rejected packet is counted in Stats.
func (c *Conn) ReceivePacket(now time.Time, pktNum int64, payload []byte) error {
	t := c.us(now)
	if pktNum < c.cfg.PeerFirstPktNum || c.rec.isDup(pktNum) {
		c.st.pktsDup++
		return ErrDiscarded
	}
	c.dec.PktNum = pktNum
	c.dec.NextSendPktNum = c.nextPktNum
	c.dec.Reset(payload)
	f := &c.frame
	hasRel, hasData, discard := false, false, false
	c.ackDelaySample, c.relFresh = -1, false
	for {
		ok, err := c.dec.Next(f)
		if errors.Is(err, wire.ErrAckNotSent) {
			// An ack whose 16-bit latest field expands past what we sent:
			// a stale ack from far behind (more than 32768 packets), or a
			// forged one. GNS drops such a packet and goes on; so do we.
			c.st.pktsBad++
			return ErrDiscarded
		}
		if err != nil {
			c.st.pktsBad++
			return protoErr("bad frame", err)
		}
		if !ok {
			break
		}
		if f.Lane > MaxLanes {
			c.st.pktsBad++
			return protoErr("lane out of range", nil)
		}
		switch f.Kind {
		case wire.KindReliable:
			hasRel, hasData = true, true
			if discard {
				continue
			}
			if err := c.recvReliable(f.Lane, f.StreamPos, f.Data); err != nil {
				if err == ErrDiscarded {
					discard = true
					continue
				}
				c.st.pktsBad++
				return err
			}
		case wire.KindUnreliable:
			hasData = true
			if err := c.recvUnreliable(t, f); err != nil {
				c.st.pktsBad++
				return err
			}
		case wire.KindStopWaiting:
			if err := c.rec.stopWaiting(f.MinPktNumToAck, pktNum); err != nil {
				c.st.pktsBad++
				return err
			}
		case wire.KindAck:
			if err := c.onAck(t, f); err != nil {
				c.st.pktsBad++
				return err
			}
		case wire.KindSelectLane:
			if f.Lane > MaxLanes {
				c.st.pktsBad++
				return protoErr("lane out of range", nil)
			}
		}
	}
	c.seenMax = max(c.seenMax, pktNum)
	if c.ackDelaySample >= 0 && !hasData {
		// Only a packet that carries no data says how long the peer
		// holds an ack it owes: one with data goes when the data is
		// ready, whatever its ack policy, so its delay (the peer's
		// application, or its own wait for a lost packet) says nothing
		// of it.
		c.notePeerAckDelay(c.ackDelaySample)
	}
	if discard {
		// The packet stays unacked, so its data comes again; an ack packet
		// goes out soon all the same (GNS QueueFlushAllAcks), which nacks
		// it and keeps the peer hearing from us while the application is
		// not reading: a peer that sends and hears nothing back times out.
		c.st.pktsDiscarded++
		c.forceAt = min(c.forceAt, t+c.discardAckDelay())
		return ErrDiscarded
	}
	c.st.pktsRecv++
	c.st.bytesRecv += int64(len(payload))
	newGap := c.rec.add(pktNum, t, c.nackFlush(t))
	c.ackDirty = true
	if hasRel {
		if c.ackElicit == 0 {
			c.relOwedSince = t
		}
		c.ackElicit++
		c.ackDue = min(c.ackDue, t+int64(maxDataAckDelay/time.Microsecond))
		if c.aloneAcks >= quickAckAfter && c.ackElicit == 1 && t-c.relRecvAt >= int64(quickAckGap/time.Microsecond) {
			// Sparse reliable data whose acks go alone anyway: ack it
			// now, while its state is at hand, rather than visit the
			// connection again when the delay ends.
			c.ackDue = t
		}
		c.relRecvAt = t
		if c.relFresh {
			c.relFreshAt = t
		}
		if !c.relFresh && t-c.relFreshAt > int64(tailCopyAckGrace/time.Microsecond) {
			// Reliable data we had already: the sender sent it again
			// because it heard no ack; it hears one at once. Unless
			// the data came just after packets that brought data we
			// lacked: the second copy of a tail (Conn.copyTail) is no
			// sign of a lost ack.
			c.ackDue = t
		} else if c.ackElicit >= ackEveryPackets {
			c.ackDue = min(c.ackDue, c.ackPaced(t))
		}
	} else if hasData {
		c.ackDue = min(c.ackDue, t+int64(maxAckStatsDelay/time.Microsecond))
		c.ackElicitUnrel++
		if c.ackElicitUnrel >= ackEveryUnreliable {
			c.ackDue = t
		}
	}
	if newGap {
		c.ackDue = min(c.ackDue, max(c.rec.gaps[len(c.rec.gaps)-1].okNack, c.ackPaced(t)))
	}
	return nil
}

// ackPaced returns when an ack owed at t (after ackEveryPackets packets
// of reliable data, or for a new hole) goes: at t, or ackMinInterval
// after the last ack sent. A fast bulk stream is acked about every
// ackMinInterval rather than every 8 packets and at every hole: each ack
// costs both ends a system call, and a sender waiting on its window a
// wake-up; at 10% loss (a hole every ten packets) acks were a fifth of
// the receiver's packets, and cost a loopback transfer a tenth of its
// rate.
func (c *Conn) ackPaced(t int64) int64 {
	return max(t, c.lastAckAt+int64(ackMinInterval/time.Microsecond))
}

// recvReliable stores a segment of lane's reliable stream and delivers the
// messages it completes. It returns ErrDiscarded when the segment is beyond
// the receive limits (the packet must then not be acked).
func (c *Conn) recvReliable(lane uint32, pos int64, data []byte) error {
	l := c.recvLane(lane)
	if pos <= 0 {
		return protoErr("reliable stream position 0", nil)
	}
	e := pos + int64(len(data))
	if e <= l.base || len(data) == 0 {
		return nil // old news
	}
	if pos < l.base {
		data = data[l.base-pos:]
		pos = l.base
	}
	if e <= l.end && !l.gaps.overlaps(pos, e) {
		return nil // had it all
	}
	// Data that grows the lane's buffer is discarded when the messages
	// not yet taken are at their limits (the application is not reading)
	// or the buffer would pass maxBufferedRel; data inside the buffer
	// fills a hole and is always taken.
	if grow := int(e-l.base) - len(l.buf); grow > 0 && (c.inbox.n >= c.cfg.RecvBufferMessages ||
		c.inbox.bytes+grow > c.cfg.RecvBufferSize || c.bufferedRel+grow > maxBufferedRel) {
		return ErrDiscarded
	}
	c.relFresh = true
	// Fast path: in order, nothing buffered: parse straight from the packet.
	if pos == l.base && len(l.buf) == 0 {
		l.end = e
		n, err := c.parseMessages(lane, l, data, false)
		if err != nil {
			return err
		}
		l.base += int64(n)
		if n < len(data) {
			c.growLane(l, len(data)-n)
			copy(l.buf, data[n:])
			c.bufferedRel += len(data) - n
		}
		return nil
	}
	if pos > l.end {
		if l.gaps.len() >= maxReliableGapsExtend {
			return ErrDiscarded
		}
	} else if l.gaps.len() >= maxReliableGapsFragment && l.gaps.splits(pos, min(e, l.end)) {
		return ErrDiscarded
	}
	if need := int(e - l.base); need > len(l.buf) {
		c.bufferedRel += need - len(l.buf)
		c.growLane(l, need)
	}
	copy(l.buf[pos-l.base:], data)
	if pos > l.end {
		l.gaps.add(l.end, pos)
	}
	l.gaps.remove(pos, e)
	l.end = max(l.end, e)
	avail := l.end
	if !l.gaps.empty() {
		avail = l.gaps.s[0].b
	}
	n, err := c.parseMessages(lane, l, l.buf[:avail-l.base], true)
	if err != nil {
		return err
	}
	if n > 0 {
		l.base += int64(n)
		c.bufferedRel -= n
		c.consumeLane(l, n)
	}
	return nil
}

// growLane is l.grow with a hint and the connection's count of lane
// array bytes: a new array takes the whole pending message (l.want) at
// once while the lanes' arrays stay within laneArrayBudget.
func (c *Conn) growLane(l *recvLane, need int) {
	before := cap(l.arr)
	hint := 0
	if l.want > need && c.laneArr-before+l.want <= laneArrayBudget {
		hint = l.want
	}
	l.grow(need, hint)
	c.laneArr += cap(l.arr) - before
}

// consumeLane is l.consume, and the move of what is left to a new array
// when parseMessages handed l's array to a message.
func (c *Conn) consumeLane(l *recvLane, n int) {
	if !l.handed {
		before := cap(l.arr)
		l.consume(n)
		c.laneArr += cap(l.arr) - before
		return
	}
	l.handed = false
	c.laneArr -= cap(l.arr)
	rest := l.buf[n:]
	l.arr, l.buf, l.off = nil, nil, 0
	if len(rest) > 0 {
		c.growLane(l, len(rest))
		copy(l.buf, rest)
	}
}

// grow makes buf need bytes long (the bytes past its old end are stale
// until written). When arr has no room past buf, the live bytes move to
// its start if at least as many were consumed since the last move (so each
// byte is moved at most about once), else to a new array from bytePool
// (the next power of two of at least need, or of hint when larger).
func (l *recvLane) grow(need, hint int) {
	if l.off+need > cap(l.arr) {
		if 2*need <= cap(l.arr) {
			copy(l.arr, l.buf)
		} else {
			na := bytePool.get(max(need, hint, 4096))
			na = na[:cap(na)]
			copy(na, l.buf)
			bytePool.put(l.arr)
			l.arr = na
		}
		l.off = 0
	}
	l.buf = l.arr[l.off : l.off+need : l.off+need]
}

// consume drops the first n bytes of buf.
func (l *recvLane) consume(n int) {
	k := len(l.buf) - n
	if k == 0 {
		l.off, l.buf = 0, l.arr[:0:0]
		if cap(l.arr) > 4096 {
			bytePool.put(l.arr)
			l.arr, l.buf = nil, nil
		}
		return
	}
	l.off += n
	l.buf = l.arr[l.off : l.off+k : l.off+k]
}

// parseMessages delivers the complete messages at the start of b, a
// contiguous part of lane's stream beginning at a message boundary, and
// returns how many bytes they took. It notes in l.want the length of a
// message whose header is here and whose bytes are not all. b is
// l.buf's start when inLane: a large message there is delivered in
// l.arr itself (l.handed).
func (c *Conn) parseMessages(lane uint32, l *recvLane, b []byte, inLane bool) (int, error) {
	off := 0
	l.want = 0
	for off < len(b) {
		delta, size, hn, err := wire.ParseMsgHeader(b[off:])
		if err != nil {
			if errors.Is(err, wire.ErrShort) {
				if len(b)-off > 32 {
					return off, protoErr("bad reliable message header", err)
				}
				break
			}
			return off, protoErr("bad reliable message header", err)
		}
		if size > int64(c.cfg.RecvMaxMessageSize) {
			return off, protoErr("reliable message too big", nil)
		}
		if delta == 0 || delta > 1<<40 {
			return off, protoErr("bad reliable message number", nil)
		}
		if int64(len(b)-off-hn) < size {
			l.want = hn + int(size)
			break
		}
		num := l.lastRelMsgNum + int64(delta)
		l.lastRelMsgNum = num
		l.highestMsgNum = max(l.highestMsgNum, num)
		data := b[off+hn : off+hn+int(size)]
		if inLane && off == 0 && size >= handOverMin && 2*(hn+int(size)) >= cap(l.arr) && len(l.buf)-(hn+int(size)) <= handOverMaxRest {
			// The array goes with the message (no copy); consumeLane
			// moves what follows it to a new one.
			c.deliverBuf(lane, num, true, l.arr, data)
			l.handed = true
		} else {
			c.deliver(lane, num, true, data)
		}
		off += hn + int(size)
	}
	return off, nil
}

// unrelSeg is a buffered segment of a partly received unreliable message.
type unrelSeg struct {
	lane   uint32
	last   bool
	msgNum int64
	off    int64
	t      int64
	data   []byte // from bytePool
}

func (c *Conn) recvUnreliable(t int64, f *wire.Frame) error {
	if f.MsgNum <= 0 {
		return protoErr("unreliable message number 0", nil)
	}
	end := f.Offset + int64(len(f.Data))
	if f.Offset < 0 || end > maxUnreliableMsgSizeRecv || end > int64(c.cfg.RecvMaxMessageSize) {
		return protoErr("unreliable message too big", nil)
	}
	l := c.recvLane(f.Lane)
	l.highestMsgNum = max(l.highestMsgNum, f.MsgNum)
	if f.Offset == 0 && f.Last {
		c.deliver(f.Lane, f.MsgNum, false, f.Data)
		return nil
	}
	for i := range c.useg {
		s := &c.useg[i]
		if s.lane == f.Lane && s.msgNum == f.MsgNum && s.off == f.Offset {
			return nil // duplicate segment
		}
	}
	if len(c.useg) >= maxBufferedUnreliableSegments {
		c.dropOldestUnrel()
	}
	buf := append(bytePool.get(len(f.Data)), f.Data...)
	c.useg = append(c.useg, unrelSeg{lane: f.Lane, last: f.Last, msgNum: f.MsgNum, off: f.Offset, t: t, data: buf})
	c.tryAssemble(f.Lane, f.MsgNum)
	return nil
}

// dropOldestUnrel discards every buffered segment of the partial message
// with the lowest message number.
func (c *Conn) dropOldestUnrel() {
	o := 0
	for i := range c.useg {
		if c.useg[i].msgNum < c.useg[o].msgNum {
			o = i
		}
	}
	c.removeUnrel(c.useg[o].lane, c.useg[o].msgNum)
	c.st.unreliableDroppedRecv++
}

func (c *Conn) removeUnrel(lane uint32, num int64) {
	k := 0
	for _, s := range c.useg {
		if s.lane == lane && s.msgNum == num {
			bytePool.put(s.data)
			continue
		}
		c.useg[k] = s
		k++
	}
	clear(c.useg[k:])
	c.useg = c.useg[:k]
	if k == 0 && cap(c.useg) > 0 {
		c.useg = nil
	}
}

// expireUnrel drops partial unreliable messages whose newest segment is old.
func (c *Conn) expireUnrel(t int64) {
	for i := 0; i < len(c.useg); i++ {
		s := c.useg[i]
		if t-s.t < int64(unreliableExpiry/time.Microsecond) {
			continue
		}
		newest := s.t
		for _, o := range c.useg {
			if o.lane == s.lane && o.msgNum == s.msgNum {
				newest = max(newest, o.t)
			}
		}
		if t-newest >= int64(unreliableExpiry/time.Microsecond) {
			c.removeUnrel(s.lane, s.msgNum)
			c.st.unreliableDroppedRecv++
			i = -1
		}
	}
}

// tryAssemble delivers message num of lane if all its segments are here.
func (c *Conn) tryAssemble(lane uint32, num int64) {
	var size int64 = -1
	var have int64
	for _, s := range c.useg {
		if s.lane == lane && s.msgNum == num {
			have += int64(len(s.data))
			if s.last {
				size = s.off + int64(len(s.data))
			}
		}
	}
	if size < 0 || have < size {
		return
	}
	// Segments may overlap only if the sender is broken; check coverage.
	b := bytePool.get(int(size))[:size]
	var covered int64
	for pos := int64(0); pos < size; {
		found := false
		for _, s := range c.useg {
			if s.lane == lane && s.msgNum == num && s.off <= pos && s.off+int64(len(s.data)) > pos {
				n := copy(b[pos:], s.data[pos-s.off:])
				pos += int64(n)
				covered += int64(n)
				found = true
				break
			}
		}
		if !found {
			bytePool.put(b)
			return
		}
	}
	c.removeUnrel(lane, num)
	c.deliverBuf(lane, num, false, b, b)
}

// discardAckDelay is how soon an ack packet follows a packet discarded for
// the receive limits: twice the smoothed RTT plus 10 ms, the RTT taken as
// 100 ms when unknown or longer (GNS's delay in the same case). At most one
// such packet goes out per delay, however many packets are discarded.
func (c *Conn) discardAckDelay() int64 {
	rtt := c.rtt.srtt
	if rtt < 0 || rtt > int64(100*time.Millisecond/time.Microsecond) {
		rtt = int64(100 * time.Millisecond / time.Microsecond)
	}
	return 2*rtt + int64(10*time.Millisecond/time.Microsecond)
}

// nackFlush is how long a small hole in the packet numbers that opens at
// t is held back as possible reordering before it is reported. On a path
// that has not reordered a packet for reorderMemory, none: the hole is a
// loss, and every moment it waits is added to its repair, to the data the
// receiver buffers behind it and to the sender's window. Otherwise GNS's
// fixed 3 ms (k_usecNackFlush), or half the smoothed RTT when that is
// shorter (at least 250 µs): on a path whose round trip is a fraction of a
// millisecond, 3 ms of waiting is most of the time a lost packet takes to
// be repaired.
func (c *Conn) nackFlush(t int64) int64 {
	if t-c.rec.lateAt > int64(reorderMemory/time.Microsecond) {
		return 0
	}
	f := int64(nackFlush / time.Microsecond)
	if c.rtt.srtt > 0 {
		f = min(f, max(c.rtt.srtt/2, int64(nackFlushMin/time.Microsecond)))
	}
	return f
}
