package netsim

import (
	"net/netip"
	"sync"
	"time"

	"github.com/netmsg-go/netmsg/transport"
)

// Endpoint is one address on a Network; it implements transport.PacketConn.
// Create it with Network.Listen.
//
// As the interface says, ReadBatch may be called by one goroutine at a time
// and WriteBatch by one goroutine at a time; they may run concurrently with
// each other, with Close and with any method of the Network. (Concurrent
// WriteBatch calls are safe too, but then the order of their datagrams, and
// so the random choices made for them, is not reproducible.)
type Endpoint struct {
	n    *Network
	addr netip.AddrPort
	q    chan *datagram // receive queue
	done chan struct{}  // closed by Close
	intr chan struct{}  // InterruptRead's signal (capacity 1)

	closeOnce sync.Once

	// Guarded by Network.mu.
	closed   bool
	lastLink *link                   // the direction of the last datagram written, a cache
	groups   map[netip.Addr]struct{} // multicast groups joined (group.go)
}

var (
	_ transport.PacketConn      = (*Endpoint)(nil)
	_ transport.ReadInterrupter = (*Endpoint)(nil)
)

// InterruptRead makes the pending ReadBatch, or the next one, return
// transport.ErrInterrupted unless it has a datagram to return (see
// transport.ReadInterrupter).
func (e *Endpoint) InterruptRead() {
	select {
	case e.intr <- struct{}{}:
	default:
	}
}

// LocalAddr returns the endpoint's address.
func (e *Endpoint) LocalAddr() netip.AddrPort { return e.addr }

// ReadBatch blocks until at least one datagram is in the receive queue, then
// moves up to len(pkts) datagrams out of it, without blocking for more. For
// each it copies the datagram into Buf (truncating it to len(Buf)), sets N
// to the number of bytes copied and Addr to the sender's address. It
// returns transport.ErrClosed once the endpoint or its Network is closed,
// even if datagrams are still queued, and transport.ErrInterrupted when
// InterruptRead ended its wait. With len(pkts) == 0 it returns 0, nil
// at once.
//
// A goroutine blocked in ReadBatch is durably blocked in the sense of
// testing/synctest.
func (e *Endpoint) ReadBatch(pkts []transport.Packet) (int, error) {
	if len(pkts) == 0 {
		return 0, nil
	}
	select {
	case <-e.done:
		return 0, transport.ErrClosed
	default:
	}
	var d *datagram
	select {
	case d = <-e.q:
	default:
		select {
		case d = <-e.q:
		case <-e.intr:
			return 0, transport.ErrInterrupted
		case <-e.done:
			return 0, transport.ErrClosed
		}
	}
	n := 0
	for {
		p := &pkts[n]
		p.N = copy(p.Buf, d.b)
		p.Addr = d.from
		e.n.putDatagram(d)
		n++
		if n == len(pkts) {
			return n, nil
		}
		select {
		case d = <-e.q:
		default:
			return n, nil
		}
	}
}

// WriteBatch sends each datagram pkts[i].Buf[:pkts[i].N] to pkts[i].Addr,
// in order, and returns len(pkts); a datagram to a multicast group or to
// LimitedBroadcast goes to every receiver Endpoint.JoinGroup describes.
// The datagrams are copied before it
// returns. What happens to each is decided at once by the direction's
// conditions (see LinkConfig) and counted in its Stats; a datagram to an
// address where no endpoint is open when it arrives is dropped and counted
// in DroppedUnreachable. WriteBatch never blocks on the network: a full
// queue drops datagrams. It returns 0, transport.ErrClosed after Close.
func (e *Endpoint) WriteBatch(pkts []transport.Packet) (int, error) {
	n := e.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if e.closed {
		return 0, transport.ErrClosed
	}
	now := n.now()
	for i := range pkts {
		p := &pkts[i]
		if isFanout(p.Addr) {
			for _, to := range n.fanoutLocked(e.addr, p.Addr) {
				e.sendToLocked(to, p.Buf[:p.N], now)
			}
			continue
		}
		e.sendToLocked(p.Addr, p.Buf[:p.N], now)
	}
	return len(pkts), nil
}

// sendToLocked sends b from e to the address to.
func (e *Endpoint) sendToLocked(to netip.AddrPort, b []byte, now time.Duration) {
	n := e.n
	src := e.addr
	if len(n.nats) > 0 {
		var ok bool
		if src, ok = n.natOutLocked(e.addr, to, now); !ok {
			return // a NAT without hairpinning, or out of ports
		}
	}
	l := e.lastLink
	if l == nil || l.to != to || l.from != src {
		l = n.linkLocked(linkKey{src, to})
		e.lastLink = l
	}
	n.sendLocked(l, b, now)
}

// Stats returns the counters of the traffic the endpoint sent (the sum over
// the directions from its address) and of the traffic sent to it (the sum
// over the directions to its address, including datagrams dropped before
// they reached it).
func (e *Endpoint) Stats() (sent, received Stats) {
	n := e.n
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, l := range n.links {
		if k.from == e.addr {
			sent.add(&l.stats)
		}
		if k.to == e.addr {
			received.add(&l.stats)
		}
	}
	return sent, received
}

// Close closes the endpoint: a pending ReadBatch returns
// transport.ErrClosed, later calls of ReadBatch and WriteBatch return it
// too, datagrams still queued are discarded (they were counted as
// Delivered), and datagrams arriving later are dropped as unreachable. The
// address becomes free for Listen. Close is safe to call more than once
// and concurrently with the other methods; it always returns nil.
func (e *Endpoint) Close() error {
	n := e.n
	n.mu.Lock()
	if !e.closed {
		e.closed = true
		e.lastLink = nil
		if n.endpoints[e.addr] == e {
			delete(n.endpoints, e.addr)
		}
	}
	n.mu.Unlock()
	e.closeOnce.Do(func() { close(e.done) })
	return nil
}
