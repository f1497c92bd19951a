package main

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/ice"
)

// TestRelayCommand starts `netmsg relay` on 127.0.0.1:0 and asks it for a
// STUN binding.
func TestRelayCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runRelayCtx(ctx, []string{"--listen", "127.0.0.1:0", "--user", "u:p"}, pw)
		pw.Close()
	}()
	buf := make([]byte, 256)
	n, err := pr.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	addr, _, _ := strings.Cut(strings.TrimPrefix(string(buf[:n]), "listening "), " ")
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		t.Fatalf("first line %q", buf[:n])
	}
	go io.Copy(io.Discard, pr)
	c, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	defer c.Close()
	c.WriteTo(ice.BindingRequest([12]byte{1}), net.UDPAddrFromAddrPort(ap))
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err = c.ReadFrom(buf)
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
}
