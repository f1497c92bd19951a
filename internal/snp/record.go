package snp

import (
	"github.com/netmsg-go/netmsg/internal/wire"
)

// pktGap is a run [b, e) of packet numbers not received.
type pktGap struct {
	b, e       int64
	okNack     int64 // time from which the gap may be reported (nacked)
	recvBefore int64 // time packet b-1 was received
}

// pktRecord is the receiver's record of the packet numbers it got: every
// number from minAck to max except those in gaps, which are sorted and at
// most maxPacketGaps; a duplicate filter covers the last replayWindow numbers.
type pktRecord struct {
	max     int64 // highest packet number received
	maxTime int64 // when it was received
	minAck  int64 // the peer's stop-waiting value: no need to report below it
	swPkt   int64 // the packet that carried minAck
	gaps    []pktGap
	seen    [replayWindow / 64]uint64 // bit (n % replayWindow) set: n received (n in (max-replayWindow, max])
	// lateAt is when a packet last arrived after a higher-numbered one
	// (the path reorders; retransmissions carry new numbers, so only
	// reordering fills a gap); never before the first.
	lateAt int64
}

func (r *pktRecord) init(first int64) {
	r.max = first - 1
	r.minAck = first
	r.lateAt = -never / 2
}

// isDup reports whether n was already received or is too old to tell.
func (r *pktRecord) isDup(n int64) bool {
	if n > r.max {
		return false
	}
	if r.max-n >= replayWindow || n < r.minAck {
		return true
	}
	i := uint64(n) % replayWindow
	return r.seen[i/64]&(1<<(i%64)) != 0
}

func (r *pktRecord) setSeen(n int64) {
	i := uint64(n) % replayWindow
	r.seen[i/64] |= 1 << (i % 64)
}

func (r *pktRecord) clearSeen(n int64) {
	i := uint64(n) % replayWindow
	r.seen[i/64] &^= 1 << (i % 64)
}

// add records packet n (not a duplicate) received at t; a small new gap
// may be nacked from t+flush on (µs). It returns whether a new gap opened.
func (r *pktRecord) add(n, t, flush int64) (newGap bool) {
	if n == r.max+1 {
		r.clearSeen(n)
		r.setSeen(n)
		r.max, r.maxTime = n, t
		return false
	}
	if n > r.max {
		// Forget the replay bits of the skipped numbers.
		for k := max(r.max+1, n-replayWindow+1); k <= n; k++ {
			r.clearSeen(k)
		}
		r.setSeen(n)
		ok := t
		if n < r.max+4 {
			ok += flush
		}
		r.gaps = append(r.gaps, pktGap{b: r.max + 1, e: n, okNack: ok, recvBefore: r.maxTime})
		r.max, r.maxTime = n, t
		r.limitGaps()
		return true
	}
	r.setSeen(n)
	r.lateAt = t
	for i := len(r.gaps) - 1; i >= 0; i-- {
		g := &r.gaps[i]
		if n >= g.e {
			return false
		}
		if n < g.b {
			continue
		}
		switch {
		case g.b == n && g.e == n+1:
			r.gaps = append(r.gaps[:i], r.gaps[i+1:]...)
		case g.b == n:
			g.b++
			g.recvBefore = t
		case g.e == n+1:
			g.e--
		default:
			up := pktGap{b: n + 1, e: g.e, okNack: g.okNack, recvBefore: t}
			g.e = n
			r.gaps = append(r.gaps, pktGap{})
			copy(r.gaps[i+2:], r.gaps[i+1:])
			r.gaps[i+1] = up
			r.limitGaps()
		}
		return false
	}
	return false
}

// limitGaps merges the two oldest gaps while there are too many: packets
// between them, received, will be reported lost. That is safe (the sender
// retransmits what the receiver then discards) and bounds the record against
// a hostile sender (GNS does the same).
func (r *pktRecord) limitGaps() {
	for len(r.gaps) > maxPacketGaps {
		r.gaps[1].b = r.gaps[0].b
		r.gaps[1].recvBefore = r.gaps[0].recvBefore
		r.gaps = append(r.gaps[:0], r.gaps[1:]...)
	}
}

// stopWaiting applies the peer's stop-waiting value min carried by packet pkt.
func (r *pktRecord) stopWaiting(min, pkt int64) error {
	if min >= pkt || min < 0 {
		return protoErr("stop waiting beyond its packet", nil)
	}
	if min > r.max {
		min = r.max // GNS clamps to the highest packet received
	}
	if min <= r.minAck {
		if min < r.minAck && r.swPkt != 0 && pkt > r.swPkt {
			return protoErr("stop waiting went backwards", nil)
		}
		return nil
	}
	r.minAck, r.swPkt = min, pkt
	i := 0
	for i < len(r.gaps) && r.gaps[i].e <= min {
		i++
	}
	if i > 0 {
		r.gaps = append(r.gaps[:0], r.gaps[i:]...)
	}
	if len(r.gaps) > 0 && r.gaps[0].b < min {
		r.gaps[0].b = min
	}
	return nil
}

// appendAck appends an ack frame reporting what was received, if it fits in
// room, and updates the ack schedule.
func (c *Conn) appendAck(t int64, room int) {
	r := &c.rec
	latest, latestTime := r.max, r.maxTime
	k := len(r.gaps) // gaps[:k] are reported
	// Hold back gaps that may still be reordering, and whatever does not fit.
	heldUntil := int64(never)
	for {
		for k > 0 && r.gaps[k-1].okNack > t {
			heldUntil = min(heldUntil, r.gaps[k-1].okNack)
			latest, latestTime = r.gaps[k-1].b-1, r.gaps[k-1].recvBefore
			k--
		}
		if latest < r.minAck {
			return
		}
		if c.seenMax-latest >= maxAckLag {
			// Every packet for that long was discarded (the application
			// is not reading): an ack this stale would reach a peer
			// that reads its 16-bit latest field as a packet 65,536
			// later once it sent that many, and take it for an ack of
			// packets we discarded. The packet goes without an ack.
			c.ackDirty = false
			c.ackDue = never
			return
		}
		c.blocks = c.blocks[:0]
		hi := latest + 1
		for i := k - 1; i >= 0; i-- {
			g := r.gaps[i]
			c.blocks = append(c.blocks, wire.AckBlock{NumAck: uint64(hi - g.e), NumNack: uint64(g.e - g.b)})
			hi = g.b
		}
		if c.enc.AckLen(latest, c.blocks) <= room || k == 0 {
			break
		}
		// Too long: report the older gaps only.
		latest, latestTime = r.gaps[k-1].b-1, r.gaps[k-1].recvBefore
		k--
		heldUntil = min(heldUntil, t+1000)
	}
	if c.enc.AckLen(latest, c.blocks) > room {
		return
	}
	delay := (t - latestTime) >> wire.AckDelayShift
	if delay < 0 {
		delay = 0
	}
	if delay >= wire.AckDelayNone {
		delay = wire.AckDelayNone - 1
	}
	c.enc.AppendAck(latest, uint16(delay), c.blocks)
	c.st.acksSent++
	c.lastAckAt = t
	c.ackElicit = 0
	c.ackElicitUnrel = 0
	if heldUntil == never {
		c.ackDirty = false
		c.ackDue = never
	} else {
		c.ackDue = heldUntil
	}
}
