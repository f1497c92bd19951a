package peer

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"time"

	kcp "github.com/xtaci/kcp-go/v5"
)

// kcpPeer is kcp-go in fast mode without crypto or FEC, as BENCH.md ran it:
// NoDelay(1, 10, 2, 1), windows of kcpWindow segments, stream mode,
// write-through (each Write flushes). Messages are length-prefixed on the session's byte stream.
// kcp-go has no unreliable mode.
type kcpPeer struct{}

func init() { Register(kcpPeer{}) }

// kcp-go tuning ("fast mode"): nodelay=1, interval=10 ms, fast resend after
// 2 duplicate acks, congestion window off. kcpWindow is "large": kcp-go's
// default is 32 segments.
const (
	kcpNoDelay  = 1
	kcpInterval = 10
	kcpResend   = 2
	kcpNC       = 1
	kcpWindow   = 1024
)

func (kcpPeer) Name() string { return "kcp" }

func (kcpPeer) Caps() Caps {
	return Caps{
		Reliable:   true,
		Unreliable: false,
		Encrypted:  false,
		Note:       fmt.Sprintf("kcp-go v5.6.24 fast mode NoDelay(%d,%d,%d,%d), window %d, stream mode, no crypto, no FEC", kcpNoDelay, kcpInterval, kcpResend, kcpNC, kcpWindow),
	}
}

func tuneKCP(s *kcp.UDPSession) {
	s.SetNoDelay(kcpNoDelay, kcpInterval, kcpResend, kcpNC)
	s.SetWindowSize(kcpWindow, kcpWindow)
	s.SetWriteDelay(false)
	// Stream mode: a message may share a segment with the next one when
	// the window is full, as on a TCP-like byte stream (kcptun runs so).
	s.SetStreamMode(true)
}

func (kcpPeer) Listen(ctx context.Context, addr string, opt Options) (Listener, error) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return nil, err
	}
	if u, ok := pc.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(udpSockBuf)
		_ = u.SetWriteBuffer(udpSockBuf)
	}
	// ServeConn with the *net.UDPConn itself keeps kcp-go's batched
	// (recvmmsg/sendmmsg) path; wrapLoss hides it only when Loss > 0.
	l, err := kcp.ServeConn(nil, 0, 0, wrapLoss(pc, opt))
	if err != nil {
		pc.Close()
		return nil, err
	}
	return &kcpListener{l: l, pc: pc}, nil
}

type kcpListener struct {
	l  *kcp.Listener
	pc net.PacketConn
}

func (l *kcpListener) Addr() string { return l.pc.LocalAddr().String() }

func (l *kcpListener) Accept(ctx context.Context) (Conn, error) {
	type res struct {
		s   *kcp.UDPSession
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := l.l.AcceptKCP()
		ch <- res{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, r.err
		}
		tuneKCP(r.s)
		return newKCPConn(r.s), nil
	case <-ctx.Done():
		l.l.Close()
		return nil, ctx.Err()
	}
}

// Close closes the listener. kcp-go's Listener.Close does not close a
// socket it was given, and its sessions keep using it, so the socket is
// left for process exit.
func (l *kcpListener) Close() error { return l.l.Close() }

func (kcpPeer) Dial(ctx context.Context, addr string, opt Options) (Conn, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	pc, err := net.ListenPacket("udp", net.JoinHostPort(raddr.IP.String(), "0"))
	if err != nil {
		return nil, err
	}
	if u, ok := pc.(*net.UDPConn); ok {
		_ = u.SetReadBuffer(udpSockBuf)
		_ = u.SetWriteBuffer(udpSockBuf)
	}
	// ownConn=true: closing the session closes the socket.
	s, err := kcp.NewConn4(rand.Uint32(), raddr, nil, 0, 0, true, wrapLoss(pc, opt))
	if err != nil {
		pc.Close()
		return nil, err
	}
	tuneKCP(s)
	return newKCPConn(s), nil
}

type kcpConn struct {
	s       *kcp.UDPSession
	fr      *frameReader
	scratch []byte // header and payload of the message being sent
}

func newKCPConn(s *kcp.UDPSession) *kcpConn {
	return &kcpConn{s: s, fr: newFrameReader(s)}
}

// SendReliable writes header and payload in one Write (two would make two
// KCP segments), which kcp-go splits into MSS-sized segments and flushes at
// once (write delay off). It blocks while the send window is full.
func (c *kcpConn) SendReliable(b []byte) error {
	c.scratch = appendFrame(c.scratch[:0], b)
	_, err := c.s.Write(c.scratch)
	return err
}

func (c *kcpConn) SendUnreliable([]byte) error { return ErrNoUnreliable }

func (c *kcpConn) Recv() ([]byte, error) { return c.fr.next() }

// kcpCloseGrace is how long Close waits before closing: kcp-go hands
// datagrams to a sending goroutine and Close drops what it has not sent
// yet (the client's last "bye" otherwise never arrives, and the server waits
// out its linger time). It only delays the end of a run, not its figures.
const kcpCloseGrace = 50 * time.Millisecond

func (c *kcpConn) Close() error {
	time.Sleep(kcpCloseGrace)
	return c.s.Close()
}
