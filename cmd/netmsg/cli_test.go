package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg"
)

// netmsgBin is the netmsg binary TestMain builds, run by the tests below
// as a user runs it.
var netmsgBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "netmsg-cli-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	netmsgBin = filepath.Join(dir, "netmsg")
	goTool := filepath.Join(runtime.GOROOT(), "bin", "go")
	if out, err := exec.Command(goTool, "build", "-o", netmsgBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// runBin runs the built netmsg with args and standard input closed, and
// returns its exit status and outputs.
func runBin(t *testing.T, timeout time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, netmsgBin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("netmsg %q: %v", args, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("netmsg %q did not end within %v\nstdout:\n%s\nstderr:\n%s", args, timeout, o.String(), e.String())
	}
	return code, o.String(), e.String()
}

// checkOneLine fails unless s is one line that says what went wrong once.
func checkOneLine(t *testing.T, args []string, s string) {
	t.Helper()
	s = strings.TrimSuffix(s, "\n")
	switch {
	case s == "":
		t.Errorf("netmsg %q: no error message", args)
	case strings.Contains(s, "\n"):
		t.Errorf("netmsg %q: error of several lines:\n%s", args, s)
	case strings.Contains(s, "goroutine ") || strings.Contains(s, "panic"):
		t.Errorf("netmsg %q panicked:\n%s", args, s)
	case !strings.HasPrefix(s, "netmsg "+args[0]+": ") || strings.Contains(s, "netmsg:") || strings.Count(s, "netmsg "+args[0]+":") != 1:
		t.Errorf("netmsg %q: not one \"netmsg %s:\" prefix: %s", args, args[0], s)
	}
	if m := regexp.MustCompile(`(\b[a-z]+: )(\b[a-z]+: )`).FindStringSubmatch(s); m != nil && m[1] == m[2] {
		t.Errorf("netmsg %q: %q said twice: %s", args, m[1], s)
	}
}

// writeCertFiles issues a certificate for id with a new CA into dir and
// returns the paths of the certificate, its key and the CA's public key.
func writeCertFiles(t *testing.T, dir, id string, lifetime time.Duration, created time.Time) (certPath, keyPath, caPath string) {
	t.Helper()
	ca, _ := netmsg.NewCAKey()
	_, key, _ := ed25519.GenerateKey(nil)
	ident, err := netmsg.ParseIdentity(id)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := netmsg.IssueCertificate(ca, netmsg.CertTemplate{Identity: ident, PublicKey: key.Public().(ed25519.PublicKey), Created: created, Lifetime: lifetime})
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath, caPath = filepath.Join(dir, "a.cert"), filepath.Join(dir, "a.key"), filepath.Join(dir, "ca.pub")
	os.WriteFile(certPath, netmsg.MarshalCertificatePEM(cert), 0o644)
	os.WriteFile(keyPath, netmsg.MarshalPrivateKey(key, ""), 0o600)
	os.WriteFile(caPath, []byte(netmsg.MarshalAuthorizedKey(ca.Public().(ed25519.PublicKey), "ca")+"\n"), 0o644)
	return certPath, keyPath, caPath
}

// TestCLIBadFlags runs the binary with command lines that cannot work:
// each must exit 2 at once with one line naming what is wrong, before
// starting anything.
func TestCLIBadFlags(t *testing.T) {
	dir := t.TempDir()
	certPath, keyPath, _ := writeCertFiles(t, dir, "str:alice", time.Hour, time.Time{})
	oldDir := filepath.Join(dir, "old")
	os.Mkdir(oldDir, 0o755)
	oldCert, oldKey, _ := writeCertFiles(t, oldDir, "str:alice", time.Hour, time.Now().Add(-48*time.Hour))
	ping := []string{"ping", "--identity", "str:alice", "--peer", "str:bob", "--signaling", "127.0.0.1:1"}
	with := func(base []string, more ...string) []string { return append(append([]string{}, base...), more...) }
	for _, c := range []struct {
		args []string
		want string // in the error line
	}{
		{[]string{"nosuchcommand"}, "unknown command"},
		{with(ping, "--interval", "0"), "--interval must be positive"},
		{with(ping, "--interval", "-1s"), "--interval must be positive"},
		{with(ping, "--timeout", "0s"), "--timeout must be positive"},
		{with(ping, "--count", "-3"), "--count must be 0 or more"},
		{with(ping, "--channel", "-1"), "--channel"},
		{with(ping, "--ice-enable", "9"), "--ice-enable"},
		{with(ping, "--count", "x"), "-count"},
		{with(ping, "--bogus"), "-bogus"},
		{with(ping, "extra"), "unexpected argument"},
		{with(ping, "--cert", certPath), "--key"},
		{with(ping, "--cert", oldCert, "--key", oldKey), "expired"},
		{with(ping, "--cert", certPath, "--key", oldKey), "does not match"},
		{with(ping, "--cert", filepath.Join(dir, "none.cert"), "--key", keyPath), "--cert"},
		{with(ping, "--turn", "127.0.0.1:3478"), "--turn needs --turn-user"},
		{with(ping, "--turn-user", "u"), "need --turn"},
		{with(ping, "--relay-only"), "--relay-only needs --turn"},
		{with(ping, "--stun", "127.0.0.1:99999"), "--stun"},
		{with(ping, "--listen", "nonsense"), "--listen"},
		{[]string{"ping", "--identity", "str:a b", "--peer", "str:bob", "--signaling", "127.0.0.1:1"}, "space"},
		{[]string{"ping", "--identity", "str:alice", "--peer", "str:", "--signaling", "127.0.0.1:1"}, "--peer"},
		{[]string{"ping", "--identity", "ip:127.0.0.1:1", "--peer", "ip:0.0.0.0:0", "--signaling", "127.0.0.1:1"}, "unspecified"},
		{[]string{"ping", "--identity", "str:alice", "--signaling", "127.0.0.1:1"}, "--peer is required"},
		{[]string{"ping", "--peer", "str:bob", "--signaling", "127.0.0.1:1"}, "--identity is required"},
		{[]string{"ping", "--identity", "str:alice", "--peer", "str:bob"}, "--signaling is required"},
		{with(ping, "--lan"), "--lan and --signaling exclude each other"},
		{[]string{"ping", "--lan", "--peer", "str:bob"}, "--identity is required"},
		{[]string{"ping", "--identity", "str:bob", "--peer", "str:carol", "--signaling", "127.0.0.1:1", "--cert", certPath, "--key", keyPath}, "is for str:alice"},
		{[]string{"demo", "--duration", "-1s"}, "--duration must be positive"},
		{[]string{"demo", "--duration", "0"}, "--duration must be positive"},
		{[]string{"demo", "--every", "0"}, "--every must be positive"},
		{[]string{"demo", "--loss", "100"}, "--loss must be 0 to 90"},
		{[]string{"demo", "--loss", "-1"}, "--loss"},
		{[]string{"demo", "--loss", "NaN"}, "--loss"},
		{[]string{"demo", "--lag", "-1ms"}, "--lag"},
		{[]string{"demo", "--jitter", "-1ms"}, "--jitter"},
		{[]string{"chat"}, "--listen"},
		{[]string{"chat", "--listen", "1", "--connect", "127.0.0.1:1"}, "exactly one"},
		{[]string{"chat", "--connect", "127.0.0.1:99999"}, "--connect"},
		{[]string{"chat", "--connect", ":27020"}, "--connect"},
		{[]string{"chat", "--listen", "1.2.3:4"}, "--listen"},
		{[]string{"chat", "--listen", "0", "--cert", certPath}, "--key"},
		{[]string{"chat", "--listen", "0", "--ca", filepath.Join(dir, "none.pub")}, "--ca"},
		{[]string{"chat", "--listen", "0", "--identity", "str:"}, "--identity"},
		{[]string{"chat", "--lan", "--listen", "0"}, "--lan needs --identity"},
		{[]string{"chat", "--lan", "--connect", "127.0.0.1:27020", "--identity", "str:carol"}, "--connect: with --lan, give the server's identity"},
		{[]string{"chat", "--lan"}, "--connect IDENTITY"},
		{[]string{"cert"}, "give a command"},
		{[]string{"cert", "nonsense"}, "unknown command"},
		{[]string{"cert", "ca"}, "--out"},
		{[]string{"cert", "issue", "--ca", "x", "--identity", "str:a", "--out", "y", "--expiry", "0d"}, "--expiry"},
		{[]string{"cert", "issue", "--ca", "x", "--identity", "str:a b", "--out", "y"}, "--identity"},
		{[]string{"cert", "inspect"}, "FILE"},
		{[]string{"relay", "--user", "u:p", "--max-allocations", "-1"}, "--max-allocations"},
		{[]string{"relay", "--user", "u:p", "--max-allocations", "0"}, "--max-allocations"},
		{[]string{"relay", "--user", "u:p", "--socket-buffer", "0"}, "--socket-buffer"},
		{[]string{"relay", "--user", "u:p", "--socket-buffer", "-2"}, "--socket-buffer"},
		{[]string{"relay"}, "--user"},
		{[]string{"relay", "--user", "nopass"}, "--user"},
		{[]string{"relay", "--user", "u:p", "--listen", "0.0.0.0:3478"}, "--relay-ip"},
		{[]string{"relay", "--user", "u:p", "--relay-ip", "x"}, "--relay-ip"},
		{[]string{"signal", "--idle-timeout", "-1s"}, "--idle-timeout"},
		{[]string{"signal", "--no-trivial"}, "--no-trivial"},
		{[]string{"signal", "--ca", "/nonexistent.pub"}, "--ca"},
	} {
		code, stdout, stderr := runBin(t, 20*time.Second, c.args...)
		if code != 2 {
			t.Errorf("netmsg %q: exit %d, want 2\nstdout:\n%s\nstderr:\n%s", c.args, code, stdout, stderr)
			continue
		}
		if c.args[0] != "nosuchcommand" {
			checkOneLine(t, c.args, stderr)
		}
		if !strings.Contains(stderr, c.want) {
			t.Errorf("netmsg %q: error %q does not say %q", c.args, strings.TrimSpace(stderr), c.want)
		}
		if strings.Contains(stdout, "listening") || strings.Contains(stdout, "Connecting") {
			t.Errorf("netmsg %q started before refusing:\n%s", c.args, stdout)
		}
	}
}

// TestCLIHelp checks that every command's -h has a description, its
// flags and two examples, on standard output with status 0.
func TestCLIHelp(t *testing.T) {
	for _, c := range []struct {
		args  []string
		flags []string
	}{
		{[]string{"ping"}, []string{"-identity", "-peer", "-signaling", "-cert", "-key", "-ca", "-app", "-interval", "-count", "-stun", "-turn"}},
		{[]string{"chat"}, []string{"-listen", "-connect", "-cert", "-key", "-ca", "-app", "-identity"}},
		{[]string{"demo"}, []string{"-duration", "-loss", "-lag", "-jitter", "-seed", "-every", "-ip"}},
		{[]string{"cert", "ca"}, []string{"-out", "-force"}},
		{[]string{"cert", "issue"}, []string{"-ca", "-identity", "-key", "-app", "-pop", "-expiry", "-out"}},
		{[]string{"cert", "inspect"}, []string{"-ca"}},
		{[]string{"signal"}, []string{"-listen", "-ca"}},
		{[]string{"relay"}, []string{"-listen", "-user", "-realm", "-relay-ip", "-max-allocations"}},
	} {
		args := append(append([]string{}, c.args...), "-h")
		code, stdout, stderr := runBin(t, 10*time.Second, args...)
		name := strings.Join(c.args, " ")
		if code != 0 || stderr != "" {
			t.Errorf("netmsg %s -h: exit %d, stderr %q", name, code, stderr)
		}
		if !strings.HasPrefix(stdout, "netmsg "+name+": ") {
			t.Errorf("netmsg %s -h does not start with a description:\n%s", name, stdout)
		}
		for _, f := range c.flags {
			if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(f) + `\b`).MatchString(stdout) {
				t.Errorf("netmsg %s -h does not list %s:\n%s", name, f, stdout)
			}
		}
		_, ex, ok := strings.Cut(stdout, "\nexamples:\n")
		if !ok || strings.Count(ex, "  netmsg "+name+" ") < 2 {
			t.Errorf("netmsg %s -h has fewer than two examples:\n%s", name, stdout)
		}
	}
	code, stdout, _ := runBin(t, 10*time.Second, "-h")
	if code != 0 || !strings.Contains(stdout, "commands:") {
		t.Errorf("netmsg -h: exit %d\n%s", code, stdout)
	}
	if code, _, stderr := runBin(t, 10*time.Second); code != 2 || !strings.Contains(stderr, "usage:") {
		t.Errorf("netmsg with no command: exit %d\n%s", code, stderr)
	}
}

