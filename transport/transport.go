// Package transport defines the small packet interface that every place a
// netmsg packet can travel implements: a real UDP socket, an ICE path, a TURN
// relay, or the in-memory network of package netsim.
//
// The interface is batch-oriented, so an implementation can use
// recvmmsg/sendmmsg (or GSO/GRO) where the platform has them, and a simple
// loop where it does not. Protocol code above it never knows which one it
// runs on.
package transport

import (
	"errors"
	"net/netip"
)

// MaxDatagram is the largest datagram any PacketConn is asked to carry or
// must be able to receive into a buffer. It is larger than every MTU netmsg
// uses (GNS's largest UDP payload is 1300 bytes plus headers) and smaller
// than the 64 KiB a UDP datagram can hold, so receive buffers stay small.
const MaxDatagram = 2048

// ErrClosed is returned by ReadBatch and WriteBatch after Close.
var ErrClosed = errors.New("transport: connection closed")

// ErrInterrupted is returned by the ReadBatch of a ReadInterrupter that
// InterruptRead ended (or that began after an InterruptRead no ReadBatch
// had yet returned for).
var ErrInterrupted = errors.New("transport: read interrupted")

// Packet is one datagram in a batch.
//
// For WriteBatch, Buf[:N] is the datagram and Addr its destination. For
// ReadBatch, the caller provides Buf (of at least MaxDatagram bytes for the
// datagram not to be truncated); the implementation sets N to the datagram's
// length and Addr to its source.
type Packet struct {
	Buf  []byte
	N    int
	Addr netip.AddrPort
}

// Bytes returns the datagram, Buf[:N].
func (p *Packet) Bytes() []byte { return p.Buf[:p.N] }

// PacketConn is an unreliable datagram endpoint.
//
// ReadBatch may be called by one goroutine at a time and WriteBatch by one
// goroutine at a time; the two may run concurrently with each other and with
// Close. Close unblocks a pending ReadBatch, which then returns ErrClosed.
type PacketConn interface {
	// ReadBatch blocks until at least one datagram has arrived, fills
	// pkts[0:n] and returns n >= 1. A datagram longer than its Buf is
	// truncated to len(Buf) (UDP semantics). It returns ErrClosed after
	// Close.
	ReadBatch(pkts []Packet) (n int, err error)

	// WriteBatch sends pkts[i].Buf[:pkts[i].N] to pkts[i].Addr for each i,
	// in order, and returns how many were handed to the network. A datagram
	// may still be lost afterwards; that is not an error. It does not keep
	// any Buf after it returns.
	WriteBatch(pkts []Packet) (n int, err error)

	// LocalAddr is the address peers send to in order to reach this
	// endpoint.
	LocalAddr() netip.AddrPort

	// Close releases the endpoint. It is safe to call more than once.
	Close() error
}

// ReadInterrupter is implemented by a PacketConn whose blocked ReadBatch
// another goroutine can end, so that the role of reading can pass between
// goroutines (a Host lets a goroutine waiting for a message read the
// socket itself, and takes the role back when it is done).
//
// InterruptRead makes the ReadBatch in progress, or else the next one,
// return 0, ErrInterrupted; when datagrams are ready, that ReadBatch may
// return them instead, and then the next one returns ErrInterrupted. No
// datagram is lost to an interrupt: one not returned stays to be read. A
// ReadBatch may return ErrInterrupted once more for an InterruptRead an
// earlier one already answered, so a reader takes ErrInterrupted as a
// prompt to look at why it might have been interrupted, not as a count.
// InterruptRead may be called from any goroutine, concurrently with
// ReadBatch, and does not block.
type ReadInterrupter interface {
	InterruptRead()
}
