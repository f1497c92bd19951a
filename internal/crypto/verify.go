package crypto

import (
	"crypto/ed25519"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
)

// CA is a certificate authority key we trust, with the limits GNS attaches
// to a CA (its own certificate's expiry and app IDs).
type CA struct {
	// PublicKey is the CA's Ed25519 key. Certificates name it by KeyID.
	PublicKey ed25519.PublicKey
	// Expiry ends the CA's validity; zero means none.
	Expiry time.Time
	// AppIDs limits the certificates it may vouch for; nil means any app.
	AppIDs []uint32
}

// TrustStore is a set of trusted CAs keyed by KeyID. Build it with
// NewTrustStore; it is immutable and safe for concurrent use. A nil
// *TrustStore trusts nothing.
type TrustStore struct {
	cas map[uint64]CA
}

// NewTrustStore returns a store trusting cas. It fails on a key that is not
// 32 bytes or on two different keys with one KeyID.
func NewTrustStore(cas ...CA) (*TrustStore, error) {
	s := &TrustStore{cas: make(map[uint64]CA, len(cas))}
	for _, ca := range cas {
		id := KeyID(ca.PublicKey)
		if id == 0 {
			return nil, fmt.Errorf("crypto: CA public key is %d bytes", len(ca.PublicKey))
		}
		if old, ok := s.cas[id]; ok && !old.PublicKey.Equal(ca.PublicKey) {
			return nil, fmt.Errorf("crypto: two CA keys with key ID %d", id)
		}
		ca.PublicKey = slices.Clone(ca.PublicKey)
		ca.AppIDs = slices.Clone(ca.AppIDs)
		s.cas[id] = ca
	}
	return s, nil
}

// Lookup returns the CA with key ID id.
func (s *TrustStore) Lookup(id uint64) (CA, bool) {
	if s == nil {
		return CA{}, false
	}
	ca, ok := s.cas[id]
	return ca, ok
}

// PeerPolicy is what VerifyPeer checks a peer's certificate against. The
// zero value rejects unsigned certificates and trusts no CA.
type PeerPolicy struct {
	// Trust holds the CAs whose signatures we accept.
	Trust *TrustStore
	// AllowUnsigned accepts certificates without a valid CA signature
	// (GNS's IP_AllowWithoutAuth; the open-source GNS build and its
	// example_chat accept them). A CA signature that fails to verify is then
	// ignored and the certificate treated as unsigned, as GNS does.
	AllowUnsigned bool
	// AppID is our app ID (0 outside Steam). Certificates that list app IDs
	// must include it.
	AppID uint32
	// Now is the time expiry is checked against. Required when Trust is
	// used.
	Now time.Time
	// ExpectedIdentity is the identity the peer must have, canonical form;
	// empty accepts whatever the certificate names.
	ExpectedIdentity string
	// EarlierProtocolVersion is the version the peer announced before (the
	// server's ChallengeReply); 0 if none. The crypt info must repeat it.
	EarlierProtocolVersion uint32
	// ParseIdentity canonicalizes an identity string (netmsg.ParseIdentity
	// wrapped). Nil uses a built-in fallback that compares strings verbatim
	// and knows only that "ip:" identities on loopback are localhost.
	ParseIdentity func(string) (Identity, error)
}

// Peer is a verified peer handshake: the certificate and crypt info, and the
// exact bytes DeriveKeys needs.
type Peer struct {
	Cert       *pb.Certificate
	CertBytes  []byte // the serialized certificate exactly as received
	Crypt      *pb.SessionCryptInfo
	CryptBytes []byte // the serialized crypt info exactly as received
	// Identity is the canonical identity the certificate names; empty if it
	// names none.
	Identity string
	// IdentityIsLocalhost is set when that identity is GNS's anonymous
	// loopback identity, which is never matched against ExpectedIdentity.
	IdentityIsLocalhost bool
	// CASigned is set when a trusted CA's signature verified; CAKeyID names
	// the CA.
	CASigned bool
	CAKeyID  uint64
}

