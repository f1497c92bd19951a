// Package udp is the real UDP transport: a socket that implements
// transport.PacketConn with batched socket I/O.
//
// On Linux a Conn reads with recvmmsg(2) and writes with sendmmsg(2), up to
// Options.BatchSize datagrams per system call, and, where the kernel has it,
// sends runs of same-size datagrams to one destination as one UDP GSO
// super-datagram (UDP_SEGMENT); and it turns UDP GRO on (UDP_GRO), so the
// kernel may hand it several datagrams of one flow in one read, which it
// splits back into Packets (see Options.DisableGRO). Elsewhere, and on
// Linux when Options.DisableBatch is set or the kernel lacks
// recvmmsg/sendmmsg, a Conn reads and writes one datagram per system call.
//
// # Buffers
//
// ReadBatch fills the caller's Bufs and WriteBatch reads them; neither
// keeps a Buf after it returns. Give ReadBatch Bufs of
// transport.MaxDatagram bytes, and as many Packets as BatchSize (64) to
// get whole batches. With GRO on, datagrams read but not yet returned
// (those of a coalesced read that did not fit in pkts) wait inside the
// Conn for the next ReadBatch. WriteBatch groups for GSO only consecutive
// Packets with the same Addr and the same N (the last of a run may be
// shorter): to benefit, put a peer's datagrams next to each other, full
// ones first.
//
// The send path applies back-pressure: WriteBatch blocks while the socket
// send buffer is full. Nothing does on receive: datagrams that arrive
// while the receive buffer is full are dropped by the kernel (on the Linux
// batch path Stats.RecvDropped says how many).
//
// # Errors
//
// A UDP send can fail for one datagram while the socket stays usable
// (ECONNREFUSED after an ICMP port unreachable, ENOBUFS, EHOSTUNREACH,
// ENETUNREACH, EPERM from a firewall, EMSGSIZE, a destination of the wrong
// address family). WriteBatch sends such a datagram once more (the error
// may be an earlier datagram's, see Stats), then drops it as the network
// would, counts it in Stats.SendErrors (and records the error in
// Stats.LastSendError) and goes on with the rest of the batch. WriteBatch
// and ReadBatch return an error only when the Conn is closed
// (transport.ErrClosed) or the socket is unusable.
//
// A datagram longer than the Buf it is read into is truncated to len(Buf),
// as UDP does, and counted in Stats.Truncated.
//
// # Concurrency
//
// As transport.PacketConn says: ReadBatch may be called by one goroutine at
// a time and WriteBatch by one goroutine at a time; they may run
// concurrently with each other and with Close, Stats, Info and LocalAddr.
// A Conn starts no goroutine.
package udp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netmsg-go/netmsg/transport"
)

// Tuning constants (ours, not from any protocol).
const (
	// DefaultBatchSize is the number of datagrams a Conn moves per
	// recvmmsg/sendmmsg call when Options.BatchSize is zero. 64 is where
	// the raw figures of ../shared/BENCH.md stop improving on this machine.
	DefaultBatchSize = 64

	// MaxBatchSize bounds Options.BatchSize: it is UIO_MAXIOV, the most
	// messages Linux takes in one recvmmsg/sendmmsg call.
	MaxBatchSize = 1024

	// DefaultSocketBuffer is the SO_SNDBUF a Conn asks for when
	// Options.WriteBuffer is zero: 4 MiB.
	DefaultSocketBuffer = 4 << 20

	// DefaultReadBuffer is the SO_RCVBUF a Conn asks for when
	// Options.ReadBuffer is zero: 16 MiB, about 13,000 datagrams of 1200
	// bytes. A reader that falls behind a sender at full rate then holds
	// the backlog long enough for the sender's rate control to see its
	// delay (snp's 25 ms queuing-delay target) before the buffer
	// overflows: with 4 MiB, 64-byte unreliable messages at 3M a second
	// (W5) filled it in 19 ms, and 3-4% were lost. The kernel takes the
	// memory only as datagrams wait; past net.core.rmem_max it needs
	// CAP_NET_ADMIN (SO_RCVBUFFORCE).
	DefaultReadBuffer = 16 << 20

	// DefaultGROBuffers is the number of 64 KiB buffers a Conn reads into
	// per recvmmsg call when UDP GRO is on and Options.GROBuffers is zero.
	DefaultGROBuffers = 8
)

