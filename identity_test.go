package netmsg

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/netmsg-go/netmsg/internal/vectors"
	"github.com/netmsg-go/netmsg/signaling"
)

// identityVectors is testdata/vectors/identities.json.
type identityVectors struct {
	Identities []struct {
		Category        string  `json:"category"`
		Input           string  `json:"input"`
		InputHex        string  `json:"input_hex"`
		Parses          bool    `json:"parses"`
		Type            int     `json:"type"`
		TypeName        string  `json:"type_name"`
		CBSize          int     `json:"cb_size"`
		Rendering       string  `json:"rendering"`
		SteamID64       string  `json:"steamid64"`
		PSNID           string  `json:"psn_id"`
		GenericString   *string `json:"generic_string"`
		GenericBytesHex string  `json:"generic_bytes_hex"`
		IPWithPort      string  `json:"ip_addr_rendered_with_port"`
		IsLocalhost     bool    `json:"is_localhost"`
		Reparses        bool    `json:"rendering_reparses"`
		ReparsesEqual   bool    `json:"rendering_reparses_to_equal_identity"`
		RenderingOfRe   string  `json:"rendering_of_reparse"`
	} `json:"identities"`
	IPAddresses []struct {
		Input        string `json:"input"`
		Parses       bool   `json:"parses"`
		IsIPv4       bool   `json:"is_ipv4"`
		IPv4U32      uint32 `json:"ipv4_u32"`
		Port         uint16 `json:"port"`
		IPv6BytesHex string `json:"ipv6_bytes_hex"`
		IsLocalhost  bool   `json:"is_localhost"`
		WithPort     string `json:"rendering_with_port"`
		WithoutPort  string `json:"rendering_without_port"`
	} `json:"ip_addresses"`
}

func loadIdentityVectors(t testing.TB) identityVectors {
	t.Helper()
	var v identityVectors
	vectors.Load(t, "identities.json", &v)
	if len(v.Identities) == 0 || len(v.IPAddresses) == 0 {
		t.Fatalf("identities.json: no cases")
	}
	return v
}

// vectorInput returns the exact input of a case: input_hex when present.
func vectorInput(t testing.TB, input, inputHex string) string {
	t.Helper()
	if inputHex == "" {
		return input
	}
	b, err := hex.DecodeString(inputHex)
	if err != nil {
		t.Fatalf("input_hex %q: %v", inputHex, err)
	}
	return string(b)
}

