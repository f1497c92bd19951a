package crypto_test

import (
	"testing"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
)

func benchCipher(b *testing.B) *crypto.PacketCipher {
	c, err := crypto.NewPacketCipher(pb.Cipher_CIPHER_AES_256_GCM, [32]byte{1}, [12]byte{2})
	if err != nil {
		b.Fatal(err)
	}
	return c
}

func BenchmarkSeal1200(b *testing.B) {
	c := benchCipher(b)
	plain := make([]byte, 1200)
	buf := make([]byte, 0, 1200+crypto.TagSize)
	b.SetBytes(1200)
	b.ReportAllocs()
	var n uint64
	for b.Loop() {
		n++
		buf = c.Seal(buf[:0], plain, n)
	}
}

func BenchmarkOpen1200(b *testing.B) {
	c := benchCipher(b)
	sealed := c.Seal(nil, make([]byte, 1200), 7)
	work := make([]byte, len(sealed))
	b.SetBytes(1200)
	b.ReportAllocs()
	for b.Loop() {
		copy(work, sealed)
		if _, err := c.Open(work, 7); err != nil {
			b.Fatal(err)
		}
	}
}
