// Package crypto is the cryptography of a GNS connection: Ed25519 identity
// keys and certificates (unsigned, or signed by a certificate authority),
// signed session crypt info with an ephemeral X25519 key, the key
// derivation GNS uses, and per-packet AES-256-GCM.
//
// Everything here is pure and byte-exact with GameNetworkingSockets: no I/O,
// no goroutines, no clock (callers pass the time), randomness from an
// io.Reader the caller chooses (nil meaning crypto/rand).
//
// The handshake, as the connection layer drives it:
//
//	client                                   server
//	NewLocalCrypt(DefaultCiphers)
//	ConnectRequest{cert, crypt}  ──────────►  VerifyPeer (server side)
//	                                          NegotiateCipher
//	                                          NewLocalCrypt([]Cipher{chosen})
//	VerifyPeer (client side)    ◄──────────   ConnectOK{cert, crypt}
//	NegotiateCipher                           DeriveKeys
//	DeriveKeys
//
// Errors carry the connection end reason GNS uses; see EndReasonOf.
package crypto

// Protocol constants of GNS (steamnetworkingsockets_internal.h).
const (
	// ProtocolVersion is the version we send (k_nCurrentProtocolVersion).
	ProtocolVersion = 13
	// MinProtocolVersion is the oldest peer version accepted
	// (k_nMinRequiredProtocolVersion).
	MinProtocolVersion = 8
	// TagSize is the AES-GCM tag length (k_cbAESGCMTagSize).
	TagSize = 16
	// KeySize is the AES-256 key length.
	KeySize = 32
	// IVSize is the GCM nonce length; GNS's IVs are 12 bytes.
	IVSize = 12
	// SignatureSize is the Ed25519 signature length.
	SignatureSize = 64
)

// Connection end reasons GNS uses for handshake failures (the values of
// netmsg.EndReason; this package cannot import the root package).
const (
	EndRemoteBadCrypt           = 4002
	EndRemoteBadCert            = 4003
	EndRemoteBadProtocolVersion = 4006
)