func TestIdentityVectors(t *testing.T) {
	v := loadIdentityVectors(t)
	for i, c := range v.Identities {
		t.Run(fmt.Sprintf("%03d_%s", i, c.Category), func(t *testing.T) {
			in := vectorInput(t, c.Input, c.InputHex)
			id, err := parseIdentityGNS(in)
			if (err == nil) != c.Parses {
				t.Fatalf("parseIdentityGNS(%q) err = %v, GNS parses = %v", in, err, c.Parses)
			}
			// ParseIdentity takes what GNS takes, less what no signaling
			// server carries.
			strict, serr := ParseIdentity(in)
			switch {
			case err != nil && serr == nil:
				t.Errorf("ParseIdentity(%q) = %v, GNS refuses it", in, strict)
			case err == nil && unreachableReason(id) == "" && (serr != nil || strict != id):
				t.Errorf("ParseIdentity(%q) = %v, %v; want %v as GNS", in, strict, serr, id)
			case err == nil && unreachableReason(id) != "" && !errors.Is(serr, ErrBadIdentity):
				t.Errorf("ParseIdentity(%q) = %v, %v; want an unreachable-identity error", in, strict, serr)
			}
			if err != nil {
				if !errors.Is(err, ErrBadIdentity) {
					t.Errorf("error %v does not wrap ErrBadIdentity", err)
				}
				if id != (Identity{}) {
					t.Errorf("failed parse returned %#v, want the zero Identity", id)
				}
			}
			if got := int(id.Type()); got != c.Type {
				t.Errorf("Type = %d, want %d", got, c.Type)
			}
			if got := id.Type().String(); got != c.TypeName {
				t.Errorf("Type name = %q, want %q", got, c.TypeName)
			}
			if got := id.Size(); got != c.CBSize {
				t.Errorf("Size = %d, want cb_size %d", got, c.CBSize)
			}
			if got := id.String(); got != c.Rendering {
				t.Errorf("String = %q, want %q", got, c.Rendering)
			}
			if got := id.IsLocalhost(); got != c.IsLocalhost {
				t.Errorf("IsLocalhost = %v, want %v", got, c.IsLocalhost)
			}
			if got := id.IsValid(); got != c.Parses {
				t.Errorf("IsValid = %v, want %v", got, c.Parses)
			}

			// The parsed value.
			if c.SteamID64 != "" {
				want, _ := strconv.ParseUint(c.SteamID64, 10, 64)
				if got, ok := id.SteamID(); !ok || got != want {
					t.Errorf("SteamID = %d, %v; want %d", got, ok, want)
				}
			}
			if id.Type() == IdentitySonyPSN {
				want := uint64(0)
				if c.PSNID != "" {
					want, _ = strconv.ParseUint(c.PSNID, 10, 64)
				}
				if got, ok := id.PSNID(); !ok || got != want {
					t.Errorf("PSNID = %d, %v; want %d", got, ok, want)
				}
			}
			if c.GenericString != nil {
				if got, ok := id.GenericString(); !ok || got != *c.GenericString {
					t.Errorf("GenericString = %q, %v; want %q", got, ok, *c.GenericString)
				}
			}
			if c.GenericBytesHex != "" {
				if got, ok := id.GenericBytes(); !ok || hex.EncodeToString(got) != c.GenericBytesHex {
					t.Errorf("GenericBytes = %x, %v; want %s", got, ok, c.GenericBytesHex)
				}
			}
			if c.IPWithPort != "" {
				ap, ok := id.Addr()
				if !ok {
					t.Fatalf("Addr: not an ip identity")
				}
				if got := FormatIPAddr(ap, true); got != c.IPWithPort {
					t.Errorf("FormatIPAddr(Addr, true) = %q, want %q", got, c.IPWithPort)
				}
			}
			if id.Type() == IdentityXboxPairwiseID {
				want := in[len("xboxpwid:"):]
				if got, ok := id.XboxPairwiseID(); !ok || got != want {
					t.Errorf("XboxPairwiseID = %q, %v; want %q", got, ok, want)
				}
			}

			// Reparse of the rendering.
			re, err := parseIdentityGNS(id.String())
			if (err == nil) != c.Reparses {
				t.Fatalf("reparse of %q: err = %v, GNS reparses = %v", id.String(), err, c.Reparses)
			}
			if err == nil {
				if (re == id) != c.ReparsesEqual {
					t.Errorf("reparse equal = %v, want %v (%v vs %v)", re == id, c.ReparsesEqual, re, id)
				}
				want := c.RenderingOfRe
				if want == "" {
					want = c.Rendering
				}
				if got := re.String(); got != want {
					t.Errorf("rendering of reparse = %q, want %q", got, want)
				}
			}
		})
	}
}

func TestIPAddrVectors(t *testing.T) {
	v := loadIdentityVectors(t)
	for i, c := range v.IPAddresses {
		t.Run(fmt.Sprintf("%02d", i), func(t *testing.T) {
			ap, err := ParseIPAddr(c.Input)
			if (err == nil) != c.Parses {
				t.Fatalf("ParseIPAddr(%q) err = %v, GNS parses = %v", c.Input, err, c.Parses)
			}
			if err != nil && !errors.Is(err, ErrBadIPAddr) {
				t.Errorf("error %v does not wrap ErrBadIPAddr", err)
			}
			// A failed parse leaves GNS's address cleared; the zero AddrPort
			// renders the same way.
			if got := FormatIPAddr(ap, true); got != c.WithPort {
				t.Errorf("FormatIPAddr(true) = %q, want %q", got, c.WithPort)
			}
			if got := FormatIPAddr(ap, false); got != c.WithoutPort {
				t.Errorf("FormatIPAddr(false) = %q, want %q", got, c.WithoutPort)
			}
			if !c.Parses {
				return
			}
			if got := ap.Addr().Is4(); got != c.IsIPv4 {
				t.Errorf("Is4 = %v, want %v", got, c.IsIPv4)
			}
			if c.IsIPv4 {
				b := ap.Addr().As4()
				if got := binary.BigEndian.Uint32(b[:]); got != c.IPv4U32 {
					t.Errorf("ipv4 = %#x, want %#x", got, c.IPv4U32)
				}
			}
			b16 := ap.Addr().As16()
			if got := hex.EncodeToString(b16[:]); got != c.IPv6BytesHex {
				t.Errorf("16 bytes = %s, want %s", got, c.IPv6BytesHex)
			}
			if ap.Port() != c.Port {
				t.Errorf("port = %d, want %d", ap.Port(), c.Port)
			}
			if got := ipAddrIsLocalhost(ap.Addr()); got != c.IsLocalhost {
				t.Errorf("localhost = %v, want %v", got, c.IsLocalhost)
			}
		})
	}
}

