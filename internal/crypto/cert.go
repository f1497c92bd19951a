package crypto

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
)

// Identity is what certificates need of an identity. netmsg.Identity
// satisfies it; this package cannot import the root package.
type Identity interface {
	// String is the canonical rendering, e.g. "str:alice", "ip:::1".
	String() string
	// IsLocalhost reports an "ip:" identity on a loopback address (any
	// port): GNS's anonymous identity, never checked against certificates.
	IsLocalhost() bool
	Addr() (netip.AddrPort, bool)
	SteamID() (uint64, bool)
	GenericString() (string, bool)
	GenericBytes() ([]byte, bool)
}

// CertTemplate describes a certificate to build. The zero value of each
// field leaves the certificate field absent.
type CertTemplate struct {
	// PublicKey is the certificate's Ed25519 key. Required.
	PublicKey ed25519.PublicKey
	// Identity is who holds the private key; nil for a shared key.
	Identity Identity
	// NoLegacyIdentity omits legacy_identity_binary and legacy_steam_id,
	// which GNS always writes beside identity_string. Only for reproducing
	// peers that omit them (the vectors' client does).
	NoLegacyIdentity bool
	// AppIDs the key may be used for. GNS's unsigned certificates carry the
	// one app ID of the host (0 outside Steam).
	AppIDs []uint32
	// DataCenterIDs (PoP IDs) whose game servers may use a shared key.
	DataCenterIDs []uint32
	// Created and Expiry, whole Unix seconds (fixed32 on the wire).
	// GNS's unsigned certificates have neither; its cert tool sets both.
	Created, Expiry time.Time
}

// NewCert builds the Certificate message for t, filling the identity fields
// as GNS does: identity_string always; legacy_identity_binary always (empty
// for identity types it has no form for), with steam_id, generic_string,
// generic_bytes or ipv6_and_port (16 bytes IPv6, IPv4 mapped, then the port
// big-endian); and legacy_steam_id for a Steam ID.
func NewCert(t CertTemplate) (*pb.Certificate, error) {
	if len(t.PublicKey) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("crypto: certificate public key is %d bytes, want %d", len(t.PublicKey), ed25519.PublicKeySize)
	}
	c := &pb.Certificate{
		KeyType: pb.Certificate_ED25519.Enum(),
		KeyData: append([]byte(nil), t.PublicKey...),
	}
	if t.Identity != nil {
		c.IdentityString = proto.String(t.Identity.String())
		if !t.NoLegacyIdentity {
			c.LegacyIdentityBinary = legacyIdentity(t.Identity)
			if id, ok := t.Identity.SteamID(); ok && id != 0 {
				c.LegacySteamId = proto.Uint64(id)
			}
		}
	}
	c.AppIds = append([]uint32(nil), t.AppIDs...)
	c.GameserverDatacenterIds = append([]uint32(nil), t.DataCenterIDs...)
	if !t.Created.IsZero() {
		c.TimeCreated = proto.Uint32(uint32(t.Created.Unix()))
	}
	if !t.Expiry.IsZero() {
		c.TimeExpiry = proto.Uint32(uint32(t.Expiry.Unix()))
	}
	return c, nil
}

func legacyIdentity(id Identity) *pb.IdentityLegacyBinary {
	l := new(pb.IdentityLegacyBinary)
	if v, ok := id.SteamID(); ok {
		l.SteamId = proto.Uint64(v)
	} else if s, ok := id.GenericString(); ok {
		l.GenericString = proto.String(s)
	} else if b, ok := id.GenericBytes(); ok {
		l.GenericBytes = append([]byte{}, b...)
	} else if ap, ok := id.Addr(); ok {
		var b [18]byte
		a16 := ap.Addr().As16() // IPv4 comes out as ::ffff:a.b.c.d
		copy(b[:16], a16[:])
		binary.BigEndian.PutUint16(b[16:], ap.Port())
		l.Ipv6AndPort = b[:]
	}
	return l
}

// UnsignedCert serializes c into a CertificateSigned with no CA fields, as
// GNS does for a host without a CA-issued certificate.
func UnsignedCert(c *pb.Certificate) (*pb.CertificateSigned, error) {
	b, err := pb.Marshal(c)
	if err != nil {
		return nil, err
	}
	return &pb.CertificateSigned{Cert: b}, nil
}

// SignCert serializes c and signs the bytes with the CA key ca, setting
// ca_key_id to KeyID of the CA's public key.
func SignCert(c *pb.Certificate, ca ed25519.PrivateKey) (*pb.CertificateSigned, error) {
	if len(ca) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("crypto: CA private key is %d bytes", len(ca))
	}
	b, err := pb.Marshal(c)
	if err != nil {
		return nil, err
	}
	return &pb.CertificateSigned{
		Cert:        b,
		CaKeyId:     proto.Uint64(KeyID(ca.Public().(ed25519.PublicKey))),
		CaSignature: ed25519.Sign(ca, b),
	}, nil
}

// CertIdentity returns the identity a certificate names, in GNS's order of
// precedence: identity_string, then legacy_identity_binary, then
// legacy_steam_id. The legacy forms are rendered as strings ("steamid:N",
// "str:s", "gen:hex", "ip:addr[:port]"). ok is false when none is present;
// err is ErrCertIdentity when a legacy form is malformed.
func CertIdentity(c *pb.Certificate) (s string, ok bool, err error) {
	if c.IdentityString != nil {
		return c.GetIdentityString(), true, nil
	}
	if l := c.GetLegacyIdentityBinary(); l != nil {
		switch {
		case l.SteamId != nil:
			return "steamid:" + strconv.FormatUint(l.GetSteamId(), 10), true, nil
		case l.GenericString != nil:
			return "str:" + l.GetGenericString(), true, nil
		case l.GenericBytes != nil:
			return "gen:" + hex.EncodeToString(l.GetGenericBytes()), true, nil
		case l.Ipv6AndPort != nil:
			b := l.GetIpv6AndPort()
			if len(b) != 18 {
				return "", false, fmt.Errorf("%w: ipv6_and_port is %d bytes", ErrCertIdentity, len(b))
			}
			a := netip.AddrFrom16([16]byte(b[:16])).Unmap()
			port := binary.BigEndian.Uint16(b[16:])
			switch {
			case port == 0:
				return "ip:" + a.String(), true, nil
			default:
				return "ip:" + netip.AddrPortFrom(a, port).String(), true, nil
			}
		}
		return "", false, fmt.Errorf("%w: legacy identity of unknown form", ErrCertIdentity)
	}
	if c.LegacySteamId != nil {
		return "steamid:" + strconv.FormatUint(c.GetLegacySteamId(), 10), true, nil
	}
	return "", false, nil
}
