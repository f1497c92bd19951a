package netmsg

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

// benchConnect measures, over real sockets on 127.0.0.1 with an in-memory
// signaling hub, the time from the first SendMessageToUser to a peer known
// only by identity until that message arrives (rendezvous, certificate
// checks, ICE, and the first reliable message), with fresh Hosts each time.
func benchConnect(b *testing.B, turn []TURNServer) {
	var times []time.Duration
	for i := 0; b.Loop(); i++ {
		hub, _ := signaling.NewHub(signaling.HubConfig{})
		var hs []*Host
		for j := range 2 {
			id, _ := ParseIdentity(fmt.Sprintf("str:b%d", j))
			sc, _ := hub.Connect(id.String())
			var h *Host
			h, err := NewHost(Config{ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"), Identity: id, Signaling: sc,
				TURNServers: turn, P2PRelayOnly: turn != nil,
				OnSessionRequest: func(p Identity) { h.Messages().AcceptSessionWithUser(p) }})
			if err != nil {
				b.Fatal(err)
			}
			hs = append(hs, h)
		}
		start := time.Now()
		hs[0].Messages().SendMessageToUser(hs[1].Identity(), []byte("hi"), SendReliable|SendNoNagle, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := hs[1].Messages().Receive(ctx, 0)
		cancel()
		if err != nil {
			for j, h := range hs {
				h.mu.Lock()
				for _, hc := range h.conns {
					sel, ok := hc.p2p.agent.Selected()
					b.Logf("host %d conn server %v state %v end %v %s sel %v %v relay %v turn %v stats %+v hoststats %+v remoteID %d", j, hc.c.IsServer(), hc.c.State(), hc.c.EndReason(), hc.c.EndDebug(), sel, ok, hc.p2p.agent.SelectedRelay(), h.turn != nil, hc.p2p.agent.Stats(), h.stats, hc.p2p.sess.RemoteID)
				}
				h.mu.Unlock()
			}
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
		m.Release()
		for _, h := range hs {
			h.Close()
		}
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "ms-p99")
}

func BenchmarkP2PConnectDirect(b *testing.B) { benchConnect(b, nil) }

func BenchmarkP2PConnectRelay(b *testing.B) {
	s, err := relay.NewServer(relay.Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"}, MaxAllocations: 100000})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchConnect(b, []TURNServer{{Addr: s.Addr(), Username: "u", Password: "p"}})
}
