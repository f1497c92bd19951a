package conn

import (
	"net/netip"
	"testing"
)

// BenchmarkSpoofedChallengeRequest is the server's cost of one spoofed
// challenge request (a padded request from any address, answered
// statelessly): CPU per request, and the reply's size against the
// request's (bytes out never exceed bytes in).
func BenchmarkSpoofedChallengeRequest(b *testing.B) {
	l, err := NewListener(testConfig("str:server"), make([]byte, 32))
	if err != nil {
		b.Fatal(err)
	}
	c, err := Dial(testConfig("str:client"), t0, 5, serverAddr)
	if err != nil {
		b.Fatal(err)
	}
	req, ok := c.Poll(t0, nil)
	if !ok {
		b.Fatal("no challenge request")
	}
	dst := make([]byte, 0, 1500)
	var out int
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(i))
		reply, err := l.HandleChallengeRequest(t0, from, req, dst)
		if err != nil {
			b.Fatal(err)
		}
		out = len(reply)
	}
	if out > len(req) {
		b.Fatalf("reply of %d bytes to a %d-byte request", out, len(req))
	}
	b.ReportMetric(float64(len(req)), "bytes-in/op")
	b.ReportMetric(float64(out), "bytes-out/op")
}
