package relay

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
)

// A client's ChannelData goes through pion in three hops: pion's read loop
// decodes it, finds the allocation and the channel and writes the data to
// the allocation's relayed socket; when the peer is another allocation of
// this server, that socket hands it to the peer allocation's inbox, whose
// goroutine reads it, finds its own channel for the sender and writes a
// new ChannelData to its client. The Server forwards ChannelData from the
// reader of its socket instead (Server.forward): it keeps its own copy of
// the channel bindings (from pion's channel events), and a datagram on a
// bound channel goes straight to the peer: as ChannelData on the peer
// allocation's channel to its client when the peer is an allocation of
// this server that bound one to the sender's relayed address, else out of
// the sender's relayed socket, as pion writes it. Anything else
// (STUN, an unbound channel, a peer not allowed) is pion's, as before.

// chanKey names a channel binding by its allocation's client and number.
type chanKey struct {
	client netip.AddrPort
	num    uint16
}

// peerKey names a channel binding by its allocation's relayed address and
// the peer it is bound to.
type peerKey struct {
	relayed, peer netip.AddrPort
}

// binding is one channel binding of an allocation.
type binding struct {
	client  netip.AddrPort // the allocation's client
	num     uint16
	peer    netip.AddrPort
	peerUDP *net.UDPAddr
	rc      *relayedConn // the allocation's relayed socket
}

// channels holds the channel bindings of the allocations whose relayed
// socket is a batchConn, by number (for the client's ChannelData) and by
// peer (for ChannelData to an allocation of this server). Written from
// pion's channel events, read by the reader of the server's socket
// without a lock.
type channels struct {
	byNum  sync.Map // chanKey -> *binding
	byPeer sync.Map // peerKey -> *binding
}

// onChannelCreated is pion's OnChannelCreated: the binding is forwarded
// by the server's reader from now on, when the peer is one the server
// relays to.
func (s *Server) onChannelCreated(client, _ net.Addr, _, _, _ string, relayed, peer net.Addr, num uint16) {
	cl, ra, pa, ok := bindingAddrs(client, relayed, peer)
	if !ok {
		return
	}
	if ok, _ := s.peerAllowed(pa.Addr()); !ok {
		return // pion's path refuses and counts it
	}
	v, ok := s.local.Load(ra)
	if !ok {
		return
	}
	b := &binding{client: cl, num: num, peer: pa, peerUDP: net.UDPAddrFromAddrPort(pa), rc: v.(*relayedConn)}
	s.chans.byNum.Store(chanKey{cl, num}, b)
	s.chans.byPeer.Store(peerKey{ra, pa}, b)
}

// onChannelDeleted is pion's OnChannelDeleted (the binding expired, or its
// allocation ended).
func (s *Server) onChannelDeleted(client, _ net.Addr, _, _, _ string, relayed, peer net.Addr, num uint16) {
	cl, ra, pa, ok := bindingAddrs(client, relayed, peer)
	if !ok {
		return
	}
	if v, ok := s.chans.byNum.Load(chanKey{cl, num}); ok {
		s.chans.byNum.CompareAndDelete(chanKey{cl, num}, v)
		s.chans.byPeer.CompareAndDelete(peerKey{ra, pa}, v)
	}
}

// bindingAddrs is the client, relayed and peer addresses of pion's
// channel events, as addrPort makes them; ok is false when one is not.
func bindingAddrs(client, relayed, peer net.Addr) (cl, ra, pa netip.AddrPort, ok bool) {
	cl, ok1 := addrPort(client)
	ra, ok2 := addrPort(relayed)
	pa, ok3 := addrPort(peer)
	return cl, ra, pa, ok1 && ok2 && ok3
}

// forward relays b, read by the server's socket sc from a client at from,
// when it is ChannelData on one of that client's bound channels, and
// reports whether it did; otherwise b is pion's to handle.
func (s *Server) forward(sc *batchConn, b []byte, from netip.AddrPort) bool {
	if len(b) < 4 || b[0]&0xc0 != 0x40 {
		return false // not ChannelData (RFC 8656 12: 0x4000-0x7fff)
	}
	num := binary.BigEndian.Uint16(b)
	n := int(binary.BigEndian.Uint16(b[2:]))
	if 4+n > len(b) {
		return false
	}
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	v, ok := s.chans.byNum.Load(chanKey{from, num})
	if !ok {
		return false
	}
	bd := v.(*binding)
	data := b[4 : 4+n]
	if v, ok := s.chans.byPeer.Load(peerKey{bd.peer, bd.rc.self}); ok {
		// The peer is an allocation of this server with a channel to the
		// sender's relayed address: to its client on that channel.
		to := v.(*binding)
		sc.writeChannelData(to.num, data, to.client)
		s.pktsTo.Add(1)
		s.bytesTo.Add(uint64(n))
		s.pktsFrom.Add(1)
		s.bytesFrom.Add(uint64(n))
		return true
	}
	bd.rc.WriteTo(data, bd.peerUDP)
	return true
}