// TestParseIPAddrQuirks covers GNS behaviour beyond the vectors, derived from
// reading its parser (and glibc's scanf for the IPv4 and gen: paths).
func TestParseIPAddrQuirks(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // FormatIPAddr with port; "" means the parse fails
	}{
		{"1.2.3.4:garbage", "1.2.3.4:0"},
		{"1.2.3.4 :80", "1.2.3.4:0"},
		{"1. 2.3.4", "1.2.3.4:0"},
		{"+1.2.-0.4", "1.2.0.4:0"},
		{"1.2.3.4:-1", ""},
		{"1.2.3.4:+80", "1.2.3.4:80"},
		{"1.2.3.4294967297", "1.2.3.1:0"}, // glibc stores the low 32 bits
		{"\n1.2.3.4", "1.2.3.4:0"},
		{"1:2:3:4:5:6:7:8:80", "[1:2:3:4:5:6:7:8]:80"},
		{"1:2:3:4:5:6:7:8", "[1:2:3:4:5:6:7:8]:0"},
		{"1:2:3:4:5:6:7:8::", ""},
		{"::1:2:3:4:5:6:7:8", ""},
		{"1::2::3", ""},
		{"[::1]#80", "[::1]:80"},
		{"[::1].80", "[::1]:80"},
		{"[::1]p80", "[::1]:80"},
		{"::1 port 80", "[::1]:80"},
		{"[ ::1 ] :80", ""},
		{"[ ::1 ]:80", "[::1]:80"},
		{"::1 ", "::1"},
		{"\t::1", "::1"},
		{"\n::1", ""},
		{"fe80::1%2", "fe80::1"},
		{"[fe80::1%2]:9", "[fe80::1]:9"},
		{"::1:65536", ""},
		{"[::1]:65536", ""},
		{"[::1]:", ""},
		{"::", "::"},
		{":::", ""},
		{":1::", ""},
		{"12345::", ""},
		{"::ffff:1.2.3.4", "1.2.3.4:0"},
		{"1:2:3:4:5:6:7:1.2.3.4", ""},
		{"1:2:3:4:5:6:1.2.3.4", "[1:2:3:4:5:6:102:304]:0"},
		{"::1.2.3.4", "[::102:304]:0"},
		{"::1.2.3.256", ""},
		{"[1.2.3.4]:5", ""},
		{"1.2.3.4\x00", ""},
	} {
		ap, err := ParseIPAddr(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("ParseIPAddr(%q) = %v, want an error", c.in, ap)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseIPAddr(%q): %v", c.in, err)
			continue
		}
		got := FormatIPAddr(ap, ap.Port() != 0 || c.want[0] == '[' || ap.Addr().Is4())
		if got != c.want {
			t.Errorf("ParseIPAddr(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseIdentityQuirks(t *testing.T) {
	for _, c := range []struct {
		in, want string // want "" means the parse fails
	}{
		{"steamid: 76561197960287930", "steamid:76561197960287930"},
		{"steamid:76561197960287930xyz", "steamid:76561197960287930"},
		{"steamid:-1", ""},
		{"psn:-1", "psn:18446744073709551615"},
		{"psn:99999999999999999999", "psn:18446744073709551615"},
		{"psn: 7 trailing", "psn:7"},
		{"psn:", ""},
		{"gen: 123", "gen:1223"}, // the first pair's read skips the space and runs on
		{"gen:0X0f", "gen:000f"},
		{"gen:-1", "gen:ff"},
		{"gen:+f", "gen:0f"},
		{"gen:x1", ""},
		{"gen:1x", "gen:01"},
		{"gen:+", ""},
		{"xboxpwid:", ""},
		{"str:a\x00b", ""},
		{"a:", "a:"},
		{"_:", "_:"},
		{"invalid:", "invalid:"},
	} {
		id, err := ParseIdentity(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("ParseIdentity(%q) = %v, want an error", c.in, id)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseIdentity(%q): %v", c.in, err)
			continue
		}
		if got := id.String(); got != c.want {
			t.Errorf("ParseIdentity(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestIdentityConstructors(t *testing.T) {
	mustID := func(id Identity, err error) Identity {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	for _, c := range []struct {
		id   Identity
		want string
	}{
		{mustID(IdentityFromString("alice")), "str:alice"},

		{mustID(IdentityFromAddr(netip.MustParseAddrPort("127.0.0.1:27020"))), "ip:127.0.0.1:27020"},
		{mustID(IdentityFromAddr(netip.MustParseAddrPort("[::ffff:1.2.3.4]:80"))), "ip:1.2.3.4:80"},
		{mustID(IdentityFromAddr(netip.MustParseAddrPort("[fe80::1%eth0]:0"))), "ip:fe80::1"},
		{mustID(IdentityFromSteamID(76561197960287930)), "steamid:76561197960287930"},
		{mustID(IdentityFromBytes([]byte{0xab, 0x01})), "gen:ab01"},
		{mustID(IdentityFromXboxPairwiseID("abc")), "xboxpwid:abc"},
		{IdentityFromPSNID(0), "psn:0"},
		{IdentityLocalhost(), "ip:::1"},
		{Identity{}, "invalid"},
	} {
		if got := c.id.String(); got != c.want {
			t.Errorf("String = %q, want %q", got, c.want)
		}
		if c.id.IsValid() {
			re, err := ParseIdentity(c.want)
			if err != nil || re != c.id {
				t.Errorf("ParseIdentity(%q) = %#v, %v; want %#v", c.want, re, err, c.id)
			}
		}
	}

	// The same address in its 4-byte and IPv4-mapped forms is one identity.
	a := mustID(IdentityFromAddr(netip.MustParseAddrPort("1.2.3.4:5")))
	b := mustID(IdentityFromAddr(netip.MustParseAddrPort("[::ffff:1.2.3.4]:5")))
	if a != b {
		t.Errorf("4-byte and mapped addresses give different identities")
	}
	if ap, _ := a.Addr(); !ap.Addr().Is4() {
		t.Errorf("Addr() = %v, want a 4-byte address", ap)
	}
	if !IdentityLocalhost().IsLocalhost() {
		t.Errorf("IdentityLocalhost().IsLocalhost() = false")
	}
	m := map[Identity]int{a: 1}
	if m[b] != 1 {
		t.Errorf("identity map lookup failed")
	}

	for name, err := range map[string]error{
		"long string":    second(IdentityFromString("0123456789012345678901234567890123")),
		"nul string":     second(IdentityFromString("a\x00")),
		"invalid addr":   second(IdentityFromAddr(netip.AddrPort{})),
		"steamid 0":      second(IdentityFromSteamID(0)),
		"steamid acct 0": second(IdentityFromSteamID(76561197960265728)),
		"no bytes":       second(IdentityFromBytes(nil)),
		"33 bytes":       second(IdentityFromBytes(make([]byte, 33))),
		"empty xbox":     second(IdentityFromXboxPairwiseID("")),
		"long xbox":      second(IdentityFromXboxPairwiseID("012345678901234567890123456789012")),
	} {
		if !errors.Is(err, ErrBadIdentity) {
			t.Errorf("%s: err = %v, want ErrBadIdentity", name, err)
		}
	}

	// GenericBytes returns a copy.
	g := mustID(IdentityFromBytes([]byte{1, 2}))
	bs, _ := g.GenericBytes()
	bs[0] = 9
	if g.String() != "gen:0102" {
		t.Errorf("GenericBytes result aliases the identity")
	}
}

func second(_ Identity, err error) error { return err }

func TestIdentityTypeString(t *testing.T) {
	for typ, want := range map[IdentityType]string{
		IdentityInvalid:        "Invalid",
		IdentityIPAddress:      "IPAddress",
		IdentityGenericString:  "GenericString",
		IdentityGenericBytes:   "GenericBytes",
		IdentityUnknown:        "UnknownType",
		IdentitySteamID:        "SteamID",
		IdentityXboxPairwiseID: "XboxPairwiseID",
		IdentitySonyPSN:        "SonyPSN",
		IdentityType(5):        "IdentityType(5)",
	} {
		if got := typ.String(); got != want {
			t.Errorf("IdentityType(%d).String() = %q, want %q", int(typ), got, want)
		}
	}
	// Numeric values: GNS ESteamNetworkingIdentityType.
	for typ, want := range map[IdentityType]int{
		IdentityInvalid: 0, IdentityIPAddress: 1, IdentityGenericString: 2, IdentityGenericBytes: 3,
		IdentityUnknown: 4, IdentitySteamID: 16, IdentityXboxPairwiseID: 17, IdentitySonyPSN: 18,
	} {
		if int(typ) != want {
			t.Errorf("%v = %d, want %d", typ, int(typ), want)
		}
	}
}

func FuzzParseIdentity(f *testing.F) {
	v := loadIdentityVectors(f)
	for _, c := range v.Identities {
		f.Add(vectorInput(f, c.Input, c.InputHex))
		f.Add(c.Rendering)
	}
	for _, c := range v.IPAddresses {
		f.Add("ip:" + c.Input)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParseIdentity(s)
		if err != nil {
			if id != (Identity{}) {
				t.Fatalf("failed parse returned %#v", id)
			}
			return
		}
		if !id.IsValid() {
			t.Fatalf("ParseIdentity(%q) succeeded with an invalid identity", s)
		}
		r := id.String()
		re, err := ParseIdentity(r)
		if err != nil {
			t.Fatalf("ParseIdentity(%q) = %q, which does not reparse: %v", s, r, err)
		}
		if re != id {
			t.Fatalf("ParseIdentity(%q) = %#v renders %q, which reparses to %#v", s, id, r, re)
		}
		if re.String() != r {
			t.Fatalf("rendering not stable: %q then %q", r, re.String())
		}
		if len(r) > MaxIdentityStringLen {
			t.Fatalf("rendering %q is longer than %d bytes", r, MaxIdentityStringLen)
		}
	})
}

func FuzzParseIPAddr(f *testing.F) {
	v := loadIdentityVectors(f)
	for _, c := range v.IPAddresses {
		f.Add(c.Input)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ap, err := ParseIPAddr(s)
		if err != nil {
			return
		}
		for _, withPort := range []bool{true, false} {
			r := FormatIPAddr(ap, withPort)
			re, err := ParseIPAddr(r)
			if err != nil {
				t.Fatalf("ParseIPAddr(%q) = %v renders %q, which does not reparse: %v", s, ap, r, err)
			}
			want := ap
			if !withPort {
				want = netip.AddrPortFrom(ap.Addr(), 0)
			}
			if re != want {
				t.Fatalf("ParseIPAddr(%q) = %v renders %q, which reparses to %v", s, ap, r, re)
			}
		}
		// The result is in its natural form: no zone, IPv4 never mapped.
		a := ap.Addr()
		if a.Zone() != "" || (a.Is6() && a.Is4In6()) {
			t.Fatalf("ParseIPAddr(%q) = %v: zone or mapped form", s, ap)
		}
	})
}

// TestParseIdentityRefusesUnreachable pins what ParseIdentity refuses
// although GNS parses it: identities a signaling server cannot carry.
func TestParseIdentityRefusesUnreachable(t *testing.T) {
	for _, c := range []struct{ in, reason string }{
		{"str:", "empty"},
		{"str:a b", "space"},
		{"str: alice", "space"},
		{"str:tab\there", "control character 0x09"},
		{"str:a\x7f", "control character 0x7f"},
		{"str:bell\x07", "control character 0x07"},
		{"str:caf\xc3\xa9", "non-ASCII"},
		{"str:bad\xff\xfe", "not valid UTF-8"},
		{"str:\xc3", "not valid UTF-8"},
		{"xboxpwid:a b", "space"},
		{"foo:b a r", "space"},
		{"foo:\xc3\xa9", "non-ASCII"},
		{"str:0123456789012345678901234567890123", ""}, // over-long: GNS refuses it too
		{"str:a\x00b", ""},
	} {
		id, err := ParseIdentity(c.in)
		if err == nil {
			t.Errorf("ParseIdentity(%q) = %v, want an error", c.in, id)
			continue
		}
		if !errors.Is(err, ErrBadIdentity) || id != (Identity{}) {
			t.Errorf("ParseIdentity(%q) = %#v, %v; want the zero Identity and ErrBadIdentity", c.in, id, err)
		}
		if !strings.Contains(err.Error(), c.reason) {
			t.Errorf("ParseIdentity(%q) error %q does not say %q", c.in, err, c.reason)
		}
		if strings.Count(err.Error(), "netmsg:") != 1 {
			t.Errorf("error %q repeats its prefix", err)
		}
	}
	// What signaling carries parses, up to the limits.
	for _, in := range []string{"str:a", "str:alice", "str:a:b:c", "str:" + strings.Repeat("x", MaxGenericStringLen), "str:~!@#$%^&*()", "xboxpwid:abc", "foo:bar"} {
		id, err := ParseIdentity(in)
		if err != nil {
			t.Errorf("ParseIdentity(%q): %v", in, err)
			continue
		}
		if signaling.CheckIdentity(id.String()) != nil {
			t.Errorf("%v parses but signaling.CheckIdentity refuses it", id)
		}
	}
	// The constructors follow the same rules.
	for _, name := range []string{"", "a b", "caf\xc3\xa9", "\xff", "a\tb"} {
		if _, err := IdentityFromString(name); !errors.Is(err, ErrBadIdentity) {
			t.Errorf("IdentityFromString(%q) err = %v, want ErrBadIdentity", name, err)
		}
	}
	if _, err := IdentityFromXboxPairwiseID("a b"); !errors.Is(err, ErrBadIdentity) {
		t.Errorf("IdentityFromXboxPairwiseID(\"a b\") err = %v, want ErrBadIdentity", err)
	}
}

// TestParseIdentityAgreesWithSignaling checks, over the GNS vectors and a
// set of generated strings, that every identity ParseIdentity returns
// renders to a string the signaling protocols carry and that parses back
// to it.
func TestParseIdentityAgreesWithSignaling(t *testing.T) {
	ins := []string{}
	for _, c := range loadIdentityVectors(t).Identities {
		ins = append(ins, vectorInput(t, c.Input, c.InputHex))
	}
	for b := 0; b < 256; b++ {
		ins = append(ins, "str:a"+string(rune(b)), "str:a"+string([]byte{byte(b)}), "foo:"+string([]byte{byte(b)}))
	}
	for _, in := range ins {
		id, err := ParseIdentity(in)
		if err != nil {
			continue
		}
		s := id.String()
		if err := signaling.CheckIdentity(s); err != nil {
			t.Errorf("ParseIdentity(%q) = %q, which signaling refuses: %v", in, s, err)
		}
		if re, err := ParseIdentity(s); err != nil || re != id {
			t.Errorf("ParseIdentity(%q) = %v, %v; want %v", s, re, err, id)
		}
	}
}

func TestCheckTarget(t *testing.T) {
	for _, c := range []struct{ in, reason string }{
		{"ip:0.0.0.0:0", "unspecified"},
		{"ip:0.0.0.0:27020", "unspecified"},
		{"ip:[::]:27020", "unspecified"},
		{"ip:1.2.3.4", "port 0"},
		{"ip:127.0.0.1:0", "port 0"},
		{"ip:::1", "port 0"},
		{"ip:255.255.255.255:27020", "broadcast"},
		{"ip:224.0.0.1:27020", "multicast"},
		{"ip:239.255.255.250:1900", "multicast"},
		{"ip:[ff02::1]:27020", "multicast"},
		{"ip:[::ffff:224.0.0.1]:27020", "multicast"},
	} {
		id, err := ParseIdentity(c.in)
		if err != nil {
			t.Fatalf("ParseIdentity(%q): %v", c.in, err)
		}
		err = id.CheckTarget()
		if !errors.Is(err, ErrUnroutable) || !errors.Is(err, ResultInvalidParam) {
			t.Errorf("%v.CheckTarget() = %v, want ErrUnroutable and ResultInvalidParam", id, err)
			continue
		}
		if !strings.Contains(err.Error(), c.reason) || strings.Count(err.Error(), "netmsg:") != 1 {
			t.Errorf("%v.CheckTarget() = %q, want one prefix and %q", id, err, c.reason)
		}
	}
	if err := (Identity{}).CheckTarget(); !errors.Is(err, ErrUnroutable) {
		t.Errorf("invalid identity: CheckTarget() = %v, want ErrUnroutable", err)
	}
	for _, in := range []string{"ip:127.0.0.1:27020", "ip:[::1]:1", "ip:10.0.0.255:5", "ip:192.168.1.1:65535", "str:bob", "steamid:76561197960287930", "gen:00", "psn:0", "foo:bar"} {
		id, err := ParseIdentity(in)
		if err != nil {
			t.Fatalf("ParseIdentity(%q): %v", in, err)
		}
		if err := id.CheckTarget(); err != nil {
			t.Errorf("%v.CheckTarget() = %v, want nil", id, err)
		}
	}
}
