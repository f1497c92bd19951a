package conn

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
)

// ErrConfig wraps every configuration error of Dial and NewListener.
var ErrConfig = errors.New("conn: invalid config")

// local is the part of a Config that every connection of a host shares,
// prepared once: the identity key, the certificate we send and the policy
// we check peers against.
type local struct {
	cfg        Config
	key        ed25519.PrivateKey
	cert       *pb.CertificateSigned // as sent
	certHasID  bool                  // the certificate names our identity
	trust      *crypto.TrustStore
	lanes      int
	maxMsgSize int
}

// prepare fills the defaults of cfg and checks it.
func prepare(cfg Config) (*local, error) {
	if cfg.TimeoutInitial <= 0 {
		cfg.TimeoutInitial = defaultTimeoutInitial
	}
	if cfg.TimeoutConnected <= 0 {
		cfg.TimeoutConnected = defaultTimeoutConnected
	}
	l := &local{cfg: cfg}
	switch len(cfg.Key) {
	case ed25519.PrivateKeySize:
		l.key = ed25519.PrivateKey(cfg.Key)
	case ed25519.SeedSize:
		l.key = ed25519.NewKeyFromSeed(cfg.Key)
	default:
		return nil, fmt.Errorf("%w: Key is %d bytes, want an Ed25519 private key", ErrConfig, len(cfg.Key))
	}
	if cfg.Identity == "" {
		return nil, fmt.Errorf("%w: no Identity", ErrConfig)
	}
	if cfg.Cert != nil {
		var cs pb.CertificateSigned
		if err := proto.Unmarshal(cfg.Cert, &cs); err != nil || len(cs.GetCert()) == 0 {
			return nil, fmt.Errorf("%w: Cert is not a serialized CertificateSigned", ErrConfig)
		}
		var c pb.Certificate
		if err := proto.Unmarshal(cs.GetCert(), &c); err != nil {
			return nil, fmt.Errorf("%w: Cert holds no Certificate", ErrConfig)
		}
		if !ed25519.PublicKey(c.GetKeyData()).Equal(l.key.Public()) {
			return nil, fmt.Errorf("%w: Cert is not for Key", ErrConfig)
		}
		cs.PrivateKeyData = nil // never sent
		l.cert = &cs
		id, ok, _ := crypto.CertIdentity(&c)
		l.certHasID = ok && id != ""
	} else {
		ident, err := parseIdentity(cfg, cfg.Identity)
		if err != nil {
			return nil, fmt.Errorf("%w: Identity: %v", ErrConfig, err)
		}
		c, err := crypto.NewCert(crypto.CertTemplate{
			PublicKey: l.key.Public().(ed25519.PublicKey),
			Identity:  ident,
			AppIDs:    []uint32{cfg.AppID},
		})
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		l.cert, err = crypto.UnsignedCert(c)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		l.certHasID = true
	}
	if len(cfg.TrustedCAs) > 0 {
		cas := make([]crypto.CA, len(cfg.TrustedCAs))
		for i, k := range cfg.TrustedCAs {
			cas[i] = crypto.CA{PublicKey: ed25519.PublicKey(k)}
		}
		ts, err := crypto.NewTrustStore(cas...)
		if err != nil {
			return nil, fmt.Errorf("%w: TrustedCAs: %v", ErrConfig, err)
		}
		l.trust = ts
	}
	l.lanes = max(1, len(cfg.SNP.Lanes))
	l.maxMsgSize = cfg.SNP.MaxMessageSize
	if l.maxMsgSize <= 0 || l.maxMsgSize > 512*1024 {
		l.maxMsgSize = 512 * 1024
	}
	return l, nil
}

// policy returns what a peer's certificate is checked against.
func (l *local) policy(now time.Time, expect string, earlier uint32) *crypto.PeerPolicy {
	p := &crypto.PeerPolicy{
		Trust:                  l.trust,
		AllowUnsigned:          l.trust == nil,
		AppID:                  l.cfg.AppID,
		ExpectedIdentity:       expect,
		EarlierProtocolVersion: earlier,
	}
	p.Now = now
	if l.cfg.ParseIdentity != nil {
		p.ParseIdentity = l.cfg.ParseIdentity
	}
	return p
}

func parseIdentity(cfg Config, s string) (crypto.Identity, error) {
	if cfg.ParseIdentity != nil {
		return cfg.ParseIdentity(s)
	}
	return parseIdentityBasic(s)
}

// basicIdentity is the fallback identity parser used when Config has no
// ParseIdentity: enough of GNS's identity forms to build our certificate.
type basicIdentity struct {
	s     string
	str   string
	bytes []byte
	addr  netip.AddrPort
	sid   uint64
	kind  byte // 's' str, 'g' gen, 'i' ip, 'n' steamid
}

func parseIdentityBasic(s string) (crypto.Identity, error) {
	prefix, rest, ok := strings.Cut(s, ":")
	if !ok {
		return nil, fmt.Errorf("identity %q has no type prefix", s)
	}
	id := &basicIdentity{s: s}
	switch prefix {
	case "str":
		if rest == "" {
			return nil, fmt.Errorf("empty str: identity")
		}
		id.kind, id.str = 's', rest
	case "gen":
		b, err := hexDecode(rest)
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("bad gen: identity")
		}
		id.kind, id.bytes = 'g', b
	case "ip":
		ap, err := netip.ParseAddrPort(rest)
		if err != nil {
			a, err2 := netip.ParseAddr(strings.Trim(rest, "[]"))
			if err2 != nil {
				return nil, fmt.Errorf("bad ip: identity")
			}
			ap = netip.AddrPortFrom(a, 0)
		}
		id.kind, id.addr = 'i', ap
	case "steamid":
		v, err := strconv.ParseUint(rest, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("bad steamid: identity")
		}
		id.kind, id.sid = 'n', v
	default:
		return nil, fmt.Errorf("unknown identity type %q", prefix)
	}
	return id, nil
}

func (b *basicIdentity) String() string { return b.s }
func (b *basicIdentity) IsLocalhost() bool {
	return b.kind == 'i' && b.addr.Addr().Unmap().IsLoopback()
}
func (b *basicIdentity) Addr() (netip.AddrPort, bool) { return b.addr, b.kind == 'i' }
func (b *basicIdentity) SteamID() (uint64, bool)      { return b.sid, b.kind == 'n' }
func (b *basicIdentity) GenericString() (string, bool) {
	return b.str, b.kind == 's'
}
func (b *basicIdentity) GenericBytes() ([]byte, bool) { return b.bytes, b.kind == 'g' }

func hexDecode(s string) ([]byte, error) {
	if len(s)%2 != 0 {
		return nil, errors.New("odd length")
	}
	out := make([]byte, len(s)/2)
	for i := range out {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, err
		}
		out[i] = byte(v)
	}
	return out, nil
}

// ipIdentity renders addr as GNS renders an IP identity.
func ipIdentity(addr netip.AddrPort) string {
	a := addr.Addr().Unmap()
	if a.Is4() {
		return "ip:" + a.String() + ":" + strconv.Itoa(int(addr.Port()))
	}
	return "ip:[" + a.String() + "]:" + strconv.Itoa(int(addr.Port()))
}
