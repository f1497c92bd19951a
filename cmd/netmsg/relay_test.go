package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pion/turn/v5"

	"github.com/netmsg-go/netmsg/internal/coturntest"
	"github.com/netmsg-go/netmsg/internal/ice"
	"github.com/netmsg-go/netmsg/relay"
)

// TestRelayCommand starts `netmsg relay` on 127.0.0.1:0 and asks it for a
// STUN binding.
func TestRelayCommand(t *testing.T) {
	ap, cancel, done := startRelayCmd(t, "--listen", "127.0.0.1:0", "--user", "u:p")
	buf := make([]byte, 256)
	c, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	defer c.Close()
	c.WriteTo(ice.BindingRequest([12]byte{1}), net.UDPAddrFromAddrPort(ap))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, mapped, ok := ice.ParseBindingResponse(buf[:n]); !ok || mapped.String() != c.LocalAddr().String() {
		t.Fatalf("binding: %v %v", ok, mapped)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := runRelayCtx(context.Background(), []string{"--listen", "127.0.0.1:0"}, io.Discard); err == nil {
		t.Error("a relay without users started")
	}
	if err := runRelayCtx(context.Background(), []string{"--listen", "127.0.0.1:0", "--user", "u:p", "--allow-peer", "10.0.0.1"}, io.Discard); err == nil {
		t.Error("an --allow-peer that is no prefix accepted")
	}
}

// startRelayCmd runs `netmsg relay args...` in process and returns the
// address it listens on, the function that stops it and its result.
func startRelayCmd(t *testing.T, args ...string) (netip.AddrPort, context.CancelFunc, <-chan error) {
	ap, _, cancel, done := startRelayCmdHTTP(t, args...)
	return ap, cancel, done
}

// startRelayCmdHTTP is startRelayCmd that also returns the --http address
// (empty without --http).
func startRelayCmdHTTP(t *testing.T, args ...string) (netip.AddrPort, string, context.CancelFunc, <-chan error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runRelayCtx(ctx, args, pw)
		pw.Close()
	}()
	lines := bufio.NewReader(pr)
	ap, httpAddr, err := relayAddrs(lines, slices.Contains(args, "--http"))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	go io.Copy(io.Discard, lines)
	return ap, httpAddr, cancel, done
}

// relayAddrs reads the relay's address from its first line of output
// ("listening ADDR ...") and, when withHTTP, its HTTP address from the
// next ("http ADDR ...").
func relayAddrs(r *bufio.Reader, withHTTP bool) (netip.AddrPort, string, error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return netip.AddrPort{}, "", err
	}
	addr, _, _ := strings.Cut(strings.TrimPrefix(line, "listening "), " ")
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.AddrPort{}, "", fmt.Errorf("first line %q", line)
	}
	if !withHTTP {
		return ap, "", nil
	}
	line, err = r.ReadString('\n')
	if err != nil {
		return ap, "", err
	}
	h, _, _ := strings.Cut(strings.TrimPrefix(line, "http "), " ")
	if _, err := netip.ParseAddrPort(h); err != nil {
		return ap, "", fmt.Errorf("second line %q", line)
	}
	return ap, h, nil
}

// turnAllocate allocates on the relay at ap with user:pass, and returns
// the allocation (closed at the test's end).
func turnAllocate(t *testing.T, ap netip.AddrPort, user, pass string) (net.PacketConn, error) {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: ap.String(), TURNServerAddr: ap.String(),
		Username: user, Password: pass, Realm: "netmsg", Conn: c})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := cl.Allocate()
	t.Cleanup(func() {
		if relayed != nil {
			relayed.Close()
		}
		cl.Close()
		c.Close()
	})
	return relayed, err
}

