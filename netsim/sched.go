package netsim

import (
	"net/netip"
	"time"

	"github.com/netmsg-go/netmsg/transport"
)

// datagram is a copy of a datagram in flight or in a receive queue.
type datagram struct {
	b     []byte
	from  netip.AddrPort
	l     *link         // its direction, for counting
	at    time.Duration // delivery time, since Network.epoch
	order uint64        // tie-break among equal at: the order of scheduling
}

func (n *Network) getDatagram(b []byte, from netip.AddrPort, l *link) *datagram {
	d := n.pool.Get().(*datagram)
	d.b = append(d.b[:0], b...)
	d.from = from
	d.l = l
	return d
}

func (n *Network) putDatagram(d *datagram) {
	if cap(d.b) > 4*transport.MaxDatagram {
		return // do not keep rare huge buffers
	}
	d.l = nil
	n.pool.Put(d)
}

// sendLocked applies the conditions of l to datagram b written at now, and
// delivers or schedules it (and its copy, if duplicated).
func (n *Network) sendLocked(l *link, b []byte, now time.Duration) {
	if l.cfgGen != n.cfgGen {
		l.cfg = n.lookupLocked(l.linkKey)
		l.cfgGen = n.cfgGen
	}
	c := l.cfg
	st := &l.stats
	seq := st.Sent
	st.Sent++
	st.SentBytes += uint64(len(b))

	mtu := c.MTU
	if mtu <= 0 || mtu > maxUDPPayload {
		mtu = maxUDPPayload
	}
	if len(b) > mtu {
		st.DroppedMTU++
		return
	}
	if c.Drop != nil && c.Drop(seq, b) {
		st.DroppedFilter++
		return
	}
	if c.LossPercent > 0 && l.rng.Float64()*100 < c.LossPercent {
		st.DroppedLoss++
		return
	}

	at := now
	if c.Rate > 0 {
		start := max(now, l.busyUntil)
		q := c.QueueBytes
		if q == 0 {
			q = DefaultQueueBytes
		}
		backlog := float64(start-now) * float64(c.Rate) / float64(time.Second)
		if backlog+float64(len(b)) > float64(q) {
			st.DroppedQueue++
			return
		}
		tx := (int64(len(b))*int64(time.Second) + c.Rate - 1) / c.Rate
		l.busyUntil = start + time.Duration(tx)
		at = l.busyUntil
	}
	at += c.Delay

	first := at
	if c.Jitter > 0 {
		first += time.Duration(l.rng.Int64N(int64(c.Jitter) + 1))
	}
	if c.ReorderPercent > 0 && l.rng.Float64()*100 < c.ReorderPercent {
		st.Reordered++
		rd := c.ReorderDelay
		if rd == 0 {
			rd = DefaultReorderDelay
		}
		first += rd
	}
	n.scheduleLocked(n.getDatagram(b, l.from, l), first, now)

	if c.DuplicatePercent > 0 && l.rng.Float64()*100 < c.DuplicatePercent {
		st.Duplicated++
		second := at
		if c.Jitter > 0 {
			second += time.Duration(l.rng.Int64N(int64(c.Jitter) + 1))
		}
		n.scheduleLocked(n.getDatagram(b, l.from, l), second, now)
	}
}

// scheduleLocked delivers d at once if it is due now and nothing due is
// waiting before it, else puts it in the heap and makes sure the timer
// fires by its delivery time.
func (n *Network) scheduleLocked(d *datagram, at, now time.Duration) {
	if at <= now && (len(n.sched) == 0 || n.sched[0].at > now) {
		n.deliverLocked(d)
		return
	}
	d.at = at
	d.order = n.order
	n.order++
	n.sched.Push(d)
	if !n.armed || at < n.armedAt {
		n.armed = true
		n.armedAt = at
		n.timer.Reset(max(at-now, 0))
	}
}

// deliverLocked puts d into its destination's receive queue, or drops it.
func (n *Network) deliverLocked(d *datagram) {
	st := &d.l.stats
	to := d.l.to
	if len(n.nats) > 0 {
		var ok bool
		if to, ok = n.natInLocked(d.from, to, n.now()); !ok {
			st.DroppedNAT++
			n.putDatagram(d)
			return
		}
	}
	e := n.endpoints[to]
	if e == nil {
		st.DroppedUnreachable++
		n.putDatagram(d)
		return
	}
	size := uint64(len(d.b))
	select {
	case e.q <- d:
		st.Delivered++
		st.DeliveredBytes += size
	default:
		st.DroppedRecvQueue++
		n.putDatagram(d)
	}
}

// fire is the timer callback: it delivers every datagram that is due and
// sets the timer for the next one.
//
// The timer may fire more often than needed (a Reset that raced with a
// firing); a firing with nothing due only sets the timer again. It can never
// fire too late: whoever pushes a datagram earlier than armedAt, or finds
// the timer unarmed, sets it, and fire sets it for the earliest datagram
// left.
func (n *Network) fire() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return
	}
	now := n.now()
	for len(n.sched) > 0 && n.sched[0].at <= now {
		n.deliverLocked(n.sched.Pop())
	}
	n.armed = false
	if len(n.sched) > 0 {
		next := n.sched[0].at
		n.armed = true
		n.armedAt = next
		n.timer.Reset(next - now)
	}
}

// SchedKey orders datagrams in the scheduling heap.
func (d *datagram) SchedKey() (time.Duration, uint64) { return d.at, d.order }
