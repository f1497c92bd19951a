package main

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg"
)

// syncBuf is an io.Writer safe for concurrent use, read by the test.
type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func waitText(t *testing.T, b *syncBuf, text string) {
	t.Helper()
	end := time.Now().Add(10 * time.Second)
	for !strings.Contains(b.String(), text) {
		if time.Now().After(end) {
			t.Fatalf("no %q in:\n%s", text, b.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestChat runs a server and two clients on loopback UDP: nicknames,
// relaying, and /quit.
func TestChat(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srvIn, srvInW := io.Pipe()
	var srvOut syncBuf
	ready := make(chan netip.AddrPort, 1)
	srvDone := make(chan error, 1)
	go func() {
		srvDone <- chatServer(ctx, netmsg.Config{ListenAddr: netip.MustParseAddrPort("127.0.0.1:0")}, srvIn, &srvOut, ready)
	}()
	addr := <-ready

	type client struct {
		in   *io.PipeWriter
		out  syncBuf
		done chan error
	}
	start := func() *client {
		c := &client{done: make(chan error, 1)}
		r, w := io.Pipe()
		c.in = w
		go func() { c.done <- chatClient(ctx, netmsg.Config{}, addr, r, &c.out) }()
		waitText(t, &c.out, "Connected to server OK")
		return c
	}
	a := start()
	waitText(t, &a.out, "Nobody else is here.")
	b := start()
	waitText(t, &b.out, "1 others are here:")
	waitText(t, &a.out, "Guest2 has joined.")

	io.WriteString(a.in, "/nick alice\n")
	waitText(t, &a.out, "You are now called alice")
	waitText(t, &b.out, "Guest1 is now called alice")
	io.WriteString(a.in, "hello from alice\n")
	waitText(t, &b.out, "alice: hello from alice")

	io.WriteString(b.in, "/quit\n")
	if err := <-b.done; err != nil {
		t.Fatal(err)
	}
	waitText(t, &a.out, "Guest2 has left.")

	io.WriteString(srvInW, "/quit\n")
	if err := <-srvDone; err != nil {
		t.Fatal(err)
	}
	waitText(t, &a.out, "The server is shutting down. Goodbye.")
	if err := <-a.done; err != nil {
		t.Fatal(err)
	}
}
