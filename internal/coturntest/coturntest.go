// Package coturntest starts coturn (the TURN server users deploy, from
// Debian's coturn package) on 127.0.0.1 for tests.
package coturntest

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/ice"
)

// Realm is the realm of the credentials Start configures.
const Realm = "netmsg"

// Start runs turnserver on 127.0.0.1 with the long-term credential
// user:pass and loopback peers allowed, waits until it answers STUN, and
// stops it (by its PID) when the test ends. Without coturn installed it
// skips the test, unless NETMSG_REQUIRE_COTURN=1 (CI sets it).
func Start(t testing.TB, user, pass string) netip.AddrPort {
	t.Helper()
	return start(t, func(addr netip.AddrPort) []string { return Args(addr, user, pass) })
}

// StartAuthSecret is Start with TURN REST API credentials instead of a
// static user: coturn runs with use-auth-secret and static-auth-secret
// set to secret, so it accepts relay.RESTCredential(secret, ...) until
// their expiry.
func StartAuthSecret(t testing.TB, secret string) netip.AddrPort {
	t.Helper()
	return start(t, func(addr netip.AddrPort) []string { return AuthSecretArgs(addr, secret) })
}

func start(t testing.TB, args func(netip.AddrPort) []string) netip.AddrPort {
	t.Helper()
	bin := Binary(t)
	var logs bytes.Buffer
	for attempt := 0; attempt < 3; attempt++ {
		port := freeUDPPort(t)
		addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		cmd := exec.CommandContext(ctx, bin, args(addr)...)
		logs.Reset()
		cmd.Stdout, cmd.Stderr = &logs, &logs
		cmd.SysProcAttr = ProcAttr()
		if err := cmd.Start(); err != nil {
			cancel()
			t.Fatal(err)
		}
		if WaitSTUN(addr) {
			t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); cancel() })
			return addr
		}
		cmd.Process.Kill() // ours, by its PID
		cmd.Wait()
		cancel()
	}
	t.Fatalf("coturn never answered a STUN binding:\n%s", logs.String())
	return netip.AddrPort{}
}

// Binary returns turnserver's path. Without coturn installed it skips the
// test, unless NETMSG_REQUIRE_COTURN=1 (CI sets it), which fails it.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		if os.Getenv("NETMSG_REQUIRE_COTURN") == "1" {
			t.Fatal("coturn (turnserver) is not installed but NETMSG_REQUIRE_COTURN=1")
		}
		t.Skip("coturn (turnserver) is not installed; apt-get install coturn")
	}
	return bin
}

// Args are turnserver's arguments for a server on addr (which also gives
// the relayed addresses) with the long-term credential user:pass in Realm,
// loopback peers allowed, no TLS, no CLI, logging to stdout.
func Args(addr netip.AddrPort, user, pass string) []string {
	return append(baseArgs(addr), "--lt-cred-mech", "--user="+user+":"+pass)
}

// AuthSecretArgs are Args with the TURN REST API scheme (use-auth-secret,
// static-auth-secret=secret) instead of a static user.
func AuthSecretArgs(addr netip.AddrPort, secret string) []string {
	return append(baseArgs(addr), "--use-auth-secret", "--static-auth-secret="+secret)
}

func baseArgs(addr netip.AddrPort) []string {
	port := int(addr.Port())
	return []string{"-n",
		"--listening-ip=" + addr.Addr().String(), "--relay-ip=" + addr.Addr().String(), fmt.Sprintf("--listening-port=%d", port),
		// A relay port window of its own, so coturns of tests
		// running at once do not take each other's ports.
		fmt.Sprintf("--min-port=%d", 50000+(port%150)*100), fmt.Sprintf("--max-port=%d", 50000+(port%150)*100+99),
		"--realm=" + Realm,
		"--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers", "--fingerprint",
		"--log-file=stdout", "--simple-log"}
}

func freeUDPPort(t testing.TB) int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// WaitSTUN asks addr for a binding until it answers, for up to 5 s.
func WaitSTUN(addr netip.AddrPort) bool {
	c, err := net.ListenPacket("udp4", ":0")
	if err != nil {
		return false
	}
	defer c.Close()
	buf := make([]byte, 1500)
	for range 50 {
		c.WriteTo(ice.BindingRequest([12]byte{9}), net.UDPAddrFromAddrPort(addr))
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, _, err := c.ReadFrom(buf); err == nil {
			if _, _, ok := ice.ParseBindingResponse(buf[:n]); ok {
				return true
			}
		}
	}
	return false
}
