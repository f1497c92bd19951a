package netmsg

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/signaling"
)

// p2pPeers opens n Hosts named str:p0, str:p1, ... on nw, each with a
// signaling Conn from hub.
func p2pPeers(t *testing.T, nw *netsim.Network, hub *signaling.Hub, n int) []*msgPeer {
	t.Helper()
	var sigs []signaling.Conn
	ps := newMsgPeersWith(t, nw, n, func(i int, c *Config) {
		id := fmt.Sprintf("str:p%d", i)
		c.Identity = mustIdentity(t, id)
		sc, err := hub.Connect(id)
		if err != nil {
			t.Fatal(err)
		}
		sigs = append(sigs, sc)
		c.Signaling = sc
	})
	for i, p := range ps {
		p.id = mustIdentity(t, fmt.Sprintf("str:p%d", i))
	}
	t.Cleanup(func() {
		for _, s := range sigs {
			s.Close()
		}
	})
	return ps
}

// TestMessagesP2P: sessions between str: identities through signaling and
// ICE over the in-memory network: request, accept, messages both ways on
// several channels, the path ICE chose, close.
func TestMessagesP2P(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 10 * time.Millisecond}})
		defer nw.Close()
		hub, _ := signaling.NewHub(signaling.HubConfig{Delay: 20 * time.Millisecond})
		ps := p2pPeers(t, nw, hub, 2)
		defer closeAll(ps)
		alice, bob := ps[0], ps[1]
		for i := range 5 {
			for _, ch := range []int{0, 3} {
				if err := alice.m.SendMessageToUser(bob.id, fmt.Appendf(nil, "%d/%d", ch, i), SendReliable, ch); err != nil {
					t.Fatal(err)
				}
			}
		}
		waitFor(t, time.Minute, "a session request", func() bool { return len(bob.gotRequests()) > 0 })
		if r := bob.gotRequests()[0]; r != alice.id {
			t.Fatalf("request from %v", r)
		}
		bob.m.AcceptSessionWithUser(alice.id)
		for _, ch := range []int{0, 3} {
			for i := range 5 {
				text, m := recvText(t, bob, ch)
				if text != fmt.Sprintf("%d/%d", ch, i) || m.Identity != alice.id {
					t.Fatalf("bob got %q from %v", text, m.Identity)
				}
				m.Release()
			}
		}
		bob.m.SendMessageToUser(alice.id, []byte("hi alice"), SendReliable, 1)
		if text, m := recvText(t, alice, 1); text != "hi alice" || m.Identity != bob.id {
			t.Fatalf("alice got %q from %v", text, m.Identity)
		} else {
			m.Release()
		}
		st, info, _ := alice.m.GetSessionConnectionInfo(bob.id)
		if st != StateConnected || info.RemoteAddress != bob.LocalAddr() || info.Identity != bob.id || !strings.Contains(info.Description, "P2P ICE direct") {
			t.Errorf("alice's session: %v %+v", st, info)
		}
		alice.m.CloseSessionWithUser(bob.id)
		waitFor(t, time.Minute, "bob hears the close", func() bool { _, c := bob.gotEvents(); return len(c) == 1 })
	})
}

// TestMessagesP2PMessagesOnDemand: a Host that has not called Messages yet
// takes a P2P Messages request at once (GNS makes its Messages interface
// on demand for it), posting it to OnSessionRequest; nothing waits for the
// requester's 500 ms repeat.
func TestMessagesP2PMessagesOnDemand(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 10 * time.Millisecond}})
		defer nw.Close()
		hub, _ := signaling.NewHub(signaling.HubConfig{Delay: 20 * time.Millisecond})
		var hs []*Host
		requested := make(chan struct{}, 1)
		for i, addr := range []string{"10.0.0.1:1", "10.0.0.2:1"} {
			id := mustIdentity(t, fmt.Sprintf("str:od%d", i))
			sc, _ := hub.Connect(id.String())
			defer sc.Close()
			ep, _ := nw.Listen(netip.MustParseAddrPort(addr))
			var h *Host
			h, err := NewHost(Config{PacketConn: ep, Identity: id, Signaling: sc,
				OnSessionRequest: func(peer Identity) {
					h.Messages().AcceptSessionWithUser(peer)
					select {
					case requested <- struct{}{}:
					default:
					}
				}})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			hs = append(hs, h)
		}
		start := time.Now()
		if err := hs[0].Messages().SendMessageToUser(hs[1].Identity(), []byte("first"), SendReliable, 0); err != nil {
			t.Fatal(err)
		}
		select { // hs[1] has not called Messages
		case <-requested:
		case <-time.After(time.Minute):
			t.Fatal("no session request")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		m, err := hs[1].Messages().Receive(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		m.Release()
		if d := time.Since(start); d > 300*time.Millisecond {
			t.Fatalf("the first message took %v: the request waited for a repeat", d)
		}
		if st := hs[1].Stats(); st.ConnectsRefused != 0 {
			t.Fatalf("requests refused: %+v", st)
		}
	})
}

