package main

import (
	"crypto/ed25519"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/internal/crypto"
)

// certRun runs "netmsg cert args..." and returns its output.
func certRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out strings.Builder
	err := runCert(args, &out)
	return out.String(), err
}

func mustContain(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("no %q in:\n%s", w, out)
		}
	}
}

// TestCertTool runs ca, issue and inspect in a temporary directory, then
// connects two Hosts over loopback UDP with the certificates and keys it
// wrote, each trusting only the CA.
func TestCertTool(t *testing.T) {
	dir := t.TempDir()
	path := func(name string) string { return filepath.Join(dir, name) }

	out, err := certRun(t, "ca", "--out", path("ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	caPub, err := os.ReadFile(path("ca.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := netmsg.ParseAuthorizedKey(caPub)
	if err != nil {
		t.Fatal(err)
	}
	caID := crypto.KeyID(ca)
	mustContain(t, out, "ssh-ed25519 AAAA", "Key ID . . . . . : "+itoa(caID))
	if _, err := certRun(t, "ca", "--out", path("ca.key")); err == nil {
		t.Errorf("ca replaced an existing key")
	}

	// alice: key created by issue; bob: key given (and created) by
	// name, a second issue reusing it.
	out, err = certRun(t, "issue", "--ca", path("ca.key"), "--identity", "str:alice", "--app", "480", "--app", "570,7", "--pop", "iad,sea", "--pop", "sgp1", "--expiry", "720h", "--out", path("alice.cert"))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, out, "Created key "+path("alice.key"), "Identity . . . . : str:alice", "App ID(s). . . . : 480 570 7", "POP ID(s). . . . : iad sea sgp1", "CA key ID. . . . : "+itoa(caID), "Signature. . . . : valid")
	if _, err := certRun(t, "issue", "--ca", path("ca.key"), "--identity", "str:bob", "--key", path("b.key"), "--app", "480", "--out", path("bob.cert")); err != nil {
		t.Fatal(err)
	}
	bobKey1, _ := os.ReadFile(path("b.key"))
	if _, err := certRun(t, "issue", "--ca", path("ca.key"), "--identity", "str:bob", "--key", path("b.key"), "--app", "480", "--expiry", "30d", "--out", path("bob.cert")); err != nil {
		t.Fatal(err)
	}
	if bobKey2, _ := os.ReadFile(path("b.key")); string(bobKey1) != string(bobKey2) {
		t.Errorf("issue replaced an existing key")
	}

	out, err = certRun(t, "inspect", "--ca", path("ca.key.pub"), path("bob.cert"))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, out, "Identity . . . . : str:bob", "Key ID . . . . . : ", "Created. . . . . : ", "Expires. . . . . : ", "App ID(s). . . . : 480", "Signature. . . . : valid, CA key "+itoa(caID))
	// Checked against another CA, the signature is refused.
	if _, err := certRun(t, "ca", "--out", path("other.key")); err != nil {
		t.Fatal(err)
	}
	if out, err := certRun(t, "inspect", "--ca", path("other.key"), path("bob.cert")); err == nil {
		t.Errorf("inspect accepted a signature by another CA:\n%s", out)
	}
	out, err = certRun(t, "inspect", path("alice.cert"))
	if err != nil {
		t.Fatal(err)
	}
	mustContain(t, out, "not checked")
	for _, f := range []string{"alice.key", "ca.key.pub"} {
		if out, err := certRun(t, "inspect", path(f)); err != nil || !strings.Contains(out, "Key ID") {
			t.Errorf("inspect %s: %v\n%s", f, err, out)
		}
	}

	// Two Hosts with those files, each trusting the CA and nothing else.
	load := func(cert, key string) netmsg.Config {
		c, _ := os.ReadFile(path(cert))
		k, _ := os.ReadFile(path(key))
		certBytes, priv, err := netmsg.LoadCertificate(c, k)
		if err != nil {
			t.Fatal(err)
		}
		id := strings.TrimSuffix(cert, ".cert")
		ident, _ := netmsg.ParseIdentity("str:" + id)
		return netmsg.Config{
			Identity: ident, PrivateKey: priv, Certificate: certBytes,
			TrustedCAs: []ed25519.PublicKey{ca}, AppID: 480,
			ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"),
		}
	}
	srvCfg, cliCfg := load("bob.cert", "b.key"), load("alice.cert", "alice.key")
	var mu sync.Mutex
	states := map[string]netmsg.ConnectionInfo{}
	var srv *netmsg.Host
	srvCfg.OnConnectionStatusChanged = func(ev netmsg.ConnStatusChanged) {
		mu.Lock()
		states["srv"] = ev.Info
		mu.Unlock()
		if ev.Info.State == netmsg.StateConnecting {
			srv.AcceptConnection(ev.Conn)
		}
	}
	cliCfg.OnConnectionStatusChanged = func(ev netmsg.ConnStatusChanged) {
		mu.Lock()
		states["cli"] = ev.Info
		mu.Unlock()
	}
	srv, err = netmsg.NewHost(srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if _, err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	cli, err := netmsg.NewHost(cliCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	if _, err := cli.Connect(srv.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	end := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		c, s := states["cli"], states["srv"]
		mu.Unlock()
		if c.State == netmsg.StateConnected && s.State == netmsg.StateConnected {
			if c.Identity.String() != "str:bob" || s.Identity.String() != "str:alice" {
				t.Errorf("identities: client sees %v, server sees %v", c.Identity, s.Identity)
			}
			break
		}
		if time.Now().After(end) {
			t.Fatalf("not connected: client %v %v %q, server %v", c.State, c.EndReason, c.EndDebug, s.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestCertArgs(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"nonsense"},
		{"ca"},
		{"issue", "--identity", "str:a", "--out", "x"},
		{"issue", "--ca", "ca", "--identity", "str:a", "--out", "x", "--app", "-1"},
		{"issue", "--ca", "ca", "--identity", "str:a", "--out", "x", "--expiry", "0d"},
		{"issue", "--ca", "ca", "--identity", "ip:127.0.0.1", "--out", "x"},
		{"issue", "--ca", "ca", "--identity", "str:a", "--out", "x", "--pop", "ab"},
		{"issue", "--ca", "ca", "--identity", "str:a", "--out", "x", "--pop", "IAD"},
		{"issue", "--ca", "ca", "--identity", "str:a b", "--out", "x"},
		{"inspect"},
		{"inspect", "/nonexistent/file"},
	} {
		if out, err := certRun(t, args...); err == nil {
			t.Errorf("cert %q succeeded:\n%s", args, out)
		}
	}
	for s, want := range map[string]time.Duration{"720h": 720 * time.Hour, "30d": 30 * 24 * time.Hour, "2": 48 * time.Hour, "90m": 90 * time.Minute} {
		if d, err := parseLifetime(s); err != nil || d != want {
			t.Errorf("parseLifetime(%q) = %v, %v; want %v", s, d, err, want)
		}
	}
}

func itoa(v uint64) string { return strconv.FormatUint(v, 10) }
