package netmsg

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
)

// Certificate and key files, in the text forms of GNS's certificate tool
// (src/steamnetworkingsockets/certtool) and of the loader GNS uses for a
// certificate and key given as text (CSteamNetworkingSockets::
// SetCertificateAndPrivateKey):
//
//   - a certificate is a "STEAMDATAGRAM CERT" block: the serialized
//     CertificateSigned message in base64, 72 characters a line, between
//     "-----BEGIN STEAMDATAGRAM CERT-----" and
//     "-----END STEAMDATAGRAM CERT-----" lines;
//   - a private key is an unencrypted OpenSSH Ed25519 key
//     ("-----BEGIN OPENSSH PRIVATE KEY-----", openssh-key-v1), which both
//     GNS and OpenSSH read;
//   - a public key is an OpenSSH authorized_keys line,
//     "ssh-ed25519 AAAA... comment", the form GNS's tool prints and takes.
//
// GNS's public SetCertificate takes the serialized CertificateSigned
// itself, with the private key either already chosen or in its
// private_key_data field: that is what Config.Certificate holds.

// Text markers of the formats (GNS's certtool and keypair.cpp; OpenSSH's
// PROTOCOL.key).
const (
	certPEMType       = "STEAMDATAGRAM CERT"
	privateKeyPEMType = "OPENSSH PRIVATE KEY"
	sshEd25519        = "ssh-ed25519"
	opensshKeyMagic   = "openssh-key-v1\x00"

	// certLineLen is the base64 line length GNS's Base64Encode uses (18
	// groups of 4 characters).
	certLineLen = 72
	// keyLineLen is the base64 line length OpenSSH writes private keys
	// with.
	keyLineLen = 70
	// keyBlockSize is the cipher block size of an unencrypted OpenSSH key:
	// the private section is padded to a multiple of it.
	keyBlockSize = 8
)

// ErrBadCertFile is returned (wrapped) when a certificate or key file does
// not parse, or a certificate and a key do not belong together. Use
// errors.Is to test for it.
var ErrBadCertFile = errors.New("netmsg: bad certificate or key file")

func certFileErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadCertFile}, args...)...)
}

// LoadCertificate reads a certificate and its private key from their text
// forms, as GNS's SetCertificateAndPrivateKey does: certPEM holds a
// STEAMDATAGRAM CERT block and keyPEM an OpenSSH Ed25519 private key. With
// keyPEM nil, the key is taken from the certificate's private_key_data
// field, as GNS's SetCertificate takes it. The certificate must hold an
// Ed25519 key that matches the private key, and an expiry time.
//
// It returns the serialized CertificateSigned, without any private key, for
// Config.Certificate, and the key for Config.PrivateKey. It does not check
// the CA signature, the expiry or the app IDs: peers do (GNS's loaders do
// not check them either). Errors wrap ErrBadCertFile.
func LoadCertificate(certPEM, keyPEM []byte) (cert []byte, key ed25519.PrivateKey, err error) {
	cert, err = ParseCertificatePEM(certPEM)
	if err != nil {
		return nil, nil, err
	}
	var cs pb.CertificateSigned
	if err := proto.Unmarshal(cert, &cs); err != nil {
		return nil, nil, certFileErr("certificate: %v", err)
	}
	if keyPEM != nil {
		if key, err = ParsePrivateKey(keyPEM); err != nil {
			return nil, nil, err
		}
	} else {
		seed := cs.GetPrivateKeyData()
		if len(seed) != ed25519.SeedSize {
			return nil, nil, certFileErr("no private key given, and the certificate holds none")
		}
		key = ed25519.NewKeyFromSeed(seed)
	}
	if cs.PrivateKeyData != nil {
		cs.PrivateKeyData = nil
		if cert, err = pb.Marshal(&cs); err != nil {
			return nil, nil, certFileErr("certificate: %v", err)
		}
	}
	var c pb.Certificate
	if err := proto.Unmarshal(cs.GetCert(), &c); err != nil {
		return nil, nil, certFileErr("certificate body: %v", err)
	}
	switch {
	case c.TimeExpiry == nil || c.KeyData == nil:
		return nil, nil, certFileErr("invalid certificate: no expiry or no key")
	case c.GetKeyType() != pb.Certificate_ED25519 || len(c.GetKeyData()) != ed25519.PublicKeySize:
		return nil, nil, certFileErr("certificate key is not Ed25519")
	case !ed25519.PublicKey(c.GetKeyData()).Equal(key.Public()):
		return nil, nil, certFileErr("private key does not match the certificate's public key")
	}
	return cert, key, nil
}