// TestMessagesP2PSymmetricLossySignaling: both send first, signals lost
// (30%), duplicated (50%) and reordered; one session survives and every
// message arrives once, in order.
func TestMessagesP2PSymmetricLossySignaling(t *testing.T) {
	for seed := range uint64(12) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				nw, _ := netsim.New(netsim.Config{Seed: seed, Link: netsim.LinkConfig{Delay: 15 * time.Millisecond, LossPercent: 5}})
				defer nw.Close()
				hub, _ := signaling.NewHub(signaling.HubConfig{Seed: seed, Delay: 30 * time.Millisecond, LossPercent: 30, DuplicatePercent: 50, ReorderPercent: 20})
				ps := p2pPeers(t, nw, hub, 2)
				defer closeAll(ps)
				alice, bob := ps[0], ps[1]
				for i := range 4 {
					alice.m.SendMessageToUser(bob.id, fmt.Appendf(nil, "a%d", i), SendReliable, 0)
					bob.m.SendMessageToUser(alice.id, fmt.Appendf(nil, "b%d", i), SendReliable, 0)
				}
				for i := range 4 {
					if text, _ := recvText(t, bob, 0); text != fmt.Sprintf("a%d", i) {
						t.Fatalf("bob got %q, want a%d", text, i)
					}
					if text, _ := recvText(t, alice, 0); text != fmt.Sprintf("b%d", i) {
						t.Fatalf("alice got %q, want b%d", text, i)
					}
				}
				time.Sleep(2 * time.Second)
				for _, p := range ps {
					if ms := p.m.ReceiveMessagesOnChannel(0, 10); len(ms) != 0 {
						t.Fatalf("%d duplicates", len(ms))
					}
				}
				// GNS's symmetric connect: one connection per side, the
				// same pair of ids (one side changed role).
				var ids [2][2]uint32
				for i, p := range ps {
					p.Host.mu.Lock()
					if len(p.conns) != 1 {
						t.Errorf("%v has %d connections, want 1", p.id, len(p.conns))
					}
					for _, hc := range p.conns {
						ids[i] = [2]uint32{hc.c.LocalID(), hc.c.RemoteID()}
					}
					p.Host.mu.Unlock()
				}
				if ids[0][0] != ids[1][1] || ids[0][1] != ids[1][0] {
					t.Errorf("connection ids %v and %v do not match", ids[0], ids[1])
				}
				// The side whose connection became the server restarted
				// its ICE (new role, new password), as GNS.
				if r := alice.Stats().ICERestarts + bob.Stats().ICERestarts; r != 1 {
					t.Errorf("%d ICE restarts, want 1", r)
				}
				if st := hub.Stats(); st.Lost+st.Duplicated+st.Reordered == 0 {
					t.Errorf("the hub did no harm: %+v", st)
				}
			})
		})
	}
}

// TestMessagesP2PNoSignaling: without signaling a str: peer is
// unreachable, with a clear error.
func TestMessagesP2PNoSignaling(t *testing.T) {
	h, err := NewHost(Config{ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"), Identity: mustIdentity(t, "str:lonely")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	err = h.Messages().SendMessageToUser(mustIdentity(t, "str:bob"), []byte("x"), SendReliable, 0)
	if err == nil {
		t.Fatal("send without signaling worked")
	}
	t.Log(err)
}

// TestMessagesP2PHostileSignals: garbage blobs, forged senders, signals for
// unknown connections and connect requests whose certificate names someone
// else are counted and dropped; the Host still works.
func TestMessagesP2PHostileSignals(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{})
		defer nw.Close()
		// A queue long enough for the whole barrage: what is counted is
		// the Host's handling, not the hub's overflow.
		hub, _ := signaling.NewHub(signaling.HubConfig{QueueLen: 10000})
		ps := p2pPeers(t, nw, hub, 2)
		defer closeAll(ps)
		alice, bob := ps[0], ps[1]
		mallory, _ := hub.Connect("str:mallory")
		defer mallory.Close()
		r := rand.New(rand.NewPCG(5, 6))
		for i := range 2000 {
			b := make([]byte, r.IntN(200))
			for j := range b {
				b[j] = byte(r.Uint32())
			}
			mallory.Send(bob.id.String(), b)
			if i%100 == 0 {
				// Well-formed rendezvous: claiming to be alice, for an
				// unknown connection, and a connect request with
				// mallory's own (absent) certificate.
				forged, _ := proto.Marshal(&pb.P2PRendezvous{FromIdentity: proto.String("str:p0"), FromConnectionId: proto.Uint32(7)})
				mallory.Send(bob.id.String(), forged)
				unknown, _ := proto.Marshal(&pb.P2PRendezvous{FromIdentity: proto.String("str:mallory"), FromConnectionId: proto.Uint32(7), ToConnectionId: proto.Uint32(12345)})
				mallory.Send(bob.id.String(), unknown)
				req, _ := proto.Marshal(&pb.P2PRendezvous{FromIdentity: proto.String("str:mallory"), FromConnectionId: proto.Uint32(8),
					ConnectRequest: &pb.P2PRendezvous_ConnectRequest{ToVirtualPort: proto.Uint32(messagesVirtualPort)}})
				mallory.Send(bob.id.String(), req)
			}
		}
		time.Sleep(time.Second)
		bob.Host.mu.Lock()
		dropped, refused := bob.stats.SignalsDropped, bob.stats.ConnectsRefused
		bob.Host.mu.Unlock()
		if dropped < 1900 || refused == 0 {
			t.Errorf("signals dropped %d, connects refused %d", dropped, refused)
		}
		if len(bob.gotRequests()) != 0 {
			t.Fatalf("a hostile signal made a session request: %v", bob.gotRequests())
		}
		// Business as usual.
		alice.m.SendMessageToUser(bob.id, []byte("still here"), SendReliable, 0)
		waitFor(t, time.Minute, "alice's request", func() bool { return len(bob.gotRequests()) == 1 })
		bob.m.AcceptSessionWithUser(alice.id)
		if text, _ := recvText(t, bob, 0); text != "still here" {
			t.Fatalf("bob got %q", text)
		}
	})
}
