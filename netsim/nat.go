package netsim

import (
	"fmt"
	"net/netip"
	"time"
)

// NATType is how a NAT maps and filters (RFC 4787's behaviours).
type NATType uint8

// The NAT types of the classic taxonomy.
const (
	// FullCone maps each inside address:port to one public port for every
	// destination, and lets anyone send to it.
	FullCone NATType = iota
	// Restricted (address-restricted cone) maps like FullCone but lets in
	// only datagrams from IP addresses the inside endpoint has sent to.
	Restricted
	// PortRestricted lets in only datagrams from the exact addresses and
	// ports the inside endpoint has sent to.
	PortRestricted
	// Symmetric maps each inside address:port and destination to its own
	// public port, and lets in only datagrams from that destination.
	Symmetric
)

func (t NATType) String() string {
	switch t {
	case FullCone:
		return "full cone"
	case Restricted:
		return "restricted cone"
	case PortRestricted:
		return "port-restricted cone"
	case Symmetric:
		return "symmetric"
	}
	return fmt.Sprintf("NATType(%d)", uint8(t))
}

// NATConfig configures a NAT box.
type NATConfig struct {
	// Inside is the private network behind the NAT: endpoints whose
	// addresses it contains are translated when they send outside it.
	Inside netip.Prefix
	// Public is the NAT's public address; outside peers reach the inside
	// endpoints at Public:<mapped port>.
	Public netip.Addr
	Type   NATType
	// MappingTimeout ends a mapping this long after the inside endpoint
	// last sent through it (RFC 4787: at least 2 minutes; tests use less).
	// Zero means 2 minutes.
	MappingTimeout time.Duration
	// Hairpin lets inside endpoints reach each other through the public
	// address; without it such datagrams are dropped.
	Hairpin bool
}

// NATStats counts what a NAT did.
type NATStats struct {
	Mappings        int    // live now
	MappingsCreated uint64 // since the start
	Filtered        uint64 // inbound datagrams refused by the filter
	NoMapping       uint64 // inbound datagrams to a port with no live mapping
	Hairpinned      uint64
	Unroutable      uint64 // datagrams from outside addressed to an inside (private) address: dropped
	Rebinds         uint64 // calls of Rebind
}

// NAT is a NAT box in a Network (see Network.AddNAT).
type NAT struct {
	cfg      NATConfig
	byInside map[natKey]*mapping // cone: key.dest is zero
	byPort   map[uint16]*mapping
	nextPort uint16
	st       NATStats
}

type natKey struct {
	inside netip.AddrPort
	dest   netip.AddrPort // Symmetric only
}

type mapping struct {
	key     natKey
	public  netip.AddrPort
	lastOut time.Duration
	sentIP  map[netip.Addr]bool
	sentTo  map[netip.AddrPort]bool
}

// AddNAT puts a NAT box in front of the endpoints inside cfg.Inside. The
// prefixes of two NATs must not overlap, and the public address must be
// outside the prefix.
func (n *Network) AddNAT(cfg NATConfig) (*NAT, error) {
	if !cfg.Inside.IsValid() || !cfg.Public.IsValid() || cfg.Inside.Contains(cfg.Public) || cfg.Type > Symmetric {
		return nil, fmt.Errorf("%w: NATConfig %+v", ErrInvalidConfig, cfg)
	}
	if cfg.MappingTimeout <= 0 {
		cfg.MappingTimeout = 2 * time.Minute
	}
	cfg.Inside = cfg.Inside.Masked()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, o := range n.nats {
		if o.cfg.Inside.Overlaps(cfg.Inside) || o.cfg.Public == cfg.Public {
			return nil, fmt.Errorf("%w: NAT %v overlaps %v", ErrInvalidConfig, cfg.Inside, o.cfg.Inside)
		}
	}
	x := &NAT{cfg: cfg, byInside: map[natKey]*mapping{}, byPort: map[uint16]*mapping{}, nextPort: 40000}
	n.nats = append(n.nats, x)
	n.cfgGen++ // links cache nothing about NATs, but keep one rule
	return x, nil
}