// MarshalCertificatePEM returns cert, a serialized CertificateSigned, as a
// STEAMDATAGRAM CERT block byte for byte as GNS's certificate tool writes
// it.
func MarshalCertificatePEM(cert []byte) []byte {
	return appendPEM(nil, certPEMType, cert, certLineLen)
}

// ParseCertificatePEM returns the serialized CertificateSigned held by the
// first STEAMDATAGRAM CERT block in b. Other blocks and text around it are
// ignored. It checks that the bytes are a CertificateSigned holding a
// certificate (GNS's "No cert data").
func ParseCertificatePEM(b []byte) ([]byte, error) {
	der, ok := findPEM(b, certPEMType)
	if !ok {
		return nil, certFileErr("no %s block", certPEMType)
	}
	var cs pb.CertificateSigned
	if err := proto.Unmarshal(der, &cs); err != nil {
		return nil, certFileErr("certificate: %v", err)
	}
	if len(cs.GetCert()) == 0 {
		return nil, certFileErr("certificate block holds no certificate")
	}
	return der, nil
}

// MarshalPrivateKey returns key as an unencrypted OpenSSH private key file
// with the given comment: the format GNS's tool writes, completed with the
// comment and padding OpenSSH requires, so that ssh-keygen reads it too.
func MarshalPrivateKey(key ed25519.PrivateKey, comment string) []byte {
	pub := key.Public().(ed25519.PublicKey)
	pubBlob := sshPublicBlob(pub)

	// The private section: two equal check words, the key type, the
	// public key, the 64-byte secret (seed then public key), the comment,
	// and padding 1, 2, 3... to the block size. The check words only
	// detect a wrong passphrase; an unencrypted key takes any value.
	check := binary.BigEndian.Uint32(pub[:4])
	var priv []byte
	priv = binary.BigEndian.AppendUint32(priv, check)
	priv = binary.BigEndian.AppendUint32(priv, check)
	priv = sshAppendString(priv, []byte(sshEd25519))
	priv = sshAppendString(priv, pub)
	priv = sshAppendString(priv, key)
	priv = sshAppendString(priv, []byte(comment))
	for i := byte(1); len(priv)%keyBlockSize != 0; i++ {
		priv = append(priv, i)
	}

	var b []byte
	b = append(b, opensshKeyMagic...)
	b = sshAppendString(b, []byte("none")) // cipher
	b = sshAppendString(b, []byte("none")) // KDF
	b = sshAppendString(b, nil)            // KDF options
	b = binary.BigEndian.AppendUint32(b, 1)
	b = sshAppendString(b, pubBlob)
	b = sshAppendString(b, priv)
	return appendPEM(nil, privateKeyPEMType, b, keyLineLen)
}

// ParsePrivateKey returns the Ed25519 key of the first OPENSSH PRIVATE KEY
// block in b. It reads what GNS's key loader reads: an unencrypted file
// with one Ed25519 key whose three copies of the public key agree (and
// that the seed yields that public key); the comment and padding are not
// checked, so GNS's own files, which have neither, load too.
func ParsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	der, ok := findPEM(b, privateKeyPEMType)
	if !ok {
		return nil, certFileErr("no %s block", privateKeyPEMType)
	}
	r := sshReader{b: der}
	if !r.prefix(opensshKeyMagic) {
		return nil, certFileErr("private key: not an openssh-key-v1 file")
	}
	cipher, kdf, kdfOpts := r.str(), r.str(), r.str()
	if r.bad || string(cipher) != "none" || string(kdf) != "none" || len(kdfOpts) != 0 {
		return nil, certFileErr("private key: encrypted keys are not supported")
	}
	if n := r.u32(); r.bad || n != 1 {
		return nil, certFileErr("private key: file must hold exactly one key")
	}
	pub1, err := parseSSHPublicBlob(r.str())
	if err != nil || r.bad {
		return nil, certFileErr("private key: bad public key")
	}
	p := sshReader{b: r.str()}
	if r.bad {
		return nil, certFileErr("private key: truncated")
	}
	c1, c2 := p.u32(), p.u32()
	typ, pub2, secret := p.str(), p.str(), p.str()
	switch {
	case p.bad:
		return nil, certFileErr("private key: truncated private section")
	case c1 != c2:
		return nil, certFileErr("private key: check words differ (encrypted?)")
	case string(typ) != sshEd25519:
		return nil, certFileErr("private key: type %q, want %s", typ, sshEd25519)
	case len(secret) != ed25519.PrivateKeySize || !bytes.Equal(pub1, pub2) || !bytes.Equal(pub1, secret[32:]):
		return nil, certFileErr("private key: the copies of the public key disagree")
	}
	key := ed25519.NewKeyFromSeed(secret[:ed25519.SeedSize])
	if !key.Public().(ed25519.PublicKey).Equal(pub1) {
		return nil, certFileErr("private key: public key does not match the private key")
	}
	return key, nil
}

