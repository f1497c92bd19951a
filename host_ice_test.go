package netmsg

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/coturntest"
	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

const iceSecret = "the shared TURN secret"

// iceRelay starts netmsg's relay on 127.0.0.1 taking TURN REST
// credentials made with secret (and loopback peers); now, if not nil, is
// its clock.
func iceRelay(t *testing.T, secret string, now func() time.Time) *relay.Server {
	t.Helper()
	rs, err := relay.NewServer(relay.Config{Logger: slog.New(slog.DiscardHandler), ListenAddr: "127.0.0.1:0",
		AuthSecrets: []string{secret}, AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	return rs
}

// iceSignal starts a signaling server on 127.0.0.1 that hands its
// (unsigned) authenticated clients TURN credentials for turn made with
// secret, valid for ttl.
func iceSignal(t *testing.T, secret string, ttl time.Duration, turn ...string) string {
	t.Helper()
	s, err := signaling.NewServer(signaling.ServerConfig{AllowUnsigned: true, Logger: slog.New(slog.DiscardHandler),
		TURN: &signaling.TURNConfig{Secret: secret, Servers: turn, TTL: ttl}})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return addr.String()
}

// iceHost is a relay-only Host on 127.0.0.1 named name whose signaling
// is an authenticated client of the server at sigAddr, configured with
// cfg (STUN and TURN servers left as cfg has them), accepting every
// session and recording failures.
func iceHost(t *testing.T, sigAddr, name string, cfg Config) (*msgPeer, signaling.Conn) {
	t.Helper()
	id := mustIdentity(t, name)
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	cert, err := UnsignedCertificate(id, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signaling.Dial(context.Background(), sigAddr, signaling.ClientConfig{Identity: name, Key: key, Certificate: cert})
	if err != nil {
		t.Fatal(err)
	}
	p := &msgPeer{id: id}
	cfg.ListenAddr, cfg.Identity, cfg.PrivateKey, cfg.Signaling, cfg.P2PRelayOnly = netip.MustParseAddrPort("127.0.0.1:0"), id, key, sig, true
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.OnSessionRequest = func(peer Identity) { p.m.AcceptSessionWithUser(peer) }
	cfg.OnSessionFailed = func(info ConnectionInfo) {
		p.mu.Lock()
		p.failures = append(p.failures, info)
		p.mu.Unlock()
	}
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Host, p.m = h, h.Messages()
	t.Cleanup(func() { h.Close(); sig.Close() })
	return p, sig
}

// icePair is two iceHosts, alice and bob, on the server at sigAddr.
func icePair(t *testing.T, sigAddr string, cfg Config) (a, b *msgPeer) {
	a, _ = iceHost(t, sigAddr, "str:alice", cfg)
	b, _ = iceHost(t, sigAddr, "str:bob", cfg)
	return a, b
}

// waitFailed waits for a's session to b to fail, and checks why: no
// relayed path, as TURN refused both.
func waitFailed(t *testing.T, a, b *msgPeer) {
	t.Helper()
	if err := a.m.SendMessageToUser(b.id, []byte("hello?"), SendReliable, 0); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		a.mu.Lock()
		fs := append([]ConnectionInfo(nil), a.failures...)
		a.mu.Unlock()
		if len(fs) > 0 {
			if fs[0].EndReason != EndMiscP2PNATFirewall {
				t.Errorf("session failed with %v (%s), want %v", fs[0].EndReason, fs[0].EndDebug, EndMiscP2PNATFirewall)
			}
			for _, p := range []*msgPeer{a, b} {
				if al, ok := p.paths.Allocation(); ok {
					t.Errorf("%v has an allocation %+v", p.id, al)
				}
			}
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the session did not fail")
}

// TestICEFromSignalingRelay: two Hosts configured with only a signaling
// address (relay only, no STUN or TURN server in their Config) make a
// relayed Messages session through netmsg's relay with the TURN REST
// credentials the signaling server hands out, which they never saw in
// their configuration; their collectors report the relayed route.
func TestICEFromSignalingRelay(t *testing.T) {
	rs := iceRelay(t, iceSecret, nil)
	sigAddr := iceSignal(t, iceSecret, time.Hour, rs.Addr().String())
	a, b := icePair(t, sigAddr, Config{})
	relayExchange(t, a, b)
	// The Hosts' collectors count the relayed route.
	for _, p := range []*msgPeer{a, b} {
		ms := gatherHost(t, p.Host)
		if r, d := metricValue(t, ms, "netmsg_host_p2p_routes", "route", "relayed"), metricValue(t, ms, "netmsg_host_p2p_routes", "route", "direct"); r != 1 || d != 0 {
			t.Errorf("%v: %v relayed and %v direct P2P routes, want 1 and 0", p.id, r, d)
		}
	}
	if st := rs.Stats(); st.AllocationsCreated != 2 || st.AuthFailed != 0 {
		t.Errorf("relay: %d allocations made, %d authentication failures; want 2 and 0", st.AllocationsCreated, st.AuthFailed)
	}
}

// TestICEFromSignalingCoturn: the same through coturn with
// use-auth-secret and the same shared secret.
func TestICEFromSignalingCoturn(t *testing.T) {
	addr := coturntest.StartAuthSecret(t, iceSecret)
	sigAddr := iceSignal(t, iceSecret, time.Hour, addr.String())
	a, b := icePair(t, sigAddr, Config{})
	relayExchange(t, a, b)
}

// TestICEFromSignalingRenewed: credentials live 4 s; the Hosts make their
// first P2P session after the first credentials they were handed
// expired, and the relay allocates with the renewed ones (with only the
// first, it would refuse them as expired).
func TestICEFromSignalingRenewed(t *testing.T) {
	rs := iceRelay(t, iceSecret, nil)
	sigAddr := iceSignal(t, iceSecret, 4*time.Second, rs.Addr().String())
	a, asig := iceHost(t, sigAddr, "str:alice", Config{})
	b, _ := iceHost(t, sigAddr, "str:bob", Config{})
	src := asig.(iceSource)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if _, _, _, _, _, ok := src.ICEServerStrings(); ok {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal("no ICE servers from signaling")
		case <-src.ICEServersChanged():
		}
	}
	_, _, first, _, expires, _ := src.ICEServerStrings()
	time.Sleep(time.Until(expires) + 1500*time.Millisecond)
	if _, _, user, _, _, _ := src.ICEServerStrings(); user == first {
		t.Fatalf("credentials not renewed: still %q", user)
	}
	relayExchange(t, a, b)
	if st := rs.Stats(); st.AuthExpired != 0 || st.AllocationsCreated != 2 {
		t.Errorf("relay: %d expired credentials refused, %d allocations; want 0 and 2", st.AuthExpired, st.AllocationsCreated)
	}
}

// TestICEFromSignalingForged: credentials made with another secret are
// refused by the relay; the session fails for want of a path.
func TestICEFromSignalingForged(t *testing.T) {
	rs := iceRelay(t, iceSecret, nil)
	sigAddr := iceSignal(t, "not the relay's secret", time.Hour, rs.Addr().String())
	a, b := icePair(t, sigAddr, Config{ConnConfig: ConnConfig{TimeoutInitial: 3 * time.Second}})
	waitFailed(t, a, b)
	if st := rs.Stats(); st.AuthBadPassword == 0 || st.AllocationsCreated != 0 {
		t.Errorf("relay: %d bad passwords, %d allocations; want some and 0", st.AuthBadPassword, st.AllocationsCreated)
	}
}

// TestICEFromSignalingExpired: credentials the relay finds expired (its
// clock two hours ahead of the signaling server's) are refused; the
// session fails for want of a path.
func TestICEFromSignalingExpired(t *testing.T) {
	rs := iceRelay(t, iceSecret, func() time.Time { return time.Now().Add(2 * time.Hour) })
	sigAddr := iceSignal(t, iceSecret, time.Hour, rs.Addr().String())
	a, b := icePair(t, sigAddr, Config{ConnConfig: ConnConfig{TimeoutInitial: 3 * time.Second}})
	waitFailed(t, a, b)
	if st := rs.Stats(); st.AuthExpired == 0 || st.AllocationsCreated != 0 {
		t.Errorf("relay: %d expired credentials, %d allocations; want some and 0", st.AuthExpired, st.AllocationsCreated)
	}
}

// TestICEFromSignalingCoturnRefused: coturn refuses forged credentials
// (another secret) and expired ones (made with its secret, expired a
// minute ago), given to the Hosts by a signaling source of their own.
func TestICEFromSignalingCoturnRefused(t *testing.T) {
	addr := coturntest.StartAuthSecret(t, iceSecret)
	for _, c := range []struct {
		name, secret string
		expires      time.Time
	}{
		{"forged", "not coturn's secret", time.Now().Add(time.Hour)},
		{"expired", iceSecret, time.Now().Add(-time.Minute)},
	} {
		t.Run(c.name, func(t *testing.T) {
			hub, _ := signaling.NewHub(signaling.HubConfig{})
			var ps []*msgPeer
			for _, name := range []string{"str:alice", "str:bob"} {
				id := mustIdentity(t, name)
				sc, _ := hub.Connect(name)
				user, pass := relay.RESTCredential(c.secret, name, c.expires)
				src := &fixedICE{Conn: sc, turn: []string{addr.String()}, user: user, pass: pass, expires: c.expires}
				p := &msgPeer{id: id}
				h, err := NewHost(Config{ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"), Identity: id, Signaling: src,
					P2PRelayOnly: true, ConnConfig: ConnConfig{TimeoutInitial: 3 * time.Second}, Logger: slog.New(slog.DiscardHandler),
					OnSessionRequest: func(peer Identity) { p.m.AcceptSessionWithUser(peer) },
					OnSessionFailed: func(info ConnectionInfo) {
						p.mu.Lock()
						p.failures = append(p.failures, info)
						p.mu.Unlock()
					}})
				if err != nil {
					t.Fatal(err)
				}
				p.Host, p.m = h, h.Messages()
				t.Cleanup(func() { h.Close(); sc.Close() })
				ps = append(ps, p)
			}
			waitFailed(t, ps[0], ps[1])
		})
	}
}

// fixedICE is a signaling Conn that hands out fixed TURN servers and
// credentials (an iceSource).
type fixedICE struct {
	signaling.Conn
	turn       []string
	user, pass string
	expires    time.Time
}

func (f *fixedICE) ICEServerStrings() (stun, turn []string, username, password string, expires time.Time, ok bool) {
	return nil, f.turn, f.user, f.pass, f.expires, true
}

func (f *fixedICE) ICEServersChanged() <-chan struct{} { return nil }

// TestICEConfigWins: a Host with TURNServers in its Config uses them, not
// the credentials signaling hands out (the relay knows only the static
// user, so the signaled credentials would fail).
func TestICEConfigWins(t *testing.T) {
	rs, err := relay.NewServer(relay.Config{Logger: slog.New(slog.DiscardHandler), ListenAddr: "127.0.0.1:0",
		Users: map[string]string{"u": "p"}, AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	sigAddr := iceSignal(t, iceSecret, time.Hour, rs.Addr().String())
	a, b := icePair(t, sigAddr, Config{TURNServers: []TURNServer{{Addr: rs.Addr(), Username: "u", Password: "p"}}})
	relayExchange(t, a, b)
	if st := rs.Stats(); st.AuthFailed != 0 {
		t.Errorf("relay: %d authentication failures, want 0", st.AuthFailed)
	}
}
