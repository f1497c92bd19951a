package ice

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// base64Chars is the alphabet of ufrags and passwords.
const base64Chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// Ufrag is the ICE username fragment of the connection with id connID, as
// GNS derives it (and never signals it): the low 30 bits of the id, six
// bits at a time from bit 24 down to bit 0, each a base64 character.
func Ufrag(connID uint32) string {
	var b [5]byte
	for i := range b {
		b[i] = base64Chars[(connID>>(24-6*i))&63]
	}
	return string(b[:])
}

// NewPassword returns a fresh ICE password as GNS makes them: 5 base64
// characters from 30 random bits (signaled as the ICE auth pwd_frag).
func NewPassword(r io.Reader) (string, error) {
	var x [4]byte
	if _, err := io.ReadFull(r, x[:]); err != nil {
		return "", err
	}
	return Ufrag(binary.LittleEndian.Uint32(x[:])), nil
}

// Type is a candidate type.
type Type uint8

// Candidate types, in RFC 8445's order of preference.
const (
	Host Type = iota
	PeerReflexive
	ServerReflexive
	Relay
)

var typeNames = [...]string{"host", "prflx", "srflx", "relay"}

// String is the type as candidate strings name it ("host", "srflx"...).
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "type" + strconv.Itoa(int(t))
}

// typePreference is RFC 8445's recommended type preference.
func (t Type) typePreference() uint32 {
	switch t {
	case Host:
		return 126
	case PeerReflexive:
		return 110
	case ServerReflexive:
		return 100
	}
	return 0
}

// Priority is RFC 8445's candidate priority with local preference 65535
// and component 1, which is what GNS's checks carry (2130706431 for a host
// candidate, 1862270975 for peer-reflexive; its candidate strings say
// component 0 but the priority is computed for component 1).
func Priority(t Type) uint32 {
	return PriorityPref(t, 65535)
}

// PriorityPref is RFC 8445's priority of a candidate of type t with local
// preference pref, for component 1. GNS gives its first interface 65535
// and each further one the next lower value.
func PriorityPref(t Type, pref uint16) uint32 {
	return t.typePreference()<<24 | uint32(pref)<<8 | 255
}

// kind is GNS's number for a candidate type, which its foundations add.
func (t Type) kind() uint32 {
	switch t {
	case Host:
		return 1
	case ServerReflexive:
		return 2
	case Relay:
		return 3
	case PeerReflexive:
		return 4
	}
	return 0
}

// Foundation is the foundation GNS writes for a candidate of type t
// gathered on base (the local socket address) from STUN server stun (the
// zero AddrPort for none, as on host candidates): the two ports plus the
// byte sum of both addresses in their 16-byte (IPv4-mapped) form shifted
// left by 15, plus GNS's number for the type. It reproduces the captured
// "37062591" of 10.99.0.1:34750.
func Foundation(t Type, base, stun netip.AddrPort) string {
	var sum uint16
	for _, ap := range []netip.AddrPort{base, stun} {
		a := ap.Addr()
		if !a.IsValid() {
			a = netip.IPv4Unspecified()
		}
		for _, b := range a.As16() {
			sum += uint16(b)
		}
	}
	f := uint32(base.Port()) + uint32(stun.Port()) + uint32(sum)<<15 + t.kind()
	return strconv.FormatUint(uint64(f), 10)
}

// Candidate is an ICE candidate as GNS signals it.
type Candidate struct {
	Foundation string
	Component  int
	Priority   uint32
	Addr       netip.AddrPort
	Type       Type
	Related    netip.AddrPort // raddr/rport of a reflexive or relayed candidate
}

// NewCandidate returns a candidate of type t at addr with GNS's component,
// priority and foundation; related is the base of a reflexive or relayed
// candidate (written as raddr/rport; zero for a host candidate).
func NewCandidate(t Type, addr, related netip.AddrPort) Candidate {
	base := addr
	if related.IsValid() {
		base = related
	}
	return Candidate{Foundation: Foundation(t, base, netip.AddrPort{}), Priority: Priority(t), Addr: addr, Type: t, Related: related}
}

// String renders c as GNS writes candidates: the RFC 5245 attribute with
// its "candidate:" prefix, e.g.
// "candidate:37062591 0 udp 2130706431 10.99.0.1 34750 typ host".
func (c Candidate) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "candidate:%s %d udp %d %s %d typ %s", c.Foundation, c.Component, c.Priority, c.Addr.Addr().Unmap(), c.Addr.Port(), c.Type)
	if c.Related.IsValid() {
		fmt.Fprintf(&b, " raddr %s rport %d", c.Related.Addr().Unmap(), c.Related.Port())
	}
	return b.String()
}

