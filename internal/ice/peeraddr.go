package ice

import "net/netip"

// IsRemote reports whether datagrams from addr, on our socket, come from
// the peer as far as ICE knows: addr is one of the candidates the peer
// signaled, or a peer-reflexive one its authenticated checks came from.
func (a *Agent) IsRemote(addr netip.AddrPort) bool {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	for _, p := range a.pairs {
		if !p.relay && p.remote.Addr == addr {
			return true
		}
	}
	for _, c := range a.remotes {
		if c.Addr == addr {
			return true
		}
	}
	return false
}
