package netmsg

import (
	"bytes"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/signaling"
)

// TestHostIdentityOneSource: a Host takes its identity from its signaling
// client when it has none, and refuses a different one.
func TestHostIdentityOneSource(t *testing.T) {
	hub, err := signaling.NewHub(signaling.HubConfig{})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := hub.Connect("str:alice")
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	h, err := NewHost(Config{Signaling: sc, ListenAddr: lo})
	if err != nil {
		t.Fatal(err)
	}
	if got := h.Identity().String(); got != "str:alice" {
		t.Errorf("Identity() = %s, want the signaling client's str:alice", got)
	}
	h.Close()
	bob, _ := ParseIdentity("str:bob")
	if h, err := NewHost(Config{Identity: bob, Signaling: sc, ListenAddr: lo}); !errors.Is(err, ErrBadConfig) {
		if h != nil {
			h.Close()
		}
		t.Fatalf("mismatched identities: %v, want ErrBadConfig", err)
	}
}

// TestHostIdentityAddress: a Host given no identity reports the address
// peers see it at, when its socket has one.
func TestHostIdentityAddress(t *testing.T) {
	h, err := NewHost(Config{ListenAddr: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	want, _ := IdentityFromAddr(h.LocalAddr())
	if h.Identity() != want {
		t.Errorf("Identity() = %v, want %v", h.Identity(), want)
	}
	any, err := NewHost(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer any.Close()
	if !any.Identity().IsLocalhost() {
		t.Errorf("on every interface: Identity() = %v, want the localhost identity", any.Identity())
	}
}

// TestRefusedPeerLogged: a peer refused for its certificate is logged with
// the reason, once per reason and interval, not only counted.
func TestRefusedPeerLogged(t *testing.T) {
	bubble(t, func(t *testing.T) {
		ca := testKey(1)
		now := time.Now()
		var buf syncBuffer
		logger := slog.New(slog.NewTextHandler(&buf, nil))
		alice := certSpec{identity: "str:alice", key: testKey(2), apps: []uint32{certTestApp}} // unsigned: the server wants its CA
		bob := certSpec{ca: ca, identity: "str:bob", key: testKey(3), apps: []uint32{certTestApp}, created: now, expiry: now.Add(time.Hour)}
		srvCfg := certHostConfig(t, bob, certTestApp, ca)
		srvCfg.Logger = logger
		cli, srv, nw := certPair(t, certHostConfig(t, alice, certTestApp), srvCfg)
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		for range 3 {
			if _, err := cli.Connect(srv.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(2 * time.Second)
		if n := srv.Stats().ConnectsRefused; n < 3 {
			t.Fatalf("%d connect requests refused, want at least 3", n)
		}
		out := buf.String()
		if got := strings.Count(out, "peer refused"); got != 1 {
			t.Errorf("%d log lines for one reason within the interval, want 1:\n%s", got, out)
		}
		if !strings.Contains(out, "certificate") {
			t.Errorf("the log does not say why:\n%s", out)
		}
		time.Sleep(refusedLogEvery)
		if _, err := cli.Connect(srv.LocalAddr()); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Second)
		if out := buf.String(); strings.Count(out, "peer refused") < 2 || !strings.Contains(out, "suppressed=") {
			t.Errorf("after the interval: want a second line counting the suppressed ones:\n%s", out)
		}
	})
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
