package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestP2PInNetns runs `netmsg signal` and two `netmsg ping` peers inside a
// network namespace this test creates, whose only non-loopback interface is
// one end of a veth pair (10.77.0.1/24): ICE leaves loopback out, as GNS
// does, so the peers must find each other through their veth host
// candidates, on real sockets. It needs root and the ip command; it skips
// with the reason where the machine forbids namespaces.
func TestP2PInNetns(t *testing.T) {
	if testing.Short() {
		t.Skip("short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	ipCmd, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("no ip command (iproute2)")
	}
	ns := fmt.Sprintf("netmsgtest%d", os.Getpid())
	vA, vB := fmt.Sprintf("nmA%d", os.Getpid()%100000), fmt.Sprintf("nmB%d", os.Getpid()%100000)
	run := func(args ...string) error {
		out, err := exec.Command(ipCmd, args...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run("netns", "add", ns); err != nil {
		t.Skipf("cannot create a network namespace here: %v", err)
	}
	t.Cleanup(func() {
		exec.Command(ipCmd, "link", "del", vB).Run()
		exec.Command(ipCmd, "netns", "del", ns).Run()
	})
	for _, args := range [][]string{
		{"link", "add", vA, "type", "veth", "peer", "name", vB},
		{"link", "set", vA, "netns", ns},
		{"-n", ns, "addr", "add", "10.77.0.1/24", "dev", vA},
		{"-n", ns, "link", "set", vA, "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"link", "set", vB, "up"},
	} {
		if err := run(args...); err != nil {
			t.Skipf("cannot set up the veth pair here: %v", err)
		}
	}

	bin := filepath.Join(t.TempDir(), "netmsg")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	inNS := func(args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, ipCmd, append([]string{"netns", "exec", ns, bin}, args...)...)
	}
	var sigOut bytes.Buffer
	sig := inNS("signal", "--listen", "127.0.0.1:10000")
	sig.Stdout = &sigOut
	if err := sig.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { sig.Process.Kill(); sig.Wait() }()
	time.Sleep(300 * time.Millisecond)
	var bobOut bytes.Buffer
	bob := inNS("ping", "--identity", "str:bob", "--signaling", "127.0.0.1:10000", "--count", "0", "--timeout", "20s")
	bob.Stdout = &bobOut
	if err := bob.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { bob.Process.Kill(); bob.Wait() }()
	time.Sleep(300 * time.Millisecond)
	out, err := inNS("ping", "--identity", "str:alice", "--peer", "str:bob", "--signaling", "127.0.0.1:10000", "--count", "3", "--timeout", "20s").CombinedOutput()
	if err != nil {
		t.Fatalf("alice: %v\n%s\nbob:\n%s\nsignal:\n%s", err, out, bobOut.String(), sigOut.String())
	}
	if n := strings.Count(string(out), "via 10.77.0.1:"); n != 3 {
		t.Fatalf("want 3 pongs over the veth address:\n%s", out)
	}
	t.Logf("%s", out)
}
