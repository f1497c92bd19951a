package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/coturntest"
	"github.com/netmsg-go/netmsg/internal/netnstest"
)

// TestP2PInNetns runs netmsg's services and peers as processes on real
// sockets in network namespaces this test creates (package netnstest): A
// and B each joined by a veth pair to a router R, which runs `netmsg
// signal` and coturn. ICE leaves loopback out, as GNS does, so the peers
// use their veth addresses.
//   - direct: R forwards, so alice (A) and bob (B) reach each other's host
//     candidates;
//   - direct preferred: the same with coturn configured on both sides: ICE
//     still picks the direct path;
//   - coturn, host candidates blocked: R stops forwarding, so neither host
//     candidate is reachable; only coturn's relayed addresses on R connect
//     them.
//
// It needs root, the ip command and (with NETMSG_REQUIRE_COTURN=1, as in
// CI) coturn; it skips with the reason where the machine forbids
// namespaces.
func TestP2PInNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	topo := netnstest.New(t)
	turnBin := coturntest.Binary(t)
	bin := filepath.Join(t.TempDir(), "netmsg")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := func(name string, cmd *exec.Cmd, out *bytes.Buffer) {
		t.Helper()
		cmd.Stdout, cmd.Stderr = out, out
		cmd.SysProcAttr = coturntest.ProcAttr()
		if err := cmd.Start(); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // ours, by its PID
	}

	sigAddr := netip.AddrPortFrom(netnstest.RouterA, 10000)
	var sigOut bytes.Buffer
	start("signal", topo.Command(topo.R, bin, "signal", "--listen", sigAddr.String()), &sigOut)
	turnAddr := netip.AddrPortFrom(netnstest.RouterA, 3478)
	var turnOut bytes.Buffer
	start("coturn", topo.Command(topo.R, turnBin, coturntest.Args(turnAddr, "u", "p")...), &turnOut)
	// Both answer from A's side before the peers start.
	err := topo.Do(topo.A, func() error {
		for range 100 {
			if c, err := net.DialTimeout("tcp", sigAddr.String(), 100*time.Millisecond); err == nil {
				c.Close()
				if coturntest.WaitSTUN(turnAddr) {
					return nil
				}
				return fmt.Errorf("coturn does not answer at %v:\n%s", turnAddr, turnOut.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		return fmt.Errorf("netmsg signal does not answer at %v:\n%s", sigAddr, sigOut.String())
	})
	if err != nil {
		t.Fatal(err)
	}

	pair := 0
	pingPair := func(t *testing.T, turn bool) string {
		t.Helper()
		extra := []string{}
		if turn {
			extra = []string{"--turn", turnAddr.String(), "--turn-user", "u", "--turn-pass", "p"}
		}
		pair++ // fresh identities per run
		bobID := fmt.Sprintf("str:bob%d", pair)
		var bobOut bytes.Buffer
		bob := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", topo.B, bin, "ping", "--identity", bobID, "--signaling", sigAddr.String(), "--count", "0", "--timeout", "30s"}, extra...)...)
		bob.Stdout, bob.Stderr = &bobOut, &bobOut
		if err := bob.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { bob.Process.Kill(); bob.Wait() }()
		time.Sleep(300 * time.Millisecond) // bob registers before alice signals him
		alice := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", topo.A, bin, "ping", "--identity", fmt.Sprintf("str:alice%d", pair), "--peer", bobID, "--signaling", sigAddr.String(), "--count", "3", "--timeout", "30s"}, extra...)...)
		out, err := alice.CombinedOutput()
		if err != nil {
			t.Fatalf("alice: %v\n%s\nbob:\n%s\nsignal:\n%s", err, out, bobOut.String(), sigOut.String())
		}
		t.Logf("%s", out)
		return string(out)
	}

	t.Run("direct", func(t *testing.T) {
		if n := strings.Count(pingPair(t, false), "via "+netnstest.AddrB.String()+":"); n != 3 {
			t.Fatalf("want 3 pongs over bob's veth address %v", netnstest.AddrB)
		}
	})
	t.Run("direct-preferred-with-coturn", func(t *testing.T) {
		if n := strings.Count(pingPair(t, true), "via "+netnstest.AddrB.String()+":"); n != 3 {
			t.Fatalf("want 3 pongs over bob's veth address %v", netnstest.AddrB)
		}
	})
	t.Run("coturn-host-candidates-blocked", func(t *testing.T) {
		if err := topo.SetForwarding(false); err != nil {
			t.Fatal(err)
		}
		defer topo.SetForwarding(true)
		// First, that the block is real: B's closed port answers (refused)
		// while R forwards; with forwarding off nothing comes back.
		if err := topo.Do(topo.A, func() error {
			c, err := net.DialTimeout("tcp", netip.AddrPortFrom(netnstest.AddrB, 9).String(), 300*time.Millisecond)
			if err == nil {
				c.Close()
			}
			if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
				return fmt.Errorf("A reaches B with forwarding off: %v", err)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		out := pingPair(t, true)
		if n := strings.Count(out, "via TURN relay:"); n != 3 {
			t.Fatalf("want 3 pongs through coturn")
		}
		if !strings.Contains(out, "TURN "+turnAddr.String()) && !strings.Contains(out, "the peer's TURN allocation") {
			t.Fatalf("the path does not name coturn at %v", turnAddr)
		}
	})
}
