package netmsg

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// IdentityType is the kind of an Identity. The values are GNS's
// ESteamNetworkingIdentityType.
type IdentityType int32

// Identity types (GNS ESteamNetworkingIdentityType, steamnetworkingtypes.h).
const (
	IdentityInvalid        IdentityType = 0  // the zero Identity; "invalid"
	IdentityIPAddress      IdentityType = 1  // "ip:" an IP address and port
	IdentityGenericString  IdentityType = 2  // "str:" an application-defined string
	IdentityGenericBytes   IdentityType = 3  // "gen:" application-defined bytes
	IdentityUnknown        IdentityType = 4  // "prefix:..." a type this version does not know, kept verbatim
	IdentitySteamID        IdentityType = 16 // "steamid:" a 64-bit Steam ID
	IdentityXboxPairwiseID IdentityType = 17 // "xboxpwid:" a publisher-specific Xbox user ID
	IdentitySonyPSN        IdentityType = 18 // "psn:" a 64-bit PlayStation Network ID
)

// String returns the name of the type, e.g. "GenericString", or
// "IdentityType(n)" for a value GNS does not define.
func (t IdentityType) String() string {
	switch t {
	case IdentityInvalid:
		return "Invalid"
	case IdentityIPAddress:
		return "IPAddress"
	case IdentityGenericString:
		return "GenericString"
	case IdentityGenericBytes:
		return "GenericBytes"
	case IdentityUnknown:
		return "UnknownType"
	case IdentitySteamID:
		return "SteamID"
	case IdentityXboxPairwiseID:
		return "XboxPairwiseID"
	case IdentitySonyPSN:
		return "SonyPSN"
	}
	return "IdentityType(" + strconv.Itoa(int(t)) + ")"
}

// Limits of the identity kinds, from GNS's SteamNetworkingIdentity
// (steamnetworkingtypes.h) and its ParseString
// (steamnetworkingsockets_shared.cpp).
const (
	// MaxGenericStringLen is the longest "str:" identity, in bytes (GNS:
	// k_cchMaxGenericString 32, which counts the terminating NUL).
	MaxGenericStringLen = 31
	// MaxGenericBytesLen is the longest "gen:" identity, in bytes (GNS:
	// k_cbMaxGenericBytes).
	MaxGenericBytesLen = 32
	// MaxXboxPairwiseIDLen is the longest "xboxpwid:" identity, in bytes
	// (GNS: k_cchMaxXboxPairwiseID 33, with the NUL).
	MaxXboxPairwiseIDLen = 32
	// MaxIdentityStringLen is the longest string form of any identity, in
	// bytes (GNS: k_cchMaxString 128, with the NUL). An unknown-type identity
	// longer than this does not parse.
	MaxIdentityStringLen = 127
	// maxUnknownPrefixLen is the longest prefix GNS keeps as an unknown type.
	maxUnknownPrefixLen = 16
	// ipAddrSize is sizeof(SteamNetworkingIPAddr): 16 address bytes and a
	// 16-bit port.
	ipAddrSize = 18
)

// ErrBadIdentity is returned (wrapped) when a string or value is not a valid
// identity. Use errors.Is to test for it.
var ErrBadIdentity = errors.New("netmsg: bad identity")

// parseError is the error of ParseIdentity and ParseIPAddr.
type parseError struct {
	what   string // "identity" or "ip address"
	in     string
	reason string // why, when more can be said than "bad"
	err    error
}

func (e *parseError) Error() string {
	if e.reason != "" {
		return fmt.Sprintf("netmsg: bad %s %q: %s", e.what, e.in, e.reason)
	}
	return fmt.Sprintf("netmsg: bad %s %q", e.what, e.in)
}

func (e *parseError) Unwrap() error { return e.err }

