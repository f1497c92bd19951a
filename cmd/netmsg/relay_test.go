package main

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/turn/v5"

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
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runRelayCtx(ctx, args, pw)
		pw.Close()
	}()
	buf := make([]byte, 256)
	n, err := pr.Read(buf)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	addr, _, _ := strings.Cut(strings.TrimPrefix(string(buf[:n]), "listening "), " ")
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		cancel()
		t.Fatalf("first line %q", buf[:n])
	}
	go io.Copy(io.Discard, pr)
	return ap, cancel, done
}

// TestRelayCommandAuthSecret: `netmsg relay --auth-secret` accepts a
// fresh TURN REST credential made with the same secret, and refuses an
// expired one.
func TestRelayCommandAuthSecret(t *testing.T) {
	ap, cancel, done := startRelayCmd(t, "--listen", "127.0.0.1:0", "--auth-secret", "s3cret")
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	allocate := func(user, pass string) error {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cl, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: ap.String(), TURNServerAddr: ap.String(),
			Username: user, Password: pass, Realm: "netmsg", Conn: c})
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
	if err := allocate(relay.RESTCredential("s3cret", "alice", time.Now().Add(time.Hour))); err != nil {
		t.Errorf("fresh credential: %v", err)
	}
	if err := allocate(relay.RESTCredential("s3cret", "alice", time.Now().Add(-time.Hour))); err == nil {
		t.Error("expired credential allocated")
	}
}
