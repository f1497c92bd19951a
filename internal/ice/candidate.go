package ice

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
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
	return t.typePreference()<<24 | 65535<<8 | 255
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
// priority and a foundation derived from the type and base address.
func NewCandidate(t Type, addr, related netip.AddrPort) Candidate {
	base := addr.Addr()
	if related.IsValid() {
		base = related.Addr()
	}
	f := crc32.ChecksumIEEE([]byte(t.String() + base.String()))
	return Candidate{Foundation: strconv.FormatUint(uint64(f), 10), Priority: Priority(t), Addr: addr, Type: t, Related: related}
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
