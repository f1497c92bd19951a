package snp

import (
	"time"

	"github.com/netmsg-go/netmsg/internal/wire"
)

// Packet states in the sender's record.
const (
	pktInFlight uint8 = iota + 1
	pktAcked
	pktLost
)

// relSeg is a range of a lane's reliable stream that a packet carried.
type relSeg struct {
	lane int32
	b, e int64
}

// sentPkt is the sender's record of one packet it sent.
type sentPkt struct {
	num     int64
	sentAt  int64
	size    int32
	state   uint8
	hasData bool // carried segments (reliable or unreliable)
	segs    []relSeg
}

// pktRing holds the records of the packets sent since the oldest one whose
// fate is unknown, in packet number order (every number has a record).
type pktRing struct {
	a    []sentPkt
	head int
	n    int
}

func (r *pktRing) full() bool { return r.n >= maxInFlightPackets }

func (r *pktRing) at(i int) *sentPkt { return &r.a[(r.head+i)&(len(r.a)-1)] }

// get returns the record of packet num, or nil.
func (r *pktRing) get(num int64) *sentPkt {
	if r.n == 0 {
		return nil
	}
	i := num - r.at(0).num
	if i < 0 || i >= int64(r.n) {
		return nil
	}
	return r.at(int(i))
}

func (r *pktRing) push() *sentPkt {
	if r.n == len(r.a) {
		na := sentPool.get(2 * len(r.a)) // 64 at least
		na = na[:cap(na)]
		// Swapped, not copied: each ring keeps a segs array per record
		// for its next user, and none is shared.
		for i := 0; i < r.n; i++ {
			p := r.at(i)
			na[i], *p = *p, na[i]
		}
		if r.a != nil {
			sentPool.put(r.a)
		}
		r.a, r.head = na, 0
	}
	p := r.at(r.n)
	r.n++
	return p
}

func (r *pktRing) pop() {
	r.head = (r.head + 1) & (len(r.a) - 1)
	r.n--
	if r.n == 0 {
		// An idle connection holds no ring; the records go to the pool
		// with their segs, which the next user's records reuse.
		sentPool.put(r.a)
		r.a, r.head = nil, 0
	}
}

// Poll builds the next packet payload, if one is due now, by appending to
// buf[:0] (give it a capacity of at least Config.MaxPayload to avoid an
// allocation). It returns the payload, the packet number it was given, and
// ok=false when nothing is due. A packet is due when acks are owed, reliable
// data awaits retransmission, or queued data is past its Nagle time (or fills
// a packet) and pacing allows. Call Poll until it returns ok=false, send the
// packets in order, then wait until NextWake.
//
// The payload aliases buf. Packet numbers are consecutive, from
// Config.FirstPktNum; the connection layer puts the low 16 bits on the wire.
func (c *Conn) Poll(now time.Time, buf []byte) (pkt []byte, pktNum int64, ok bool) {
	t := c.us(now)
	c.checkRTO(t)
	c.checkProbe(t)
	c.pace.accumulate(t)
	c.expireUnrel(t)
	data := c.dataReady(t)
	forced := c.forceAt <= t
	if !data && c.ackDue > t && !forced {
		c.pace.capIdle()
		return nil, 0, false
	}
	pktNum = c.nextPktNum
	c.enc.Reset(buf, pktNum)
	limit := c.cfg.MaxPayload

	if c.minWait < pktNum && (c.minWait > c.swSent || (c.swAge >= stopWaitingRepeat && c.minWait > c.cfg.FirstPktNum)) {
		c.enc.AppendStopWaiting(c.minWait)
		c.swSent = c.minWait
		c.swAge = 0
	}
	owed := c.ackElicit > 0 // reliable data we have not acked
	if c.ackDirty || c.ackDue <= t || forced {
		c.appendAck(t, limit-c.enc.Len())
	}
	c.curSegs = c.curSegs[:0]
	hasData := false
	if data {
		hasData = c.fillData(limit)
	}
	if c.enc.Len() == 0 && !forced {
		return nil, 0, false
	}
	c.noteAckFate(t, owed, hasData)
	c.forceAt = never
	pkt = c.enc.Bytes()
	p := c.inflight.push()
	p.num, p.sentAt, p.size, p.state, p.hasData = pktNum, t, int32(len(pkt)), pktInFlight, hasData
	p.segs = append(p.segs[:0], c.curSegs...)
	if len(p.segs) > 0 {
		c.relInFlight++
		c.lastRelSent = t
		c.copyTail(p)
	}
	if c.inflight.full() {
		c.lose(c.inflight.at(0), true)
		c.trimInflight()
	}
	c.nextPktNum++
	c.swAge++
	if hasData {
		c.pace.spend(len(pkt))
	} else {
		c.pace.spendAck(len(pkt))
	}
	c.st.pktsSent++
	c.st.bytesSent += int64(len(pkt))
	c.cc.onSend(len(pkt))
	if c.pendingNew == 0 {
		c.nagleAt = never
	}
	return pkt, pktNum, true
}

