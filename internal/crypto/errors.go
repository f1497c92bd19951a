package crypto

import "errors"

// Error classes. Each maps to one GNS connection end reason (EndReasonOf).
// Every handshake error of this package wraps exactly one of them, so
// errors.Is(err, ErrBadCert) works, as does errors.Is with the specific
// sentinels below.
var (
	// ErrBadCert: the peer's certificate is not acceptable (GNS ends the
	// connection with 4003 Remote_BadCert).
	ErrBadCert = errors.New("crypto: bad certificate")
	// ErrBadCrypt: the handshake crypto is missing, malformed or fails to
	// verify (4002 Remote_BadCrypt).
	ErrBadCrypt = errors.New("crypto: bad handshake crypto")
	// ErrBadProtocolVersion: the peer's protocol version is not supported
	// (4006 Remote_BadProtocolVersion).
	ErrBadProtocolVersion = errors.New("crypto: unsupported protocol version")
)

// classError is a specific failure within a class.
type classError struct {
	class error
	msg   string
}

func (e *classError) Error() string { return "crypto: " + e.msg }
func (e *classError) Unwrap() error { return e.class }

func newError(class error, msg string) error { return &classError{class, msg} }

// Specific handshake failures, each wrapping its class. The comment gives
// the GNS check it stands for.
var (
	// ErrMissingCertOrCrypt: the message lacks the certificate or the crypt
	// info bytes.
	ErrMissingCertOrCrypt = newError(ErrBadCrypt, "certificate or crypt info missing")
	// ErrCertParse: the certificate bytes are not a Certificate. GNS counts
	// this as a crypt failure, not a certificate one.
	ErrCertParse = newError(ErrBadCrypt, "certificate does not parse")
	// ErrCryptSignature: the crypt info signature does not verify with the
	// certificate's key (also: no signature, wrong length, key not
	// Ed25519).
	ErrCryptSignature = newError(ErrBadCrypt, "crypt info signature invalid")
	// ErrCryptParse: the crypt info bytes are not a SessionCryptInfo.
	ErrCryptParse = newError(ErrBadCrypt, "crypt info does not parse")
	// ErrCipher: no mutually acceptable cipher, or a server that did not
	// choose exactly one.
	ErrCipher = newError(ErrBadCrypt, "no acceptable cipher")
	// ErrKeyExchange: the peer's key-exchange key is not a valid X25519
	// key, or the exchange produced the all-zero secret.
	ErrKeyExchange = newError(ErrBadCrypt, "key exchange failed")

	// ErrCAUnknown: ca_key_id is zero or names no trusted CA.
	ErrCAUnknown = newError(ErrBadCert, "certificate authority not trusted")
	// ErrCAExpired: the CA's own validity has ended.
	ErrCAExpired = newError(ErrBadCert, "certificate authority expired")
	// ErrCASignature: the CA signature is missing, of the wrong length, or
	// does not verify.
	ErrCASignature = newError(ErrBadCert, "certificate authority signature invalid")
	// ErrCertExpired: a CA-signed certificate's time_expiry has passed.
	ErrCertExpired = newError(ErrBadCert, "certificate expired")
	// ErrCertKey: a CA-signed certificate whose key is not a 32-byte
	// Ed25519 key.
	ErrCertKey = newError(ErrBadCert, "certificate key invalid")
	// ErrCertIdentity: the identity in the certificate does not parse.
	ErrCertIdentity = newError(ErrBadCert, "certificate identity invalid")
	// ErrIdentityMismatch: the certificate was issued to someone else.
	ErrIdentityMismatch = newError(ErrBadCert, "certificate issued to another identity")
	// ErrCertNoAppID: a certificate naming an identity lists no app ID.
	ErrCertNoAppID = newError(ErrBadCert, "certificate not bound to an app ID")
	// ErrCertAppID: the certificate (or its CA) does not allow our app ID.
	ErrCertAppID = newError(ErrBadCert, "certificate not valid for this app ID")
	// ErrCertNoIdentity: a CA-signed certificate names no identity (GNS
	// allows that only for anonymous game servers in data centers).
	ErrCertNoIdentity = newError(ErrBadCert, "signed certificate names no identity")
	// ErrUnsignedCert: the certificate is unsigned and the policy does not
	// allow that.
	ErrUnsignedCert = newError(ErrBadCert, "unsigned certificate not allowed")

	// ErrOldProtocol: the peer's crypt info has a protocol version below
	// MinProtocolVersion.
	ErrOldProtocol = newError(ErrBadProtocolVersion, "peer protocol version too old")
	// ErrProtocolChanged: the crypt info's version differs from the one the
	// peer sent earlier (in its ChallengeReply).
	ErrProtocolChanged = newError(ErrBadProtocolVersion, "peer protocol version changed")
)

// ErrPacketAuth is returned by PacketCipher.Open when a packet fails
// authentication. It is not a handshake failure: GNS drops such a packet
// and keeps the connection.
var ErrPacketAuth = errors.New("crypto: packet authentication failed")

// EndReasonOf returns the GNS connection end reason for a handshake error of
// this package: EndRemoteBadCert, EndRemoteBadCrypt or
// EndRemoteBadProtocolVersion; 0 for nil or any other error.
func EndReasonOf(err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, ErrBadCert):
		return EndRemoteBadCert
	case errors.Is(err, ErrBadCrypt):
		return EndRemoteBadCrypt
	case errors.Is(err, ErrBadProtocolVersion):
		return EndRemoteBadProtocolVersion
	}
	return 0
}
