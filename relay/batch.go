package relay

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netmsg-go/netmsg/internal/udp"
	"github.com/netmsg-go/netmsg/transport"
)

// pion's server reads each socket one datagram at a time and writes each
// datagram it relays with a system call of its own: its read loop reads
// the server's socket and writes to relayed sockets, each allocation's
// goroutine reads its relayed socket and writes to the server's socket.
// The Server gives pion its UDP sockets wrapped in batchConns instead:
// a read takes what one recvmmsg call returned (several datagrams under
// load, coalesced ones split), and the writes a reader makes while it
// handles them wait in the destination socket's batch, sent with one
// sendmmsg (UDP GSO where the kernel has it) when that reader is about to
// read again, or when the batch is full. So a busy relay makes a few
// system calls per batch of datagrams instead of two per datagram, and
// an idle one sends each datagram before its reader waits for the next.

// Batch sizes, in datagrams, and GRO buffers (64 KiB each; 0: GRO off).
// The server's socket reads as a Host's does (GRO on: a read takes up to
// serverGRO datagrams, or more when coalesced). A relayed socket reads up
// to relayedBatch datagrams a call without GRO (datagrams from peers
// across a network seldom arrive coalesced) and holds relayedBatch * 2 *
// transport.MaxDatagram (64 KiB) of buffers per allocation.
const (
	serverBatch  = 64
	serverGRO    = 8
	relayedBatch = 16
	relayedGRO   = 0
)

// batching is what a Server's batchConns share: how many readers are
// handling datagrams they read, and the sockets whose batches wait for
// one of them to be done.
type batching struct {
	mu    sync.Mutex
	busy  int          // readers holding a read batch
	dirty []*batchConn // sockets with datagrams waiting; each once
}

// hold counts a reader that has datagrams to hand out.
func (b *batching) hold() {
	b.mu.Lock()
	b.busy++
	b.mu.Unlock()
}

// release is called by a reader that has handed out all it read: it stops
// counting it and sends every batch waiting (list is the caller's scratch
// space, returned for reuse). A write made while no reader holds a batch
// is sent by its writer (batchConn.WriteTo), so none waits for a reader
// that will not come.
func (b *batching) release(list []*batchConn) []*batchConn {
	b.mu.Lock()
	b.busy--
	list = append(list[:0], b.dirty...)
	clear(b.dirty)
	b.dirty = b.dirty[:0]
	for _, c := range list {
		c.dirty.Store(false)
	}
	b.mu.Unlock()
	for i, c := range list {
		c.flush()
		list[i] = nil
	}
	return list
}

// batchConn is one of a Server's UDP sockets as pion sees it (a
// net.PacketConn), reading and writing in batches (see above). Reads come
// from one goroutine at a time; writes from any.
type batchConn struct {
	b  *batching
	uc *net.UDPConn
	c  *udp.Conn

	// Guarded by rmu: the read side.
	rmu      sync.Mutex
	in       []transport.Packet
	n, next  int // in[next:n] are still to be handed out
	flushing []*batchConn
	lastAP   netip.AddrPort // the source address last handed out, and its net form
	lastUDP  *net.UDPAddr
	holding  atomic.Bool // counted in b.busy

	// inbox holds the datagrams other allocations of this server relayed
	// to this socket without the network (Server.relayLocal).
	inbox struct {
		sync.Mutex
		q       []transport.Packet
		free    [][]byte
		waiting bool // the reader reads the socket, or is about to
		woken   bool // inject set a past read deadline to end that read
		closed  bool
		taken   uint64 // datagrams taken since the start
	}
	lastInbox bool // guarded by rmu: the last batch came from the inbox
	// forward, set on the server's socket before its first read, takes
	// the datagrams the Server relays itself (Server.forward) and reports
	// whether it did; ReadFrom returns the others.
	forward func(b []byte, from netip.AddrPort) bool

	// Guarded by wmu: the write side.
	wmu    sync.Mutex
	out    []transport.Packet // out[:nOut] wait to be sent
	nOut   int
	dirty  atomic.Bool // in b.dirty
	closed atomic.Bool
}

// newBatchConn wraps uc, which it then owns, with batch reads of batch
// datagrams, coalesced ones (UDP GRO) read into gro buffers. If uc
// cannot be wrapped it returns nil and uc is left as it was.
func newBatchConn(b *batching, uc *net.UDPConn, batch, gro int) *batchConn {
	// The socket buffers were set by setBuffers: keep them.
	c, err := udp.New(uc, udp.Options{ReadBuffer: -1, WriteBuffer: -1, BatchSize: batch, DisableGRO: gro == 0, GROBuffers: gro})
	if err != nil {
		return nil
	}
	bc := &batchConn{b: b, uc: uc, c: c, in: make([]transport.Packet, batch), out: make([]transport.Packet, batch)}
	buf := make([]byte, 2*batch*transport.MaxDatagram)
	for i := range bc.in {
		bc.in[i].Buf = buf[:transport.MaxDatagram:transport.MaxDatagram]
		buf = buf[transport.MaxDatagram:]
	}
	for i := range bc.out {
		bc.out[i].Buf = buf[:transport.MaxDatagram:transport.MaxDatagram]
		buf = buf[transport.MaxDatagram:]
	}
	return bc
}

