package netmsg

import (
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

// TestP2PConnectTimeThroughTURN pins how long a first message takes to a
// peer known only by identity when no direct path exists and the session
// must go through a TURN server (package relay), on the in-memory network
// in fake time:
//
//   - "router": the topology of BenchmarkP2PConnectNetnsRelay. A and B
//     on two subnets joined by a router that does not forward between
//     them (their host candidates are unreachable); the TURN server runs
//     on the router, reachable from both.
//   - "symmetric-nats": A and B each behind a symmetric NAT (no hole
//     punching works), a STUN and a TURN server on the public side.
//
// ICE's checks through the relay run beside the direct ones (their own
// pacing lane), so the relayed path is found within a few round trips of
// the TURN allocation: 3.75 ms on the router topology (250 µs links) and
// 115 ms behind the NATs (5 ms links, so a TURN allocation alone takes
// 20 ms and a check through both relays 30 ms). With one pacing for every
// pair (20 ms apart, the relayed pairs after the direct ones) the same
// took 42.75 ms and 175 ms.
func TestP2PConnectTimeThroughTURN(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delay time.Duration // one-way, every link
		nat   bool
		limit time.Duration
	}{
		{"router", 250 * time.Microsecond, false, 15 * time.Millisecond},
		{"symmetric-nats", 5 * time.Millisecond, true, 140 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: tc.delay}})
				defer nw.Close()
				addrs := []netip.AddrPort{netip.MustParseAddrPort("10.77.1.2:27015"), netip.MustParseAddrPort("10.77.2.2:27015")}
				turnAddr := netip.MustParseAddrPort("10.77.1.1:3478")
				var stunServers []netip.AddrPort
				if tc.nat {
					addrs = []netip.AddrPort{netip.MustParseAddrPort("10.1.0.2:27015"), netip.MustParseAddrPort("10.2.0.2:27015")}
					turnAddr = netip.MustParseAddrPort("198.51.100.20:3478")
					for i, in := range []string{"10.1.0.0/16", "10.2.0.0/16"} {
						if _, err := nw.AddNAT(netsim.NATConfig{Inside: netip.MustParsePrefix(in), Public: netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}), Type: netsim.Symmetric}); err != nil {
							t.Fatal(err)
						}
					}
					stunAddr := netip.MustParseAddrPort("198.51.100.10:3478")
					stun, _ := nw.Listen(stunAddr)
					go stunResponder(stun)
					defer stun.Close()
					stunServers = []netip.AddrPort{stunAddr}
				} else {
					// The router does not forward between the subnets.
					nw.SetLink(addrs[0], addrs[1], netsim.LinkConfig{LossPercent: 100})
					nw.SetLink(addrs[1], addrs[0], netsim.LinkConfig{LossPercent: 100})
				}
				rs, err := relay.NewServer(relay.Config{Logger: slog.New(slog.DiscardHandler), ListenPacket: nw.ListenPacket, ListenAddr: turnAddr.String(), RelayIP: turnAddr.Addr(), Users: map[string]string{"u": "p"}, AllowPeers: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}})
				if err != nil {
					t.Fatal(err)
				}
				defer rs.Close()
				hub, _ := signaling.NewHub(signaling.HubConfig{Delay: tc.delay})
				var ps []*msgPeer
				for i, addr := range addrs {
					ep, err := nw.Listen(addr)
					if err != nil {
						t.Fatal(err)
					}
					id := mustIdentity(t, fmt.Sprintf("str:turn%d", i))
					sc, _ := hub.Connect(id.String())
					defer sc.Close()
					p := &msgPeer{id: id}
					h, err := NewHost(Config{PacketConn: ep, Identity: id, Signaling: sc, STUNServers: stunServers,
						TURNServers:      []TURNServer{{Addr: rs.Addr(), Username: "u", Password: "p"}},
						OnSessionRequest: func(peer Identity) { p.m.AcceptSessionWithUser(peer) }})
					if err != nil {
						t.Fatal(err)
					}
					p.Host, p.m = h, h.Messages()
					ps = append(ps, p)
				}
				defer closeAll(ps)
				a, b := ps[0], ps[1]
				start := time.Now()
				if err := a.m.SendMessageToUser(b.id, []byte("through the relay"), SendReliable|SendNoNagle, 0); err != nil {
					t.Fatal(err)
				}
				text, m := recvText(t, b, 0)
				took := time.Since(start)
				m.Release()
				if text != "through the relay" {
					t.Fatalf("b got %q", text)
				}
				if _, info, _ := a.m.GetSessionConnectionInfo(b.id); info.Flags&ConnInfoRelayed == 0 {
					t.Fatalf("a's path %q is not relayed", info.Description)
				}
				if took > tc.limit {
					t.Errorf("the first message took %v through the relay, want at most %v", took, tc.limit)
				}
				t.Logf("first message after %v", took)
			})
		})
	}
}
