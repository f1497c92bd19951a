package conn

import (
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/snp"
)

// TestLaneExtension: netmsg's lane offer is agreed at the smaller of the two
// offers, only for connections with a virtual port, and a side that offers
// nothing (as GNS) leaves one lane. Keyed sends made before and after the
// handshake land on key modulo lanes, and arrive in order per key.
func TestLaneExtension(t *testing.T) {
	cases := []struct {
		name                string
		vport, client, serv int
		want                int
	}{
		{"both offer", 0x7fffffff, 8, 8, 8},
		{"server offers fewer", 0x7fffffff, 8, 3, 3},
		{"client offers fewer", 0x7fffffff, 2, 8, 2},
		{"server as GNS", 0x7fffffff, 8, 0, 1},
		{"client as GNS", 0x7fffffff, 0, 8, 1},
		{"plain connection", 0, 8, 8, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cc, sc := testConfig("str:client"), testConfig("str:server")
			cc.VirtualPort, cc.OfferLanes, sc.OfferLanes = tc.vport, tc.client, tc.serv
			p := newPair(t, cc, sc)
			// Before the handshake: keyed messages wait for their lane.
			for k := uint32(0); k < 4; k++ {
				if _, err := p.client.SendKeyed(p.now, k, []byte{byte(k)}, []byte{0}, snp.Reliable); err != nil {
					t.Fatal(err)
				}
			}
			p.run(50 * time.Millisecond)
			if p.server == nil || p.server.State() != StateConnected || p.client.State() != StateConnected {
				t.Fatal("not connected")
			}
			if got := p.client.NumLanes(); got != tc.want {
				t.Errorf("client lanes %d, want %d", got, tc.want)
			}
			if got := p.server.NumLanes(); got != tc.want {
				t.Errorf("server lanes %d, want %d", got, tc.want)
			}
			for k := uint32(0); k < 4; k++ {
				if _, err := p.client.SendKeyed(p.now, k, nil, []byte{byte(k), 1}, snp.Reliable); err != nil {
					t.Fatal(err)
				}
				if _, err := p.server.SendKeyed(p.now, k, []byte{byte(k), 1}, nil, snp.Reliable); err != nil {
					t.Fatal(err)
				}
			}
			p.run(100 * time.Millisecond)
			next := map[uint32]byte{}
			for _, m := range recvAll(p.server) {
				k := uint32(m.Data[0])
				if want := k % uint32(tc.want); m.Lane != want {
					t.Errorf("key %d arrived on lane %d, want %d", k, m.Lane, want)
				}
				if m.Data[1] != next[k] {
					t.Errorf("key %d: message %d out of order", k, m.Data[1])
				}
				next[k]++
			}
			for k := uint32(0); k < 4; k++ {
				if next[k] != 2 {
					t.Errorf("key %d: %d messages, want 2", k, next[k])
				}
			}
			if got := len(recvAll(p.client)); got != 4 {
				t.Errorf("client got %d messages, want 4", got)
			}
		})
	}
}