// Stats returns the NAT's counters.
func (x *NAT) Stats(n *Network) NATStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	st := x.st
	st.Mappings = len(x.byPort)
	return st
}

// Rebind drops every mapping of the NAT at once, as a NAT that restarts
// or reassigns its ports does: datagrams to the old public ports are
// dropped (NATStats.NoMapping), and the next datagram an inside endpoint
// sends out gets a new public port (ports are not reused while others
// are free). It returns how many live mappings were dropped.
func (x *NAT) Rebind(n *Network) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	dropped := len(x.byPort)
	clear(x.byInside)
	clear(x.byPort)
	x.st.Rebinds++
	return dropped
}

// natFor returns the NAT whose inside contains a, or nil.
func (n *Network) natFor(a netip.Addr) *NAT {
	for _, x := range n.nats {
		if x.cfg.Inside.Contains(a) {
			return x
		}
	}
	return nil
}

// natOutLocked translates the source of a datagram from an endpoint at
// from to dst. ok is false when the datagram must be dropped.
func (n *Network) natOutLocked(from, dst netip.AddrPort, now time.Duration) (src netip.AddrPort, ok bool) {
	x := n.natFor(from.Addr())
	if y := n.natFor(dst.Addr()); y != nil && y != x {
		// Another NAT's private network is not routable from here.
		y.st.Unroutable++
		return from, false
	}
	if x == nil || x.cfg.Inside.Contains(dst.Addr()) {
		return from, true
	}
	if dst.Addr() == x.cfg.Public && !x.cfg.Hairpin {
		return from, false
	}
	k := natKey{inside: from}
	if x.cfg.Type == Symmetric {
		k.dest = dst
	}
	m := x.byInside[k]
	if m != nil && now-m.lastOut > x.cfg.MappingTimeout {
		x.drop(m)
		m = nil
	}
	if m == nil {
		port, ok := x.freePort(now)
		if !ok {
			return from, false
		}
		m = &mapping{key: k, public: netip.AddrPortFrom(x.cfg.Public, port), sentIP: map[netip.Addr]bool{}, sentTo: map[netip.AddrPort]bool{}}
		x.byInside[k] = m
		x.byPort[port] = m
		x.st.MappingsCreated++
	}
	m.lastOut = now
	if len(m.sentTo) < 1024 {
		m.sentIP[dst.Addr()] = true
		m.sentTo[dst] = true
	}
	if dst.Addr() == x.cfg.Public {
		x.st.Hairpinned++
	}
	return m.public, true
}

func (x *NAT) drop(m *mapping) {
	delete(x.byInside, m.key)
	delete(x.byPort, m.public.Port())
}

// freePort finds a public port, reclaiming expired mappings.
func (x *NAT) freePort(now time.Duration) (uint16, bool) {
	for range 65536 {
		x.nextPort++
		if x.nextPort < 1024 {
			x.nextPort = 1024
		}
		m := x.byPort[x.nextPort]
		if m == nil {
			return x.nextPort, true
		}
		if now-m.lastOut > x.cfg.MappingTimeout {
			x.drop(m)
			return x.nextPort, true
		}
	}
	return 0, false
}

// natInLocked translates the destination of a datagram from src that
// arrives at a NAT's public address to; ok is false when the NAT drops it.
// A destination that is no NAT's public address is returned unchanged.
func (n *Network) natInLocked(src, to netip.AddrPort, now time.Duration) (dst netip.AddrPort, ok bool) {
	var x *NAT
	for _, y := range n.nats {
		if y.cfg.Public == to.Addr() {
			x = y
			break
		}
	}
	if x == nil {
		return to, true
	}
	m := x.byPort[to.Port()]
	if m == nil || now-m.lastOut > x.cfg.MappingTimeout {
		x.st.NoMapping++
		return to, false
	}
	allowed := false
	switch x.cfg.Type {
	case FullCone:
		allowed = true
	case Restricted:
		allowed = m.sentIP[src.Addr()]
	case PortRestricted:
		allowed = m.sentTo[src]
	case Symmetric:
		allowed = m.key.dest == src
	}
	if !allowed {
		x.st.Filtered++
		return to, false
	}
	return m.key.inside, true
}
