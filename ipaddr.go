package netmsg

import (
	"errors"
	"math"
	"net/netip"
	"strconv"
)

// ErrBadIPAddr is returned (wrapped) by ParseIPAddr when its input is not an
// IP address in a form GNS accepts.
var ErrBadIPAddr = errors.New("netmsg: bad ip address")

// ParseIPAddr parses an IP address with an optional port exactly as GNS's
// SteamNetworkingIPAddr::ParseString does, so that any string a GNS program
// accepts is accepted here with the same meaning, and any string it rejects
// is rejected. A missing port is port 0.
//
// The accepted forms are those of GNS, quirks included:
//
//   - IPv4 is read as C's sscanf("%d.%d.%d.%d:%d") reads it: each number may
//     have leading spaces, a sign and leading zeros (decimal, never octal);
//     anything after the fourth number that is not ":port" is ignored, and a
//     port that is not a number counts as port 0 ("1.2.3.4:" and
//     "1.2.3.4 xyz" are 1.2.3.4 port 0). Octets above 255 and ports above
//     65535 fail.
//   - IPv6 may be bracketed, may embed a dotted IPv4 tail ("::ffff:1.2.3.4"),
//     may carry a numeric scope ("%2", which is dropped: GNS has no scope),
//     and may carry a port after "]:" or, when all eight groups are written
//     out, after a single ':' ("1:2:3:4:5:6:7:8:80"); GNS also accepts the
//     port separators '#', '.', 'p', 'P' and " port ". A bare
//     "2001:db8::1:443" is an address, not an address and a port. Host
//     names, zone names ("%eth0") and "[1.2.3.4]" fail.
//
// The address is returned in its natural netip form: IPv4 (including IPv4
// written as an IPv4-mapped IPv6 address, which GNS treats as IPv4) as a
// 4-byte address, anything else as a 16-byte address without a zone.
// Strings containing a NUL byte are rejected (GNS reads C strings, which
// cannot hold one). On failure it returns the zero AddrPort and an error
// wrapping ErrBadIPAddr.
func ParseIPAddr(s string) (netip.AddrPort, error) {
	ap, ok := parseIPAddr(s)
	if !ok {
		return netip.AddrPort{}, &parseError{what: "ip address", in: s, err: ErrBadIPAddr}
	}
	return ap, nil
}

// FormatIPAddr renders ap exactly as GNS's SteamNetworkingIPAddr::ToString
// does. IPv4 addresses (and IPv4-mapped IPv6 addresses) are written
// "a.b.c.d" or "a.b.c.d:port"; IPv6 addresses in the compressed lowercase
// form of RFC 5952, bracketed when the port is shown: "::1" or "[::1]:80".
// With withPort set the port is always written, even when it is 0. An
// invalid (zero) ap renders as GNS's cleared address, "::" or "[::]:0".
func FormatIPAddr(ap netip.AddrPort, withPort bool) string {
	a := ap.Addr().Unmap().WithZone("")
	if !a.IsValid() {
		a = netip.IPv6Unspecified()
	}
	s := a.String()
	if !withPort {
		return s
	}
	port := strconv.FormatUint(uint64(ap.Port()), 10)
	if a.Is4() {
		return s + ":" + port
	}
	return "[" + s + "]:" + port
}