// TestCLIChatDeadPort: a client whose server does not answer fails with
// status 1 and says so.
func TestCLIChatDeadPort(t *testing.T) {
	t.Parallel()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := c.LocalAddr().String()
	c.Close()
	args := []string{"chat", "--connect", dead}
	code, stdout, stderr := runBin(t, 60*time.Second, args...)
	if code != 1 {
		t.Fatalf("netmsg %q: exit %d, want 1\nstdout:\n%s\nstderr:\n%s", args, code, stdout, stderr)
	}
	checkOneLine(t, args, stderr)
	if !strings.Contains(stderr, "could not reach the server at "+dead) {
		t.Errorf("stderr %q does not say the server could not be reached", stderr)
	}
	if !strings.Contains(stdout, "Still connecting") {
		t.Errorf("no progress while connecting:\n%s", stdout)
	}
}

// TestCLIChatServerWithoutTerminal runs `netmsg chat --listen` with
// standard input closed, as in the background: it keeps serving (a client
// joins) until SIGTERM, then exits 0.
func TestCLIChatServerWithoutTerminal(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(netmsgBin, "chat", "--listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr // standard input: the null device
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	lines := make(chan string, 100)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	}()
	var addr netip.AddrPort
	select {
	case l := <-lines:
		a, ok := strings.CutPrefix(l, "Server listening on ")
		if !ok {
			t.Fatalf("first line %q", l)
		}
		if addr, err = netip.ParseAddrPort(a); err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not start")
	}
	// Still serving after its standard input ended: a client joins.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	r, w := io.Pipe()
	var out syncBuf
	done := make(chan error, 1)
	go func() { done <- chatClient(ctx, netmsg.Config{}, addr, r, &out) }()
	waitText(t, &out, "Nobody else is here.")
	io.WriteString(w, "/quit\n")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not stop on SIGTERM")
	}
}

