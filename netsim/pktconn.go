package netsim

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/netmsg-go/netmsg/transport"
)

// PacketConn returns e as a net.PacketConn, for code written against the
// standard interface (a TURN server in tests, for one). Reads honour
// SetReadDeadline; writes never block. Closing it closes e.
func (e *Endpoint) PacketConn() net.PacketConn { return &pktConn{e: e} }

type pktConn struct {
	e        *Endpoint
	mu       sync.Mutex
	deadline time.Time
	rmu      sync.Mutex // one reader at a time
	pending  chan readResult
}

type readResult struct {
	b    []byte
	from netip.AddrPort
	err  error
}

// ReadFrom reads one datagram. A reader goroutine feeds it so that a read
// deadline can end the wait without losing the datagram in flight.
func (c *pktConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	if c.pending == nil {
		c.pending = make(chan readResult, 1)
		go func() {
			pkts := []transport.Packet{{Buf: make([]byte, transport.MaxDatagram)}}
			for {
				n, err := c.e.ReadBatch(pkts)
				if errors.Is(err, transport.ErrInterrupted) {
					continue
				}
				if err != nil {
					c.pending <- readResult{err: err}
					close(c.pending)
					return
				}
				if n == 1 {
					c.pending <- readResult{b: append([]byte(nil), pkts[0].Bytes()...), from: pkts[0].Addr}
				}
			}
		}()
	}
	c.mu.Lock()
	d := c.deadline
	c.mu.Unlock()
	var timeout <-chan time.Time
	if !d.IsZero() {
		t := time.NewTimer(time.Until(d))
		defer t.Stop()
		timeout = t.C
	}
	select {
	case r, ok := <-c.pending:
		if !ok {
			return 0, nil, net.ErrClosed
		}
		if r.err != nil {
			if errors.Is(r.err, transport.ErrClosed) {
				return 0, nil, net.ErrClosed
			}
			return 0, nil, r.err
		}
		return copy(b, r.b), net.UDPAddrFromAddrPort(r.from), nil
	case <-timeout:
		return 0, nil, os.ErrDeadlineExceeded
	}
}

func (c *pktConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return 0, err
	}
	if _, err := c.e.WriteBatch([]transport.Packet{{Buf: b, N: len(b), Addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}}); err != nil {
		return 0, net.ErrClosed
	}
	return len(b), nil
}

func (c *pktConn) Close() error        { return c.e.Close() }
func (c *pktConn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.e.LocalAddr()) }

func (c *pktConn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

func (c *pktConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.deadline = t
	c.mu.Unlock()
	return nil
}

func (c *pktConn) SetWriteDeadline(time.Time) error { return nil }

// ListenPacket listens on address ("ip:port"; port 0 picks a free one,
// as Listen does) for network "udp", "udp4" or "udp6", with the signature
// of net.ListenPacket, so that code taking a listener function (such as
// relay.Config.ListenPacket) runs on the in-memory network.
func (n *Network) ListenPacket(network, address string) (net.PacketConn, error) {
	switch network {
	case "udp", "udp4", "udp6":
	default:
		return nil, fmt.Errorf("netsim: ListenPacket: network %q is not UDP", network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return nil, fmt.Errorf("netsim: ListenPacket: %w", err)
	}
	if (network == "udp4" && !ap.Addr().Unmap().Is4()) || (network == "udp6" && !ap.Addr().Is6()) {
		return nil, fmt.Errorf("netsim: ListenPacket: %v is not %s", ap, network)
	}
	e, err := n.Listen(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	if err != nil {
		return nil, err
	}
	return e.PacketConn(), nil
}