// Identity names a peer: a Steam ID, an IP address, an application-defined
// string or bytes, or one of the other kinds GNS knows (see IdentityType).
// It is GNS's SteamNetworkingIdentity as a Go value.
//
// Identity is a small comparable value: use == to compare two identities
// and use it as a map key. Two identities are equal exactly when GNS would
// call them equal. The zero value is the invalid identity, which renders as
// "invalid"; IsValid reports whether an Identity is anything else. Build one
// with ParseIdentity or one of the IdentityFrom constructors; every valid
// Identity they return renders (String) to a string that ParseIdentity reads
// back to an equal Identity.
type Identity struct {
	typ  IdentityType
	num  uint64         // IdentitySteamID, IdentitySonyPSN
	addr netip.AddrPort // IdentityIPAddress; the address always in its 16-byte form, no zone
	str  string         // GenericString, XboxPairwiseID, GenericBytes (raw), Unknown (the whole string)
}

// ParseIdentity parses the string form of an identity as GNS's
// SteamNetworkingIdentity::ParseString does, and refuses the identities
// that no peer could ever reach. The forms are:
//
//	steamid:76561197960287930   a valid 64-bit Steam ID, in decimal
//	ip:1.2.3.4:27020            an IP address with an optional port (see ParseIPAddr)
//	ip:[::1]:27020
//	str:alice                   1 to 31 printable ASCII characters, no spaces
//	gen:0123abcd                1 to 32 bytes in hex (an even number of digits)
//	xboxpwid:...                1 to 32 printable ASCII characters, no spaces
//	psn:12345                   a 64-bit PSN ID, in decimal
//	prefix:anything             a type GNS may define later: a prefix of 1 to 16
//	                            characters from [a-z0-9_], and at most 127
//	                            printable ASCII characters in all, no spaces;
//	                            kept verbatim as IdentityUnknown
//
// Prefixes are case-sensitive. GNS's quirks are reproduced, so that a string
// means the same here as in a GNS program: numbers are read as C's scanf
// reads them (leading white space and a sign are accepted, trailing garbage
// after a Steam or PSN ID is ignored), and "gen:" digits are read in pairs
// by scanf("%2x"), so "gen:0x01" is the two bytes 00 01. The string
// "invalid", which is how the zero Identity renders, does not parse.
//
// GNS's own parser takes more than this: an empty "str:", and text with
// spaces, control characters or bytes outside ASCII (invalid UTF-8
// included). Identities are exchanged as text on signaling servers (GNS's
// trivial protocol and netmsg's, see package signaling), whose lines carry
// only printable ASCII without spaces, so a peer with such an identity
// could never be found; ParseIdentity refuses them with the reason. A
// string with a NUL byte is refused too (GNS reads C strings). An "ip:"
// identity that parses may still not be a place to send to (port 0, a
// broadcast address...): see CheckTarget.
//
// On failure ParseIdentity returns the zero Identity and an error wrapping
// ErrBadIdentity that says why; it never panics.
func ParseIdentity(s string) (Identity, error) {
	id, ok := parseIdentity(s)
	if !ok {
		return Identity{}, &parseError{what: "identity", in: s, err: ErrBadIdentity}
	}
	if reason := unreachableReason(id); reason != "" {
		return Identity{}, &parseError{what: "identity", in: s, reason: reason, err: ErrBadIdentity}
	}
	return id, nil
}

// parseIdentityGNS parses s exactly as GNS's ParseString does, accepting
// identities ParseIdentity refuses as unreachable. It is for identities a
// peer presents (in its certificate), which GNS peers may hold.
func parseIdentityGNS(s string) (Identity, error) {
	id, ok := parseIdentity(s)
	if !ok {
		return Identity{}, &parseError{what: "identity", in: s, err: ErrBadIdentity}
	}
	return id, nil
}

// unreachableReason says why a valid identity could never be reached
// through a signaling server, or returns "" when it can be. Steam, PSN,
// IP and generic-bytes identities render to plain ASCII and always can;
// the text kinds can when their text is printable ASCII without spaces
// and, for "str:", not empty.
func unreachableReason(id Identity) string {
	var text string
	switch id.typ {
	case IdentityGenericString:
		if id.str == "" {
			return "an empty str: identity cannot be reached"
		}
		text = id.str
	case IdentityXboxPairwiseID, IdentityUnknown:
		text = id.str
	default:
		return ""
	}
	return textReason(text)
}

