package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/signaling"
)

// TestSignalCommand starts `netmsg signal` on 127.0.0.1:0, connects two
// trivial clients through it and stops it.
func TestSignalCommand(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- runSignalCtx(ctx, []string{"--listen", "127.0.0.1:0"}, pw)
		pw.Close()
	}()
	buf := make([]byte, 512)
	n, err := pr.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	first := string(buf[:n])
	addr, _, ok := strings.Cut(strings.TrimPrefix(first, "listening "), " ")
	if !ok || !strings.HasPrefix(first, "listening 127.0.0.1:") {
		t.Fatalf("first line %q", first)
	}
	go io.Copy(io.Discard, pr)
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
	rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
	defer rcancel()
	for {
		a.Send("str:bob", []byte("hello"))
		c, cc := context.WithTimeout(rctx, 100*time.Millisecond)
		from, blob, err := b.Recv(c)
		cc()
		if err == nil {
			if from != "str:alice" || string(blob) != "hello" {
				t.Fatalf("got %q from %q", blob, from)
			}
			break
		}
		if rctx.Err() != nil {
			t.Fatal("no signal came through")
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := runSignalCtx(context.Background(), []string{"--ca", "no-such-dir/ca.pub"}, io.Discard); err == nil {
		t.Error("a missing CA file was accepted")
	}
}