// ErrInvalidOptions is wrapped by the error Listen and New return for an
// Options value out of range.
var ErrInvalidOptions = errors.New("udp: invalid options")

// Options configures a Conn. The zero value is valid and gives the defaults.
type Options struct {
	// ReadBuffer is the receive buffer (SO_RCVBUF) to ask the kernel for,
	// in bytes. Zero means DefaultReadBuffer; negative means leave the
	// system default. On Linux a Conn first tries SO_RCVBUFFORCE, which
	// passes net.core.rmem_max when the process has CAP_NET_ADMIN, then
	// SO_RCVBUF. Info.ReadBuffer says what the kernel granted.
	ReadBuffer int

	// WriteBuffer is the same for the send buffer (SO_SNDBUF,
	// SO_SNDBUFFORCE, net.core.wmem_max).
	WriteBuffer int

	// BatchSize is the most datagrams moved per recvmmsg or sendmmsg
	// message array, 1 to MaxBatchSize. Zero means DefaultBatchSize. It
	// sizes the arrays a Conn keeps; a ReadBatch or WriteBatch with more
	// packets is served in several system calls.
	BatchSize int

	// DisableBatch makes the Conn use the portable path (one datagram per
	// system call) even where recvmmsg/sendmmsg exist. For tests and
	// comparisons.
	DisableBatch bool

	// DisableGSO turns off UDP generic segmentation offload on send. GSO is
	// used by default where the kernel has it (Linux 4.18 and later).
	DisableGSO bool

	// DisableGRO turns off UDP generic receive offload. GRO is used by
	// default where the kernel has it (Linux 5.0 and later): the kernel
	// may hand several datagrams of one flow to one read (on loopback,
	// the super-datagrams of a GSO sender stay whole), which the Conn
	// splits back into Packets. Each read then goes into an internal 64
	// KiB buffer and is copied into the caller's Bufs, and the Conn holds
	// GROBuffers * 64 KiB of buffers. On this project's 2-core test
	// machine GRO more than triples the datagrams/s a receiver takes from
	// a GSO sender on loopback (see bench_test.go).
	DisableGRO bool

	// GROBuffers is the number of 64 KiB buffers read per recvmmsg call
	// when GRO is on, so also the most datagrams one call reads when none
	// are coalesced. Zero means DefaultGROBuffers.
	GROBuffers int
}

