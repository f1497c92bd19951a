package conn

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net/netip"
	"time"
)

// challenger makes and checks the stateless cookies of the server's
// handshake. As in GNS (GenerateChallenge), a challenge is a keyed hash of
// a coarse time stamp and the sender's address and port, with the time
// stamp in its low 16 bits, so the server can recompute it from a connect
// request alone and check its age. GNS keys SipHash-2-4 with 128 random
// bits; we key HMAC-SHA-256 (standard library) with the listener's secret.
// Only the server ever checks its own challenges, so the hash need not
// match GNS's.
//
// A challenger is not safe for concurrent use (it reuses one hash state).
type challenger struct {
	mac hash.Hash
	buf [2 + 2 + 16]byte
	sum [sha256.Size]byte
}

func newChallenger(secret []byte) *challenger {
	return &challenger{mac: hmac.New(sha256.New, secret)}
}

// challengeTime is GNS's GetChallengeTime: microseconds >> 20, as 16 bits.
func challengeTime(now time.Time) uint16 {
	return uint16(now.UnixMicro() >> challengeTimeShift)
}

// make returns the challenge for time stamp t and address from.
func (c *challenger) make(t uint16, from netip.AddrPort) uint64 {
	binary.LittleEndian.PutUint16(c.buf[0:], t)
	binary.LittleEndian.PutUint16(c.buf[2:], from.Port())
	a16 := from.Addr().As16() // IPv4 as ::ffff:a.b.c.d, as GNS stores it
	copy(c.buf[4:], a16[:])
	c.mac.Reset()
	c.mac.Write(c.buf[:])
	s := c.mac.Sum(c.sum[:0])
	return binary.LittleEndian.Uint64(s)&^0xffff | uint64(t)
}

// check reports whether challenge was made for from no more than
// challengeMaxAge time units before now (GNS Received_ConnectRequest: the
// age is computed in 16-bit arithmetic, so a challenge "from the future"
// is too old too).
func (c *challenger) check(now time.Time, from netip.AddrPort, challenge uint64) (ok, tooOld bool) {
	then := uint16(challenge)
	if challengeTime(now)-then > challengeMaxAge {
		return false, true
	}
	return c.make(then, from) == challenge, false
}
