package crypto

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"io"
)

// GenerateIdentityKey returns a new Ed25519 identity key read from r (nil
// means crypto/rand).
func GenerateIdentityKey(r io.Reader) (ed25519.PrivateKey, error) {
	if r == nil {
		r = rand.Reader
	}
	_, priv, err := ed25519.GenerateKey(r)
	return priv, err
}

// KeyID returns GNS's ID of an Ed25519 public key: the first 8 bytes of
// SHA-256 of the 32 key bytes, read little-endian. It is how a signed
// certificate names its CA (ca_key_id) and how GNS's cert tool prints keys
// ("ID<decimal>"). It returns 0 for a key that is not 32 bytes.
func KeyID(pub ed25519.PublicKey) uint64 {
	if len(pub) != ed25519.PublicKeySize {
		return 0
	}
	sum := sha256.Sum256(pub)
	return binary.LittleEndian.Uint64(sum[:8])
}
