package netmsg

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/coturntest"
	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

// relayPair opens two Hosts on 127.0.0.1 with str: identities, a signaling
// hub, and the TURN server srv, using only relayed paths.
func relayPair(t *testing.T, srv TURNServer) (a, b *msgPeer) {
	t.Helper()
	hub, _ := signaling.NewHub(signaling.HubConfig{})
	var ps []*msgPeer
	for i := range 2 {
		id := mustIdentity(t, fmt.Sprintf("str:r%d", i))
		sc, _ := hub.Connect(id.String())
		t.Cleanup(func() { sc.Close() })
		p := &msgPeer{id: id}
		h, err := NewHost(Config{ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"), Identity: id, Signaling: sc,
			TURNServers: []TURNServer{srv}, P2PRelayOnly: true,
			OnSessionRequest: func(peer Identity) { p.m.AcceptSessionWithUser(peer) },
		})
		if err != nil {
			t.Fatal(err)
		}
		p.Host, p.m = h, h.Messages()
		ps = append(ps, p)
	}
	t.Cleanup(func() { closeAll(ps) })
	return ps[0], ps[1]
}

// relayExchange sends a message each way and checks the session uses the
// relay.
func relayExchange(t *testing.T, a, b *msgPeer) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	// The allocation is made when P2P is first used; the first message
	// waits for ICE, which waits for the allocation.
	if err := a.m.SendMessageToUser(b.id, []byte("relayed hello"), SendReliable, 0); err != nil {
		t.Fatal(err)
	}
	if text, m := recvText(t, b, 0); text != "relayed hello" {
		t.Fatalf("b got %q", text)
	} else {
		m.Release()
	}
	b.m.SendMessageToUser(a.id, []byte("relayed reply"), SendReliable, 0)
	if text, m := recvText(t, a, 0); text != "relayed reply" {
		t.Fatalf("a got %q", text)
	} else {
		m.Release()
	}
	if time.Now().After(deadline) {
		t.Fatal("too slow")
	}
	// A burst: the datagrams of both sides go as ChannelData straight
	// through the Hosts' sockets once pion's client has bound the channels
	// (learnt from the server's ChannelData), every message exactly once
	// and in order.
	const burst = 300
	payload := make([]byte, 1000)
	for i := range burst {
		payload[0], payload[1] = byte(i), byte(i>>8)
		if err := a.m.SendMessageToUser(b.id, payload, SendReliable, 1); err != nil {
			t.Fatal(err)
		}
	}
	for i := range burst {
		_, m := recvText(t, b, 1)
		if got := int(m.Payload[0]) | int(m.Payload[1])<<8; got != i || len(m.Payload) != len(payload) {
			t.Fatalf("message %d: got #%d, %d bytes", i, got, len(m.Payload))
		}
		m.Release()
	}
	for _, p := range []*msgPeer{a, b} {
		st := p.paths.Stats()
		in, out := st.ChannelDataIn, st.ChannelDataOut
		if in == 0 || out == 0 {
			t.Errorf("%v: %d datagrams in and %d out as ChannelData on its own, want some each way", p.id, in, out)
		}
	}
	_, info, _ := a.m.GetSessionConnectionInfo(b.id)
	if !strings.Contains(info.Description, "P2P ICE relay") {
		t.Errorf("description %q does not say relayed", info.Description)
	}
	for _, p := range []*msgPeer{a, b} {
		p.Host.mu.Lock()
		relayed := false
		for _, hc := range p.conns {
			if hc.p2p != nil && hc.p2p.route.Selected().Relayed {
				relayed = true
			}
		}
		p.Host.mu.Unlock()
		if !relayed {
			t.Fatalf("%v's side of the session does not go through its relay", p.id)
		}
	}
}

// TestMessagesP2PRelay: with direct paths ruled out (relay only), two
// Hosts talk through netmsg's own TURN server (package relay) on
// 127.0.0.1, real sockets.
func TestMessagesP2PRelay(t *testing.T) {
	s, err := relay.NewServer(relay.Config{Logger: slog.New(slog.DiscardHandler), ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"}, AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b := relayPair(t, TURNServer{Addr: s.Addr(), Username: "u", Password: "p"})
	relayExchange(t, a, b)
}

// TestMessagesP2PCoturn: the same through coturn.
func TestMessagesP2PCoturn(t *testing.T) {
	addr := coturntest.Start(t, "u", "p")
	a, b := relayPair(t, TURNServer{Addr: addr, Username: "u", Password: "p", Realm: coturntest.Realm})
	relayExchange(t, a, b)
}