// TestRelayCommandAuthSecret: `netmsg relay --auth-secret` accepts a
// fresh TURN REST credential made with the same secret, and refuses an
// expired one.
func TestRelayCommandAuthSecret(t *testing.T) {
	file := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(file, []byte("old-one\n\nanother\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ap, cancel, done := startRelayCmd(t, "--listen", "127.0.0.1:0", "--auth-secret", "s3cret", "--auth-secret-file", file, "--relay-ports", "40000-40099")
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	allocate := func(user, pass string) error {
		_, err := turnAllocate(t, ap, user, pass)
		return err
	}
	if err := allocate(relay.RESTCredential("s3cret", "alice", time.Now().Add(time.Hour))); err != nil {
		t.Errorf("fresh credential: %v", err)
	}
	if err := allocate(relay.RESTCredential("s3cret", "alice", time.Now().Add(-time.Hour))); err == nil {
		t.Error("expired credential allocated")
	}
	u, p := relay.RESTCredential("another", "bob", time.Now().Add(time.Hour))
	relayed, err := turnAllocate(t, ap, u, p)
	if err != nil {
		t.Fatalf("credential of a secret from --auth-secret-file: %v", err)
	}
	if p := relayed.LocalAddr().(*net.UDPAddr).Port; p < 40000 || p > 40099 {
		t.Errorf("relayed port %d outside --relay-ports 40000-40099", p)
	}
}

// httpGet returns the status and body of GET url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// TestRelayCommandHTTP scrapes `netmsg relay --http`: /healthz, /readyz,
// and /metrics and the status page (/ and /status.json) with the relay's
// counters after an allocation, a wrong password and a refused peer.
func TestRelayCommandHTTP(t *testing.T) {
	ap, h, cancel, done := startRelayCmdHTTP(t, "--listen", "127.0.0.1:0", "--user", "u:p", "--http", "127.0.0.1:0")
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for _, path := range []string{"/healthz", "/readyz"} {
		if code, body := httpGet(t, "http://"+h+path); code != 200 {
			t.Errorf("%s: %d %q", path, code, body)
		}
	}
	relayed, err := turnAllocate(t, ap, "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := relayed.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 9}); err == nil {
		t.Error("relayed to loopback without --allow-peer")
	}
	if _, err := turnAllocate(t, ap, "u", "wrong"); err == nil {
		t.Error("a wrong password allocated")
	}
	code, body := httpGet(t, "http://"+h+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		"netmsg_relay_allocations 1\n",
		"netmsg_relay_allocations_created_total 1\n",
		`netmsg_relay_auth_failures_total{reason="bad_password"} 1` + "\n",
		`netmsg_relay_refusals_total{reason="peer_address"} 1` + "\n",
		`netmsg_relay_relayed_bytes_total{direction="to_peer"} 0` + "\n",
		"go_goroutines ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	code, body = httpGet(t, "http://"+h+"/")
	if code != 200 || !strings.Contains(body, `<td class="v" id="allocations">1</td>`) || !strings.Contains(body, `id="auth">1<`) {
		t.Errorf("status page: %d %q", code, body)
	}
	if code, body = httpGet(t, "http://"+h+"/status.json"); code != 200 || !strings.Contains(body, `"allocations":1,`) {
		t.Errorf("/status.json: %d %q", code, body)
	}
}

// TestRelaySIGTERM builds netmsg, runs `netmsg relay --http`, checks it
// serves, sends SIGTERM to its PID and expects a clean exit (status 0)
// within seconds, with its closing line.
func TestRelaySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "netmsg")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "relay", "--listen", "127.0.0.1:0", "--auth-secret", "k", "--http", "127.0.0.1:0")
	cmd.SysProcAttr = coturntest.ProcAttr()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	var rest bytes.Buffer
	lines := bufio.NewReader(stdout)
	ap, h, err := relayAddrs(lines, true)
	if err != nil {
		cmd.Process.Kill() // ours, by its PID
		cmd.Wait()
		t.Fatalf("%v; stderr %s", err, stderr.String())
	}
	go func() {
		io.Copy(&rest, lines)
		exited <- cmd.Wait()
	}()
	u, p := relay.RESTCredential("k", "a", time.Now().Add(time.Minute))
	if _, err := turnAllocate(t, ap, u, p); err != nil {
		t.Errorf("allocate: %v", err)
	}
	if code, _ := httpGet(t, "http://"+h+"/readyz"); code != 200 {
		t.Errorf("/readyz: %d", code)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v (want status 0); stderr %s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
		t.Fatal("still running 10 s after SIGTERM")
	}
	if !strings.Contains(rest.String(), "stopped: 1 allocations live") {
		t.Errorf("closing output %q", rest.String())
	}
}
