//go:build linux

package udp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/netmsg-go/netmsg/transport"
)

// Why not golang.org/x/net/ipv4.PacketConn.ReadBatch: it returns each
// source as a new *net.UDPAddr (two allocations per datagram). The few
// lines below call recvmmsg/sendmmsg through syscall.RawConn on arrays the
// Conn keeps, so the steady state allocates nothing.

// Values from Linux.
const (
	// maxGSOSegments is UDP_MAX_SEGMENTS of include/linux/udp.h: the most
	// segments in one GSO send. It was 64 until Linux 6.11 raised it to
	// 128; 64 works everywhere.
	maxGSOSegments = 64

	// maxUDPPayload is the largest UDP payload in one IPv4 datagram (65535
	// less 20 bytes of IP header and 8 of UDP header), the bound on a GSO
	// super-datagram's payload. (IPv6 allows 20 bytes more; one bound for
	// both keeps it simple.)
	maxUDPPayload = 65507

	// groBufSize is the largest read a UDP_GRO socket hands back: GRO
	// stops coalescing at 64 KiB.
	groBufSize = 64 << 10

	msgTrunc = unix.MSG_TRUNC
)

var (
	segCmsgSpace = unix.CmsgSpace(2) // UDP_SEGMENT takes a u16
	// recvCmsgSpace holds what a read may bring: UDP_GRO (an int) and
	// SO_RXQ_OVFL (a u32).
	recvCmsgSpace = 2 * unix.CmsgSpace(4)
)

// errNoBatch says recvmmsg or sendmmsg is missing (ENOSYS); the Conn then
// falls back to the portable path for that direction.
var errNoBatch = errors.New("udp: no recvmmsg/sendmmsg")

// sysConn is the Linux state of a Conn.
type sysConn struct {
	rc      syscall.RawConn
	family  int  // unix.AF_INET or unix.AF_INET6
	batch   bool // recvmmsg/sendmmsg to be used
	readFn  func(fd uintptr) bool
	writeFn func(fd uintptr) bool
	r       recvState // owned by the goroutine in ReadBatch
	w       sendState // owned by the goroutine in WriteBatch
}

// recvState is what ReadBatch keeps between calls.
type recvState struct {
	noMmsg bool // recvmmsg missing: use the portable path
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec
	names  []unix.RawSockaddrInet6

	// Arguments and results of rawRecv.
	want, got int
	errno     unix.Errno
	calls     uint64

	// Spinning (ReadBatchSpin): spin is set for the call; waitFrom is
	// when its first read found nothing (zero: none did yet), and
	// spinning whether it spins; spinOK is whether the last wait was
	// caught by a spin or shorter than spinWaitMax in the poller; waits
	// counts the waits (every spinProbe-th spins anyway). intr is the
	// Conn's InterruptRead flag, which ends a spin.
	spin     bool
	spinning bool
	spinOK   bool
	waits    uint32
	waitFrom time.Time
	intr     *atomic.Bool

	// GRO only: the messages of the last read, each read into its own
	// groBufSize slice of buf, are handed out from message msg at offset
	// off; msg == got means none are left.
	gro      bool
	buf      []byte
	ctrl     []byte
	segSize  []int // segment size of each message, 0 if not coalesced
	addrs    []netip.AddrPort
	msg, off int

	zone zoneCache
}

// sendState is what WriteBatch keeps between calls.
type sendState struct {
	noMmsg bool // sendmmsg missing: use the portable path
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec
	names  []unix.RawSockaddrInet6
	ctrl   []byte
	first  []int    // index in pkts of each message's first datagram
	segs   []int    // number of datagrams in each message
	bytes  []uint64 // payload bytes of each message

	// Arguments and results of rawSend.
	from, to int
	sent     int
	errno    unix.Errno
	calls    uint64

	zone zoneCache
}

// zoneCache remembers one IPv6 zone and its interface index.
type zoneCache struct {
	name string
	id   uint32
}

