package relay

import (
	"net"
	"net/netip"
)

// PeerRefusal says why a peer address is refused by default, or "" when
// it is relayed to. The refused classes: "unspecified", "loopback",
// "private" (RFC 1918, RFC 4193 unique local), "link-local" (unicast and
// multicast), "multicast", "shared" (RFC 6598 carrier-grade NAT space),
// "reserved" (0.0.0.0/8, 192.0.0.0/24, 198.18.0.0/15 benchmarking,
// 240.0.0.0/4 and the broadcast address, 100::/64 discard-only,
// 2001::/23 IETF protocol assignments), "ipv4-compatible" (::/96) and
// the same classes of an IPv4 address embedded in NAT64 (64:ff9b::/96,
// 64:ff9b:1::/48) or 6to4 (2002::/16) addresses. IPv4-mapped IPv6
// addresses are judged as their IPv4 address. Documentation ranges
// (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) are
// relayed to: they reach no one, and the in-memory network uses them.
func PeerRefusal(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid() || ip.IsUnspecified():
		return "unspecified"
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsMulticast():
		return "multicast"
	}
	if ip.Is4() {
		for _, p := range reserved4 {
			if p.Contains(ip) {
				if p == shared4 {
					return "shared"
				}
				return "reserved"
			}
		}
		return ""
	}
	b := ip.As16()
	switch {
	case nat64.Contains(ip), nat64Local.Contains(ip):
		if r := PeerRefusal(netip.AddrFrom4([4]byte(b[12:16]))); r != "" {
			return r
		}
		return ""
	case sixToFour.Contains(ip):
		if r := PeerRefusal(netip.AddrFrom4([4]byte(b[2:6]))); r != "" {
			return r
		}
		return ""
	case ipv4Compatible.Contains(ip):
		return "ipv4-compatible"
	}
	for _, p := range reserved6 {
		if p.Contains(ip) {
			return "reserved"
		}
	}
	return ""
}

var (
	shared4   = netip.MustParsePrefix("100.64.0.0/10")
	reserved4 = []netip.Prefix{
		netip.MustParsePrefix("0.0.0.0/8"),
		shared4,
		netip.MustParsePrefix("192.0.0.0/24"),
		netip.MustParsePrefix("198.18.0.0/15"),
		netip.MustParsePrefix("240.0.0.0/4"),
	}
	nat64          = netip.MustParsePrefix("64:ff9b::/96")
	nat64Local     = netip.MustParsePrefix("64:ff9b:1::/48")
	sixToFour      = netip.MustParsePrefix("2002::/16")
	ipv4Compatible = netip.MustParsePrefix("::/96")
	reserved6      = []netip.Prefix{
		netip.MustParsePrefix("100::/64"),
		netip.MustParsePrefix("2001::/23"),
	}
)

// peerAllowed says whether a client may relay to ip, and why not.
func (s *Server) peerAllowed(ip netip.Addr) (bool, string) {
	ip = ip.Unmap()
	for _, p := range s.cfg.AllowPeers {
		if p.Contains(ip) {
			return true, ""
		}
	}
	r := PeerRefusal(ip)
	return r == "", r
}

// permit is pion's PermissionHandler, called on CreatePermission and
// ChannelBind (Send indications and channel data need a permission).
func (s *Server) permit(client net.Addr, peer net.IP) bool {
	ip, _ := netip.AddrFromSlice(peer)
	ip = ip.Unmap()
	if ok, why := s.peerAllowed(ip); !ok {
		s.refusedPeers.Add(1)
		s.logLimited("peer", "relay: peer address refused", "client", client.String(), "peer", ip.String(), "reason", why)
		return false
	}
	if max := s.cfg.MaxPermissionsPerAllocation; max > 0 {
		s.perms.Lock()
		set := s.perms.byClient[client.String()]
		_, has := set[ip]
		full := !has && len(set) >= max
		s.perms.Unlock()
		if full {
			s.refusedPerms.Add(1)
			s.logLimited("permissions", "relay: permission quota reached", "client", client.String(), "peer", ip.String(), "permissions", max)
			return false
		}
	}
	return true
}

