package signaling_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/netmsg-go/netmsg/signaling"
)

// testTLS makes a CA and a certificate it signs for 127.0.0.1, and
// returns a server config with that certificate and a client config that
// trusts the CA only.
func testTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "netmsg test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

// TestWebSocketTLS: both protocols over wss:// with a certificate from a
// CA made here: an authenticated and a trivial client exchange signals
// with each other and with a TCP client of the same server; a raw
// WebSocket client sees one message per line; the per-source cap counts
// WebSocket and TCP clients together and a refused Dial reports it; a
// client that does not trust the CA fails.
func TestWebSocketTLS(t *testing.T) {
	srvTLS, cliTLS := testTLS(t)
	e := newAuthEnv(t, signaling.ServerConfig{MaxClientsPerAddr: 4})
	wsAddr, err := e.s.ListenWS("127.0.0.1:0", "/signal", srvTLS)
	if err != nil {
		t.Fatal(err)
	}
	url := "wss://" + wsAddr.String() + "/signal"
	ctx := context.Background()
	alice, err := signaling.DialURL(ctx, url, signaling.ClientConfig{Identity: "str:alice", Key: key("str:alice"),
		Certificate: cert(t, "str:alice", key("str:alice"), e.ca), TLSConfig: cliTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	bob, err := signaling.DialURL(ctx, url, signaling.ClientConfig{Identity: "str:bob", TLSConfig: cliTLS})
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	carol, err := signaling.DialTrivial(ctx, "tcp://"+e.addr, "str:carol")
	if err != nil {
		t.Fatal(err)
	}
	defer carol.Close()
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.Authenticated == 1 && st.Trivial == 2 })
	for _, p := range []struct {
		from, to     signaling.Conn
		fromID, toID string
	}{{alice, bob, "str:alice", "str:bob"}, {bob, alice, "str:bob", "str:alice"}, {carol, alice, "str:carol", "str:alice"}, {alice, carol, "str:alice", "str:carol"}} {
		if err := p.from.Send(p.toID, []byte("hi "+p.toID)); err != nil {
			t.Fatal(err)
		}
		if from, blob := recv(t, p.to); from != p.fromID || string(blob) != "hi "+p.toID {
			t.Errorf("%s got %q from %q", p.toID, blob, from)
		}
	}

	// A raw WebSocket client: one message per line, no newline.
	raw, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPClient: httpClient(cliTLS)})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.CloseNow()
	if err := raw.Write(ctx, websocket.MessageText, []byte("str:raw")); err != nil {
		t.Fatal(err)
	}
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.Trivial == 3 })
	alice.Send("str:raw", []byte{1, 2})
	alice.Send("str:raw", []byte{3})
	for _, want := range []string{"str:alice 0102", "str:alice 03"} {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		typ, msg, err := raw.Read(rctx)
		cancel()
		if err != nil || typ != websocket.MessageText || string(msg) != want {
			t.Fatalf("raw got %v %q %v, want %q", typ, msg, err, want)
		}
	}
	raw.Write(ctx, websocket.MessageText, []byte("str:alice 0a0b"))
	if from, blob := recv(t, alice); from != "str:raw" || string(blob) != "\x0a\x0b" {
		t.Errorf("alice got %q from %q", blob, from)
	}

	// alice, bob, carol and raw: the fifth from 127.0.0.1 is refused.
	_, err = signaling.DialURL(ctx, url, signaling.ClientConfig{Identity: "str:dave", Key: key("str:dave"),
		Certificate: cert(t, "str:dave", key("str:dave"), e.ca), TLSConfig: cliTLS})
	if !errors.Is(err, signaling.ErrRefused) || !strings.Contains(err.Error(), "too many connections from your address") {
		t.Errorf("fifth client: %v", err)
	}
	if st := e.s.Stats(); st.RefusedAddr != 1 {
		t.Errorf("stats %+v", st)
	}
	if _, err := signaling.DialURL(ctx, url, signaling.ClientConfig{Identity: "str:eve"}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without the CA: %v", err)
	}
}

func httpClient(c *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: c}}
}

// TestWebSocketPlain: ws:// without TLS, at the default path; a URL with
// an unknown scheme is refused by the client.
func TestWebSocketPlain(t *testing.T) {
	s, _ := startServer(t, signaling.ServerConfig{HandshakeTimeout: 300 * time.Millisecond, WriteTimeout: 200 * time.Millisecond})
	addr, err := s.ListenWS("127.0.0.1:0", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := signaling.DialTrivial(ctx, "ws://"+addr.String()+"/", "str:a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := signaling.DialTrivial(ctx, "ws://"+addr.String(), "str:b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Trivial == 2 })
	a.Send("str:b", []byte("x"))
	if from, blob := recv(t, b); from != "str:a" || string(blob) != "x" {
		t.Errorf("b got %q from %q", blob, from)
	}
	// Idle for longer than the write deadline the last write set: the
	// next write goes through (a deadline that passed while idle does not
	// end the connection).
	time.Sleep(500 * time.Millisecond)
	a.Send("str:b", []byte("after a pause"))
	if from, blob := recv(t, b); from != "str:a" || string(blob) != "after a pause" {
		t.Errorf("b got %q from %q", blob, from)
	}
	// A WebSocket client that never registers is dropped at
	// HandshakeTimeout, and counted, as on TCP.
	silent, _, err := websocket.Dial(ctx, "ws://"+addr.String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.CloseNow()
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, _, err := silent.Read(rctx); err == nil || rctx.Err() != nil {
		t.Errorf("silent client: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("silent client dropped after %v", d)
	}
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.HandshakeTimeouts == 1 && st.Clients == 2 })
	if _, err := signaling.DialTrivial(ctx, "udp://"+addr.String(), "str:c"); err == nil {
		t.Error("udp:// accepted")
	}
	if _, err := s.ListenWS("127.0.0.1:0", "nopath", nil); err == nil {
		t.Error("a path without / accepted")
	}
}

// TestWebSocketPortLimits: before the upgrade, a WebSocket port holds at
// most MaxClientsPerAddr+MaxPendingPerAddr TCP connections of one source
// (more are closed at once and counted), and one that sends no request
// within HandshakeTimeout is closed.
func TestWebSocketPortLimits(t *testing.T) {
	s, _ := startServer(t, signaling.ServerConfig{MaxClientsPerAddr: 2, MaxPendingPerAddr: 1, HandshakeTimeout: 300 * time.Millisecond})
	addr, err := s.ListenWS("127.0.0.1:0", "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	var silent []*rawClient
	for range 3 {
		silent = append(silent, dialRaw(t, addr.String(), ""))
	}
	extra := dialRaw(t, addr.String(), "")
	start := time.Now()
	if !extra.closed() || time.Since(start) > 200*time.Millisecond {
		t.Errorf("the fourth connection of a source was kept (%v)", time.Since(start))
	}
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.RefusedAddr == 1 })
	for _, c := range silent {
		if !c.closed() {
			t.Error("a connection without a request was kept")
		}
	}
	// Their places are free again.
	c, err := signaling.DialTrivial(context.Background(), "ws://"+addr.String(), "str:late")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Trivial == 1 })
}
