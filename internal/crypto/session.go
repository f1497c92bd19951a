package crypto

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
)

// DefaultCiphers is what GNS offers by default (its Unencrypted setting 0):
// AES-256-GCM only.
var DefaultCiphers = []pb.Cipher{pb.Cipher_CIPHER_AES_256_GCM}

// LocalCrypt is our side's session crypt info: an ephemeral X25519 key, a
// nonce, our protocol version and ciphers, serialized and signed with our
// identity key. Send Signed in the ConnectRequest or ConnectOK. A LocalCrypt
// is used for one connection attempt and is immutable after creation.
type LocalCrypt struct {
	// Info is the message that was serialized into Signed.Info.
	Info *pb.SessionCryptInfo
	// Signed holds the exact serialized Info and its Ed25519 signature.
	Signed *pb.SessionCryptInfoSigned

	priv *ecdh.PrivateKey
}

// NewLocalCrypt makes our session crypt info with a fresh X25519 key and a
// random nonce, both read from r (nil means crypto/rand), signed with
// identityKey (the key of our certificate). A client lists every cipher it
// accepts, most preferred first (DefaultCiphers); a server lists exactly the
// one NegotiateCipher chose.
func NewLocalCrypt(r io.Reader, identityKey ed25519.PrivateKey, ciphers []pb.Cipher) (*LocalCrypt, error) {
	if r == nil {
		r = rand.Reader
	}
	priv, err := ecdh.X25519().GenerateKey(r)
	if err != nil {
		return nil, err
	}
	var n [8]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return nil, err
	}
	return NewLocalCryptFromKey(priv, binary.LittleEndian.Uint64(n[:]), identityKey, ciphers)
}

// NewLocalCryptFromKey is NewLocalCrypt with the X25519 key and the nonce
// given: deterministic, since Ed25519 signatures are.
func NewLocalCryptFromKey(priv *ecdh.PrivateKey, nonce uint64, identityKey ed25519.PrivateKey, ciphers []pb.Cipher) (*LocalCrypt, error) {
	if priv.Curve() != ecdh.X25519() {
		return nil, fmt.Errorf("crypto: session key is not X25519")
	}
	if len(identityKey) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("crypto: identity key is %d bytes", len(identityKey))
	}
	if len(ciphers) == 0 {
		return nil, fmt.Errorf("crypto: no ciphers")
	}
	info := &pb.SessionCryptInfo{
		KeyType:         pb.SessionCryptInfo_CURVE25519.Enum(),
		KeyData:         priv.PublicKey().Bytes(),
		Nonce:           proto.Uint64(nonce),
		ProtocolVersion: proto.Uint32(ProtocolVersion),
		Ciphers:         slices.Clone(ciphers),
	}
	b, err := pb.Marshal(info)
	if err != nil {
		return nil, err
	}
	return &LocalCrypt{
		Info:   info,
		Signed: &pb.SessionCryptInfoSigned{Info: b, Signature: ed25519.Sign(identityKey, b)},
		priv:   priv,
	}, nil
}

// NegotiateCipher picks the session cipher as GNS does: the first of ours
// (in our order of preference) that the peer also lists. An empty peer list
// means AES-256-GCM only (older peers). When the peer is the server
// (peerIsServer), its list must hold exactly one cipher. Failure is
// ErrCipher (end reason 4002).
func NegotiateCipher(ours, peer []pb.Cipher, peerIsServer bool) (pb.Cipher, error) {
	if len(peer) == 0 {
		peer = DefaultCiphers
	}
	if peerIsServer && len(peer) != 1 {
		return 0, fmt.Errorf("%w: server listed %d ciphers, must choose one", ErrCipher, len(peer))
	}
	for _, c := range ours {
		if slices.Contains(peer, c) {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%w: ours %v, peer's %v", ErrCipher, ours, peer)
}