// MarshalAuthorizedKey returns pub as an OpenSSH authorized_keys line
// ("ssh-ed25519 AAAA... comment", no newline); GNS's tool prints public
// keys so, with the comment "ID" and the key ID.
func MarshalAuthorizedKey(pub ed25519.PublicKey, comment string) string {
	s := sshEd25519 + " " + base64.StdEncoding.EncodeToString(sshPublicBlob(pub))
	if comment != "" {
		s += " " + comment
	}
	return s
}

// ParseAuthorizedKey returns the Ed25519 key of the first line of b in
// authorized_keys form ("ssh-ed25519 AAAA... [comment]"); blank lines and
// lines starting with # are skipped.
func ParseAuthorizedKey(b []byte) (ed25519.PublicKey, error) {
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if f[0] != sshEd25519 || len(f) < 2 {
			return nil, certFileErr("public key: not an %s authorized_keys line", sshEd25519)
		}
		blob, err := base64.StdEncoding.DecodeString(f[1])
		if err != nil {
			return nil, certFileErr("public key: %v", err)
		}
		pub, err := parseSSHPublicBlob(blob)
		if err != nil {
			return nil, err
		}
		return pub, nil
	}
	return nil, certFileErr("no public key")
}

// appendPEM appends a block of type typ holding data in base64, lineLen
// characters a line, with "\n" line ends.
func appendPEM(dst []byte, typ string, data []byte, lineLen int) []byte {
	dst = append(dst, "-----BEGIN "+typ+"-----\n"...)
	enc := base64.StdEncoding.EncodeToString(data)
	for len(enc) > lineLen {
		dst = append(dst, enc[:lineLen]...)
		dst = append(dst, '\n')
		enc = enc[lineLen:]
	}
	if enc != "" {
		dst = append(dst, enc...)
		dst = append(dst, '\n')
	}
	return append(dst, "-----END "+typ+"-----\n"...)
}

// findPEM returns the contents of the first block of type typ in b.
func findPEM(b []byte, typ string) ([]byte, bool) {
	// GNS writes private keys with "\r\n" line ends; encoding/pem wants "\n".
	b = bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n"))
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return nil, false
		}
		if blk.Type == typ {
			return blk.Bytes, true
		}
	}
}

// sshPublicBlob is the SSH wire form of an Ed25519 public key: the strings
// "ssh-ed25519" and the 32 key bytes.
func sshPublicBlob(pub ed25519.PublicKey) []byte {
	b := sshAppendString(nil, []byte(sshEd25519))
	return sshAppendString(b, pub)
}

func parseSSHPublicBlob(b []byte) (ed25519.PublicKey, error) {
	r := sshReader{b: b}
	typ, key := r.str(), r.str()
	if r.bad || string(typ) != sshEd25519 || len(key) != ed25519.PublicKeySize {
		return nil, certFileErr("public key: not an %s key", sshEd25519)
	}
	return ed25519.PublicKey(bytes.Clone(key)), nil
}

// sshAppendString appends s as an SSH string: a big-endian uint32 length
// and the bytes.
func sshAppendString(dst, s []byte) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

// sshReader reads SSH wire values; after the first short read bad is set
// and every read returns zero values.
type sshReader struct {
	b   []byte
	bad bool
}

func (r *sshReader) prefix(p string) bool {
	if r.bad || !bytes.HasPrefix(r.b, []byte(p)) {
		r.bad = true
		return false
	}
	r.b = r.b[len(p):]
	return true
}

func (r *sshReader) u32() uint32 {
	if r.bad || len(r.b) < 4 {
		r.bad = true
		return 0
	}
	v := binary.BigEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *sshReader) str() []byte {
	n := r.u32()
	if r.bad || uint64(n) > uint64(len(r.b)) {
		r.bad = true
		return nil
	}
	s := r.b[:n:n]
	r.b = r.b[n:]
	return s
}

