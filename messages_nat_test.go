package netmsg

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/ice"
	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
	"github.com/netmsg-go/netmsg/transport"
)

// stunResponder answers STUN binding requests on ep until it closes.
func stunResponder(ep *netsim.Endpoint) {
	pkts := []transport.Packet{{Buf: make([]byte, transport.MaxDatagram)}}
	for {
		n, err := ep.ReadBatch(pkts)
		if err != nil {
			return
		}
		for _, p := range pkts[:n] {
			if r, ok := ice.BindingResponse(p.Bytes(), p.Addr); ok {
				ep.WriteBatch([]transport.Packet{{Buf: r, N: len(r), Addr: p.Addr}})
			}
		}
	}
}

// TestMessagesP2PThroughNAT: two Hosts, each behind its own NAT of the
// in-memory network, learn their public addresses from a STUN server and
// connect directly where the NATs allow it (hole punching through cone
// NATs, and a symmetric NAT facing a full cone); two symmetric NATs need a
// relay: without one the session fails cleanly with EndMiscP2PNATFirewall,
// with a TURN server (package relay, on the same in-memory network) it
// goes through it; where a direct path exists it is preferred. The ICE
// enable bitmask (Config.P2PICEEnable) limits what a side offers: without
// ICEEnablePublic no server-reflexive address, so two NATed Hosts find no
// path; with ICEEnableRelay alone the relay is used although a direct
// path exists.
func TestMessagesP2PThroughNAT(t *testing.T) {
	cases := []struct {
		a, b     netsim.NATType
		relay    bool // a TURN server on the network
		ok       bool
		relayed  bool      // the path found goes through the relay
		enable   ICEEnable // both sides' P2PICEEnable (0: all)
		stunTURN bool      // the TURN server is the STUN server too (as coturn often is)
	}{
		{netsim.FullCone, netsim.FullCone, false, true, false, 0, false},
		{netsim.Restricted, netsim.Restricted, false, true, false, 0, false},
		{netsim.PortRestricted, netsim.PortRestricted, false, true, false, 0, false},
		{netsim.Symmetric, netsim.FullCone, false, true, false, 0, false},
		{netsim.FullCone, netsim.Symmetric, false, true, false, 0, false},
		{netsim.Symmetric, netsim.Symmetric, false, false, false, 0, false},
		{netsim.Symmetric, netsim.Symmetric, true, true, true, 0, false},
		{netsim.PortRestricted, netsim.PortRestricted, true, true, false, 0, false},                    // direct preferred
		{netsim.FullCone, netsim.FullCone, false, true, false, ICEEnablePublic, false},                 // reflexive addresses suffice
		{netsim.FullCone, netsim.FullCone, true, false, false, ICEEnablePrivate, false},                // no reflexive address, no relay: no path
		{netsim.FullCone, netsim.FullCone, true, true, true, ICEEnableRelay, false},                    // the relay although a direct path exists
		{netsim.FullCone, netsim.FullCone, true, true, true, ICEEnableRelay | ICEEnablePrivate, false}, // private addresses do not cross the NATs
		{netsim.Symmetric, netsim.FullCone, true, true, false, 0, true},
		{netsim.Symmetric, netsim.Symmetric, true, true, true, 0, true},
	}
	for _, tc := range cases {
		name := fmt.Sprintf("%v-%v", tc.a, tc.b)
		if tc.relay {
			name += "-with-relay"
		}
		if tc.enable != 0 {
			name += fmt.Sprintf("-enable%d", tc.enable)
		}
		if tc.stunTURN {
			name += "-stun-on-turn"
		}
		t.Run(name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 10 * time.Millisecond}})
				defer nw.Close()
				natA, err := nw.AddNAT(netsim.NATConfig{Inside: netip.MustParsePrefix("10.1.0.0/16"), Public: netip.MustParseAddr("203.0.113.1"), Type: tc.a})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := nw.AddNAT(netsim.NATConfig{Inside: netip.MustParsePrefix("10.2.0.0/16"), Public: netip.MustParseAddr("203.0.113.2"), Type: tc.b}); err != nil {
					t.Fatal(err)
				}
				stunAddr := netip.MustParseAddrPort("198.51.100.10:3478")
				stun, _ := nw.Listen(stunAddr)
				go stunResponder(stun)
				defer stun.Close()
				var turns []TURNServer
				if tc.relay {
					rs, err := relay.NewServer(relay.Config{Logger: slog.New(slog.DiscardHandler), ListenPacket: nw.ListenPacket, ListenAddr: "198.51.100.20:3478", RelayIP: netip.MustParseAddr("198.51.100.20"), Users: map[string]string{"u": "p"}})
					if err != nil {
						t.Fatal(err)
					}
					defer rs.Close()
					turns = []TURNServer{{Addr: rs.Addr(), Username: "u", Password: "p"}}
					if tc.stunTURN {
						stunAddr = rs.Addr()
					}
				}
				hub, _ := signaling.NewHub(signaling.HubConfig{Delay: 20 * time.Millisecond})
				var ps []*msgPeer
				for i, addr := range []string{"10.1.0.2:27015", "10.2.0.2:27015"} {
					ep, err := nw.Listen(netip.MustParseAddrPort(addr))
					if err != nil {
						t.Fatal(err)
					}
					id := mustIdentity(t, fmt.Sprintf("str:n%d", i))
					sc, _ := hub.Connect(id.String())
					defer sc.Close()
					p := &msgPeer{id: id}
					h, err := NewHost(Config{PacketConn: ep, Identity: id, Signaling: sc, STUNServers: []netip.AddrPort{stunAddr}, TURNServers: turns, P2PICEEnable: tc.enable,
						OnSessionRequest: func(peer Identity) { p.m.AcceptSessionWithUser(peer) },
						OnSessionFailed: func(info ConnectionInfo) {
							p.mu.Lock()
							p.failures = append(p.failures, info)
							p.mu.Unlock()
						},
					})
					if err != nil {
						t.Fatal(err)
					}
					p.Host, p.m = h, h.Messages()
					ps = append(ps, p)
				}
				defer closeAll(ps)
				a, b := ps[0], ps[1]
				if err := a.m.SendMessageToUser(b.id, []byte("through the NATs"), SendReliable, 0); err != nil {
					t.Fatal(err)
				}
				if !tc.ok {
					waitFor(t, time.Minute, "the failure", func() bool { return len(a.gotFailures()) > 0 })
					if f := a.gotFailures()[0]; f.EndReason != EndMiscP2PNATFirewall {
						t.Fatalf("failure %v %s, want %v", f.EndReason, f.EndDebug, EndMiscP2PNATFirewall)
					}
					return
				}
				text, m := recvText(t, b, 0)
				if text != "through the NATs" {
					t.Fatalf("b got %q", text)
				}
				m.Release()
				b.m.SendMessageToUser(a.id, []byte("back"), SendReliable, 0)
				if text, m := recvText(t, a, 0); text != "back" {
					t.Fatalf("a got %q", text)
				} else {
					m.Release()
				}
				_, info, _ := a.m.GetSessionConnectionInfo(b.id)
				if relayed := strings.Contains(info.Description, "relay"); relayed != tc.relayed {
					t.Errorf("path %q, want relayed %v", info.Description, tc.relayed)
				}
				if relayed := info.Flags&ConnInfoRelayed != 0; relayed != tc.relayed {
					t.Errorf("flags %#x, want relayed %v", info.Flags, tc.relayed)
				}
				if !tc.relayed && info.RemoteAddress.Addr() != netip.MustParseAddr("203.0.113.2") {
					t.Errorf("a reaches b at %v, want b's NAT", info.RemoteAddress)
				}
				if tc.relayed && info.RemoteAddress.IsValid() {
					t.Errorf("relayed, but RemoteAddress is %v (GNS clears it)", info.RemoteAddress)
				}
				// a's own allocation carries the path (POPRelay 1), or b's (0).
				if tc.relayed && info.POPRelay > 1 || !tc.relayed && info.POPRelay != 0 {
					t.Errorf("POPRelay %d (relayed %v)", info.POPRelay, tc.relayed)
				}
				if info.Flags&ConnInfoUnauthenticated == 0 {
					t.Errorf("flags %#x: the peer's certificate is unsigned, want ConnInfoUnauthenticated", info.Flags)
				}
				if st := natA.Stats(nw); st.MappingsCreated == 0 {
					t.Errorf("NAT A made no mapping: %+v", st)
				}
			})
		})
	}
}