// ipAddrIsLocalhost reports whether a is ::1 or 127.0.0.1, the two addresses
// GNS calls localhost (the port does not matter).
func ipAddrIsLocalhost(a netip.Addr) bool {
	a = a.Unmap()
	return a == netip.IPv6Loopback() || a == netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

// parseIPAddr implements ParseIPAddr without building an error.
func parseIPAddr(s string) (netip.AddrPort, bool) {
	if hasNUL(s) {
		return netip.AddrPort{}, false
	}
	// GNS tries the dotted-quad reading first; if that reads four numbers,
	// its verdict is final, right or wrong.
	if ip4, port, took, ok := scanIPv4(s); took {
		if !ok {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(netip.AddrFrom4(ip4), port), true
	}
	ip6, port, ok := scanIPv6(s)
	if !ok {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(netip.AddrFrom16(ip6).Unmap(), port), true
}

// scanIPv4 reads s the way sscanf(s, "%d.%d.%d.%d:%d") does. took reports
// whether at least four numbers were read (GNS then does not try IPv6); ok
// whether they form a valid address and port.
func scanIPv4(s string) (ip [4]byte, port uint16, took, ok bool) {
	var n [5]int32
	i, got := 0, 0
	for k := range n {
		if k > 0 {
			sep := byte('.')
			if k == 4 {
				sep = ':'
			}
			if i >= len(s) || s[i] != sep {
				break
			}
			i++
		}
		v, next, ok := scanCInt(s, i)
		if !ok {
			break
		}
		n[k], i, got = v, next, got+1
	}
	if got < 4 {
		return ip, 0, false, false
	}
	if got == 5 && (n[4] < 0 || n[4] > math.MaxUint16) {
		return ip, 0, true, false
	}
	for k := range 4 {
		if n[k] < 0 || n[k] > 255 {
			return ip, 0, true, false
		}
		ip[k] = byte(n[k])
	}
	if got == 5 {
		port = uint16(n[4])
	}
	return ip, port, true, true
}

// isCSpace reports whether c is white space to C's isspace in the C locale,
// which is what scanf skips before a number.
func isCSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scanCInt reads a number at s[i:] as scanf's %d does with glibc: leading
// white space, an optional sign, one or more decimal digits. The value is
// strtol's (clamped to the int64 range) truncated to 32 bits, which is what
// glibc stores into an int.
func scanCInt(s string, i int) (v int32, next int, ok bool) {
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var mag uint64
	over := false
	for i < len(s) && isDigit(s[i]) {
		d := uint64(s[i] - '0')
		if mag > (math.MaxUint64-d)/10 {
			over = true
		} else {
			mag = mag*10 + d
		}
		i++
	}
	if i == start {
		return 0, i, false
	}
	var l int64
	switch {
	case !neg && (over || mag > math.MaxInt64):
		l = math.MaxInt64
	case neg && (over || mag > 1<<63):
		l = math.MinInt64
	case neg:
		l = int64(-mag) // wraps correctly for mag == 1<<63
	default:
		l = int64(mag)
	}
	return int32(l), i, true
}

// scanCUint64 reads a number at s[i:] as scanf's %llu does with glibc:
// leading white space, an optional sign, one or more decimal digits, the
// value being strtoull's (ULLONG_MAX on overflow, negated modulo 2^64 after
// a '-'). Trailing characters are not looked at.
func scanCUint64(s string, i int) (v uint64, ok bool) {
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	over := false
	for i < len(s) && isDigit(s[i]) {
		d := uint64(s[i] - '0')
		if v > (math.MaxUint64-d)/10 {
			over = true
		} else {
			v = v*10 + d
		}
		i++
	}
	if i == start {
		return 0, false
	}
	if over {
		return math.MaxUint64, true
	}
	if neg {
		v = -v
	}
	return v, true
}

// isIPv6Space is the white space GNS's IPv6 parser skips: space and tab
// only, not newlines.
func isIPv6Space(c byte) bool { return c == ' ' || c == '\t' }

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// scanIPv6 parses s with the grammar of GNS's IPv6 text parser (see
// ParseIPAddr). The returned port is 0 when none was given.
func scanIPv6(s string) (ip [16]byte, port uint16, ok bool) {
	// at returns the byte at i, or 0 past the end, like a C string would.
	at := func(i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	skipSpace := func(i int) int {
		for isIPv6Space(at(i)) {
			i++
		}
		return i
	}

	i := skipSpace(0)
	bracketed := at(i) == '['
	if bracketed {
		i = skipSpace(i + 1)
	}

	var buf [16]byte
	n := 0       // bytes of buf filled
	gap := -1    // where "::" was, as an index into buf
	need := true // a group must come next
	if at(i) == ':' && at(i+1) == ':' {
		gap, need, i = 0, false, i+2
	}
groups:
	for {
		if hexVal(at(i)) < 0 {
			if need {
				return ip, 0, false
			}
			break
		}
		if n >= len(buf) {
			return ip, 0, false
		}
		start := i
		group := 0
		for k := 0; k < 4 && hexVal(at(i)) >= 0; k++ {
			group = group<<4 | hexVal(at(i))
			i++
		}
		if at(i) == '.' {
			// An IPv4 tail in dotted decimal: re-read the group as its first
			// octet. It must fit and it ends the address.
			if n+4 > len(buf) {
				return ip, 0, false
			}
			i = start
			for k := range 4 {
				if k > 0 {
					if at(i) != '.' {
						return ip, 0, false
					}
					i++
				}
				if !isDigit(at(i)) {
					return ip, 0, false
				}
				octet := 0
				for d := 0; d < 3 && isDigit(at(i)); d++ {
					octet = octet*10 + int(at(i)-'0')
					i++
				}
				if octet > 255 {
					return ip, 0, false
				}
				buf[n] = byte(octet)
				n++
			}
			break groups
		}
		buf[n], buf[n+1] = byte(group>>8), byte(group)
		n += 2
		if at(i) != ':' {
			break
		}
		switch {
		case at(i+1) == ':':
			if gap >= 0 {
				return ip, 0, false
			}
			gap, need, i = n, false, i+2
		case gap < 0 && n >= len(buf):
			// Eight full groups and a single ':': what follows is a port.
			break groups
		default:
			need, i = true, i+1
		}
	}

	if gap >= 0 {
		fill := len(buf) - n
		if fill <= 0 {
			return ip, 0, false
		}
		copy(ip[gap+fill:], buf[gap:n])
		copy(ip[:gap], buf[:gap])
	} else {
		if n != len(buf) {
			return ip, 0, false
		}
		ip = buf
	}

	if at(i) == '%' {
		// A numeric scope, which GNS parses and we drop.
		i++
		if !isDigit(at(i)) {
			return ip, 0, false
		}
		for i++; at(i) != 0 && at(i) != ']' && !isIPv6Space(at(i)); i++ {
			if !isDigit(at(i)) {
				return ip, 0, false
			}
		}
	}

	if bracketed {
		i = skipSpace(i)
		if at(i) != ']' {
			return ip, 0, false
		}
		i++
	}

	switch c := at(i); {
	case c == ':' || c == '#' || c == '.' || c == 'p' || c == 'P':
		i++
	default:
		i = skipSpace(i)
		if i >= len(s) {
			return ip, 0, true
		}
		if len(s)-i < 4 || s[i:i+4] != "port" {
			return ip, 0, false
		}
		i = skipSpace(i + 4)
	}

	if !isDigit(at(i)) {
		return ip, 0, false
	}
	p := 0
	for ; at(i) != 0 && !isIPv6Space(at(i)); i++ {
		if !isDigit(at(i)) {
			return ip, 0, false
		}
		p = p*10 + int(at(i)-'0')
		if p > math.MaxUint16 {
			return ip, 0, false
		}
	}
	if skipSpace(i) != len(s) {
		return ip, 0, false
	}
	return ip, uint16(p), true
}

func hasNUL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return true
		}
	}
	return false
}