// ownCertificate checks the certificate a Host is given (Config.Certificate)
// against the rest of its configuration, as GNS's SetCertificate does
// (CSteamNetworkingSockets::InternalSetCertificate), and returns the
// identity and key the Host should use:
//
//   - a Host without an identity (or with the localhost identity) takes the
//     certificate's; one with an identity refuses a certificate naming
//     another, or none ("Cert is for identity '%s'.  We are '%s'");
//   - the certificate's key must be Ed25519;
//   - the key comes from key, or, if key is nil, from the certificate's
//     private_key_data; with both, they must agree; the certificate's
//     public key must be that key's;
//   - a certificate that lists app IDs must list appID (GNS's
//     CheckCertAppID, without the CA's limits, which only peers know).
//
// Errors wrap ErrBadConfig. NewHost calls it.
func ownCertificate(id Identity, key ed25519.PrivateKey, appID uint32, cert []byte) (Identity, ed25519.PrivateKey, error) {
	var cs pb.CertificateSigned
	if err := proto.Unmarshal(cert, &cs); err != nil || len(cs.GetCert()) == 0 {
		return id, nil, configErr("Certificate is not a serialized CertificateSigned")
	}
	var c pb.Certificate
	if err := proto.Unmarshal(cs.GetCert(), &c); err != nil {
		return id, nil, configErr("Certificate holds no certificate: %v", err)
	}
	s, has, err := crypto.CertIdentity(&c)
	var certID Identity
	if err == nil && has {
		certID, err = parseIdentityGNS(s)
	}
	if err != nil {
		return id, nil, configErr("Certificate has an invalid identity: %v", err)
	}
	switch {
	case !id.IsValid() || id.IsLocalhost():
		if certID.IsValid() {
			id = certID
		}
	case id != certID:
		return id, nil, configErr("Certificate is for identity %v, the Host is %v", certID, id)
	}
	if c.GetKeyType() != pb.Certificate_ED25519 || len(c.GetKeyData()) != ed25519.PublicKeySize {
		return id, nil, configErr("Certificate has an invalid public key")
	}
	if seed := cs.GetPrivateKeyData(); seed != nil {
		if len(seed) != ed25519.SeedSize {
			return id, nil, configErr("Certificate has an invalid private key")
		}
		k := ed25519.NewKeyFromSeed(seed)
		if key != nil && !key.Equal(k) {
			return id, nil, configErr("Certificate's private key is not PrivateKey")
		}
		key = k
	}
	if key == nil {
		return id, nil, configErr("Certificate without PrivateKey")
	}
	if !ed25519.PublicKey(c.GetKeyData()).Equal(key.Public()) {
		return id, nil, configErr("Certificate's public key does not match PrivateKey")
	}
	if len(c.AppIds) > 0 && !slices.Contains(c.AppIds, appID) {
		return id, nil, configErr("Certificate does not authorize app ID %d, only %v", appID, c.AppIds)
	}
	return id, key, nil
}

// UnsignedCertificate returns an unsigned certificate that binds id to
// key's public key, in GNS's serialized form: what a Host makes for itself
// when Config.Certificate is nil. Peers accept it unless they require a
// CA; a signaling server accepts it with ServerConfig.AllowUnsigned (the
// client still proves it holds key).
func UnsignedCertificate(id Identity, key ed25519.PrivateKey, appID uint32) ([]byte, error) {
	if !id.IsValid() || len(key) != ed25519.PrivateKeySize {
		return nil, &invalidParamError{"netmsg: UnsignedCertificate needs an identity and an Ed25519 key"}
	}
	c, err := crypto.NewCert(crypto.CertTemplate{PublicKey: key.Public().(ed25519.PublicKey), Identity: id, AppIDs: []uint32{appID}})
	if err != nil {
		return nil, err
	}
	signed, err := crypto.UnsignedCert(c)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(signed)
}

// Certificate lifetimes.
const (
	// DefaultCertLifetime is the lifetime IssueCertificate gives a
	// certificate when the template sets none: GNS's certificate tool's
	// default (k_nDefaultExpiryDays, two years).
	DefaultCertLifetime = 2 * 365 * 24 * time.Hour

	// certClockSkew is how far in the future a certificate's creation time
	// may lie before CheckCertificateTime calls it not yet valid: clocks
	// of the CA's machine and the Host's may differ by this much. GNS does
	// not look at the creation time; a certificate created further ahead
	// comes from a clock set wrong.
	certClockSkew = 5 * time.Minute
)