func (c *Conn) init() error {
	s := &c.sys
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return fmt.Errorf("udp: %w", err)
	}
	s.rc = rc
	s.r.intr = &c.interrupt
	s.r.spinOK = true
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = c.setup(int(fd)) }); err != nil {
		return fmt.Errorf("udp: %w", err)
	}
	if serr != nil {
		return serr
	}
	c.info.Batch = s.batch
	if !s.batch {
		return nil
	}
	s.readFn = s.rawRecv
	s.writeFn = s.rawSend

	n := c.opts.BatchSize
	r := &s.r
	if r.gro {
		n = c.opts.GROBuffers
		r.buf = make([]byte, n*groBufSize)
		r.segSize = make([]int, n)
		r.addrs = make([]netip.AddrPort, n)
	}
	r.hdrs = make([]unix.Mmsghdr, n)
	r.ctrl = make([]byte, n*recvCmsgSpace)
	r.iovs = make([]unix.Iovec, n)
	r.names = make([]unix.RawSockaddrInet6, n)
	for k := range r.hdrs {
		h := &r.hdrs[k].Hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[k]))
		h.Iov = &r.iovs[k]
		h.SetIovlen(1)
		h.Control = &r.ctrl[k*recvCmsgSpace]
		if r.gro {
			r.iovs[k].Base = &r.buf[k*groBufSize]
			r.iovs[k].SetLen(groBufSize)
		}
	}

	w := &s.w
	n = c.opts.BatchSize
	w.hdrs = make([]unix.Mmsghdr, n)
	w.iovs = make([]unix.Iovec, n+maxGSOSegments)
	w.names = make([]unix.RawSockaddrInet6, n)
	w.ctrl = make([]byte, n*segCmsgSpace)
	w.first = make([]int, n)
	w.segs = make([]int, n)
	w.bytes = make([]uint64, n)
	for k := range w.hdrs {
		w.hdrs[k].Hdr.Name = (*byte)(unsafe.Pointer(&w.names[k]))
		putSegmentCmsg(w.ctrl[k*segCmsgSpace:], 0)
	}
	return nil
}

// setup sets the socket options of fd and finds what the kernel supports.
func (c *Conn) setup(fd int) error {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return fmt.Errorf("udp: getsockname: %w", err)
	}
	switch sa.(type) {
	case *unix.SockaddrInet4:
		c.sys.family = unix.AF_INET
	case *unix.SockaddrInet6:
		c.sys.family = unix.AF_INET6
	default:
		return fmt.Errorf("udp: socket address %T is not IP", sa)
	}
	c.info.ReadBuffer = setBuffer(fd, unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, c.opts.ReadBuffer)
	c.info.WriteBuffer = setBuffer(fd, unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, c.opts.WriteBuffer)
	if c.opts.DisableBatch {
		return nil
	}
	c.sys.batch = true
	// Have each read say how many datagrams the kernel dropped for a
	// full receive buffer (Linux 2.6.33).
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1)
	if !c.opts.DisableGSO {
		// Kernels without UDP GSO do not know the option.
		if _, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_SEGMENT); err == nil {
			c.info.GSO = true
		}
	}
	if !c.opts.DisableGRO {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1); err == nil {
			c.info.GRO = true
			c.sys.r.gro = true
		}
	}
	return nil
}

// setBuffer asks for a socket buffer of size bytes (if size > 0), first
// with the option that passes the system maximum, then with the one that
// does not, and returns what the kernel reports.
func setBuffer(fd, force, plain, size int) int {
	if size > 0 {
		if unix.SetsockoptInt(fd, unix.SOL_SOCKET, force, size) != nil {
			_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, plain, size)
		}
	}
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, plain)
	if err != nil {
		return 0
	}
	return v
}

func (c *Conn) batchRead() bool  { return c.sys.batch && !c.sys.r.noMmsg }
func (c *Conn) batchWrite() bool { return c.sys.batch && !c.sys.w.noMmsg }