// QueueAck makes Poll return a packet by a deadline even when the engine has
// nothing else to send: at once when immediate, else within
// queuedAckDelay. The packet carries an ack if anything was received (else
// it may be empty). The connection layer uses it to answer a peer's ack
// request and to send keepalives (GNS's QueueEndToEndAck).
func (c *Conn) QueueAck(now time.Time, immediate bool) {
	t := c.us(now)
	if !immediate {
		t += int64(queuedAckDelay / time.Microsecond)
	}
	c.forceAt = min(c.forceAt, t)
}

// queuedAckDelay is how long a non-immediate QueueAck may wait for a packet
// that would go anyway (GNS k_usecMaxDataAckDelay-like slack).
const queuedAckDelay = 250 * time.Millisecond

// dataReady reports whether a packet with data may be sent at t.
func (c *Conn) dataReady(t int64) bool {
	if c.pace.tokens < 0 {
		return false
	}
	for i := range c.lanes {
		if !c.lanes[i].retx.empty() {
			return true
		}
	}
	if c.pendingNew == 0 || c.inflight.full() {
		return false
	}
	if c.nagleAt > t && c.pendingNew < c.cfg.MaxPayload {
		return false
	}
	return c.anyNewSendable()
}

func (c *Conn) anyNewSendable() bool {
	win := c.relWindowOpen()
	for i := range c.lanes {
		l := &c.lanes[i]
		if l.hasUnrel() || (win && l.endPos > l.sentPos) {
			return true
		}
	}
	return false
}

// relWindowOpen reports whether new reliable data may be sent: the span of
// each lane's stream from its oldest unacked byte to its newest sent one
// (kept for retransmission) stays below relWindowFactor x SendBufferSize in
// all, which bounds memory. One lost packet holds the start of the span
// until it is repaired, so the span must cover the send rate times the
// repair time of the slowest hole (a loss lost again included): a window
// of just SendBufferSize capped a bulk sender at 10% loss near 50 MB/s on
// loopback.
func (c *Conn) relWindowOpen() bool { return c.relWindowLeft() > 0 }

func (c *Conn) relWindowLeft() int64 {
	var out int64
	for i := range c.lanes {
		out += c.lanes[i].sentPos - c.lanes[i].ackedBelow
	}
	return relWindowFactor*int64(c.cfg.SendBufferSize) - out
}

// NextWake returns when Poll should next be called, or the zero time when
// nothing is scheduled (the engine then waits for a SendMessage or a packet).
// It may return a time in the past: call Poll now.
func (c *Conn) NextWake() time.Time {
	w := min(c.ackDue, c.forceAt)
	retx := false
	for i := range c.lanes {
		if !c.lanes[i].retx.empty() {
			retx = true
			break
		}
	}
	if retx || (c.pendingNew > 0 && !c.inflight.full() && c.anyNewSendable()) {
		due := c.pace.readyAt()
		if !retx && c.pendingNew < c.cfg.MaxPayload {
			due = max(due, c.nagleAt)
		}
		w = min(w, due)
	}
	if c.probeArmed(retx) {
		w = min(w, c.lastRelSent+c.probeTimeout(c.lastRelSent))
	}
	if c.inflight.full() {
		// Settled packets (acks, unreliable data) past their timeout
		// leave the record at the next poll (checkRTO); only a full
		// record, which holds back new data, is worth a wake-up for
		// that. Otherwise a session that sends only acks would be
		// woken once per ack, for nothing the peer would see.
		if p := c.oldestInFlight(); p != nil && c.settled(p) {
			w = min(w, p.sentAt+c.rtt.rto())
		}
	}
	if w == never {
		return time.Time{}
	}
	return c.at(w)
}

func (c *Conn) oldestInFlight() *sentPkt {
	for i := 0; i < c.inflight.n; i++ {
		if p := c.inflight.at(i); p.state == pktInFlight {
			return p
		}
	}
	return nil
}