// Errors of CheckCertificateTime.
var (
	// ErrCertExpired: the certificate's expiry time has passed, or a
	// CA-signed certificate has none (GNS peers read a missing expiry as
	// 0, long past).
	ErrCertExpired = errors.New("netmsg: certificate expired")
	// ErrCertNotYetValid: the certificate was created more than a few
	// minutes in the future.
	ErrCertNotYetValid = errors.New("netmsg: certificate not yet valid")
)

// NewCAKey returns a new certificate authority key: an Ed25519 key, as GNS
// uses. Write it with MarshalPrivateKey and keep it secret; give hosts its
// public key (Config.TrustedCAs, or a file written with
// MarshalAuthorizedKey).
func NewCAKey() (ed25519.PrivateKey, error) {
	return crypto.GenerateIdentityKey(nil)
}

// CAKeyID returns GNS's ID of a CA's public key (the first 8 bytes of its
// SHA-256, little-endian): how a signed certificate names its CA, and the
// number GNS's certificate tool prints as "ID<n>". It is 0 for a key that
// is not 32 bytes.
func CAKeyID(pub ed25519.PublicKey) uint64 {
	return crypto.KeyID(pub)
}

// CertTemplate describes a certificate for IssueCertificate. Only Identity
// and PublicKey are required; the zero value of every other field has the
// default it documents.
type CertTemplate struct {
	// Identity is the holder's identity. Required: GNS peers refuse a
	// CA-signed certificate that names none. The localhost identity
	// (ip:::1, ip:127.0.0.1) is anonymous and cannot be certified.
	Identity Identity
	// PublicKey is the holder's Ed25519 public key; the holder keeps the
	// private key (Config.PrivateKey). Required.
	PublicKey ed25519.PublicKey
	// AppIDs are the app IDs the certificate is valid for; a peer whose
	// Config.AppID is not listed refuses it. Nil means {0}, the AppID of a
	// Host outside Steam.
	AppIDs []uint32
	// DataCenterIDs are the data centers (GNS's PoP IDs) the certificate
	// names, for keys GNS game servers share; nil names none.
	DataCenterIDs []uint32
	// Created is the creation time, rounded down to the second; zero means
	// now.
	Created time.Time
	// Lifetime is how long after Created the certificate expires; zero
	// means DefaultCertLifetime. It must not be negative, and the expiry
	// must fall before 2106 (the wire holds 32-bit Unix seconds).
	Lifetime time.Duration
}

// IssueCertificate returns a certificate for t signed by the CA key ca, in
// the serialized form Config.Certificate takes; MarshalCertificatePEM
// writes it as a file GNS reads. The certificate holds GNS's identity
// fields for t.Identity (identity_string and the legacy binary form), the
// app and data center IDs, the creation and expiry times and the CA's key
// ID; a peer that trusts ca's public key accepts it until it expires. An
// invalid template or key gives an error wrapping ResultInvalidParam.
func IssueCertificate(ca ed25519.PrivateKey, t CertTemplate) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return &invalidParamError{"netmsg: IssueCertificate: " + fmt.Sprintf(format, args...)}
	}
	switch {
	case len(ca) != ed25519.PrivateKeySize:
		return nil, bad("CA key of %d bytes, want an Ed25519 private key", len(ca))
	case len(t.PublicKey) != ed25519.PublicKeySize:
		return nil, bad("PublicKey of %d bytes, want an Ed25519 public key", len(t.PublicKey))
	case !t.Identity.IsValid():
		return nil, bad("no Identity (GNS peers refuse a signed certificate that names none)")
	case t.Identity.IsLocalhost():
		return nil, bad("the localhost identity %v is anonymous and cannot be certified", t.Identity)
	case t.Lifetime < 0:
		return nil, bad("negative Lifetime %v", t.Lifetime)
	}
	created := t.Created
	if created.IsZero() {
		created = time.Now()
	}
	created = created.Truncate(time.Second)
	life := t.Lifetime
	if life == 0 {
		life = DefaultCertLifetime
	}
	expiry := created.Add(life)
	if created.Unix() < 0 || expiry.Unix() > math.MaxUint32 {
		return nil, bad("validity %v to %v outside 32-bit Unix time", created, expiry)
	}
	apps := t.AppIDs
	if apps == nil {
		apps = []uint32{0}
	}
	c, err := crypto.NewCert(crypto.CertTemplate{
		PublicKey:     t.PublicKey,
		Identity:      t.Identity,
		AppIDs:        apps,
		DataCenterIDs: t.DataCenterIDs,
		Created:       created,
		Expiry:        expiry,
	})
	if err != nil {
		return nil, bad("%v", err)
	}
	signed, err := crypto.SignCert(c, ca)
	if err != nil {
		return nil, bad("%v", err)
	}
	return pb.Marshal(signed)
}

