package conn

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/snp"
)

// TestPrebuild: datagrams made ahead of time, delivered later in order,
// are every message once and in order at the peer, and a connection that
// is not connected refuses to make them.
func TestPrebuild(t *testing.T) {
	for _, size := range []int{8, 1000, 5000} {
		p := newPair(t, testConfig("str:client"), testConfig("str:server"))
		if _, err := p.client.Prebuild(p.now, 1, func(int) []byte { return []byte("x") }, snp.Reliable); err == nil {
			t.Fatal("Prebuild before connecting: no error")
		}
		if !p.until(5*time.Second, func() bool {
			return p.client.State() == StateConnected && p.server != nil && p.server.State() == StateConnected
		}) {
			t.Fatal("not connected")
		}
		const count = 3000
		msg := make([]byte, size)
		ds, err := p.client.Prebuild(p.now, count, func(i int) []byte {
			binary.LittleEndian.PutUint32(msg, uint32(i))
			return msg
		}, snp.Reliable)
		if err != nil {
			t.Fatal(err)
		}
		next := 0
		for _, d := range ds {
			if err := p.server.HandleDatagram(p.now, clientAddr, d); err != nil {
				t.Fatalf("size %d: datagram refused: %v", size, err)
			}
			for _, m := range recvAll(p.server) {
				if got := int(binary.LittleEndian.Uint32(m.Data)); got != next || len(m.Data) != size {
					t.Fatalf("size %d: message %d (%d bytes), want %d", size, got, len(m.Data), next)
				}
				next++
			}
		}
		if next != count {
			t.Fatalf("size %d: %d of %d messages", size, next, count)
		}
		t.Logf("size %d: %d messages in %d datagrams", size, count, len(ds))
	}
}