// ReadFrom returns the next datagram read that forward did not take.
// Before it reads the socket again it sends the batches its caller's
// writes (and forward's) filled. Datagrams from the inbox and from the
// socket take turns while both have some.
func (c *batchConn) ReadFrom(p []byte) (int, net.Addr, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		pk, err := c.nextLocked()
		if err != nil {
			return 0, nil, err
		}
		if c.forward != nil && c.forward(pk.Bytes(), pk.Addr) {
			continue
		}
		n := copy(p, pk.Bytes())
		if pk.Addr != c.lastAP || c.lastUDP == nil {
			// pion keeps the address it is given (an allocation's client):
			// a new one each time it changes, never one written to.
			c.lastAP, c.lastUDP = pk.Addr, net.UDPAddrFromAddrPort(pk.Addr)
		}
		return n, c.lastUDP, nil
	}
}

// nextLocked returns the next datagram, read from the inbox or the socket
// when those read before are handed out. rmu is held.
func (c *batchConn) nextLocked() (*transport.Packet, error) {
	for c.next == c.n {
		if c.holding.CompareAndSwap(true, false) {
			c.flushing = c.b.release(c.flushing)
		}
		if !c.lastInbox || !socketHasData(c.uc) {
			if n := c.takeInbox(); n > 0 {
				c.n, c.next, c.lastInbox = n, 0, true
				break
			}
		}
		// takeInbox found none and set inbox.waiting, or the socket has
		// datagrams.
		n, err := c.c.ReadBatch(c.in)
		woken := c.doneWaiting()
		if err != nil {
			if errors.Is(err, transport.ErrClosed) {
				return nil, net.ErrClosed
			}
			if woken && errors.Is(err, os.ErrDeadlineExceeded) {
				continue // the inbox has datagrams
			}
			return nil, err
		}
		c.n, c.next, c.lastInbox = n, 0, false
	}
	if !c.holding.Load() {
		c.holding.Store(true)
		c.b.hold()
	}
	pk := &c.in[c.next]
	c.next++
	return pk, nil
}

// inboxMax bounds a socket's inbox, in datagrams (as many bytes as
// DefaultSocketBuffer at most); more are dropped, as a full socket buffer
// drops them. inboxSpare bounds the buffers an inbox keeps for reuse.
const (
	inboxMax   = 2048
	inboxSpare = 2 * relayedBatch
)

// inject puts a copy of b, from the relayed address from, in the inbox and
// wakes the reader if it waits on the socket. It reports whether b was
// taken (false: too long, the inbox is full, or the socket closed).
func (c *batchConn) inject(b []byte, from netip.AddrPort) bool {
	if len(b) > transport.MaxDatagram {
		return false
	}
	ib := &c.inbox
	ib.Lock()
	defer ib.Unlock()
	if ib.closed || len(ib.q) >= inboxMax {
		return false
	}
	var buf []byte
	if k := len(ib.free); k > 0 {
		buf, ib.free = ib.free[k-1], ib.free[:k-1]
	} else {
		buf = make([]byte, transport.MaxDatagram)
	}
	ib.q = append(ib.q, transport.Packet{Buf: buf, N: copy(buf, b), Addr: from})
	ib.taken++
	if ib.waiting && !ib.woken {
		ib.woken = true
		_ = c.uc.SetReadDeadline(time.Unix(1, 0))
	}
	return true
}

// takeInbox moves up to len(c.in) datagrams of the inbox to c.in
// (swapping buffers) and returns how many; with none, it marks the reader
// as waiting on the socket. rmu is held.
func (c *batchConn) takeInbox() int {
	ib := &c.inbox
	ib.Lock()
	defer ib.Unlock()
	n := min(len(ib.q), len(c.in))
	if n == 0 {
		ib.waiting = true
		return 0
	}
	for i := range n {
		q := &ib.q[i]
		ib.free = append(ib.free, c.in[i].Buf)
		c.in[i] = transport.Packet{Buf: q.Buf, N: q.N, Addr: q.Addr}
		*q = transport.Packet{}
	}
	rest := copy(ib.q, ib.q[n:])
	clear(ib.q[rest:])
	ib.q = ib.q[:rest]
	if len(ib.free) > inboxSpare {
		clear(ib.free[inboxSpare:])
		ib.free = ib.free[:inboxSpare]
	}
	return n
}

// doneWaiting ends the reader's wait on the socket; it reports whether
// inject cut it short (the read deadline it set is cleared).
func (c *batchConn) doneWaiting() bool {
	ib := &c.inbox
	ib.Lock()
	defer ib.Unlock()
	ib.waiting = false
	if !ib.woken {
		return false
	}
	ib.woken = false
	_ = c.uc.SetReadDeadline(time.Time{})
	return true
}