// CheckCertificateTime reports whether cert, a serialized
// CertificateSigned (Config.Certificate), is valid at now. It returns an
// error wrapping ErrCertExpired when the expiry time is at or before now,
// or when a CA-signed certificate has no expiry (GNS peers read it as
// expired); an error wrapping ErrCertNotYetValid when it was created more
// than five minutes after now (a clock set wrong on one side); an error
// wrapping ErrBadCertFile when cert does not parse; nil otherwise, and for
// an unsigned certificate without times (what a Host makes for itself). A
// Host checks its own certificate so, as GNS will not present an expired
// one: peers would refuse it (end reason 4003).
func CheckCertificateTime(cert []byte, now time.Time) error {
	var cs pb.CertificateSigned
	if err := proto.Unmarshal(cert, &cs); err != nil || len(cs.GetCert()) == 0 {
		return certFileErr("not a serialized certificate")
	}
	var c pb.Certificate
	if err := proto.Unmarshal(cs.GetCert(), &c); err != nil {
		return certFileErr("certificate body: %v", err)
	}
	who := "the certificate"
	if s, ok, err := crypto.CertIdentity(&c); err == nil && ok {
		who = "the certificate of " + s
	}
	const layout = "2006-01-02 15:04:05 UTC"
	switch {
	case c.TimeExpiry == nil && cs.CaSignature != nil:
		return fmt.Errorf("%w: %s is CA-signed but has no expiry time, which peers read as expired", ErrCertExpired, who)
	case c.TimeExpiry != nil && int64(c.GetTimeExpiry()) <= now.Unix():
		exp := time.Unix(int64(c.GetTimeExpiry()), 0)
		return fmt.Errorf("%w: %s expired at %s (%v ago); issue a new one (netmsg cert issue)",
			ErrCertExpired, who, exp.UTC().Format(layout), now.Sub(exp).Truncate(time.Second))
	case c.TimeCreated != nil && time.Unix(int64(c.GetTimeCreated()), 0).After(now.Add(certClockSkew)):
		cr := time.Unix(int64(c.GetTimeCreated()), 0)
		return fmt.Errorf("%w: %s was created at %s, %v from now; check this machine's clock and the CA's",
			ErrCertNotYetValid, who, cr.UTC().Format(layout), cr.Sub(now).Truncate(time.Second))
	}
	return nil
}

// invalidParamError is an error that says what is wrong with an argument
// and matches ResultInvalidParam with errors.Is, without repeating the
// "netmsg:" prefix of ResultInvalidParam's own message.
type invalidParamError struct{ msg string }

func (e *invalidParamError) Error() string        { return e.msg }
func (e *invalidParamError) Is(target error) bool { return target == ResultInvalidParam }

// CertificateIdentity returns the identity cert, a serialized
// CertificateSigned, names: the identity a Host that presents it takes
// when its Config.Identity is unset, and the one to register with a
// signaling server. A certificate that names none gives the zero Identity
// and no error. Errors wrap ErrBadCertFile.
func CertificateIdentity(cert []byte) (Identity, error) {
	var cs pb.CertificateSigned
	if err := proto.Unmarshal(cert, &cs); err != nil || len(cs.GetCert()) == 0 {
		return Identity{}, certFileErr("not a serialized certificate")
	}
	var c pb.Certificate
	if err := proto.Unmarshal(cs.GetCert(), &c); err != nil {
		return Identity{}, certFileErr("certificate body: %v", err)
	}
	s, ok, err := crypto.CertIdentity(&c)
	if err != nil {
		return Identity{}, certFileErr("certificate identity: %v", err)
	}
	if !ok {
		return Identity{}, nil
	}
	id, err := parseIdentityGNS(s)
	if err != nil {
		return Identity{}, certFileErr("certificate identity %q does not parse", s)
	}
	return id, nil
}