// VerifyPeer checks the certificate and signed crypt info a peer sent (in
// ConnectRequest or ConnectOK) in GNS's order, returning the first failure:
//
//  1. both present, else ErrMissingCertOrCrypt (4002);
//  2. if ca_signature is present: CA known (ErrCAUnknown), CA not expired
//     (ErrCAExpired), signature (ErrCASignature), certificate not expired
//     (ErrCertExpired), key Ed25519 (ErrCertKey), all 4003; with
//     AllowUnsigned a failure here only demotes the certificate to unsigned;
//  3. the certificate parses, else ErrCertParse (4002);
//  4. its identity parses (ErrCertIdentity); a non-localhost identity must
//     equal ExpectedIdentity (ErrIdentityMismatch) and the certificate must
//     list an app ID (ErrCertNoAppID); a CA-signed certificate with no
//     identity is refused (ErrCertNoIdentity); all 4003;
//  5. app IDs allow AppID, in the certificate and its CA (ErrCertAppID),
//     and an unsigned certificate is allowed (ErrUnsignedCert), 4003;
//  6. the crypt info signature verifies with the certificate key
//     (ErrCryptSignature, 4002) and the crypt info parses (ErrCryptParse);
//  7. protocol version >= MinProtocolVersion (ErrOldProtocol) and equal to
//     EarlierProtocolVersion if set (ErrProtocolChanged), 4006.
//
// The key-exchange key and ciphers are checked later, by NegotiateCipher and
// DeriveKeys.
func VerifyPeer(p *PeerPolicy, cert *pb.CertificateSigned, crypt *pb.SessionCryptInfoSigned) (*Peer, error) {
	if cert == nil || crypt == nil || cert.Cert == nil || crypt.Info == nil {
		return nil, ErrMissingCertOrCrypt
	}
	peer, err := verifyCert(p, cert)
	if err != nil {
		return nil, err
	}
	peer.CryptBytes = crypt.GetInfo()
	if err := verifySignature(peer.Cert, peer.CryptBytes, crypt.GetSignature()); err != nil {
		return nil, err
	}
	peer.Crypt = new(pb.SessionCryptInfo)
	if err := proto.Unmarshal(peer.CryptBytes, peer.Crypt); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCryptParse, err)
	}
	v := peer.Crypt.GetProtocolVersion()
	if v < MinProtocolVersion {
		return nil, fmt.Errorf("%w: V%d, need V%d", ErrOldProtocol, v, MinProtocolVersion)
	}
	if p.EarlierProtocolVersion != 0 && v != p.EarlierProtocolVersion {
		return nil, fmt.Errorf("%w: V%d now, V%d before", ErrProtocolChanged, v, p.EarlierProtocolVersion)
	}
	return peer, nil
}

// VerifyProof checks a proof of identity outside the handshake (netmsg's
// authenticated signaling): the certificate as VerifyPeer checks it
// (steps 1-5), then an Ed25519 signature by the certificate's key over msg.
// It returns the certificate's canonical identity (empty when the
// certificate names none) and whether a trusted CA signed it. The caller
// makes msg unique (a server nonce) and domain-separated.
func VerifyProof(p *PeerPolicy, cert *pb.CertificateSigned, msg, sig []byte) (identity string, caSigned bool, err error) {
	if cert == nil || cert.Cert == nil {
		return "", false, ErrMissingCertOrCrypt
	}
	peer, err := verifyCert(p, cert)
	if err != nil {
		return "", false, err
	}
	if err := verifySignature(peer.Cert, msg, sig); err != nil {
		return "", false, err
	}
	return peer.Identity, peer.CASigned, nil
}

// verifyCert is steps 1-5 of VerifyPeer: the certificate alone.
func verifyCert(p *PeerPolicy, cert *pb.CertificateSigned) (*Peer, error) {
	peer := &Peer{CertBytes: cert.GetCert(), Cert: new(pb.Certificate)}

	if cert.CaSignature != nil {
		id, err := checkCASigned(p, cert, peer.Cert)
		switch {
		case err == nil:
			peer.CASigned, peer.CAKeyID = true, id
		case !p.AllowUnsigned:
			return nil, err
		}
	}
	if !peer.CASigned {
		if err := proto.Unmarshal(peer.CertBytes, peer.Cert); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrCertParse, err)
		}
	}

	idStr, has, err := CertIdentity(peer.Cert)
	if err != nil {
		return nil, err
	}
	if has {
		id, err := p.parseIdentity(idStr)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrCertIdentity, idStr, err)
		}
		peer.Identity, peer.IdentityIsLocalhost = id.String(), id.IsLocalhost()
		if !peer.IdentityIsLocalhost {
			if p.ExpectedIdentity != "" && peer.Identity != p.ExpectedIdentity {
				return nil, fmt.Errorf("%w: issued to %s, not %s", ErrIdentityMismatch, peer.Identity, p.ExpectedIdentity)
			}
			if len(peer.Cert.AppIds) == 0 {
				return nil, ErrCertNoAppID
			}
		}
	} else if cert.CaSignature != nil {
		return nil, ErrCertNoIdentity
	}

	var caApps []uint32
	if peer.CASigned {
		ca, _ := p.Trust.Lookup(peer.CAKeyID)
		caApps = ca.AppIDs
	}
	if err := checkAppID(peer.Cert.AppIds, caApps, peer.CASigned, p.AppID); err != nil {
		return nil, err
	}
	if !peer.CASigned && !p.AllowUnsigned {
		return nil, ErrUnsignedCert
	}
	return peer, nil
}