// fill returns o with defaults filled in, or an error wrapping
// ErrInvalidOptions.
func (o Options) fill() (Options, error) {
	if o.BatchSize < 0 || o.BatchSize > MaxBatchSize {
		return o, fmt.Errorf("%w: BatchSize %d", ErrInvalidOptions, o.BatchSize)
	}
	if o.GROBuffers < 0 || o.GROBuffers > MaxBatchSize {
		return o, fmt.Errorf("%w: GROBuffers %d", ErrInvalidOptions, o.GROBuffers)
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if o.GROBuffers == 0 {
		o.GROBuffers = DefaultGROBuffers
	}
	if o.ReadBuffer == 0 {
		o.ReadBuffer = DefaultReadBuffer
	}
	if o.WriteBuffer == 0 {
		o.WriteBuffer = DefaultSocketBuffer
	}
	return o, nil
}

// Info describes what a Conn found the system to support when it was
// created.
type Info struct {
	Batch       bool // recvmmsg/sendmmsg in use
	GSO         bool // UDP GSO on send (false once the kernel has refused it)
	GRO         bool // UDP GRO on receive
	ReadBuffer  int  // SO_RCVBUF as the kernel reports it (Linux doubles the request for its bookkeeping); 0 if unknown
	WriteBuffer int  // SO_SNDBUF, likewise
}

// Stats counts a Conn's traffic since it was created.
type Stats struct {
	DatagramsIn  uint64 // datagrams returned by ReadBatch
	BytesIn      uint64 // their bytes (after truncation)
	DatagramsOut uint64 // datagrams WriteBatch handed to the kernel without error
	BytesOut     uint64 // their bytes
	SyscallsIn   uint64 // receive system calls made, including ones that found nothing
	SyscallsOut  uint64 // send system calls made, including ones that would have blocked
	GSOBatches   uint64 // super-datagrams sent with UDP_SEGMENT (each of two or more datagrams)
	GSODatagrams uint64 // datagrams sent inside them
	GROReads     uint64 // reads that returned several coalesced datagrams
	Truncated    uint64 // datagrams longer than their Buf, cut to len(Buf)
	SendErrors   uint64 // datagrams dropped because the kernel refused them twice (see the package doc)
	SendRetries  uint64 // sends tried again after an error (see below)
	ReadErrors   uint64 // transient receive errors skipped by ReadBatch

	// RecvDropped is the number of datagrams the kernel dropped because
	// the receive buffer was full, as the latest read reported it
	// (SO_RXQ_OVFL; Linux batch path only, else 0; it is counted since
	// the socket was made and wraps at 2^32). With GRO on, a
	// super-datagram the kernel kept whole (from a GSO sender on
	// loopback) counts as one when it is dropped.
	RecvDropped uint64

	// LastSendError is the error of the latest datagram counted in
	// SendErrors, nil if none.
	LastSendError error
}

// A note on SendRetries. Linux reports an ICMP error (port unreachable,
// host unreachable) on an unconnected UDP socket only if IP_RECVERR is set,
// and then reports it once, on whatever send or receive comes next: the
// datagram refused is then usually not the one at fault. So a Conn sends a
// refused datagram once more and drops it (counting it in SendErrors) only
// if that fails too. sendmmsg itself swallows such an error on any message
// but the first of a call (it returns the count sent so far, and the Conn
// sends the rest again), so these errors are often not seen at all.

// counters are a Conn's Stats, updated once per system call or batch.
type counters struct {
	datagramsIn, bytesIn, datagramsOut, bytesOut   atomic.Uint64
	syscallsIn, syscallsOut                        atomic.Uint64
	gsoBatches, gsoDatagrams, groReads             atomic.Uint64
	truncated, sendErrors, sendRetries, readErrors atomic.Uint64
	recvDropped                                    atomic.Uint64

	// The last send error: lastErrno if not zero, else lastOther.
	lastErrno atomic.Uint64
	lastOther atomic.Value // of errBox
}

type errBox struct{ err error }

// sendError counts n datagrams dropped because of err. It does not
// allocate when err is a syscall.Errno.
func (c *counters) sendError(n int, err error) {
	c.sendErrors.Add(uint64(n))
	if e, ok := err.(syscall.Errno); ok && e != 0 {
		if c.lastErrno.Load() != uint64(e) {
			c.lastErrno.Store(uint64(e))
		}
		return
	}
	c.lastOther.Store(errBox{err})
	c.lastErrno.Store(0)
}

// Conn is a UDP socket that implements transport.PacketConn. Create it with
// Listen or New. See the package doc for its concurrency rules.
type Conn struct {
	uc    *net.UDPConn
	local netip.AddrPort
	opts  Options

	closed    atomic.Bool
	closeOnce sync.Once
	closeErr  error

	stats counters
	info  Info
	gso   atomic.Bool // cleared if the kernel refuses GSO at run time
	// interrupt is set by InterruptRead with the read deadline it sets,
	// and cleared with that deadline by the read the deadline ends: one
	// is never changed without the other, so a read that finds a passed
	// deadline and interrupt clear ended at a deadline of the socket's
	// owner. It is changed under intrMu only, and read without it by a
	// spinning read (which it ends).
	intrMu    sync.Mutex
	interrupt atomic.Bool

	sys sysConn // platform state; see conn_linux.go and conn_other.go
}

var (
	_ transport.PacketConn      = (*Conn)(nil)
	_ transport.ReadInterrupter = (*Conn)(nil)
)

// Listen opens a UDP socket on addr and returns it as a Conn. network is
// "udp", "udp4" or "udp6", as for net.ListenUDP: "udp" with an unspecified
// or invalid (zero) addr gives a dual-stack socket on [::] that reaches
// IPv4 and IPv6 peers. Port 0 picks a free port.
func Listen(network string, addr netip.AddrPort, opts Options) (*Conn, error) {
	var la *net.UDPAddr
	if addr.Addr().IsValid() {
		la = net.UDPAddrFromAddrPort(addr)
	} else {
		la = &net.UDPAddr{Port: int(addr.Port())}
	}
	uc, err := net.ListenUDP(network, la)
	if err != nil {
		return nil, fmt.Errorf("udp: listen: %w", err)
	}
	c, err := New(uc, opts)
	if err != nil {
		uc.Close()
		return nil, err
	}
	return c, nil
}

// New returns a Conn over an open UDP socket, which it then owns: Close
// closes uc. The socket must not be connected, and must not be read or
// written by anything else afterwards. On error uc is left open.
func New(uc *net.UDPConn, opts Options) (*Conn, error) {
	opts, err := opts.fill()
	if err != nil {
		return nil, err
	}
	la, ok := uc.LocalAddr().(*net.UDPAddr)
	if !ok {
		return nil, fmt.Errorf("udp: local address %v is not UDP", uc.LocalAddr())
	}
	ap := la.AddrPort()
	c := &Conn{
		uc:    uc,
		local: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()),
		opts:  opts,
	}
	if err := c.init(); err != nil {
		return nil, err
	}
	c.gso.Store(c.info.GSO)
	return c, nil
}