// textReason says what in text a signaling line cannot carry, or returns
// "" if nothing.
func textReason(text string) string {
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case c == ' ':
			return "it holds a space, which signaling servers do not carry"
		case c < ' ' || c == 0x7f:
			return fmt.Sprintf("it holds the control character %#02x, which signaling servers do not carry", c)
		case c > 0x7f:
			if !utf8.ValidString(text) {
				return "it is not valid UTF-8"
			}
			return "it holds non-ASCII text, which signaling servers do not carry"
		}
	}
	return ""
}

func parseIdentity(s string) (Identity, bool) {
	if s == "" || hasNUL(s) {
		return Identity{}, false
	}
	if rest, ok := strings.CutPrefix(s, "steamid:"); ok {
		v, ok := scanCUint64(rest, 0)
		if !ok || !steamIDIsValid(v) {
			return Identity{}, false
		}
		return Identity{typ: IdentitySteamID, num: v}, true
	}
	if rest, ok := strings.CutPrefix(s, "xboxpwid:"); ok {
		if len(rest) < 1 || len(rest) > MaxXboxPairwiseIDLen {
			return Identity{}, false
		}
		return Identity{typ: IdentityXboxPairwiseID, str: rest}, true
	}
	if rest, ok := strings.CutPrefix(s, "psn:"); ok {
		v, ok := scanCUint64(rest, 0)
		if !ok {
			return Identity{}, false
		}
		return IdentityFromPSNID(v), true
	}
	if rest, ok := strings.CutPrefix(s, "ip:"); ok {
		ap, ok := parseIPAddr(rest)
		if !ok {
			return Identity{}, false
		}
		return identityFromValidAddr(ap), true
	}
	if rest, ok := strings.CutPrefix(s, "str:"); ok {
		if len(rest) > MaxGenericStringLen {
			return Identity{}, false
		}
		return Identity{typ: IdentityGenericString, str: rest}, true
	}
	if rest, ok := strings.CutPrefix(s, "gen:"); ok {
		b, ok := scanGenericBytes(rest)
		if !ok {
			return Identity{}, false
		}
		return Identity{typ: IdentityGenericBytes, str: string(b)}, true
	}
	return parseUnknownIdentity(s)
}

// parseUnknownIdentity accepts "prefix:data" for a prefix GNS does not know
// yet, keeping the whole string.
func parseUnknownIdentity(s string) (Identity, bool) {
	colon := strings.IndexByte(s, ':')
	if colon < 1 || colon > maxUnknownPrefixLen {
		return Identity{}, false
	}
	for i := 0; i < colon; i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_') {
			return Identity{}, false
		}
	}
	if len(s) > MaxIdentityStringLen {
		return Identity{}, false
	}
	return Identity{typ: IdentityUnknown, str: s}, true
}

// scanGenericBytes decodes the hex of a "gen:" identity the way GNS does:
// the length must be even, 2 to 64 characters, and each byte is what
// sscanf("%2x") reads at the next even offset of the string. That read
// skips white space first (possibly past its own pair) and takes up to two
// characters of a C hex number: an optional sign, an optional "0x" prefix,
// hex digits.
func scanGenericBytes(s string) ([]byte, bool) {
	if len(s) < 2 || len(s)%2 != 0 || len(s)/2 > MaxGenericBytesLen {
		return nil, false
	}
	out := make([]byte, len(s)/2)
	for k := range out {
		v, ok := scanCHex2(s, 2*k)
		if !ok {
			return nil, false
		}
		out[k] = v
	}
	return out, true
}

