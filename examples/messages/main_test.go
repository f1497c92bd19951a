package main

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestRun runs the exchange on loopback UDP and checks every line of it.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, 3, false); err != nil {
		t.Fatalf("run: %v\noutput so far:\n%s", err, out.String())
	}
	const want = `alice: sent "hello" to bob's address on channel 3
bob: session request from str:alice
bob: accepted str:alice
bob: got "hello" (5 bytes) on channel 3 from str:alice, reliable true
bob: replied "hello back"
alice: got "hello back" on channel 3 from str:bob
alice: 0 more messages waiting
alice: session connected with str:bob
alice: closed session: true
alice: session none
`
	if got := out.String(); got != want {
		t.Errorf("output:\n%s\nwant:\n%s", got, want)
	}
}

// TestRunStatus checks that the -status block runs (its figures vary).
func TestRunStatus(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, &out, 0, true); err != nil {
		t.Fatalf("run: %v\noutput so far:\n%s", err, out.String())
	}
	for _, s := range []string{"alice: getSessionConnectionInfo(ip:127.0.0.1:", "bob: getSessionConnectionInfo(str:alice)", "state=3 (connected)"} {
		if !bytes.Contains(out.Bytes(), []byte(s)) {
			t.Errorf("output lacks %q:\n%s", s, out.String())
		}
	}
}
