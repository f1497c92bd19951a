package main

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPingCommand: two `netmsg ping` peers on 127.0.0.1 find each other
// through a signaling server (trivial and authenticated protocols) and
// ping over P2P.
func TestPingCommand(t *testing.T) {
	for _, auth := range []bool{false, true} {
		s, err := signaling.NewServer(signaling.ServerConfig{AllowUnsigned: true})
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go s.Serve(l)
		addr := l.Addr().String()
		extra := []string{}
		if auth {
			extra = append(extra, "--auth")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		var bobOut lockedBuf
		bobDone := make(chan error, 1)
		go func() {
			bobDone <- runPingCtx(ctx, append([]string{"--identity", "str:bob", "--signaling", addr, "--listen", "127.0.0.1:0", "--count", "0", "--timeout", "30s"}, extra...), &bobOut)
		}()
		deadline := time.Now().Add(10 * time.Second)
		for s.Stats().Registered < 1 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		var aliceOut lockedBuf
		err = runPingCtx(ctx, append([]string{"--identity", "str:alice", "--peer", "str:bob", "--signaling", addr, "--listen", "127.0.0.1:0", "--count", "3", "--interval", "50ms"}, extra...), &aliceOut)
		if err != nil {
			t.Fatalf("auth %v: %v\nalice:\n%s\nbob:\n%s", auth, err, aliceOut.String(), bobOut.String())
		}
		if n := strings.Count(aliceOut.String(), "pong "); n != 3 {
			t.Errorf("auth %v: %d pongs:\n%s", auth, n, aliceOut.String())
		}
		// Alice exited cleanly: bob hears her close (or his idle session
		// ends as an idle timeout, GNS's rule) and reports no failure.
		time.Sleep(time.Second)
		if strings.Contains(bobOut.String(), "failed") {
			t.Errorf("auth %v: bob reports a failure when alice exits cleanly:\n%s", auth, bobOut.String())
		}
		cancel()
		if err := <-bobDone; err != nil {
			t.Errorf("bob: %v", err)
		}
		s.Close()
	}
}

// TestPingRelayOnly: two `netmsg ping` peers whose only path is through a
// `netmsg relay` on 127.0.0.1.
func TestPingRelayOnly(t *testing.T) {
	s, err := signaling.NewServer(signaling.ServerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	go s.Serve(l)
	defer s.Close()
	r, err := relay.NewServer(relay.Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"}, AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	common := []string{"--signaling", l.Addr().String(), "--listen", "127.0.0.1:0", "--turn", r.Addr().String(), "--turn-user", "u", "--turn-pass", "p", "--relay-only", "--stun", r.Addr().String()}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var bobOut lockedBuf
	bobDone := make(chan error, 1)
	go func() {
		bobDone <- runPingCtx(ctx, append([]string{"--identity", "str:bob", "--count", "0", "--timeout", "30s"}, common...), &bobOut)
	}()
	for deadline := time.Now().Add(10 * time.Second); s.Stats().Registered < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("bob never registered:\n%s", bobOut.String())
		}
	}
	var out lockedBuf
	if err := runPingCtx(ctx, append([]string{"--identity", "str:alice", "--peer", "str:bob", "--count", "3", "--interval", "50ms"}, common...), &out); err != nil {
		t.Fatalf("%v\n%s\nbob:\n%s", err, out.String(), bobOut.String())
	}
	if n := strings.Count(out.String(), "pong "); n != 3 {
		t.Fatalf("%d pongs:\n%s", n, out.String())
	}
	cancel()
	<-bobDone
}