// noteAckFate keeps the count behind quick acks (quickAckAfter) for the
// packet being sent at t: owed says it was to carry the ack of reliable
// data, hasData that it carries data. An ack of reliable data that went
// alone after its whole delay counts one; data that carried such an ack,
// or that went within the delay after a quick ack (which it could have
// carried), resets the count.
func (c *Conn) noteAckFate(t int64, owed, hasData bool) {
	acked := owed && c.ackElicit == 0
	switch {
	case hasData:
		if acked || t-c.quickAckAt < int64(maxDataAckDelay/time.Microsecond) {
			c.aloneAcks = 0
		}
	case !acked:
	case t-c.relOwedSince >= int64(maxDataAckDelay/time.Microsecond):
		c.aloneAcks = min(c.aloneAcks+1, quickAckAfter)
	case c.aloneAcks >= quickAckAfter:
		c.quickAckAt = t
	}
}

// checkRTO declares lost every settled packet (acks, unreliable data,
// reliable data acked since through another copy) in flight for longer
// than the retransmission timeout, so the record of packets in flight does
// not keep them; nothing of theirs is sent again. Reliable data not yet
// acked is the tail-loss probe's (checkProbe).
func (c *Conn) checkRTO(t int64) {
	rto := c.rtt.rto()
	for i := 0; i < c.inflight.n; i++ {
		p := c.inflight.at(i)
		if p.sentAt+rto > t {
			break
		}
		if p.state == pktInFlight && c.settled(p) {
			c.lose(p, true)
		}
	}
	c.trimInflight()
}

// probeArmed reports whether the tail-loss probe waits: reliable data not
// yet acked is in flight, and nothing else will go that would reveal its loss (no
// retransmission waits, retx, and no new data may be sent: the next packet
// of a sender that has more to send, when pacing or Nagle let it go, gets
// any earlier loss nacked as a probe would).
func (c *Conn) probeArmed(retx bool) bool {
	return c.relInFlight > 0 && !retx && c.relUnacked() && !(c.pendingNew > 0 && !c.inflight.full() && c.anyNewSendable())
}

// probeTimeout is how long after the last packet carrying reliable data,
// sent at t, the tail-loss probe goes when nothing acked it, doubled for
// each probe after the first that brought no ack, at most
// maxProbeInterval. On a path
// that lost a packet within lossMemory it is the probe timeout of the RTT
// and the peer's ack delay (at least ptoMin), so a lost tail is repaired
// in about a round trip. On a path that loses nothing it is GNS's
// retransmission timeout (3 x smoothed RTT + 60 ms): a timer a round trip
// ahead of every packet with reliable data is re-armed at every message
// of a request-response exchange and would cost its wake-ups for nothing
// (on loopback, a 1 ms timer made ping-pong's median round trip 14%
// slower).
func (c *Conn) probeTimeout(t int64) int64 {
	d := c.rtt.pto(c.peerAckDelay)
	if t-c.lossAt > int64(lossMemory/time.Microsecond) {
		d = max(d, c.rtt.rto())
	}
	if c.probes > 1 {
		d <<= min(c.probes-1, 16)
	}
	return min(d, int64(maxProbeInterval/time.Microsecond))
}

// checkProbe sends the tail-loss probe when it is due: it is armed
// (probeArmed) and nothing was acked for probeTimeout since the last packet
// with reliable data went. While data flows, a lost packet is found by the
// receiver's nack; when the sender stops (the application has no more, or
// the window is full), nothing after the last packets would reveal their
// loss, and the probe does. It sends again, on each lane with reliable
// data in flight, the lowest unacked bytes (at most one packet's worth):
// the receiver takes them whatever its limits (they fill the hole its
// stream waits on), and its ack of the probe names every packet it lacks.
// The packets stay in flight (a probe is no sign of congestion); the ack
// decides their fate. (A timeout that declared every packet in flight
// lost, one packet per doubling of the timeout, could take minutes to
// reach the one that filled the hole of a receiver whose buffer was full.)
func (c *Conn) checkProbe(t int64) {
	retx := false
	for i := range c.lanes {
		if !c.lanes[i].retx.empty() {
			retx = true
			break
		}
	}
	if !c.probeArmed(retx) || c.lastRelSent+c.probeTimeout(c.lastRelSent) > t {
		return
	}
	for i := range c.lanes {
		l := &c.lanes[i]
		e := min(l.sentPos, l.ackedBelow+int64(c.cfg.MaxPayload))
		if len(l.acked.s) > 0 {
			e = min(e, l.acked.s[0].b)
		}
		if l.ackedBelow < e {
			l.queueRetx(l.ackedBelow, e)
		}
	}
	c.probes++
	c.st.tailProbes++
	c.lossAt = t
}

