package paths

import (
	"net/netip"
	"testing"
	"time"
)

// BenchmarkHandleDatagramGNS is the cost paths adds to every GNS datagram
// on the Host's hot path (classification, no lock).
func BenchmarkHandleDatagramGNS(b *testing.B) {
	p, _ := New(Config{})
	from := netip.MustParseAddrPort("192.0.2.1:1000")
	d := gnsDatagram(1, 1200)
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		if p.HandleDatagram(now, from, d).Disposition != GNS {
			b.Fatal("not GNS")
		}
	}
}

// BenchmarkChannelData parses and appends a 1200-byte ChannelData message.
func BenchmarkChannelData(b *testing.B) {
	msg := ChannelData{Channel: 0x4001, Data: gnsDatagram(1, 1200)}.Append(nil)
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	for b.Loop() {
		cd, _, err := ParseChannelData(msg)
		if err != nil {
			b.Fatal(err)
		}
		buf = cd.Append(buf[:0])
	}
}