func (s *Server) onPermissionCreated(client, _ net.Addr, _, _, _ string, _ net.Addr, peer net.IP) {
	ip, _ := netip.AddrFromSlice(peer)
	s.perms.Lock()
	set := s.perms.byClient[client.String()]
	if set == nil {
		set = map[netip.Addr]struct{}{}
		s.perms.byClient[client.String()] = set
	}
	set[ip.Unmap()] = struct{}{}
	s.perms.Unlock()
	s.log.Debug("relay: permission created", "client", client.String(), "peer", ip.Unmap().String())
}

func (s *Server) onPermissionDeleted(client, _ net.Addr, _, _, _ string, _ net.Addr, peer net.IP) {
	ip, _ := netip.AddrFromSlice(peer)
	s.perms.Lock()
	if set := s.perms.byClient[client.String()]; set != nil {
		delete(set, ip.Unmap())
		if len(set) == 0 {
			delete(s.perms.byClient, client.String())
		}
	}
	s.perms.Unlock()
}

// admit is pion's QuotaHandler, called before each allocation. Pion calls
// it and then, on success, onAllocationCreated from its one read loop, so
// no other allocation comes in between.
func (s *Server) admit(user, _ string, client net.Addr) bool {
	addr := addrIP(client)
	s.quota.Lock()
	total, byUser, byAddr := s.quota.total, s.quota.byUser[user], s.quota.byAddr[addr]
	s.quota.Unlock()
	var why string
	switch {
	case total >= s.cfg.MaxAllocations:
		s.refusedTotal.Add(1)
		why = "server"
	case s.cfg.MaxAllocationsPerUser > 0 && byUser >= s.cfg.MaxAllocationsPerUser:
		s.refusedUser.Add(1)
		why = "user"
	case s.cfg.MaxAllocationsPerAddr > 0 && byAddr >= s.cfg.MaxAllocationsPerAddr:
		s.refusedAddr.Add(1)
		why = "address"
	default:
		return true
	}
	s.logLimited("quota", "relay: allocation quota reached", "client", client.String(), "user", user, "quota", why)
	return false
}

func (s *Server) onAllocationCreated(client, _ net.Addr, _, user, _ string, relayed net.Addr, _ int) {
	s.created.Add(1)
	s.log.Debug("relay: allocation created", "client", client.String(), "user", user, "relayed", relayed.String())
	addr := addrIP(client)
	s.quota.Lock()
	s.quota.total++
	s.quota.byUser[user]++
	s.quota.byAddr[addr]++
	s.quota.username[client.String()] = s.allocUsername
	s.quota.Unlock()
}

func (s *Server) onAllocationDeleted(client, _ net.Addr, _, user, _ string) {
	s.log.Debug("relay: allocation ended", "client", client.String(), "user", user)
	addr := addrIP(client)
	s.quota.Lock()
	s.quota.total--
	if s.quota.byUser[user]--; s.quota.byUser[user] <= 0 {
		delete(s.quota.byUser, user)
	}
	if s.quota.byAddr[addr]--; s.quota.byAddr[addr] <= 0 {
		delete(s.quota.byAddr, addr)
	}
	delete(s.quota.username, client.String())
	s.quota.Unlock()
	s.perms.Lock()
	delete(s.perms.byClient, client.String())
	s.perms.Unlock()
}

// onAuth is pion's OnAuth event: a verdict false is a wrong password for a
// username authenticate knew (MESSAGE-INTEGRITY did not verify).
func (s *Server) onAuth(client, _ net.Addr, _, username, _, method string, verdict bool) {
	if verdict {
		return
	}
	s.authBadPassword.Add(1)
	s.logLimited("auth", "relay: authentication failed", "client", client.String(), "username", username, "method", method, "reason", "bad password")
}

func addrIP(a net.Addr) netip.Addr {
	if u, ok := a.(*net.UDPAddr); ok {
		return u.AddrPort().Addr().Unmap()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap.Addr().Unmap()
}

// logLimited logs msg at warning level unless a line of the same kind was
// logged less than logInterval ago; the lines it holds back are counted
// in the next one ("suppressed").
func (s *Server) logLimited(kind, msg string, args ...any) {
	now := s.cfg.Now()
	s.logs.Lock()
	if last, ok := s.logs.last[kind]; ok && now.Sub(last) < logInterval && now.Sub(last) > -logInterval {
		s.logs.suppressed[kind]++
		s.logs.Unlock()
		return
	}
	s.logs.last[kind] = now
	n := s.logs.suppressed[kind]
	s.logs.suppressed[kind] = 0
	s.logs.Unlock()
	s.log.Warn(msg, append(args, "suppressed", n)...)
}