// copyTail queues the reliable data of p, just built, to go again in the
// next packet when p is a small tail on a lossy path: nothing else waits
// to be sent (no new data, no retransmission), p carries at most
// tailCopyMax reliable bytes, and lossRate is at least tailCopyLoss. A
// lost tail is otherwise repaired only by the tail-loss probe, a probe
// timeout later (and a lost probe after another): at 10% loss each way a
// request-response exchange loses its request or its reply in one round
// in five, and two packets in one round in 35, which cost two probe
// timeouts. Each copy is lost on its own, so all copies of a tail are
// lost about as often as one packet is lost that many times. With one
// copy, a round at 10% loss each way still lost both copies of its
// request or of its reply one time in 50, so its 99th percentile was a
// probe timeout; from tailCopy2Loss a tail goes three times, and that is
// one round in 500. The copies go at once, each in a packet of its own
// (a copy is not copied again); the probe's retransmission is a tail
// too, and is copied as well.
func (c *Conn) copyTail(p *sentPkt) {
	if c.tailCopies > 0 {
		if p.segs[0] == c.tailSeg {
			c.tailCopies--
			if c.tailCopies > 0 {
				for _, s := range p.segs {
					c.lanes[s.lane].queueRetx(s.b, s.e)
				}
				c.st.tailCopies++
			}
			return
		}
		// Not the copy: it was not sent (acked first), and this is
		// new data.
		c.tailCopies = 0
	}
	if c.lossRate < tailCopyLoss || c.pendingNew > 0 {
		return
	}
	var n int64
	for _, s := range p.segs {
		n += s.e - s.b
	}
	if n > tailCopyMax {
		return
	}
	for i := range c.lanes {
		if !c.lanes[i].retx.empty() {
			return
		}
	}
	for _, s := range p.segs {
		c.lanes[s.lane].queueRetx(s.b, s.e)
	}
	c.tailCopies, c.tailSeg = 1, p.segs[0]
	if c.lossRate >= tailCopy2Loss {
		c.tailCopies = 2
	}
	c.st.tailCopies++
}

// noteFate feeds lossRate with the fate of a data packet.
func (c *Conn) noteFate(lost bool) {
	x := 0.0
	if lost {
		x = 1
	}
	c.lossRate += (x - c.lossRate) / lossRateGain
}

// lose handles a packet nacked by the peer or timed out: its reliable
// segments are queued for retransmission.
func (c *Conn) lose(p *sentPkt, timeout bool) {
	if p.state != pktInFlight {
		return
	}
	settled := c.settled(p)
	if len(p.segs) > 0 {
		c.relInFlight--
	}
	p.state = pktLost
	for _, s := range p.segs {
		l := &c.lanes[s.lane]
		l.queueRetx(s.b, s.e)
	}
	if !settled {
		c.st.pktsRetransmitted++
	}
	if p.hasData && (!timeout || !settled) {
		c.cc.onLoss()
		c.st.pktsLost++
		c.noteFate(true)
	}
}

// settled reports whether nothing p carried needs sending again: it had no
// reliable data, or all of it was acked since (a copy that another packet
// carried arrived).
func (c *Conn) settled(p *sentPkt) bool {
	for _, s := range p.segs {
		if s.e > c.lanes[s.lane].ackedBelow {
			return false
		}
	}
	return true
}

// relUnacked reports whether any lane has reliable data sent and not acked.
func (c *Conn) relUnacked() bool {
	for i := range c.lanes {
		if c.lanes[i].ackedBelow < c.lanes[i].sentPos {
			return true
		}
	}
	return false
}

// ackPkt handles a packet acked by the peer.
func (c *Conn) ackPkt(p *sentPkt) {
	if p.state == pktAcked {
		return
	}
	if p.state == pktInFlight {
		if p.hasData {
			c.cc.onAck(int(p.size))
			c.st.pktsAcked++
			c.noteFate(false)
		}
		if len(p.segs) > 0 {
			c.relInFlight--
		}
	}
	p.state = pktAcked
	for _, s := range p.segs {
		c.lanes[s.lane].markAcked(s.b, s.e)
	}
}

