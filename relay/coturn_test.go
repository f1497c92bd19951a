package relay

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

// freeUDPPort finds a UDP port on 127.0.0.1 nobody uses right now.
func freeUDPPort(t *testing.T) int {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// TestCoturn runs coturn (the relay users deploy; CI installs it from
// Debian) on 127.0.0.1 and relays through it with the TURN client netmsg
// uses: allocate with long-term credentials, relay both ways, refuse a
// wrong password. Where coturn is not installed it skips, unless
// NETMSG_REQUIRE_COTURN=1 (CI sets it), which makes that a failure.
func TestCoturn(t *testing.T) {
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		if os.Getenv("NETMSG_REQUIRE_COTURN") == "1" {
			t.Fatal("coturn (turnserver) is not installed but NETMSG_REQUIRE_COTURN=1")
		}
		t.Skip("coturn (turnserver) is not installed; apt-get install coturn")
	}
	var addr netip.AddrPort
	var cmd *exec.Cmd
	var logs bytes.Buffer
	for attempt := 0; ; attempt++ {
		port := freeUDPPort(t)
		addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		t.Cleanup(cancel)
		cmd = exec.CommandContext(ctx, bin, "-n",
			"--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", fmt.Sprintf("--listening-port=%d", port),
			"--min-port=49160", "--max-port=49999",
			"--lt-cred-mech", "--user=alice:secret", "--realm=netmsg",
			"--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers", "--fingerprint",
			"--log-file=stdout", "--simple-log")
		logs.Reset()
		cmd.Stdout, cmd.Stderr = &logs, &logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if waitSTUN(addr) {
			break
		}
		cmd.Process.Kill() // ours, by its PID
		cmd.Wait()
		if attempt == 2 {
			t.Fatalf("coturn never answered a STUN binding:\n%s", logs.String())
		}
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	_, relayed, err := turnClient(t, addr, "alice", "secret")
	if err != nil {
		t.Fatalf("allocate on coturn: %v\n%s", err, logs.String())
	}
	checkRelay(t, relayed)
	if _, _, err := turnClient(t, addr, "alice", "wrong"); err == nil {
		t.Error("coturn allocated with a wrong password")
	}
}

// waitSTUN asks addr for a binding until it answers, for up to 5 s.
func waitSTUN(addr netip.AddrPort) bool {
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
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
