package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// twoHostLAN is a LAN of two machines: network namespaces A and B joined
// by a veth pair (lan0, 10.79.0.1/24 in A, 10.79.0.2/24 in B). Everything
// lives in namespaces the test creates and removes.
type twoHostLAN struct {
	a, b string
	ip   string
}

// newTwoHostLAN builds the LAN, or skips the test where namespaces cannot
// be made (not root, no ip command, a sandbox).
func newTwoHostLAN(t *testing.T) *twoHostLAN {
	t.Helper()
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
	l := &twoHostLAN{a: fmt.Sprintf("nmlanA-%d", os.Getpid()), b: fmt.Sprintf("nmlanB-%d", os.Getpid()), ip: ipCmd}
	t.Cleanup(func() {
		exec.Command(ipCmd, "netns", "del", l.a).Run()
		exec.Command(ipCmd, "netns", "del", l.b).Run()
	})
	for _, args := range [][]string{
		{"netns", "add", l.a},
		{"netns", "add", l.b},
		{"link", "add", "lan0", "netns", l.a, "type", "veth", "peer", "name", "lan0", "netns", l.b},
		{"-n", l.a, "addr", "add", "10.79.0.1/24", "dev", "lan0"},
		{"-n", l.b, "addr", "add", "10.79.0.2/24", "dev", "lan0"},
		{"-n", l.a, "link", "set", "lan0", "up"},
		{"-n", l.b, "link", "set", "lan0", "up"},
		{"-n", l.a, "link", "set", "lo", "up"},
		{"-n", l.b, "link", "set", "lo", "up"},
	} {
		if out, err := exec.Command(ipCmd, args...).CombinedOutput(); err != nil {
			t.Skipf("cannot set up namespaces here: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	return l
}

// command runs the built netmsg with args in namespace ns.
func (l *twoHostLAN) command(ctx context.Context, ns string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, l.ip, append([]string{"netns", "exec", ns, netmsgBin}, args...)...)
}

// TestLANCommands: `netmsg ping --lan` and `netmsg chat --lan` on two
// machines of a LAN (network namespaces joined by a veth pair), with no
// signaling server: the peers find each other by multicast and connect
// P2P over their LAN addresses. Ping runs unauthenticated and with
// --auth (signed announcements and signals); chat runs a server found by
// its identity.
func TestLANCommands(t *testing.T) {
	l := newTwoHostLAN(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	for i, extra := range [][]string{nil, {"--auth"}} {
		bobID, aliceID := fmt.Sprintf("str:bob%d", i), fmt.Sprintf("str:alice%d", i)
		var bobOut lockedBuf
		bob := l.command(ctx, l.b, append([]string{"ping", "--lan", "--identity", bobID, "--count", "0", "--timeout", "30s"}, extra...)...)
		bob.Stdout, bob.Stderr = &bobOut, &bobOut
		if err := bob.Start(); err != nil {
			t.Fatal(err)
		}
		alice := l.command(ctx, l.a, append([]string{"ping", "--lan", "--identity", aliceID, "--peer", bobID, "--count", "3", "--interval", "50ms", "--timeout", "20s"}, extra...)...)
		out, err := alice.CombinedOutput()
		bob.Process.Kill() // ours, by its PID
		bob.Wait()
		if err != nil {
			t.Fatalf("%q: alice: %v\n%s\nbob:\n%s", extra, err, out, bobOut.String())
		}
		t.Logf("%q:\n%s", extra, out)
		if n := strings.Count(string(out), "via 10.79.0.2:"); n != 3 {
			t.Errorf("%q: %d pongs over bob's LAN address, want 3:\n%s", extra, n, out)
		}
		if !strings.Contains(string(out), "LAN discovery") {
			t.Errorf("%q: alice does not say she uses LAN discovery:\n%s", extra, out)
		}
	}

	// Chat: a server in B named str:room, a client in A that finds it by
	// that name.
	var srvOut lockedBuf
	srv := l.command(ctx, l.b, "chat", "--lan", "--listen", "0", "--identity", "str:room")
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	srvIn, err := srv.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }() // ours, by its PID
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(srvOut.String(), "Server listening"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the chat server never listened:\n%s", srvOut.String())
		}
	}
	cli := l.command(ctx, l.a, "chat", "--lan", "--connect", "str:room", "--identity", "str:carol")
	cliIn, err := cli.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var cliOut lockedBuf
	cli.Stdout, cli.Stderr = &cliOut, &cliOut
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(cliIn, "hello from carol\n")
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(cliOut.String(), "Nobody else is here."); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("the client never got the server's welcome:\n%s", cliOut.String())
			break
		}
	}
	io.WriteString(cliIn, "/quit\n")
	if err := cli.Wait(); err != nil {
		t.Fatalf("chat client: %v\n%s\nserver:\n%s", err, cliOut.String(), srvOut.String())
	}
	t.Logf("client:\n%s", cliOut.String())
	for _, want := range []string{"Connecting to chat server at str:room", "Connected to server OK", "Welcome!"} {
		if !strings.Contains(cliOut.String(), want) {
			t.Errorf("chat client output without %q:\n%s", want, cliOut.String())
		}
	}
	// The server hears the client leave before it stops.
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(srvOut.String(), " ended, reason"); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("the server never saw the client leave:\n%s", srvOut.String())
			break
		}
	}
	io.WriteString(srvIn, "/quit\n")
	if err := srv.Wait(); err != nil {
		t.Errorf("chat server: %v", err)
	}
	t.Logf("server:\n%s", srvOut.String())
	if !strings.Contains(srvOut.String(), "as str:room (P2P)") || !strings.Contains(srvOut.String(), "Connection request from") {
		t.Errorf("the server did not take the client's P2P connection:\n%s", srvOut.String())
	}
}