func (c *Conn) trimInflight() {
	for c.inflight.n > 0 && c.inflight.at(0).state != pktInFlight {
		c.inflight.pop()
	}
}

// fillData appends data segments to the packet being built, retransmissions
// first, then new data of the lanes in priority and weighted-fair order. It
// reports whether it appended any.
func (c *Conn) fillData(limit int) bool {
	n0 := c.enc.Len()
	for _, prio := range c.prioClasses {
		for i := range c.lanes {
			if l := &c.lanes[i]; l.prio == prio && !l.retx.empty() {
				if !c.writeRetx(i, limit) {
					return c.enc.Len() > n0
				}
			}
		}
	}
	for limit-c.enc.Len() > 8 {
		li := c.pickLane()
		if li < 0 {
			break
		}
		l := &c.lanes[li]
		before := c.enc.Len()
		full := c.writeNew(li, limit)
		n := c.enc.Len() - before
		l.vtime += uint64(max(n, 1)) * 65536 / l.weight
		if full || n == 0 {
			break
		}
	}
	return c.enc.Len() > n0
}

// pickLane returns the lane to send new data from: among the lanes of the
// most urgent priority that have sendable data, the one with the smallest
// virtual time; -1 when none has.
func (c *Conn) pickLane() int {
	win := c.relWindowOpen()
	for _, prio := range c.prioClasses {
		best := -1
		for i := range c.lanes {
			l := &c.lanes[i]
			if l.prio != prio || !(l.hasUnrel() || (win && l.endPos > l.sentPos)) {
				continue
			}
			if best < 0 || l.vtime < c.lanes[best].vtime {
				best = i
			}
		}
		if best >= 0 {
			return best
		}
	}
	return -1
}

// maxSegHeader bounds the header of a segment frame plus a lane change.
const maxSegHeader = 16

// selectLane switches the encoder to lane if at least need bytes would then
// remain; it reports whether it did.
func (c *Conn) selectLane(li, limit, need int) bool {
	if limit-c.enc.Len()-c.enc.SelectLaneLen(uint32(li)) < need {
		return false
	}
	c.enc.SelectLane(uint32(li))
	return true
}

func (c *Conn) addSeg(li int, b, e int64) {
	if n := len(c.curSegs); n > 0 && c.curSegs[n-1].lane == int32(li) && c.curSegs[n-1].e == b {
		c.curSegs[n-1].e = e
		return
	}
	c.curSegs = append(c.curSegs, relSeg{int32(li), b, e})
}

// writeRetx appends retransmissions of lane li; it returns false when the
// packet is full.
func (c *Conn) writeRetx(li, limit int) bool {
	l := &c.lanes[li]
	for !l.retx.empty() {
		if !c.selectLane(li, limit, maxSegHeader) {
			return false
		}
		s := l.retx.s[0]
		hdr := c.enc.ReliableLen(s.b, 0, false)
		room := int64(limit - c.enc.Len() - hdr)
		if room <= 0 {
			return false
		}
		n := min(s.e-s.b, room, maxSegmentData, l.contig(s.b))
		c.enc.AppendReliable(s.b, l.stream(s.b, s.b+n), false)
		l.retx.remove(s.b, s.b+n)
		l.retxBytes -= n
		c.addSeg(li, s.b, s.b+n)
		c.st.bytesRetransmitted += n
	}
	return true
}