// ErrCandidate is returned for a candidate string netmsg cannot use.
var ErrCandidate = errors.New("ice: bad candidate")

// maxCandidateLen bounds a candidate string.
const maxCandidateLen = 512

// ParseCandidate parses a candidate string (with or without the
// "candidate:" prefix). Only UDP candidates are taken; extension
// attributes after the type are skipped.
func ParseCandidate(s string) (Candidate, error) {
	bad := func(why string) (Candidate, error) {
		if len(s) > 60 {
			s = s[:60] + "..."
		}
		return Candidate{}, fmt.Errorf("%w: %s: %q", ErrCandidate, why, s)
	}
	if len(s) > maxCandidateLen {
		return bad("too long")
	}
	f := strings.Fields(strings.TrimPrefix(s, "candidate:"))
	if len(f) < 8 || f[6] != "typ" {
		return bad("too few fields")
	}
	var c Candidate
	c.Foundation = f[0]
	comp, err := strconv.ParseUint(f[1], 10, 8)
	if err != nil {
		return bad("component")
	}
	c.Component = int(comp)
	if !strings.EqualFold(f[2], "udp") {
		return bad("not udp")
	}
	prio, err := strconv.ParseUint(f[3], 10, 32)
	if err != nil {
		return bad("priority")
	}
	c.Priority = uint32(prio)
	ip, err := netip.ParseAddr(f[4])
	if err != nil || ip.Zone() != "" {
		return bad("address")
	}
	port, err := strconv.ParseUint(f[5], 10, 16)
	if err != nil || port == 0 {
		return bad("port")
	}
	c.Addr = netip.AddrPortFrom(ip.Unmap(), uint16(port))
	switch f[7] {
	case "host":
		c.Type = Host
	case "srflx":
		c.Type = ServerReflexive
	case "prflx":
		c.Type = PeerReflexive
	case "relay":
		c.Type = Relay
	default:
		return bad("type")
	}
	for i := 8; i+1 < len(f); i += 2 {
		switch f[i] {
		case "raddr":
			if a, err := netip.ParseAddr(f[i+1]); err == nil {
				c.Related = netip.AddrPortFrom(a.Unmap(), c.Related.Port())
			}
		case "rport":
			if p, err := strconv.ParseUint(f[i+1], 10, 16); err == nil && c.Related.Addr().IsValid() {
				c.Related = netip.AddrPortFrom(c.Related.Addr(), uint16(p))
			}
		}
	}
	return c, nil
}

// Enable is GNS's P2P_Transport_ICE_Enable bitmask: which kinds of
// candidates a peer gathers and shares.
type Enable int32

// GNS's values of P2P_Transport_ICE_Enable.
const (
	EnableDisable Enable = 0 // no ICE at all
	EnableRelay   Enable = 1 // relayed candidates (TURN)
	EnablePrivate Enable = 2 // host candidates on private (RFC 1918, link-local, ULA) addresses
	EnablePublic  Enable = 4 // server-reflexive candidates and host candidates on public addresses
	EnableAll     Enable = 0x7fffffff
)

// IsPrivate reports whether a is private as GNS classifies addresses: the
// IPv4 blocks 10/8, 172.16/12, 192.168/16 and 169.254/16, the IPv6 blocks
// fc00::/7 and fe80::/10. netmsg also counts loopback as private (GNS
// refuses loopback candidates; netmsg's tests run on loopback).
func IsPrivate(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLoopback()
}

// Allows reports whether e lets a peer share candidate c: a relayed one
// needs EnableRelay, a reflexive one EnablePublic, a host one EnablePrivate
// or EnablePublic by its address. Unspecified and multicast addresses are
// never allowed.
func (e Enable) Allows(c Candidate) bool {
	a := c.Addr.Addr()
	if !a.IsValid() || a.IsUnspecified() || a.IsMulticast() || c.Addr.Port() == 0 {
		return false
	}
	switch c.Type {
	case Relay:
		return e&EnableRelay != 0
	case ServerReflexive, PeerReflexive:
		return e&EnablePublic != 0
	case Host:
		if IsPrivate(a) {
			return e&EnablePrivate != 0
		}
		return e&EnablePublic != 0
	}
	return false
}
