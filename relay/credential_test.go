package relay

import (
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/coturntest"
)

// Vectors computed independently of this package (HMAC-SHA1 by another
// implementation, then standard base64).
func TestRESTCredentialVectors(t *testing.T) {
	for _, v := range []struct {
		secret, user string
		expires      int64
		name, pass   string
	}{
		{"north", "alice", 1700000000, "1700000000:alice", "Cd/49soE35ICqcJF/bCTn8Z4OyE="},
		{"north", "", 1700000000, "1700000000", "CWyHi3zCeWqXBir9thl4m+iZPRY="},
		{"another secret", "bob", 4102444800, "4102444800:bob", "QZUzRAcfi07aKFUpO9uiTBZCeRk="},
	} {
		name, pass := RESTCredential(v.secret, v.user, time.Unix(v.expires, 0))
		if name != v.name || pass != v.pass {
			t.Errorf("RESTCredential(%q, %q, %d) = %q, %q; want %q, %q", v.secret, v.user, v.expires, name, pass, v.name, v.pass)
		}
	}
}

func TestParseRESTUsername(t *testing.T) {
	for _, v := range []struct {
		in   string
		exp  int64
		user string
		ok   bool
	}{
		{"1700000000:alice", 1700000000, "alice", true},
		{"1700000000", 1700000000, "", true},
		{"1700000000:a:b", 1700000000, "a:b", true},
		{"alice", 0, "", false},
		{"", 0, "", false},
		{":alice", 0, "", false},
		{"-5:alice", 0, "", false},
		{"+5", 0, "", false},
		{"99999999999999999999", 0, "", false},
	} {
		exp, user, ok := parseRESTUsername(v.in)
		if ok != v.ok || (ok && (exp.Unix() != v.exp || user != v.user)) {
			t.Errorf("parseRESTUsername(%q) = %v, %q, %v", v.in, exp.Unix(), user, ok)
		}
	}
}

// TestRelayAuthSecret allocates with a fresh REST credential and is
// refused with an expired one, a forged one (wrong secret) and a fresh
// one whose username was changed after signing.
func TestRelayAuthSecret(t *testing.T) {
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", AuthSecrets: []string{"shared"}, AllowPeers: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	user, pass := RESTCredential("shared", "alice", time.Now().Add(time.Hour))
	_, relayed, err := turnClient(t, s.Addr(), user, pass)
	if err != nil {
		t.Fatalf("fresh credential: %v", err)
	}
	checkRelay(t, relayed)

	refused := func(what, user, pass string) {
		t.Helper()
		before := s.Stats().AuthFailed
		if _, _, err := turnClient(t, s.Addr(), user, pass); err == nil {
			t.Errorf("%s credential allocated", what)
		}
		if s.Stats().AuthFailed == before {
			t.Errorf("%s credential not counted as an auth failure", what)
		}
	}
	u, p := RESTCredential("shared", "alice", time.Now().Add(-time.Second))
	refused("expired", u, p)
	u, p = RESTCredential("guessed", "alice", time.Now().Add(time.Hour))
	refused("forged", u, p)
	_, pass2 := RESTCredential("shared", "alice", time.Now().Add(time.Hour))
	refused("re-dated", user[:len(user)-len(":alice")]+"9:alice", pass2)
	refused("unknown static", "alice", "x")
}

// TestRelayAuthSecretRotation accepts credentials of every configured
// secret and no other.
func TestRelayAuthSecretRotation(t *testing.T) {
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", AuthSecrets: []string{"new", "old"}, Users: map[string]string{"static": "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	exp := time.Now().Add(time.Hour)
	for _, sec := range []string{"old", "new"} {
		u, p := RESTCredential(sec, "bob-"+sec, exp)
		if _, _, err := turnClient(t, s.Addr(), u, p); err != nil {
			t.Errorf("secret %q: %v", sec, err)
		}
	}
	if _, _, err := turnClient(t, s.Addr(), "static", "pw"); err != nil {
		t.Errorf("static user beside secrets: %v", err)
	}
	u, p := RESTCredential("older", "carol", exp)
	if _, _, err := turnClient(t, s.Addr(), u, p); err == nil {
		t.Error("a credential of a removed secret allocated")
	}
}