// scanCHex2 is glibc's sscanf(s[i:], "%2x") truncated to a byte.
func scanCHex2(s string, i int) (byte, bool) {
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	width := 2
	neg, digits := false, 0
	var v uint64
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
		width--
	}
	if width > 0 && i < len(s) && s[i] == '0' {
		// A leading zero counts as a digit; "0x" is a prefix.
		digits++
		i++
		width--
		if width > 0 && i < len(s) && (s[i] == 'x' || s[i] == 'X') {
			i++
			width--
		}
	}
	for ; width > 0 && i < len(s) && hexVal(s[i]) >= 0; width-- {
		v = v<<4 | uint64(hexVal(s[i]))
		digits++
		i++
	}
	if digits == 0 {
		return 0, false
	}
	if neg {
		v = -v
	}
	return byte(v), true
}

// IdentityFromString returns the "str:" identity of name, GNS's
// GenericString. name must hold 1 to MaxGenericStringLen printable ASCII
// characters without spaces, which is what ParseIdentity accepts after
// "str:"; otherwise the error wraps ErrBadIdentity and says why.
func IdentityFromString(name string) (Identity, error) {
	if len(name) > MaxGenericStringLen || hasNUL(name) {
		return Identity{}, fmt.Errorf("%w: generic string of %d bytes (at most %d, no NUL)", ErrBadIdentity, len(name), MaxGenericStringLen)
	}
	id := Identity{typ: IdentityGenericString, str: name}
	if reason := unreachableReason(id); reason != "" {
		return Identity{}, fmt.Errorf("%w %q: %s", ErrBadIdentity, "str:"+name, reason)
	}
	return id, nil
}

// IdentityFromAddr returns the "ip:" identity of ap. The address must be
// valid; a zone is dropped (GNS has none), and an IPv4-mapped IPv6 address
// is the same identity as the IPv4 address. Port 0 is allowed and means
// "no port". An invalid ap gives an error wrapping ErrBadIdentity.
func IdentityFromAddr(ap netip.AddrPort) (Identity, error) {
	if !ap.Addr().IsValid() {
		return Identity{}, fmt.Errorf("%w: invalid ip address", ErrBadIdentity)
	}
	return identityFromValidAddr(ap), nil
}

func identityFromValidAddr(ap netip.AddrPort) Identity {
	a := netip.AddrFrom16(ap.Addr().As16())
	return Identity{typ: IdentityIPAddress, addr: netip.AddrPortFrom(a, ap.Port())}
}

// IdentityLocalhost returns the identity GNS gives a host that has none of
// its own: ip:::1 (IPv6 localhost, port 0).
func IdentityLocalhost() Identity {
	return identityFromValidAddr(netip.AddrPortFrom(netip.IPv6Loopback(), 0))
}

// IdentityFromSteamID returns the "steamid:" identity of a 64-bit Steam ID.
// The ID must be one GNS accepts (CSteamID::IsValid: a known universe and
// account type, and for individual, clan and game server IDs a non-zero
// account); otherwise the error wraps ErrBadIdentity.
func IdentityFromSteamID(id uint64) (Identity, error) {
	if !steamIDIsValid(id) {
		return Identity{}, fmt.Errorf("%w: invalid steam id %d", ErrBadIdentity, id)
	}
	return Identity{typ: IdentitySteamID, num: id}, nil
}

// IdentityFromBytes returns the "gen:" identity of b, GNS's GenericBytes.
// b must hold 1 to MaxGenericBytesLen bytes; otherwise the error wraps
// ErrBadIdentity. The bytes are copied.
func IdentityFromBytes(b []byte) (Identity, error) {
	if len(b) < 1 || len(b) > MaxGenericBytesLen {
		return Identity{}, fmt.Errorf("%w: generic bytes of length %d (want 1 to %d)", ErrBadIdentity, len(b), MaxGenericBytesLen)
	}
	return Identity{typ: IdentityGenericBytes, str: string(b)}, nil
}

