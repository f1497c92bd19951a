package signaling_test

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

// allocate asks the TURN server at addr for an allocation with user and
// pass.
func allocate(t *testing.T, addr, user, pass string) error {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	cl, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: addr, TURNServerAddr: addr,
		Username: user, Password: pass, Conn: c, LoggerFactory: lf})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := cl.Allocate()
	if err == nil {
		relayed.Close()
	}
	return err
}

// TestICECredentials: a server with TURN hands an authenticated client
// TURN REST credentials for its proven identity, which netmsg's relay
// (holding the same secret) accepts and refuses forged; the client asks
// for fresh ones at half their time to live; trivial clients, and
// authenticated clients that did not ask, are sent none; a server
// without TURN sends none.
func TestICECredentials(t *testing.T) {
	const secret = "shared secret"
	rs, err := relay.NewServer(relay.Config{ListenAddr: "127.0.0.1:0", AuthSecrets: []string{secret},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	turnAddr := rs.Addr().String()
	e := newAuthEnv(t, signaling.ServerConfig{TURN: &signaling.TURNConfig{Secret: secret, Servers: []string{turnAddr}, TTL: 4 * time.Second}})
	alice := e.mustDial(t, "str:alice")
	p, ok := alice.(signaling.ICEProvider)
	if !ok {
		t.Fatal("an authenticated Conn is not an ICEProvider")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	stun, creds, err := p.WaitICEServers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(stun) != 1 || stun[0] != turnAddr || len(creds) != 1 || creds[0].Server != turnAddr {
		t.Fatalf("stun %v, turn %+v", stun, creds)
	}
	c := creds[0]
	exp, id, _ := strings.Cut(c.Username, ":")
	secs, _ := strconv.ParseInt(exp, 10, 64)
	if id != "str:alice" || c.Expires.Unix() != secs || c.Expires.Before(start.Add(3*time.Second)) || c.Expires.After(start.Add(6*time.Second)) {
		t.Errorf("credential %+v (asked at %v)", c, start)
	}
	if u, pw := relay.RESTCredential(secret, "str:alice", c.Expires); u != c.Username || pw != c.Password {
		t.Errorf("credential %+v, want %s %s", c, u, pw)
	}
	if err := allocate(t, turnAddr, c.Username, c.Password); err != nil {
		t.Errorf("the relay refused the credential: %v", err)
	}
	if err := allocate(t, turnAddr, c.Username, "Zm9yZ2Vk"); err == nil {
		t.Error("the relay took a forged password")
	}
	// Fresh credentials after half the time to live.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, creds, _ := p.ICEServers()
		if creds[0].Expires.After(c.Expires) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no fresh credentials")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := e.s.Stats(); st.ICESent < 2 || st.Malformed != 0 {
		t.Errorf("stats %+v", st)
	}

	// A trivial client, and an authenticated one that does not ask, get
	// signals only.
	tr := dialRaw(t, e.addr, "str:trivial")
	old := dialRaw(t, e.addr, "")
	bobKey := key("str:bob")
	fmt.Fprintf(old.c, "NETMSG-SIGNAL/1 str:bob %x\n", cert(t, "str:bob", bobKey, e.ca))
	ch, _ := strings.CutPrefix(old.line(t), "CHALLENGE ")
	chb, _ := hex.DecodeString(ch)
	msg := append(append(append([]byte("netmsg-signal/1\x00"), "str:bob"...), 0), chb...)
	fmt.Fprintf(old.c, "PROOF %x\n", ed25519.Sign(bobKey, msg))
	if l := old.line(t); l != "OK" {
		t.Fatalf("old client got %q", l)
	}
	waitStats(t, e.s, func(st signaling.ServerStats) bool { return st.Trivial == 1 && st.Authenticated == 2 })
	alice.Send("str:trivial", []byte{1})
	alice.Send("str:bob", []byte{2})
	if l := tr.line(t); l != "str:alice 01" {
		t.Errorf("trivial client got %q", l)
	}
	if l := old.line(t); l != "str:alice 02" {
		t.Errorf("old authenticated client got %q", l)
	}

	// No TURN: no credentials.
	e2 := newAuthEnv(t, signaling.ServerConfig{})
	carol := e2.mustDial(t, "str:carol")
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if _, _, err := carol.(signaling.ICEProvider).WaitICEServers(ctx2); err == nil {
		t.Error("credentials from a server without TURN")
	}
	if st := e2.s.Stats(); st.Malformed != 0 {
		t.Errorf("a WANT line counted malformed: %+v", st)
	}
	if _, err := signaling.NewServer(signaling.ServerConfig{TURN: &signaling.TURNConfig{Secret: "x", Servers: []string{"no port"}}}); err == nil {
		t.Error("a bad TURN server accepted")
	}
}
