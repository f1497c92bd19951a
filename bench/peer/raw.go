package peer

import (
	"context"
	"net"
	"net/netip"
	"time"
)

// rawPeer is plain UDP, one datagram per message and per syscall, nothing
// else: the physical baseline. It is not reliable: SendReliable is the same
// datagram as SendUnreliable, and the workloads count its losses.
type rawPeer struct{}

func init() { Register(rawPeer{}) }

// maxUDPPayload is the largest IPv4 UDP payload (65,535 - 20 - 8).
const maxUDPPayload = 65507

// udpSockBuf is the socket buffer size asked for (net.core.rmem_max caps it).
const udpSockBuf = 4 << 20

func (rawPeer) Name() string { return "raw" }

func (rawPeer) Caps() Caps {
	return Caps{
		Reliable:    false,
		Unreliable:  true,
		MaxReliable: maxUDPPayload,
		Encrypted:   false,
		Note:        "plain UDP, one datagram per syscall, no reliability, no crypto",
	}
}

func (rawPeer) Listen(ctx context.Context, addr string, opt Options) (Listener, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", ua)
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(udpSockBuf)
	_ = c.SetWriteBuffer(udpSockBuf)
	return &rawListener{c: c, opt: opt}, nil
}

type rawListener struct {
	c   *net.UDPConn
	opt Options
}

func (l *rawListener) Addr() string { return l.c.LocalAddr().String() }

// Accept waits for the first datagram and makes its sender the peer. The
// datagram is the connection's first message.
func (l *rawListener) Accept(ctx context.Context) (Conn, error) {
	if d, ok := ctx.Deadline(); ok {
		_ = l.c.SetReadDeadline(d)
		defer l.c.SetReadDeadline(time.Time{})
	}
	buf := make([]byte, maxUDPPayload+1)
	n, from, err := l.c.ReadFromUDPAddrPort(buf)
	if err != nil {
		return nil, err
	}
	rc := newRawConn(l.c, from, l.opt)
	rc.buf = buf
	rc.pending = buf[:n]
	return rc, nil
}

// Close does nothing: the accepted connection owns the socket.
func (l *rawListener) Close() error { return nil }

func (rawPeer) Dial(ctx context.Context, addr string, opt Options) (Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IP(ap.Addr().AsSlice())})
	if err != nil {
		return nil, err
	}
	_ = c.SetReadBuffer(udpSockBuf)
	_ = c.SetWriteBuffer(udpSockBuf)
	return newRawConn(c, ap, opt), nil
}

type rawConn struct {
	c       *net.UDPConn
	remote  netip.AddrPort
	buf     []byte
	pending []byte
	lossy   *lossyConn // nil without fake loss; only its drop decision is used
}

func newRawConn(c *net.UDPConn, remote netip.AddrPort, opt Options) *rawConn {
	remote = netip.AddrPortFrom(remote.Addr().Unmap(), remote.Port())
	rc := &rawConn{c: c, remote: remote, buf: make([]byte, maxUDPPayload+1)}
	if opt.Loss > 0 {
		rc.lossy = newLossyConn(nil, opt.Loss, opt.Seed)
	}
	return rc
}

func (c *rawConn) send(b []byte) error {
	if len(b) > maxUDPPayload {
		return ErrTooLarge
	}
	if c.lossy != nil && c.lossy.drop() {
		return nil
	}
	_, err := c.c.WriteToUDPAddrPort(b, c.remote)
	return err
}

func (c *rawConn) SendReliable(b []byte) error   { return c.send(b) }
func (c *rawConn) SendUnreliable(b []byte) error { return c.send(b) }

func (c *rawConn) Recv() ([]byte, error) {
	if p := c.pending; p != nil {
		c.pending = nil
		return p, nil
	}
	for {
		n, from, err := c.c.ReadFromUDPAddrPort(c.buf)
		if err != nil {
			return nil, err
		}
		if netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != c.remote {
			continue // not our peer
		}
		return c.buf[:n], nil
	}
}

func (c *rawConn) Close() error { return c.c.Close() }