// IdentityFromXboxPairwiseID returns the "xboxpwid:" identity of id, which
// must hold 1 to MaxXboxPairwiseIDLen printable ASCII characters without
// spaces (what ParseIdentity accepts); otherwise the error wraps
// ErrBadIdentity.
func IdentityFromXboxPairwiseID(id string) (Identity, error) {
	if len(id) < 1 || len(id) > MaxXboxPairwiseIDLen || hasNUL(id) {
		return Identity{}, fmt.Errorf("%w: xbox pairwise id of %d bytes (want 1 to %d, no NUL)", ErrBadIdentity, len(id), MaxXboxPairwiseIDLen)
	}
	x := Identity{typ: IdentityXboxPairwiseID, str: id}
	if reason := unreachableReason(x); reason != "" {
		return Identity{}, fmt.Errorf("%w %q: %s", ErrBadIdentity, "xboxpwid:"+id, reason)
	}
	return x, nil
}

// IdentityFromPSNID returns the "psn:" identity of a PlayStation Network ID.
// Every value, 0 included, is valid.
func IdentityFromPSNID(id uint64) Identity {
	return Identity{typ: IdentitySonyPSN, num: id}
}

// Type returns the kind of the identity; IdentityInvalid for the zero value.
func (id Identity) Type() IdentityType { return id.typ }

// IsValid reports whether id is not the zero (invalid) identity.
func (id Identity) IsValid() bool { return id.typ != IdentityInvalid }

// IsLocalhost reports whether id is the IP address ::1 or 127.0.0.1, with
// any port, as GNS's IsLocalHost does.
func (id Identity) IsLocalhost() bool {
	return id.typ == IdentityIPAddress && ipAddrIsLocalhost(id.addr.Addr())
}