// WriteTo puts p in the socket's batch (a copy), sent when the reader
// whose handling wrote it reads again, when the batch is full, or at
// once when no reader holds datagrams. Send errors are counted by the
// socket (internal/udp), not returned, as a network loses datagrams.
func (c *batchConn) WriteTo(p []byte, addr net.Addr) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	to, ok := addrPort(addr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Addr: addr, Err: net.InvalidAddrError("not a UDP address")}
	}
	return c.write(to, nil, p)
}

// writeChannelData writes data to a client as ChannelData on channel num,
// as WriteTo writes a datagram.
func (c *batchConn) writeChannelData(num uint16, data []byte, to netip.AddrPort) {
	if c.closed.Load() {
		return
	}
	var h [4]byte
	binary.BigEndian.PutUint16(h[:], num)
	binary.BigEndian.PutUint16(h[2:], uint16(len(data)))
	c.write(to, h[:], data)
}

// write is WriteTo of the datagram hdr followed by p.
func (c *batchConn) write(to netip.AddrPort, hdr, p []byte) (int, error) {
	c.wmu.Lock()
	if len(hdr)+len(p) > transport.MaxDatagram {
		if len(hdr) > 0 {
			p = append(append(make([]byte, 0, len(hdr)+len(p)), hdr...), p...)
		}
		// Larger than a batch buffer (no relayed datagram is: pion reads
		// at most 1600 bytes): after those waiting, on its own.
		c.writeLocked()
		_, err := c.c.WriteBatch([]transport.Packet{{Buf: p, N: len(p), Addr: to}})
		c.wmu.Unlock()
		if err != nil {
			return 0, net.ErrClosed
		}
		return len(p), nil
	}
	pk := &c.out[c.nOut]
	n := copy(pk.Buf, hdr)
	pk.N, pk.Addr = n+copy(pk.Buf[n:], p), to
	c.nOut++
	if c.nOut == len(c.out) {
		c.writeLocked()
	}
	c.wmu.Unlock()
	if c.dirty.Load() {
		return len(p), nil // a reader's release sends it
	}
	c.b.mu.Lock()
	if c.b.busy == 0 {
		c.b.mu.Unlock()
		c.flush()
		return len(p), nil
	}
	if !c.dirty.Swap(true) {
		c.b.dirty = append(c.b.dirty, c)
	}
	c.b.mu.Unlock()
	return len(p), nil
}

// flush sends the datagrams waiting.
func (c *batchConn) flush() {
	c.wmu.Lock()
	c.writeLocked()
	c.wmu.Unlock()
}

// writeLocked sends out[:nOut]; wmu is held.
func (c *batchConn) writeLocked() {
	if c.nOut == 0 {
		return
	}
	c.c.WriteBatch(c.out[:c.nOut])
	for i := range c.out[:c.nOut] {
		c.out[i].N = 0
	}
	c.nOut = 0
}

// Close closes the socket; a reader waiting returns net.ErrClosed. A
// batch its reader held is released (its writes sent) so that writers
// do not wait for it.
func (c *batchConn) Close() error {
	c.closed.Store(true)
	c.inbox.Lock()
	c.inbox.closed = true
	c.inbox.q, c.inbox.free = nil, nil
	c.inbox.Unlock()
	err := c.c.Close()
	if c.holding.CompareAndSwap(true, false) {
		c.b.release(nil)
	}
	return err
}

// LocalAddr is the socket's address.
func (c *batchConn) LocalAddr() net.Addr { return c.uc.LocalAddr() }

// SetDeadline and SetReadDeadline set the socket's deadlines; inject uses
// the read deadline to wake the reader and clears it afterwards (pion
// sets none on UDP sockets).
func (c *batchConn) SetDeadline(t time.Time) error      { return c.uc.SetDeadline(t) }
func (c *batchConn) SetReadDeadline(t time.Time) error  { return c.uc.SetReadDeadline(t) }
func (c *batchConn) SetWriteDeadline(t time.Time) error { return c.uc.SetWriteDeadline(t) }

// addrPort is a's address and port, IPv4 in IPv4 form.
func addrPort(a net.Addr) (netip.AddrPort, bool) {
	var ap netip.AddrPort
	if u, ok := a.(*net.UDPAddr); ok {
		ap = u.AddrPort()
	} else {
		var err error
		if ap, err = netip.ParseAddrPort(a.String()); err != nil {
			return netip.AddrPort{}, false
		}
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), ap.IsValid()
}

// batched returns pc wrapped in a batchConn when it is a UDP socket of the
// net package, else pc.
func batched(b *batching, pc net.PacketConn, batch, gro int) net.PacketConn {
	uc, ok := pc.(*net.UDPConn)
	if !ok {
		return pc
	}
	if bc := newBatchConn(b, uc, batch, gro); bc != nil {
		return bc
	}
	return pc
}
