package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

// lastWS and lastHTTP are the URLs the last startSignalCmd with --ws or
// --http printed.
var lastWS, lastHTTP, lastNATS string

// startSignalCmd runs `netmsg signal args...` until the test ends and
// returns the address it printed and a function that stops it and returns
// the rest of its output.
func startSignalCmd(t *testing.T, args ...string) (addr string, stop func() string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := runSignalCtx(ctx, args, pw)
		pw.Close()
		done <- err
	}()
	r := bufio.NewReader(pr)
	first, err := r.ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("no first line: %v (%v)", err, <-done)
	}
	addr, _, ok := strings.Cut(strings.TrimPrefix(first, "listening "), " ")
	if !ok || !strings.HasPrefix(first, "listening 127.0.0.1:") {
		cancel()
		t.Fatalf("first line %q", first)
	}
	for _, f := range []struct {
		flag, prefix string
		v            *string
	}{{"--ws", "websocket ", &lastWS}, {"--http", "http ", &lastHTTP}, {"--nats-embed", "nats ", &lastNATS}} {
		if !slices.Contains(args, f.flag) {
			continue
		}
		l, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(l, f.prefix) {
			cancel()
			t.Fatalf("line for %s: %q, %v", f.flag, l, err)
		}
		*f.v = strings.TrimSpace(strings.TrimPrefix(l, f.prefix))
	}
	rest := make(chan string, 1)
	go func() {
		b, _ := io.ReadAll(r)
		rest <- string(b)
	}()
	var stopped bool
	stop = func() string {
		if stopped {
			return ""
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("netmsg signal: %v", err)
		}
		return <-rest
	}
	t.Cleanup(func() { stop() })
	return addr, stop
}

// exchange sends from a to b (to identity bTo) until b gets it, within
// 10 s.
func exchange(t *testing.T, a, b signaling.Conn, aID, bID string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		a.Send(bID, []byte("hello"))
		c, cc := context.WithTimeout(ctx, 100*time.Millisecond)
		from, blob, err := b.Recv(c)
		cc()
		if err == nil {
			if from != aID || string(blob) != "hello" {
				t.Fatalf("got %q from %q", blob, from)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatal("no signal came through")
		}
	}
}

// TestSignalCommand starts `netmsg signal` on 127.0.0.1:0, connects two
// trivial clients through it and stops it.
func TestSignalCommand(t *testing.T) {
	addr, stop := startSignalCmd(t, "--listen", "127.0.0.1:0")
	ctx := context.Background()
	a, err := signaling.DialTrivial(ctx, addr, "str:alice")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := signaling.DialTrivial(ctx, addr, "str:bob")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exchange(t, a, b, "str:alice", "str:bob")
	if out := stop(); !strings.Contains(out, "stopped: 2 registrations") {
		t.Errorf("output %q", out)
	}
}