// Addr returns the address of an "ip:" identity, IPv4 as a 4-byte address,
// and whether id is one.
func (id Identity) Addr() (netip.AddrPort, bool) {
	if id.typ != IdentityIPAddress {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(id.addr.Addr().Unmap(), id.addr.Port()), true
}

// SteamID returns the 64-bit Steam ID of a "steamid:" identity and whether
// id is one.
func (id Identity) SteamID() (uint64, bool) {
	return id.num, id.typ == IdentitySteamID
}

// PSNID returns the ID of a "psn:" identity and whether id is one.
func (id Identity) PSNID() (uint64, bool) {
	return id.num, id.typ == IdentitySonyPSN
}

// GenericString returns the string of a "str:" identity and whether id is
// one.
func (id Identity) GenericString() (string, bool) {
	if id.typ != IdentityGenericString {
		return "", false
	}
	return id.str, true
}

// GenericBytes returns a copy of the bytes of a "gen:" identity and whether
// id is one.
func (id Identity) GenericBytes() ([]byte, bool) {
	if id.typ != IdentityGenericBytes {
		return nil, false
	}
	return []byte(id.str), true
}

// XboxPairwiseID returns the ID of an "xboxpwid:" identity and whether id is
// one.
func (id Identity) XboxPairwiseID() (string, bool) {
	if id.typ != IdentityXboxPairwiseID {
		return "", false
	}
	return id.str, true
}

// Size returns the number of bytes GNS stores for the identity's value
// (SteamNetworkingIdentity's m_cbSize): 8 for Steam and PSN IDs, 18 for an
// IP address and port, the byte count for generic bytes, and the length
// plus a terminating NUL for the string kinds. It is 0 for the invalid
// identity.
func (id Identity) Size() int {
	switch id.typ {
	case IdentitySteamID, IdentitySonyPSN:
		return 8
	case IdentityIPAddress:
		return ipAddrSize
	case IdentityGenericBytes:
		return len(id.str)
	case IdentityGenericString, IdentityXboxPairwiseID, IdentityUnknown:
		return len(id.str) + 1
	}
	return 0
}

// String renders id exactly as GNS's SteamNetworkingIdentity::ToString
// does: "steamid:<decimal>", "ip:<address>" (the port only when it is not
// 0; see FormatIPAddr), "str:<text>", "gen:<lowercase hex>",
// "xboxpwid:<id>", "psn:<decimal>", an unknown identity verbatim, and
// "invalid" for the zero value.
func (id Identity) String() string {
	switch id.typ {
	case IdentitySteamID:
		return "steamid:" + strconv.FormatUint(id.num, 10)
	case IdentitySonyPSN:
		return "psn:" + strconv.FormatUint(id.num, 10)
	case IdentityIPAddress:
		return "ip:" + FormatIPAddr(id.addr, id.addr.Port() != 0)
	case IdentityGenericString:
		return "str:" + id.str
	case IdentityGenericBytes:
		return "gen:" + hex.EncodeToString([]byte(id.str))
	case IdentityXboxPairwiseID:
		return "xboxpwid:" + id.str
	case IdentityUnknown:
		return id.str
	}
	return "invalid"
}

// Steam ID layout (steamclientpublic.h, CSteamID): account ID in the low 32
// bits, then a 20-bit instance, a 4-bit account type and an 8-bit universe.
const (
	steamAccountTypeInvalid    = 0
	steamAccountTypeIndividual = 1
	steamAccountTypeGameServer = 3
	steamAccountTypeClan       = 7
	steamAccountTypeMax        = 11 // k_EAccountTypeMax: one past AnonUser (10)
	steamUniverseMax           = 5  // k_EUniverseMax (steamuniverse.h): one past Dev (4)
	steamUserDefaultInstance   = 1
)

// steamIDIsValid reports whether GNS's CSteamID::IsValid accepts id.
func steamIDIsValid(id uint64) bool {
	account := uint32(id)
	instance := uint32(id>>32) & 0xFFFFF
	accountType := uint32(id>>52) & 0xF
	universe := uint32(id >> 56)
	if accountType == steamAccountTypeInvalid || accountType >= steamAccountTypeMax {
		return false
	}
	if universe == 0 || universe >= steamUniverseMax {
		return false
	}
	switch accountType {
	case steamAccountTypeIndividual:
		return account != 0 && instance == steamUserDefaultInstance
	case steamAccountTypeClan:
		return account != 0 && instance == 0
	case steamAccountTypeGameServer:
		return account != 0
	}
	return true
}

// ErrUnroutable is returned (wrapped) by CheckTarget for an identity no
// message can be sent to. Such an error also matches ResultInvalidParam
// with errors.Is, the result GNS gives for a bad target.
var ErrUnroutable = errors.New("netmsg: identity cannot be sent to")

// targetError is the error of CheckTarget.
type targetError struct {
	id     Identity
	reason string
}

func (e *targetError) Error() string {
	return fmt.Sprintf("netmsg: cannot send to %v: %s", e.id, e.reason)
}

func (e *targetError) Is(target error) bool {
	return target == ErrUnroutable || target == ResultInvalidParam
}

// CheckTarget reports whether messages or a connection can be addressed to
// id, and if not, why, so that a send fails at once instead of after a
// connection timeout. It refuses the invalid identity and "ip:" identities
// that cannot name one remote UDP socket: port 0, the unspecified address
// (0.0.0.0 or ::), the IPv4 broadcast address 255.255.255.255, and
// multicast addresses (224.0.0.0/4, ff00::/8). Other kinds of identity are
// reached through signaling and are accepted. The error matches both
// ErrUnroutable and ResultInvalidParam with errors.Is.
func (id Identity) CheckTarget() error {
	if id.typ == IdentityInvalid {
		return &targetError{id: id, reason: "the invalid identity names no peer"}
	}
	if id.typ != IdentityIPAddress {
		return nil
	}
	a := id.addr.Addr().Unmap()
	switch {
	case a.IsUnspecified():
		return &targetError{id: id, reason: "the unspecified address " + a.String() + " names no host"}
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return &targetError{id: id, reason: "a broadcast address names no single host"}
	case a.IsMulticast():
		return &targetError{id: id, reason: "a multicast address names no single host"}
	case id.addr.Port() == 0:
		return &targetError{id: id, reason: "port 0 names no socket (give the peer's port, e.g. ip:" + FormatIPAddr(netip.AddrPortFrom(a, 27020), true) + ")"}
	}
	return nil
}
