package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"

	"github.com/netmsg-go/netmsg/internal/pb"
)

// PacketCipher encrypts or decrypts the data packets of one direction of a
// connection. The nonce of packet number n is the IV with its first 8 bytes,
// read as a little-endian u64, increased by n (mod 2^64); the last 4 bytes
// stay. There is no associated data: the cleartext header is not
// authenticated (GNS authenticates only the payload). The tag is TagSize
// bytes, appended.
//
// A PacketCipher is not safe for concurrent use (it reuses a nonce buffer);
// use one per direction, owned by the connection's goroutine. Seal and Open
// do not allocate.
type PacketCipher struct {
	aead  cipher.AEAD // nil for CIPHER_NULL
	iv    [IVSize]byte
	nonce [IVSize]byte
}

// NewPacketCipher returns a cipher for c: CIPHER_AES_256_GCM with key and
// iv, or CIPHER_NULL (no encryption, no tag; key and iv ignored).
func NewPacketCipher(c pb.Cipher, key [KeySize]byte, iv [IVSize]byte) (*PacketCipher, error) {
	switch c {
	case pb.Cipher_CIPHER_NULL:
		return &PacketCipher{}, nil
	case pb.Cipher_CIPHER_AES_256_GCM:
		block, err := aes.NewCipher(key[:])
		if err != nil {
			return nil, err
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, err
		}
		return &PacketCipher{aead: aead, iv: iv}, nil
	}
	return nil, fmt.Errorf("crypto: cipher %v not supported", c)
}

// SendCipher returns the PacketCipher for packets we send.
func (k *SessionKeys) SendCipher() (*PacketCipher, error) {
	return NewPacketCipher(k.Cipher, k.SendKey, k.SendIV)
}

// RecvCipher returns the PacketCipher for packets we receive.
func (k *SessionKeys) RecvCipher() (*PacketCipher, error) {
	return NewPacketCipher(k.Cipher, k.RecvKey, k.RecvIV)
}

// Overhead is the number of bytes Seal adds: TagSize, or 0 for CIPHER_NULL.
func (p *PacketCipher) Overhead() int {
	if p.aead == nil {
		return 0
	}
	return TagSize
}

func (p *PacketCipher) setNonce(pktNum uint64) {
	p.nonce = p.iv
	binary.LittleEndian.PutUint64(p.nonce[:8], binary.LittleEndian.Uint64(p.iv[:8])+pktNum)
}

// Seal appends the encryption of plaintext as packet number pktNum (the
// full 64-bit number, not the 16 bits on the wire) and its tag to dst and
// returns the result. dst must not overlap plaintext unless dst[len(dst):]
// starts exactly at plaintext. With cap(dst)-len(dst) >= len(plaintext) +
// Overhead() it does not allocate.
func (p *PacketCipher) Seal(dst, plaintext []byte, pktNum uint64) []byte {
	if p.aead == nil {
		return append(dst, plaintext...)
	}
	p.setNonce(pktNum)
	return p.aead.Seal(dst, p.nonce[:], plaintext, nil)
}

// Open decrypts and authenticates ciphertext||tag as packet number pktNum,
// in place: the plaintext returned aliases ciphertext. On failure it returns
// ErrPacketAuth and the contents of ciphertext are unspecified; the caller
// drops the packet, as GNS does, and keeps the connection.
func (p *PacketCipher) Open(ciphertext []byte, pktNum uint64) ([]byte, error) {
	if p.aead == nil {
		return ciphertext, nil
	}
	if len(ciphertext) < TagSize {
		return nil, ErrPacketAuth
	}
	p.setNonce(pktNum)
	out, err := p.aead.Open(ciphertext[:0], p.nonce[:], ciphertext, nil)
	if err != nil {
		return nil, ErrPacketAuth
	}
	return out, nil
}