// LocalAddr returns the address the socket is bound to, with an IPv4
// address in IPv4 form (never 4-in-6). For a socket bound to an
// unspecified address (0.0.0.0 or ::) it is that address and the port:
// peers on this machine reach it so, others need an interface address.
func (c *Conn) LocalAddr() netip.AddrPort { return c.local }

// Info returns what the Conn found the system to support.
func (c *Conn) Info() Info {
	i := c.info
	i.GSO = c.gso.Load()
	return i
}

// Stats returns a snapshot of the counters. Each field is read atomically,
// but the fields are not read at one instant.
func (c *Conn) Stats() Stats {
	s := &c.stats
	st := Stats{
		DatagramsIn:  s.datagramsIn.Load(),
		BytesIn:      s.bytesIn.Load(),
		DatagramsOut: s.datagramsOut.Load(),
		BytesOut:     s.bytesOut.Load(),
		SyscallsIn:   s.syscallsIn.Load(),
		SyscallsOut:  s.syscallsOut.Load(),
		GSOBatches:   s.gsoBatches.Load(),
		GSODatagrams: s.gsoDatagrams.Load(),
		GROReads:     s.groReads.Load(),
		Truncated:    s.truncated.Load(),
		SendErrors:   s.sendErrors.Load(),
		SendRetries:  s.sendRetries.Load(),
		ReadErrors:   s.readErrors.Load(),
		RecvDropped:  s.recvDropped.Load(),
	}
	if e := s.lastErrno.Load(); e != 0 {
		st.LastSendError = syscall.Errno(e)
	} else if b, ok := s.lastOther.Load().(errBox); ok {
		st.LastSendError = b.err
	}
	return st
}

// Close closes the socket. A pending ReadBatch or WriteBatch returns
// transport.ErrClosed, as do later calls. It is safe to call more than
// once and concurrently; later calls return the first call's result.
func (c *Conn) Close() error {
	c.closeOnce.Do(func() {
		c.closed.Store(true)
		c.closeErr = c.uc.Close()
	})
	return c.closeErr
}

// ReadBatch blocks until at least one datagram has arrived, then fills
// pkts[0:n] with the datagrams already queued, up to len(pkts), and
// returns n >= 1. For each it sets N and Addr (an IPv4 source in IPv4
// form); a datagram longer than its Buf is truncated and counted. It
// returns transport.ErrClosed after Close, and 0, nil if len(pkts) == 0.
//
// The portable path returns one datagram per call.
func (c *Conn) ReadBatch(pkts []transport.Packet) (int, error) {
	if len(pkts) == 0 {
		return 0, nil
	}
	if c.closed.Load() {
		return 0, transport.ErrClosed
	}
	if c.batchRead() {
		return c.readBatchSys(pkts)
	}
	return c.readOne(pkts)
}