// spinMore is told that a read of ReadBatchSpin found nothing at now; it
// reports whether to read again (spin) rather than wait in the poller.
func (r *recvState) spinMore(now time.Time) bool {
	if r.waitFrom.IsZero() {
		r.waitFrom = now
		r.waits++
		r.spinning = r.spinOK || r.waits%spinProbe == 0
	}
	if !r.spinning {
		return false
	}
	if now.Sub(r.waitFrom) < spinFor && !r.intr.Load() {
		return true
	}
	r.spinning, r.spinOK = false, false // an empty spin
	return false
}

// spinEnd is told that a read of ReadBatchSpin that had found nothing
// before found datagrams at now.
func (r *recvState) spinEnd(now time.Time) {
	if r.spinning {
		r.spinOK = true // caught by the spin
	} else {
		// A wait in the poller: would a spin have caught it?
		r.spinOK = now.Sub(r.waitFrom) < spinWaitMax
	}
	r.waitFrom, r.spinning = time.Time{}, false
}

// rawRecv is readFn: recvmmsg on r.hdrs[:r.want]. It returns false to wait
// for the socket to become readable.
//
// The socket does not block (Go's poller made it non-blocking), so the
// call is a raw one: it does not tell the scheduler it entered a system
// call. A call that did (Syscall6) wakes the runtime's monitor thread
// when it sleeps, which it does whenever the process was idle: two futex
// calls for every read of a ping-pong, more than the read itself on a VM
// whose system calls are slow.
func (s *sysConn) rawRecv(fd uintptr) bool {
	r := &s.r
	for {
		r.calls++
		n, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.want), 0, 0, 0)
		switch e {
		case 0:
			r.got, r.errno = int(n), 0
			if r.spin && !r.waitFrom.IsZero() {
				r.spinEnd(time.Now())
			}
			return true
		case unix.EINTR:
		case unix.EAGAIN:
			if r.spin && r.spinMore(time.Now()) {
				runtime.Gosched()
				continue
			}
			return false
		default:
			r.got, r.errno = 0, e
			return true
		}
	}
}

// rawSendMax: a send of at most this many datagrams is a raw system
// call, as rawRecv's is; a larger one is not, as it may take long (on
// loopback the sender's call also runs the receiver's side of the
// kernel), and the scheduler may then give its P to another thread.
const rawSendMax = 4

// rawSend is writeFn: sendmmsg on w.hdrs[w.from:w.to]. It returns false to
// wait for the socket to become writable.
func (s *sysConn) rawSend(fd uintptr) bool {
	w := &s.w
	for {
		w.calls++
		var n uintptr
		var e unix.Errno
		if w.to-w.from <= rawSendMax {
			n, _, e = unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[w.from])), uintptr(w.to-w.from), 0, 0, 0)
		} else {
			n, _, e = unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.hdrs[w.from])), uintptr(w.to-w.from), 0, 0, 0)
		}
		switch e {
		case 0:
			w.sent, w.errno = int(n), 0
			return true
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			w.sent, w.errno = 0, e
			return true
		}
	}
}

// closedErr maps an error of RawConn.Read or Write to ErrClosed if the
// Conn is closed.
func (c *Conn) closedErr(op string, err error) error {
	if c.closed.Load() || errors.Is(err, net.ErrClosed) {
		return transport.ErrClosed
	}
	return fmt.Errorf("udp: %s: %w", op, err)
}

// recv runs recvmmsg on r.hdrs[:r.want] until it returns at least one
// datagram, skipping up to maxReadErrors transient errors.
func (c *Conn) recv() error {
	r := &c.sys.r
	for tries := 0; ; tries++ {
		err := c.sys.rc.Read(c.sys.readFn)
		c.stats.syscallsIn.Add(r.calls)
		r.calls = 0
		if err != nil {
			if !c.closed.Load() && errors.Is(err, os.ErrDeadlineExceeded) && c.interrupted() {
				return transport.ErrInterrupted
			}
			return c.closedErr("read", err)
		}
		switch {
		case r.errno == 0 && r.got > 0:
			return nil
		case r.errno == unix.ENOSYS:
			return errNoBatch
		}
		c.stats.readErrors.Add(1)
		if tries >= maxReadErrors {
			return fmt.Errorf("udp: recvmmsg: %w", r.errno)
		}
	}
}

