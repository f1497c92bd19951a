package relay

import (
	"errors"
	"net"

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
	return &relayedConn{PacketConn: pc, s: g.s}, addr, nil
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
type relayedConn struct {
	net.PacketConn
	s *Server
}

func (c *relayedConn) WriteTo(b []byte, to net.Addr) (int, error) {
	if ok, _ := c.s.peerAllowed(addrIP(to)); !ok {
		c.s.refusedPeers.Add(1)
		return len(b), nil // dropped, as a network would
	}
	n, err := c.PacketConn.WriteTo(b, to)
	if err == nil {
		c.s.pktsTo.Add(1)
		c.s.bytesTo.Add(uint64(n))
	}
	return n, err
}

func (c *relayedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		c.s.pktsFrom.Add(1)
		c.s.bytesFrom.Add(uint64(n))
	}
	return n, from, err
}
