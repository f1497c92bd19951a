package paths

import "net/netip"

// IsPeerAddr reports whether a datagram from addr on the socket comes from
// the Route's peer as far as ICE knows: the selected path's address, a
// candidate the peer signaled, or a peer-reflexive address its
// authenticated checks came from. The owner calls it under the lock that
// guards the Route.
func (r *Route) IsPeerAddr(addr netip.AddrPort) bool {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if r.sel.Valid && !r.sel.Relayed && r.sel.Remote == addr {
		return true
	}
	return r.agent.IsRemote(addr)
}