// TestSignalCommandAuthenticated: with --ca and --no-trivial, clients with
// certificates from `netmsg cert` exchange signals and trivial ones are
// refused.
func TestSignalCommandAuthenticated(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.key")
	if err := runCert([]string{"ca", "--out", ca}, io.Discard); err != nil {
		t.Fatal(err)
	}
	conns := map[string]signaling.Conn{}
	addr, stop := startSignalCmd(t, "--listen", "127.0.0.1:0", "--ca", ca+".pub", "--no-trivial")
	for _, name := range []string{"alice", "bob"} {
		out := filepath.Join(dir, name+".cert")
		if err := runCert([]string{"issue", "--ca", ca, "--identity", "str:" + name, "--out", out}, io.Discard); err != nil {
			t.Fatal(err)
		}
		certPEM, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		keyPEM, err := os.ReadFile(filepath.Join(dir, name+".key"))
		if err != nil {
			t.Fatal(err)
		}
		cert, key, err := netmsg.LoadCertificate(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		c, err := signaling.Dial(context.Background(), addr, signaling.ClientConfig{Identity: "str:" + name, Key: key, Certificate: cert})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[name] = c
	}
	exchange(t, conns["alice"], conns["bob"], "str:alice", "str:bob")
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	fmt.Fprintf(raw, "str:carol\n")
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(raw); err != nil || string(b) != "ERR trivial protocol refused\n" {
		t.Errorf("a trivial client was told %q and then %v", b, err)
	}
	if out := stop(); !strings.Contains(out, "1 refused") {
		t.Errorf("output %q", out)
	}
}

// TestSignalCommandErrors: bad command lines fail before listening.
func TestSignalCommandErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--ca", "no-such-dir/ca.pub"},
		{"--no-trivial"},
		{"--listen", "127.0.0.1:0", "extra"},
		{"--listen", "not an address"},
	} {
		if err := runSignalCtx(context.Background(), args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// TestSignalSIGTERM builds netmsg, runs `netmsg signal`, connects an
// authenticated and a trivial client, and sends the process SIGTERM: it
// exits 0, the authenticated client is told ("ERR shutdown", which its
// Send reports while it retries) and the trivial one sees a clean close.
func TestSignalSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "netmsg")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ca := filepath.Join(dir, "ca.key")
	if err := runCert([]string{"ca", "--out", ca}, io.Discard); err != nil {
		t.Fatal(err)
	}
	certOut := filepath.Join(dir, "alice.cert")
	if err := runCert([]string{"issue", "--ca", ca, "--identity", "str:alice", "--out", certOut}, io.Discard); err != nil {
		t.Fatal(err)
	}
	certPEM, _ := os.ReadFile(certOut)
	keyPEM, _ := os.ReadFile(filepath.Join(dir, "alice.key"))
	cert, key, err := netmsg.LoadCertificate(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "signal", "--listen", "127.0.0.1:0", "--ca", ca+".pub")
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	r := bufio.NewReader(stdout)
	first, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	addr, _, _ := strings.Cut(strings.TrimPrefix(first, "listening "), " ")
	auth, err := signaling.Dial(context.Background(), addr, signaling.ClientConfig{Identity: "str:alice", Key: key, Certificate: cert})
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	trivial, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer trivial.Close()
	fmt.Fprintf(trivial, "str:bob\n")
	trivial.Write([]byte("str:alice 0a\n"))
	if from, blob := recvSignal(t, auth); from != "str:bob" || string(blob) != "\n" {
		t.Fatalf("alice got %q from %q", blob, from)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, rest)
	}
	if !strings.Contains(string(rest), "stopped: 2 registrations, 1 signals forwarded") {
		t.Errorf("output %q", rest)
	}
	trivial.SetReadDeadline(time.Now().Add(5 * time.Second))
	if b, err := io.ReadAll(trivial); err != nil || len(b) != 0 {
		t.Errorf("trivial client got %q, %v; want a clean close", b, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := auth.Send("str:bob", nil)
		if errors.Is(err, signaling.ErrRefused) && strings.Contains(err.Error(), "shutdown") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("authenticated client's Send after the shutdown: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func recvSignal(t *testing.T, c signaling.Conn) (string, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	from, blob, err := c.Recv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return from, blob
}

// TestSignalCommandWSS: --ws with --tls-cert/--tls-key serves wss://;
// two trivial clients exchange through it, one over TCP.
func TestSignalCommandWSS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := writeTestTLS(t, dir)
	addr, stop := startSignalCmd(t, "--listen", "127.0.0.1:0", "--ws", "127.0.0.1:0/signal", "--tls-cert", certFile, "--tls-key", keyFile)
	if !strings.HasPrefix(lastWS, "wss://127.0.0.1:") || !strings.HasSuffix(lastWS, "/signal") {
		t.Fatalf("websocket URL %q", lastWS)
	}
	ctx := context.Background()
	a, err := signaling.DialURL(ctx, lastWS, signaling.ClientConfig{Identity: "str:alice", TLSConfig: &tls.Config{RootCAs: pool}})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := signaling.DialTrivial(ctx, addr, "str:bob")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exchange(t, a, b, "str:alice", "str:bob")
	exchange(t, b, a, "str:bob", "str:alice")
	if out := stop(); !strings.Contains(out, "stopped: 2 registrations") {
		t.Errorf("output %q", out)
	}
	for _, args := range [][]string{
		{"--listen", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile},
		{"--listen", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--tls-cert", certFile},
		{"--listen", "127.0.0.1:0", "--ws", "127.0.0.1:0", "--tls-cert", keyFile, "--tls-key", keyFile},
	} {
		if err := runSignalCtx(context.Background(), args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// writeTestTLS writes a certificate for 127.0.0.1 signed by a CA made
// here, and its key, as PEM files in dir; it returns their paths and a
// pool holding the CA.
func writeTestTLS(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2),
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}},
		ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	pool = x509.NewCertPool()
	pool.AddCert(ca)
	return certFile, keyFile, pool
}

// TestSignalCommandHTTP: --http serves /metrics, whose values follow the
// traffic, /healthz, /readyz and the browser module.
func TestSignalCommandHTTP(t *testing.T) {
	addr, _ := startSignalCmd(t, "--listen", "127.0.0.1:0", "--http", "127.0.0.1:0")
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(lastHTTP + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if code, body := get(p); code != 200 {
			t.Errorf("%s: %d %q", p, code, body)
		}
	}
	if code, body := get("/netmsg.js"); code != 200 || !strings.Contains(body, "export async function connect(") {
		t.Errorf("/netmsg.js: %d, %d bytes", code, len(body))
	}
	metric := func(line string) bool {
		_, body := get("/metrics")
		return slices.Contains(strings.Split(body, "\n"), line)
	}
	if !metric(`netmsg_signal_clients{protocol="trivial"} 0`) || !metric("netmsg_signal_signals_out_total 0") {
		t.Error("metrics before any client")
	}
	ctx := context.Background()
	a, err := signaling.DialTrivial(ctx, addr, "str:alice")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := signaling.DialTrivial(ctx, addr, "str:bob")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exchange(t, a, b, "str:alice", "str:bob")
	if !metric(`netmsg_signal_clients{protocol="trivial"} 2`) || metric("netmsg_signal_signals_out_total 0") ||
		metric("netmsg_signal_forward_latency_seconds_count 0") || !metric("netmsg_signal_cluster_peers 0") {
		_, body := get("/metrics")
		t.Errorf("metrics after an exchange:\n%s", body)
	}
	if _, body := get("/metrics"); !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_resident_memory_bytes") {
		t.Error("no runtime or process metrics")
	}
	if code, body := get("/"); code != 200 || !strings.Contains(body, `<td class="v" id="clients">2</td>`) {
		t.Errorf("status page: %d %q", code, body)
	}
	if code, body := get("/status.json"); code != 200 || !strings.Contains(body, `"clients":2`) {
		t.Errorf("status.json: %d %q", code, body)
	}
}

// TestSignalCommandCluster: one `netmsg signal` runs an embedded NATS
// server (--nats-embed), another joins through it (--nats); trivial
// clients on the two exchange signals, and /metrics and /readyz of the
// second show the cluster.
func TestSignalCommandCluster(t *testing.T) {
	addr1, _ := startSignalCmd(t, "--listen", "127.0.0.1:0", "--nats-embed", "127.0.0.1:0")
	if !strings.HasPrefix(lastNATS, "nats://127.0.0.1:") {
		t.Fatalf("nats URL %q", lastNATS)
	}
	addr2, _ := startSignalCmd(t, "--listen", "127.0.0.1:0", "--nats", lastNATS, "--http", "127.0.0.1:0")
	ctx := context.Background()
	a, err := signaling.DialTrivial(ctx, addr1, "str:alice")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := signaling.DialTrivial(ctx, addr2, "str:bob")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	exchange(t, a, b, "str:alice", "str:bob")
	exchange(t, b, a, "str:bob", "str:alice")
	for deadline := time.Now().Add(5 * time.Second); ; { // a heartbeat a second
		resp, err := http.Get(lastHTTP + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "netmsg_signal_cluster_peers 1") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics:\n%s", body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if resp, err := http.Get(lastHTTP + "/readyz"); err != nil || resp.StatusCode != 200 {
		t.Errorf("readyz: %v %v", resp, err)
	}
	for _, args := range [][]string{
		{"--listen", "127.0.0.1:0", "--nats-routes", "nats://127.0.0.1:1"},
		{"--listen", "127.0.0.1:0", "--nats-embed", "127.0.0.1:0", "--nats-routes", "nats://127.0.0.1:1"},
		{"--listen", "127.0.0.1:0", "--nats-embed", "nowhere"},
	} {
		if err := runSignalCtx(context.Background(), args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// TestSignalCommandTURN: with --turn-secret and --turn-server, an
// authenticated client gets TURN REST credentials for its identity, made
// with the secret; the flags are checked.
func TestSignalCommandTURN(t *testing.T) {
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.key")
	if err := runCert([]string{"ca", "--out", ca}, io.Discard); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "alice.cert")
	if err := runCert([]string{"issue", "--ca", ca, "--identity", "str:alice", "--out", out}, io.Discard); err != nil {
		t.Fatal(err)
	}
	certPEM, _ := os.ReadFile(out)
	keyPEM, _ := os.ReadFile(filepath.Join(dir, "alice.key"))
	cert, key, err := netmsg.LoadCertificate(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := startSignalCmd(t, "--listen", "127.0.0.1:0", "--ca", ca+".pub", "--turn-secret", "s3cret",
		"--turn-server", "127.0.0.1:3478", "--turn-server", "127.0.0.1:3479", "--turn-ttl", "10m")
	c, err := signaling.Dial(context.Background(), addr, signaling.ClientConfig{Identity: "str:alice", Key: key, Certificate: cert})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stun, creds, err := c.(signaling.ICEProvider).WaitICEServers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stun, []string{"127.0.0.1:3478", "127.0.0.1:3479"}) || len(creds) != 2 || creds[1].Server != "127.0.0.1:3479" {
		t.Fatalf("stun %v, turn %+v", stun, creds)
	}
	if u, p := relay.RESTCredential("s3cret", "str:alice", creds[0].Expires); u != creds[0].Username || p != creds[0].Password ||
		time.Until(creds[0].Expires) < 9*time.Minute {
		t.Errorf("credential %+v", creds[0])
	}
	for _, args := range [][]string{
		{"--listen", "127.0.0.1:0", "--turn-secret", "s"},
		{"--listen", "127.0.0.1:0", "--turn-server", "127.0.0.1:3478"},
		{"--listen", "127.0.0.1:0", "--stun-server", "127.0.0.1:3478"},
		{"--listen", "127.0.0.1:0", "--turn-secret", "s", "--turn-server", "127.0.0.1:3478", "--turn-ttl", "1s"},
		{"--listen", "127.0.0.1:0", "--turn-secret", "s", "--turn-server", "no-port"},
	} {
		if err := runSignalCtx(context.Background(), args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}