// A ReadBatchSpin that finds nothing keeps reading for up to spinFor
// (yielding to other goroutines between reads) before it waits in Go's
// poller, if the last wait ended within its spin, or in the poller within
// spinWaitMax (a spin would have caught it: the poller's own wake-up is
// in that figure), and at every spinProbe-th wait, so that spinning
// comes back when the waits become short again.
const (
	spinFor     = 25 * time.Microsecond
	spinWaitMax = 40 * time.Microsecond
	spinProbe   = 64
)

// ReadBatchSpin is ReadBatch for a goroutine that waits for the datagrams
// it reads (an application's receive): when the socket is empty and the
// previous wait of such a read was caught by a spin or ended in the poller
// within spinWaitMax, it reads again for up to spinFor before it waits in
// Go's poller. On a path as fast as
// loopback the answer then comes within the spin: no sleep in the
// poller, whose wake-up (an idle vCPU woken by the hypervisor, a thread
// switch) costs more than the round trip itself. A spin that comes back
// empty turns spinning off until a wait is short again, so a socket
// whose datagrams come seldom (or 40 µs apart and more) costs at most
// one spin in spinProbe waits.
func (c *Conn) ReadBatchSpin(pkts []transport.Packet) (int, error) {
	if len(pkts) == 0 || !c.batchRead() {
		return c.ReadBatch(pkts)
	}
	r := &c.sys.r
	r.spin, r.spinning, r.waitFrom = true, false, time.Time{}
	n, err := c.ReadBatch(pkts)
	r.spin = false
	return n, err
}

func (c *Conn) readBatchSys(pkts []transport.Packet) (int, error) {
	r := &c.sys.r
	if r.gro {
		return c.readGRO(pkts)
	}
	n := min(len(pkts), len(r.hdrs))
	for k := range n {
		b := pkts[k].Buf
		iov := &r.iovs[k]
		iov.Base = nil
		if len(b) > 0 {
			iov.Base = &b[0]
		}
		iov.SetLen(len(b))
		h := &r.hdrs[k]
		h.Hdr.Namelen = unix.SizeofSockaddrInet6
		h.Hdr.SetControllen(recvCmsgSpace)
		h.Hdr.Flags = 0
	}
	r.want = n
	err := c.recv()
	for k := range n {
		r.iovs[k].Base = nil // keep no caller Buf alive
	}
	if err != nil {
		if err == errNoBatch {
			r.noMmsg = true
			return c.readOne(pkts)
		}
		return 0, err
	}
	var bytes, trunc uint64
	for k := range r.got {
		h := &r.hdrs[k]
		p := &pkts[k]
		p.N = int(h.Len)
		p.Addr = decodeAddr(&r.names[k], &r.zone)
		if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
			trunc++
		}
		bytes += uint64(h.Len)
	}
	// The drop count of the last datagram is the newest.
	last := r.got - 1
	_, drops := parseRecvCmsgs(r.ctrl[last*recvCmsgSpace : last*recvCmsgSpace+int(r.hdrs[last].Hdr.Controllen)])
	c.noteDrops(drops)
	c.stats.datagramsIn.Add(uint64(r.got))
	c.stats.bytesIn.Add(bytes)
	if trunc > 0 {
		c.stats.truncated.Add(trunc)
	}
	return r.got, nil
}

