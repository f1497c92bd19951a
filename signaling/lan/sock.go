package lan

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	"github.com/netmsg-go/netmsg/transport"
)

// packetConn is the little a Conn needs of a socket. ReadFrom is called by
// one goroutine at a time; WriteTo by any.
type packetConn interface {
	ReadFrom(b []byte) (int, netip.AddrPort, error)
	WriteTo(b []byte, to netip.AddrPort) error
	LocalAddr() netip.AddrPort
	Close() error
}

// announcer sends a datagram to the group (and broadcast addresses) and
// returns how many copies went out.
type announcer interface {
	announce(b []byte) (int, error)
}

// tpConn adapts a transport.PacketConn.
type tpConn struct {
	pc  transport.PacketConn
	wmu sync.Mutex // WriteBatch is for one goroutine at a time
	rb  [1]transport.Packet
}

func (t *tpConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	t.rb[0] = transport.Packet{Buf: b}
	for {
		n, err := t.pc.ReadBatch(t.rb[:])
		if err != nil {
			return 0, netip.AddrPort{}, err
		}
		if n == 1 {
			return t.rb[0].N, t.rb[0].Addr, nil
		}
	}
}

func (t *tpConn) WriteTo(b []byte, to netip.AddrPort) error {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	_, err := t.pc.WriteBatch([]transport.Packet{{Buf: b, N: len(b), Addr: to}})
	return err
}

func (t *tpConn) LocalAddr() netip.AddrPort { return t.pc.LocalAddr() }
func (t *tpConn) Close() error              { return t.pc.Close() }

// groupAnnouncer announces through one socket: to the group and, with
// broadcast, to 255.255.255.255 at the group's port.
type groupAnnouncer struct {
	uni       packetConn
	group     netip.AddrPort
	broadcast bool
}

func (g *groupAnnouncer) announce(b []byte) (int, error) {
	if err := g.uni.WriteTo(b, g.group); err != nil {
		return 0, err
	}
	if !g.broadcast {
		return 1, nil
	}
	if err := g.uni.WriteTo(b, netip.AddrPortFrom(limitedBroadcast, g.group.Port())); err != nil {
		return 1, err
	}
	return 2, nil
}

// limitedBroadcast is 255.255.255.255.
var limitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }

// udpConn adapts a *net.UDPConn.
type udpConn struct{ c *net.UDPConn }

func (u udpConn) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	n, a, err := u.c.ReadFromUDPAddrPort(b)
	return n, netip.AddrPortFrom(a.Addr().Unmap(), a.Port()), err
}

func (u udpConn) WriteTo(b []byte, to netip.AddrPort) error {
	_, err := u.c.WriteToUDPAddrPort(b, to)
	return err
}

func (u udpConn) LocalAddr() netip.AddrPort {
	a := u.c.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

func (u udpConn) Close() error { return u.c.Close() }