func TestErrorLine(t *testing.T) {
	for _, c := range []struct{ cmd, in, want string }{
		{"ping", "netmsg: netmsg: udp: listen: address in use", "udp: listen: address in use"},
		{"ping", "ping: signaling: signaling: refused by the server: taken", "signaling: refused by the server: taken"},
		{"chat", "could not reach the server at 127.0.0.1:1 (timed out, end reason 4001)", "could not reach the server at 127.0.0.1:1 (timed out, end reason 4001)"},
		{"demo", "netmsg", "netmsg"},
	} {
		if got := errorLine(c.cmd, errors.New(c.in)); got != c.want {
			t.Errorf("errorLine(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestResolveAddr(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		in   string
		def  uint16
		want string
	}{
		{"127.0.0.1:5", 0, "127.0.0.1:5"},
		{"[::1]:5", 0, "[::1]:5"},
		{"127.0.0.1", 3478, "127.0.0.1:3478"},
		{"localhost:5", 0, ""}, // 127.0.0.1 or ::1, from the hosts file
		{"localhost", 27020, ""},
	} {
		ap, err := resolveAddr(ctx, "x", c.in, c.def)
		if err != nil {
			t.Errorf("resolveAddr(%q): %v", c.in, err)
			continue
		}
		if c.want != "" && ap.String() != c.want {
			t.Errorf("resolveAddr(%q) = %v, want %s", c.in, ap, c.want)
		}
		if c.want == "" && (!ap.Addr().IsLoopback() || ap.Port() == 0) {
			t.Errorf("resolveAddr(%q) = %v, want a loopback address with a port", c.in, ap)
		}
	}
	for _, in := range []string{"", "127.0.0.1", "127.0.0.1:99999", ":5", "a:b:c"} {
		var ue *usageError
		if _, err := resolveAddr(ctx, "stun", in, 0); !errors.As(err, &ue) || !strings.Contains(err.Error(), "--stun") {
			t.Errorf("resolveAddr(%q) err = %v, want a usage error naming --stun", in, err)
		}
	}
}
