package conn

import (
	"bytes"
	"encoding/hex"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/vectors"
)

// seedVectors adds every datagram of the recorded GNS session to f.
func seedVectors(f *testing.F) {
	var v struct {
		Datagrams []struct {
			Hex string `json:"hex"`
		} `json:"datagrams"`
	}
	vectors.Load(f, "direct_session.json", &v)
	for _, d := range v.Datagrams {
		b, err := hex.DecodeString(d.Hex)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0x80, 1, 2, 3, 4, 5, 6})
	f.Add([]byte{0x81, 1, 2, 3, 4, 5, 6, 2, 0x18, 0x02})
}

func FuzzClassify(f *testing.F) {
	seedVectors(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		k, _ := Classify(b)
		if k == KindData && len(b) < dataHeaderSize {
			t.Fatal("short data packet classified")
		}
	})
}

// FuzzDataHeader: parse, re-encode and compare.
func FuzzDataHeader(f *testing.F) {
	seedVectors(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, n, err := parseDataHeader(b)
		if err != nil {
			return
		}
		if n > len(b) || dataHeaderLen(&h) > n {
			t.Fatalf("length %d of %d", n, len(b))
		}
		// The varint of the stats length may be non-minimal on the wire;
		// compare what re-encodes canonically.
		re := appendDataHeader(nil, &h)
		h2, n2, err := parseDataHeader(re)
		if err != nil || n2 != len(re) || h2.ToConnID != h.ToConnID || h2.WirePktNum != h.WirePktNum ||
			!bytes.Equal(h2.Stats, h.Stats) || h2.TimeSincePrev != h.TimeSincePrev {
			t.Fatalf("round trip: %+v vs %+v (%v)", h2, h, err)
		}
	})
}

// FuzzClientHandshake feeds one datagram to a client that has sent its
// challenge request, then one more after whatever that caused.
func FuzzClientHandshake(f *testing.F) {
	seedVectors(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Dial(testConfig("str:client"), t0, 439041101, serverAddr)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 0, 2048)
		c.Poll(t0, buf)
		c.HandleDatagram(t0, serverAddr, b)
		for range 10 {
			if _, ok := c.Poll(t0, buf); !ok {
				break
			}
		}
		c.HandleDatagram(t0.Add(time.Millisecond), serverAddr, b)
		c.Poll(t0.Add(time.Second), buf)
		c.NextWake()
	})
}

// FuzzListener feeds one datagram to every entry point of a Listener.
func FuzzListener(f *testing.F) {
	seedVectors(f)
	l, err := NewListener(testConfig("str:server"), []byte("0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := l.HandleChallengeRequest(t0, clientAddr, b, nil); err == nil && len(r) > len(b) {
			t.Fatalf("reply of %d bytes to %d", len(r), len(b))
		}
		if c, _, err := l.HandleConnectRequest(t0, clientAddr, b, 5); err == nil {
			t.Fatalf("connect request without a valid challenge accepted: %v", c)
		}
		if r := l.HandleStray(t0, clientAddr, b, nil); len(r) > len(b) {
			t.Fatalf("stray reply of %d bytes to %d", len(r), len(b))
		}
	})
}

// FuzzConnected feeds one datagram to both ends of a connected pair.
func FuzzConnected(f *testing.F) {
	seedVectors(f)
	p := connectedPairTB(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		p.client.HandleDatagram(p.now, serverAddr, b)
		p.server.HandleDatagram(p.now, clientAddr, b)
		buf := make([]byte, 0, 2048)
		for range 10 {
			if _, ok := p.client.Poll(p.now, buf); !ok {
				break
			}
		}
	})
}

func connectedPairTB(tb testing.TB) *pair {
	p := newPair(tb, testConfig("str:client"), testConfig("str:server"))
	p.run(50 * time.Millisecond)
	if p.client.State() != StateConnected {
		tb.Fatal("not connected")
	}
	return p
}