// TestRelayAuthSecretFakeTime checks expiry against Config.Now.
func TestRelayAuthSecretFakeTime(t *testing.T) {
	now := time.Unix(2000000000, 0)
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", AuthSecrets: []string{"k"}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	u, p := RESTCredential("k", "", now.Add(time.Minute))
	if _, _, err := turnClient(t, s.Addr(), u, p); err != nil {
		t.Fatalf("valid for another minute of the server's time: %v", err)
	}
	u, p = RESTCredential("k", "", time.Now().Add(time.Hour)) // valid by the wall clock, expired by the server's
	if _, _, err := turnClient(t, s.Addr(), u, p); err == nil {
		t.Error("credential expired by the server's clock allocated")
	}
	u, p = RESTCredential("k", "", now.Add(-time.Minute))
	if _, _, err := turnClient(t, s.Addr(), u, p); err == nil {
		t.Error("credential a minute past its expiry allocated")
	}
}

// TestCoturnAuthSecret gives coturn, run with use-auth-secret and
// static-auth-secret, the credentials RESTCredential makes: a fresh one
// relays, an expired and a forged one are refused.
func TestCoturnAuthSecret(t *testing.T) {
	addr := coturntest.StartAuthSecret(t, "shared")
	u, p := RESTCredential("shared", "alice", time.Now().Add(time.Hour))
	_, relayed, err := turnClient(t, addr, u, p)
	if err != nil {
		t.Fatalf("coturn refused a fresh credential: %v", err)
	}
	checkRelay(t, relayed)
	u, p = RESTCredential("shared", "alice", time.Now().Add(-time.Minute))
	if _, _, err := turnClient(t, addr, u, p); err == nil {
		t.Error("coturn allocated with an expired credential")
	}
	u, p = RESTCredential("guessed", "alice", time.Now().Add(time.Hour))
	if _, _, err := turnClient(t, addr, u, p); err == nil {
		t.Error("coturn allocated with a forged credential")
	}
}

// outlivesExpiry checks, on the server at addr, that an allocation made
// with the credential user:pass keeps making permissions (and relaying)
// once the credential expired, which expire makes happen, while a new
// allocation with it is refused: expiry is checked when an allocation is
// made.
func outlivesExpiry(t *testing.T, addr func() (user, pass string), server string, expire func()) {
	t.Helper()
	user, pass := addr()
	ap := netip.MustParseAddrPort(server)
	cl, relayed, err := turnClient(t, ap, user, pass)
	if err != nil {
		t.Fatalf("fresh credential: %v", err)
	}
	expire()
	if err := cl.CreatePermission(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); err != nil {
		t.Errorf("a permission on an allocation whose credential expired since: %v", err)
	}
	checkRelay(t, relayed)
	if _, _, err := turnClient(t, ap, user, pass); err == nil {
		t.Error("a new allocation with an expired credential")
	}
}

// TestRelayAuthSecretOutlivesExpiry: netmsg's relay, on its own clock.
func TestRelayAuthSecretOutlivesExpiry(t *testing.T) {
	var skew atomic.Int64
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", AuthSecrets: []string{"k"}, AllowPeers: loopback,
		Now: func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	outlivesExpiry(t, func() (string, string) { return RESTCredential("k", "alice", time.Now().Add(time.Minute)) },
		s.Addr().String(), func() { skew.Store(int64(2 * time.Minute)) })
	if st := s.Stats(); st.AuthExpired == 0 {
		t.Error("the new allocation's expired credential was not counted")
	}
}

// TestCoturnAuthSecretOutlivesExpiry: coturn does the same (real time: a
// credential valid for 2 s).
func TestCoturnAuthSecretOutlivesExpiry(t *testing.T) {
	addr := coturntest.StartAuthSecret(t, "shared")
	exp := time.Now().Add(2 * time.Second)
	outlivesExpiry(t, func() (string, string) { return RESTCredential("shared", "alice", exp) },
		addr.String(), func() { time.Sleep(time.Until(exp) + 1500*time.Millisecond) })
}
