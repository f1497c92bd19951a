package crypto_test

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/netmsg-go/netmsg/internal/crypto"
)

// testIdentity is a small stand-in for netmsg.Identity (which satisfies
// crypto.Identity), so these tests do not depend on the root package. It
// knows the canonical forms the tests use.
type testIdentity struct {
	s       string
	addr    netip.AddrPort
	isAddr  bool
	steam   uint64
	isSteam bool
	str     string
	isStr   bool
	gen     []byte
	isGen   bool
}

func parseIdentity(s string) (crypto.Identity, error) {
	id := testIdentity{s: s}
	typ, v, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("no prefix in %q", s)
	}
	switch typ {
	case "str":
		id.str, id.isStr = v, true
	case "gen":
		b, err := hex.DecodeString(v)
		if err != nil {
			return nil, err
		}
		id.gen, id.isGen = b, true
	case "steamid":
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return nil, err
		}
		id.steam, id.isSteam = n, true
	case "ip":
		if a, err := netip.ParseAddr(v); err == nil {
			id.addr = netip.AddrPortFrom(a, 0)
		} else if ap, err := netip.ParseAddrPort(v); err == nil {
			id.addr = ap
		} else {
			return nil, err
		}
		id.isAddr = true
	case "psn":
	default:
		return nil, fmt.Errorf("unknown type %q", typ)
	}
	return id, nil
}

func (id testIdentity) String() string { return id.s }
func (id testIdentity) IsLocalhost() bool {
	return id.isAddr && id.addr.Addr().Unmap().IsLoopback()
}
func (id testIdentity) Addr() (netip.AddrPort, bool)  { return id.addr, id.isAddr }
func (id testIdentity) SteamID() (uint64, bool)       { return id.steam, id.isSteam }
func (id testIdentity) GenericString() (string, bool) { return id.str, id.isStr }
func (id testIdentity) GenericBytes() ([]byte, bool)  { return id.gen, id.isGen }