// readGRO is ReadBatch with UDP_GRO on: it reads up to len(r.hdrs)
// messages, each of one datagram or of several coalesced ones, into
// r.buf, then copies datagrams out, keeping what does not fit in pkts for
// the next call.
func (c *Conn) readGRO(pkts []transport.Packet) (int, error) {
	r := &c.sys.r
	if r.msg >= r.got {
		for k := range r.hdrs {
			h := &r.hdrs[k].Hdr
			h.Namelen = unix.SizeofSockaddrInet6
			h.SetControllen(recvCmsgSpace)
			h.Flags = 0
		}
		r.want = len(r.hdrs)
		r.msg, r.got = 0, 0
		if err := c.recv(); err != nil {
			if err == errNoBatch {
				// Coalesced reads would not fit the caller's Bufs.
				_ = c.sys.rc.Control(func(fd uintptr) {
					_ = unix.SetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_GRO, 0)
				})
				r.gro, r.noMmsg = false, true
				return c.readOne(pkts)
			}
			return 0, err
		}
		var trunc, gro uint64
		for k := range r.got {
			h := &r.hdrs[k]
			r.addrs[k] = decodeAddr(&r.names[k], &r.zone)
			seg, drops := parseRecvCmsgs(r.ctrl[k*recvCmsgSpace : k*recvCmsgSpace+int(h.Hdr.Controllen)])
			c.noteDrops(drops)
			if seg >= int(h.Len) {
				seg = 0
			}
			r.segSize[k] = seg
			if seg > 0 {
				gro++
			}
			if h.Hdr.Flags&unix.MSG_TRUNC != 0 {
				trunc++ // more than 64 KiB coalesced: the tail is lost
			}
		}
		r.off = 0
		if gro > 0 {
			c.stats.groReads.Add(gro)
		}
		if trunc > 0 {
			c.stats.truncated.Add(trunc)
		}
	}
	n := 0
	var bytes, trunc uint64
	for n < len(pkts) && r.msg < r.got {
		total := int(r.hdrs[r.msg].Len)
		data := r.buf[r.msg*groBufSize : r.msg*groBufSize+total]
		end := total
		if seg := r.segSize[r.msg]; seg > 0 {
			end = min(r.off+seg, total)
		}
		d := data[r.off:end]
		p := &pkts[n]
		p.N = copy(p.Buf, d)
		p.Addr = r.addrs[r.msg]
		if p.N < len(d) {
			trunc++
		}
		bytes += uint64(p.N)
		n++
		r.off = end
		if r.off >= total {
			r.msg++
			r.off = 0
		}
	}
	c.stats.datagramsIn.Add(uint64(n))
	c.stats.bytesIn.Add(bytes)
	if trunc > 0 {
		c.stats.truncated.Add(trunc)
	}
	return n, nil
}

// parseRecvCmsgs returns the segment size of a UDP_GRO control message in
// b (0 if none) and the count of an SO_RXQ_OVFL one (0 if none).
func parseRecvCmsgs(b []byte) (segSize int, drops uint32) {
	for len(b) >= unix.SizeofCmsghdr {
		h, data, rest, err := unix.ParseOneSocketControlMessage(b)
		if err != nil || len(data) < 4 {
			break
		}
		switch {
		case h.Level == unix.IPPROTO_UDP && h.Type == unix.UDP_GRO:
			segSize = int(int32(binary.NativeEndian.Uint32(data)))
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_RXQ_OVFL:
			drops = binary.NativeEndian.Uint32(data)
		}
		b = rest
	}
	return segSize, drops
}

// noteDrops records the socket's receive drop count (a counter the kernel
// keeps since the socket was made, wrapping at 2^32) if it is news.
func (c *Conn) noteDrops(drops uint32) {
	if drops != 0 && uint64(drops) != c.stats.recvDropped.Load() {
		c.stats.recvDropped.Store(uint64(drops))
	}
}

// putSegmentCmsg writes a UDP_SEGMENT control message of the given segment
// size at the start of b.
func putSegmentCmsg(b []byte, size int) {
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], uint16(size))
}