// checkCASigned verifies the CA signature of cert and parses it into out.
func checkCASigned(p *PeerPolicy, cert *pb.CertificateSigned, out *pb.Certificate) (uint64, error) {
	id := cert.GetCaKeyId()
	if id == 0 {
		return 0, fmt.Errorf("%w: no CA key ID", ErrCAUnknown)
	}
	ca, ok := p.Trust.Lookup(id)
	if !ok {
		return 0, fmt.Errorf("%w: CA key %d", ErrCAUnknown, id)
	}
	if !ca.Expiry.IsZero() && ca.Expiry.Before(p.Now) {
		return 0, fmt.Errorf("%w: CA key %d expired %v", ErrCAExpired, id, ca.Expiry)
	}
	sig := cert.GetCaSignature()
	if len(sig) != SignatureSize || !ed25519.Verify(ca.PublicKey, cert.GetCert(), sig) {
		return 0, fmt.Errorf("%w: CA key %d", ErrCASignature, id)
	}
	if err := proto.Unmarshal(cert.GetCert(), out); err != nil {
		return 0, fmt.Errorf("%w: %v", ErrCertParse, err)
	}
	if exp := int64(out.GetTimeExpiry()); exp < p.Now.Unix() {
		return 0, fmt.Errorf("%w: at %d, now %d", ErrCertExpired, exp, p.Now.Unix())
	}
	if out.GetKeyType() != pb.Certificate_ED25519 || len(out.GetKeyData()) != ed25519.PublicKeySize {
		return 0, ErrCertKey
	}
	return id, nil
}

// checkAppID applies GNS's app ID rule: a certificate listing app IDs must
// list ours; with a CA, the CA must allow ours too.
func checkAppID(certApps, caApps []uint32, signed bool, app uint32) error {
	if len(certApps) > 0 && !slices.Contains(certApps, app) {
		return fmt.Errorf("%w: %d not in %v", ErrCertAppID, app, certApps)
	}
	if signed && caApps != nil && !slices.Contains(caApps, app) {
		return fmt.Errorf("%w: CA does not allow %d", ErrCertAppID, app)
	}
	return nil
}

// verifySignature checks sig over data with the certificate's key.
func verifySignature(c *pb.Certificate, data, sig []byte) error {
	switch {
	case len(sig) == 0:
		return fmt.Errorf("%w: no signature", ErrCryptSignature)
	case len(c.GetKeyData()) == 0:
		return fmt.Errorf("%w: certificate has no key", ErrCryptSignature)
	case c.GetKeyType() != pb.Certificate_ED25519:
		return fmt.Errorf("%w: key type %d", ErrCryptSignature, c.GetKeyType())
	case len(sig) != SignatureSize:
		return fmt.Errorf("%w: %d-byte signature", ErrCryptSignature, len(sig))
	case len(c.GetKeyData()) != ed25519.PublicKeySize:
		return fmt.Errorf("%w: %d-byte key", ErrCryptSignature, len(c.GetKeyData()))
	case !ed25519.Verify(ed25519.PublicKey(c.GetKeyData()), data, sig):
		return fmt.Errorf("%w: does not verify", ErrCryptSignature)
	}
	return nil
}

func (p *PeerPolicy) parseIdentity(s string) (Identity, error) {
	if p.ParseIdentity != nil {
		return p.ParseIdentity(s)
	}
	return fallbackIdentity(s), nil
}

// fallbackIdentity keeps the string verbatim and knows loopback "ip:"
// identities.
type fallbackIdentity string

func (f fallbackIdentity) String() string { return string(f) }
func (f fallbackIdentity) IsLocalhost() bool {
	ap, ok := f.Addr()
	return ok && ap.Addr().Unmap().IsLoopback()
}
func (f fallbackIdentity) Addr() (netip.AddrPort, bool) {
	s, ok := strings.CutPrefix(string(f), "ip:")
	if !ok {
		return netip.AddrPort{}, false
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a, 0), true
	}
	ap, err := netip.ParseAddrPort(s)
	return ap, err == nil
}
func (f fallbackIdentity) SteamID() (uint64, bool)       { return 0, false }
func (f fallbackIdentity) GenericString() (string, bool) { return "", false }
func (f fallbackIdentity) GenericBytes() ([]byte, bool)  { return nil, false }
