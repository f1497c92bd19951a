package relay

import (
	"errors"
	"net"
	"net/netip"
	"sync"

	"github.com/pion/turn/v5"
)

// errNoTCP refuses TCP allocations (RFC 6062): the relay serves UDP only.
var errNoTCP = errors.New("relay: TCP allocations are not served")

// relays is the server's pion RelayAddressGenerator: it opens each
// allocation's relayed socket with listen and counts what crosses it.
type relays struct {
	s      *Server
	listen func(network string) (net.PacketConn, net.Addr, error)
}

func (g *relays) Validate() error { return nil }

func (g *relays) AllocatePacketConn(conf turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	pc, addr, err := g.listen(conf.Network)
	if err != nil {
		return nil, nil, err
	}
	rc := &relayedConn{PacketConn: pc, s: g.s}
	if bc, ok := pc.(*batchConn); ok {
		if ua, ok := addr.(*net.UDPAddr); ok {
			rc.self, rc.bc = ua.AddrPort(), bc
			g.s.local.Store(rc.self, rc)
		}
	}
	return rc, addr, nil
}

func (g *relays) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errNoTCP
}

func (g *relays) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, errNoTCP
}

// relayedConn is an allocation's relayed socket: what pion writes to it
// goes from the client to a peer, what it reads comes from a peer. It
// checks the peer again on the way out, so nothing reaches a refused
// address whatever pion's permission bookkeeping does.
//
// A datagram to another relayed address of the same server (two clients
// of this relay talking through their allocations, as two peers that
// each can only be reached through a relay do) skips the network: it goes
// to that socket's inbox (batchConn.inject), from this allocation's
// relayed address, as the network would have carried it, and pion then
// handles it as any datagram that socket reads (its permissions and
// channels apply).
type relayedConn struct {
	net.PacketConn
	s    *Server
	self netip.AddrPort // the relayed address, when the socket is a batchConn
	bc   *batchConn
	once sync.Once
}

func (c *relayedConn) WriteTo(b []byte, to net.Addr) (int, error) {
	if ok, _ := c.s.peerAllowed(addrIP(to)); !ok {
		c.s.refusedPeers.Add(1)
		return len(b), nil // dropped, as a network would
	}
	if c.bc != nil {
		if ap, ok := addrPort(to); ok {
			if v, ok := c.s.local.Load(ap); ok {
				if v.(*relayedConn).bc.inject(b, c.self) {
					c.s.pktsTo.Add(1)
					c.s.bytesTo.Add(uint64(len(b)))
				} else {
					c.s.localDropped.Add(1)
				}
				return len(b), nil
			}
		}
	}
	n, err := c.PacketConn.WriteTo(b, to)
	if err == nil {
		c.s.pktsTo.Add(1)
		c.s.bytesTo.Add(uint64(n))
	}
	return n, err
}

// Close closes the socket; the server no longer knows its relayed
// address.
func (c *relayedConn) Close() error {
	c.once.Do(func() {
		if c.bc != nil {
			c.s.local.CompareAndDelete(c.self, c)
		}
	})
	return c.PacketConn.Close()
}

func (c *relayedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		c.s.pktsFrom.Add(1)
		c.s.bytesFrom.Add(uint64(n))
	}
	return n, from, err
}