// writeBatchSys is WriteBatch with sendmmsg: it packs pkts into up to
// len(w.hdrs) messages per call, a run of datagrams to one destination of
// one size (the last may be shorter) into one GSO message.
func (c *Conn) writeBatchSys(pkts []transport.Packet) (int, error) {
	w := &c.sys.w
	noGSOUntil := 0 // datagrams before this index are not grouped (a group was refused)
	for i := 0; i < len(pkts); {
		gso := c.gso.Load()
		nm, ni := 0, 0
		for i < len(pkts) && nm < len(w.hdrs) && ni < len(w.iovs) {
			p := &pkts[i]
			b := p.Buf[:p.N]
			nl, errno := c.sys.encode(&w.names[nm], p.Addr, &w.zone)
			if nl == 0 {
				c.stats.sendError(1, errno)
				i++
				continue
			}
			segs := 1
			if gso && i >= noGSOUntil && len(b) > 0 {
				limit := min(maxGSOSegments, maxUDPPayload/len(b), len(w.iovs)-ni, len(pkts)-i)
				for segs < limit {
					q := &pkts[i+segs]
					if q.N > len(b) || q.N == 0 || q.Addr != p.Addr {
						break
					}
					segs++
					if q.N < len(b) {
						break
					}
				}
			}
			var bytes uint64
			for k := range segs {
				q := &pkts[i+k]
				qb := q.Buf[:q.N]
				iov := &w.iovs[ni+k]
				iov.Base = nil
				if len(qb) > 0 {
					iov.Base = &qb[0]
				}
				iov.SetLen(len(qb))
				bytes += uint64(len(qb))
			}
			h := &w.hdrs[nm].Hdr
			h.Namelen = nl
			h.Iov = &w.iovs[ni]
			h.SetIovlen(segs)
			if segs > 1 {
				cm := w.ctrl[nm*segCmsgSpace:]
				binary.NativeEndian.PutUint16(cm[unix.CmsgLen(0):], uint16(len(b)))
				h.Control = &cm[0]
				h.SetControllen(segCmsgSpace)
			} else {
				h.Control = nil
				h.SetControllen(0)
			}
			w.first[nm], w.segs[nm], w.bytes[nm] = i, segs, bytes
			nm++
			ni += segs
			i += segs
		}
		resend, err := c.sendMsgs(nm, &noGSOUntil)
		for k := range ni {
			w.iovs[k].Base = nil // keep no caller Buf alive
		}
		switch {
		case err == errNoBatch:
			w.noMmsg = true
			n, err := c.writeLoop(pkts[resend:])
			return resend + n, err
		case err != nil:
			return resend, err
		case resend >= 0:
			i = resend
		}
	}
	return len(pkts), nil
}

// sendMsgs sends w.hdrs[:nm]. It returns -1, nil when every message was
// sent or dropped and counted. If the kernel refused a GSO message as such
// it returns the index of its first datagram, to be sent again without
// GSO (and sets *noGSOUntil). On error it returns the index of the first
// datagram not dealt with.
func (c *Conn) sendMsgs(nm int, noGSOUntil *int) (int, error) {
	w := &c.sys.w
	retried := -1 // the message last sent again after an error
	for k := 0; k < nm; {
		w.from, w.to = k, nm
		err := c.sys.rc.Write(c.sys.writeFn)
		c.stats.syscallsOut.Add(w.calls)
		w.calls = 0
		if err != nil {
			return w.first[k], c.closedErr("write", err)
		}
		if w.errno == 0 {
			c.countSent(k, k+w.sent)
			k += w.sent
			continue
		}
		// Message k was refused.
		segs := w.segs[k]
		if w.errno == unix.ENOSYS {
			return w.first[k], errNoBatch
		}
		if retried != k {
			// The error may be an earlier datagram's, reported late
			// (see sendRetries): try once more.
			retried = k
			c.stats.sendRetries.Add(1)
			continue
		}
		switch w.errno {
		case unix.EIO, unix.EINVAL, unix.EMSGSIZE:
			if segs > 1 {
				// EIO: the device cannot checksum GSO segments
				// (quic-go and wireguard-go then turn GSO off);
				// EINVAL: a segment does not fit the path MTU.
				if w.errno == unix.EIO {
					c.gso.Store(false)
				}
				*noGSOUntil = w.first[k] + segs
				return w.first[k], nil
			}
		}
		c.stats.sendError(segs, w.errno)
		k++
	}
	return -1, nil
}