// writeNew appends new data of lane li: queued unreliable messages first
// (they lose value with age), then the reliable stream. It returns true when
// the packet is full.
func (c *Conn) writeNew(li, limit int) bool {
	l := &c.lanes[li]
	for l.hasUnrel() {
		if !c.selectLane(li, limit, maxSegHeader) {
			return true
		}
		m := &l.uq[l.uhead]
		rem := int(m.size - m.sent)
		hdr := c.enc.UnreliableLen(m.num, int64(m.sent), 0, false)
		room := limit - c.enc.Len() - hdr
		n := min(rem, room, maxSegmentData)
		if n < rem && rem+hdr <= c.cfg.MaxPayload/2 && c.enc.Len() > 0 {
			return true // a small message waits for the next packet rather than split
		}
		if n < 0 || (n == 0 && rem > 0) {
			return true
		}
		off := int(m.off + m.sent)
		c.enc.AppendUnreliable(m.num, int64(m.sent), l.ubuf[off:off+n], n == rem, false)
		m.sent += int32(n)
		c.pendingNew -= n
		if n < rem {
			return true
		}
		l.popUnrel()
	}
	if l.endPos > l.sentPos {
		win := c.relWindowLeft()
		if win <= 0 {
			return false
		}
		if !c.selectLane(li, limit, maxSegHeader) {
			return true
		}
		hdr := c.enc.ReliableLen(l.sentPos, 0, false)
		room := int64(limit - c.enc.Len() - hdr)
		n := min(l.endPos-l.sentPos, room, maxSegmentData, win)
		if n <= 0 {
			return true
		}
		// The ring's end cuts a segment short; the rest goes in the next
		// (fillData comes back to the lane while the packet has room).
		n = min(n, l.contig(l.sentPos))
		b := l.sentPos
		c.enc.AppendReliable(b, l.stream(b, b+n), false)
		l.sentPos += n
		c.pendingNew -= int(n)
		c.addSeg(li, b, b+n)
		return n == room
	}
	return false
}

// onAck processes an ack frame: acked packets release their data, nacked
// ones queue it for retransmission, and the ping reply feeds the RTT.
func (c *Conn) onAck(t int64, f *wire.Frame) error {
	latest := f.AckLatest
	if latest >= c.nextPktNum {
		return protoErr("ack of a packet never sent", nil)
	}
	if latest < c.cfg.FirstPktNum-1 {
		return protoErr("ack below the first packet", nil)
	}
	if p := c.inflight.get(latest); p != nil {
		// A saturated ack delay (GNS writes AckDelayNone, we the value
		// below it) says the peer got packet latest over 2.09 s ago. If
		// we sent it more recently, the ack is a stale one from a
		// receiver that has taken none of our last 65,536 packets (it
		// discards them while its application does not read): its 16-bit
		// latest field wrapped onto a recent packet, and taking it would
		// ack packets the peer discarded. The packet is dropped, as GNS
		// drops an ack of a packet not yet sent.
		if f.AckDelay >= wire.AckDelayNone-1 && t-p.sentAt < int64(wire.AckDelayNone-1)<<wire.AckDelayShift {
			return ErrDiscarded
		}
		if p.state == pktInFlight && f.AckDelay != wire.AckDelayNone {
			d := int64(f.AckDelay) << wire.AckDelayShift
			c.rtt.sample(max(t-p.sentAt-d, 0), t)
			if len(p.segs) > 0 {
				c.ackDelaySample = d
			}
		}
	}
	hi := latest + 1
	for _, b := range f.AckBlocks {
		if b.NumAck > 1<<20 || b.NumNack > 1<<20 {
			return protoErr("ack block count too large", nil)
		}
		ab := hi - int64(b.NumAck)
		nb := ab - int64(b.NumNack)
		if nb < 0 {
			return protoErr("ack range underflow", nil)
		}
		c.ackRange(ab, hi)
		if nb < ab {
			c.nackRange(nb, ab)
			c.lossAt = t
		}
		hi = nb
	}
	if hi > c.minWait {
		c.ackRange(c.minWait, hi)
	}
	if latest > c.minWait {
		c.minWait = latest
		c.probes = 0
	}
	c.trimInflight()
	c.cc.update(t, &c.rtt, &c.pace, c.cfg)
	return nil
}

func (c *Conn) ackRange(b, e int64) {
	r := &c.inflight
	if r.n == 0 {
		return
	}
	first := r.at(0).num
	b, e = max(b, first), min(e, first+int64(r.n))
	for n := b; n < e; n++ {
		c.ackPkt(r.at(int(n - first)))
	}
}

func (c *Conn) nackRange(b, e int64) {
	r := &c.inflight
	if r.n == 0 {
		return
	}
	first := r.at(0).num
	b, e = max(b, first), min(e, first+int64(r.n))
	for n := b; n < e; n++ {
		c.lose(r.at(int(n-first)), false)
	}
}

// notePeerAckDelay learns how long the peer holds its ack of reliable data
// (the delay its ack-only packets report for a packet of reliable data):
// a moving average (gain 1/8). An average, not a maximum: a probe that
// comes before a late ack costs one packet (the peer acks what it had at
// once), while waiting for the longest delay ever seen delays every repair.
func (c *Conn) notePeerAckDelay(d int64) {
	c.peerAckDelay += (d - c.peerAckDelay) / 8
}