// WriteBatch sends pkts[i].Buf[:pkts[i].N] to pkts[i].Addr for each i, in
// order. It returns len(pkts), nil unless the Conn is closed
// (transport.ErrClosed, with the number of datagrams dealt with before) or
// the socket is unusable. Datagrams the kernel refuses one by one are
// dropped and counted (see the package doc). It keeps no Buf.
//
// It panics if some pkts[i].N is outside [0, len(pkts[i].Buf)].
func (c *Conn) WriteBatch(pkts []transport.Packet) (int, error) {
	if c.closed.Load() {
		return 0, transport.ErrClosed
	}
	if len(pkts) == 0 {
		return 0, nil
	}
	if c.batchWrite() {
		return c.writeBatchSys(pkts)
	}
	return c.writeLoop(pkts)
}

// maxReadErrors bounds how many transient receive errors in a row a
// ReadBatch skips before it returns the last one.
const maxReadErrors = 100

// InterruptRead makes the pending ReadBatch, or the next one, return
// transport.ErrInterrupted (see transport.ReadInterrupter): it sets a read
// deadline in the past, which wakes the reader in the Go runtime's
// poller, and the ReadBatch that returns clears it.
func (c *Conn) InterruptRead() {
	c.intrMu.Lock()
	c.interrupt.Store(true)
	_ = c.uc.SetReadDeadline(pastDeadline)
	c.intrMu.Unlock()
}

// pastDeadline is a read deadline that has passed.
var pastDeadline = time.Unix(1, 0)

// interrupted reports whether a read that ended at a read deadline was
// ended by InterruptRead (a deadline set on the socket by its owner,
// as package relay does, is not), and then clears the deadline.
func (c *Conn) interrupted() bool {
	c.intrMu.Lock()
	defer c.intrMu.Unlock()
	if !c.interrupt.Load() {
		return false
	}
	c.interrupt.Store(false)
	_ = c.uc.SetReadDeadline(time.Time{})
	return true
}

// readOne is the portable ReadBatch: one datagram per call.
func (c *Conn) readOne(pkts []transport.Packet) (int, error) {
	p := &pkts[0]
	for tries := 0; ; tries++ {
		c.stats.syscallsIn.Add(1)
		n, _, flags, from, err := c.uc.ReadMsgUDPAddrPort(p.Buf, nil)
		if err != nil {
			if c.closed.Load() || errors.Is(err, net.ErrClosed) {
				return 0, transport.ErrClosed
			}
			if errors.Is(err, os.ErrDeadlineExceeded) && c.interrupted() {
				return 0, transport.ErrInterrupted
			}
			c.stats.readErrors.Add(1)
			if tries < maxReadErrors {
				continue
			}
			return 0, fmt.Errorf("udp: read: %w", err)
		}
		if flags&msgTrunc != 0 {
			c.stats.truncated.Add(1)
		}
		p.N = n
		p.Addr = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		c.stats.datagramsIn.Add(1)
		c.stats.bytesIn.Add(uint64(n))
		return 1, nil
	}
}

// writeLoop is the portable WriteBatch: one datagram per call.
func (c *Conn) writeLoop(pkts []transport.Packet) (int, error) {
	var out, bytes, calls uint64
	defer func() {
		c.stats.datagramsOut.Add(out)
		c.stats.bytesOut.Add(bytes)
		c.stats.syscallsOut.Add(calls)
	}()
	for i := range pkts {
		calls++
		p := &pkts[i]
		to := netip.AddrPortFrom(p.Addr.Addr().Unmap(), p.Addr.Port())
		n, err := c.uc.WriteToUDPAddrPort(p.Buf[:p.N], to)
		if err != nil && !errors.Is(err, net.ErrClosed) {
			// The error may be an earlier datagram's, reported late
			// (see Stats.SendRetries): try once more.
			c.stats.sendRetries.Add(1)
			calls++
			n, err = c.uc.WriteToUDPAddrPort(p.Buf[:p.N], to)
		}
		if err != nil {
			if c.closed.Load() || errors.Is(err, net.ErrClosed) {
				return i, transport.ErrClosed
			}
			c.stats.sendError(1, unwrapSyscall(err))
			continue
		}
		out++
		bytes += uint64(n)
	}
	return len(pkts), nil
}

// unwrapSyscall returns the syscall.Errno inside err if there is one (a
// comparable value, cheap to keep), else err.
func unwrapSyscall(err error) error {
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	return err
}