// countSent counts messages w.hdrs[from:to] as sent.
func (c *Conn) countSent(from, to int) {
	w := &c.sys.w
	var dgrams, bytes, gsoB, gsoD uint64
	for k := from; k < to; k++ {
		dgrams += uint64(w.segs[k])
		bytes += w.bytes[k]
		if w.segs[k] > 1 {
			gsoB++
			gsoD += uint64(w.segs[k])
		}
	}
	c.stats.datagramsOut.Add(dgrams)
	c.stats.bytesOut.Add(bytes)
	if gsoB > 0 {
		c.stats.gsoBatches.Add(gsoB)
		c.stats.gsoDatagrams.Add(gsoD)
	}
}

// encode writes the socket address of to into sa, in the socket's family,
// and returns its length; or 0 and the reason if this socket cannot send to
// it.
func (s *sysConn) encode(sa *unix.RawSockaddrInet6, to netip.AddrPort, zc *zoneCache) (uint32, unix.Errno) {
	a := to.Addr()
	if !a.IsValid() {
		return 0, unix.EDESTADDRREQ
	}
	if s.family == unix.AF_INET {
		if !a.Is4() && !a.Is4In6() {
			return 0, unix.EAFNOSUPPORT
		}
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		putPort(&sa4.Port, to.Port())
		sa4.Addr = a.Unmap().As4()
		sa4.Zero = [8]uint8{}
		return unix.SizeofSockaddrInet4, 0
	}
	sa.Family = unix.AF_INET6
	putPort(&sa.Port, to.Port())
	sa.Flowinfo = 0
	sa.Addr = a.As16() // an IPv4 address becomes 4-in-6, as a dual-stack socket wants
	sa.Scope_id = zc.indexOf(a.Zone())
	return unix.SizeofSockaddrInet6, 0
}

// decodeAddr returns the address in sa, with an IPv4 address in IPv4 form.
func decodeAddr(sa *unix.RawSockaddrInet6, zc *zoneCache) netip.AddrPort {
	p := (*[2]byte)(unsafe.Pointer(&sa.Port))
	port := uint16(p[0])<<8 | uint16(p[1])
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), port)
	case unix.AF_INET6:
		a := netip.AddrFrom16(sa.Addr)
		if a.Is4In6() {
			return netip.AddrPortFrom(a.Unmap(), port)
		}
		if sa.Scope_id != 0 {
			a = a.WithZone(zc.nameOf(sa.Scope_id))
		}
		return netip.AddrPortFrom(a, port)
	}
	return netip.AddrPort{}
}

func putPort(dst *uint16, port uint16) {
	p := (*[2]byte)(unsafe.Pointer(dst))
	p[0], p[1] = byte(port>>8), byte(port)
}

// indexOf returns the interface index of an IPv6 zone (a name or a number),
// remembering the last one; 0 if unknown.
func (z *zoneCache) indexOf(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if zone == z.name && z.id != 0 {
		return z.id
	}
	var id uint32
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		id = uint32(n)
	} else if ifi, err := net.InterfaceByName(zone); err == nil {
		id = uint32(ifi.Index)
	}
	z.name, z.id = zone, id
	return id
}

// nameOf returns the zone of an interface index (its name, or the number if
// it has none), remembering the last one.
func (z *zoneCache) nameOf(id uint32) string {
	if id == z.id && z.name != "" {
		return z.name
	}
	name := strconv.FormatUint(uint64(id), 10)
	if ifi, err := net.InterfaceByIndex(int(id)); err == nil {
		name = ifi.Name
	}
	z.name, z.id = name, id
	return name
}

// setBuffers is SetBuffers.
func setBuffers(c syscall.Conn, read, write int) (gotRead, gotWrite int, err error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	err = rc.Control(func(fd uintptr) {
		gotRead = setBuffer(int(fd), unix.SO_RCVBUFFORCE, unix.SO_RCVBUF, read)
		gotWrite = setBuffer(int(fd), unix.SO_SNDBUFFORCE, unix.SO_SNDBUF, write)
	})
	return gotRead, gotWrite, err
}
