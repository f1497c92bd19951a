package main

import (
	"bytes"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

const demoOK = "OK: every reliable message arrived exactly once"

// TestDemo runs the demo's default script in fake time: three Hosts talk
// through the Messages API, make their sessions on demand, and end with
// every reliable message delivered exactly once and in order.
func TestDemo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		if err := runDemo(nil, &out); err != nil {
			t.Fatalf("demo failed: %v\n%s", err, out.String())
		}
		text := out.String()
		if !strings.Contains(text, demoOK) {
			t.Fatalf("demo output lacks its OK line:\n%s", text)
		}
		// The hosts join one after another, so sessions start with a
		// request that the callback accepts (unless both sides dial at
		// once, which a lost first packet can cause).
		if !strings.Contains(text, "session request from alice (str:alice): accepted") || !strings.Contains(text, "alice-bob direct (ICE) to 203.0.113.2:") || !strings.Contains(text, "alice-carol relayed (TURN)") {
			t.Errorf("no session request from alice was accepted:\n%s", text)
		}
		if strings.Contains(text, "failed") || strings.Contains(text, "no session") {
			t.Errorf("a session failed or is missing:\n%s", text)
		}
		if n := strings.Count(text, "\n"); n > 60 {
			t.Errorf("the demo printed %d lines, want at most 60:\n%s", n, text)
		}
	})
}

// TestDemoHeavyLoss runs the script over direct UDP at 20% loss each way.
// The seed picks a run in which no two hosts dial each other at once (see
// TestDemoSymmetricConnectLoss). (Over P2P the relayed session crosses two
// lossy links each way; see TestDemoP2PLoss.)
func TestDemoHeavyLoss(t *testing.T) {
	runDemoOK(t, demoOptions{duration: 3 * time.Second, loss: 20, lag: 30 * time.Millisecond,
		jitter: 5 * time.Millisecond, seed: 8, every: time.Second, direct: true})
}

// TestDemoSeeds runs the default P2P demo (NATs, relay, 5% loss) with
// other seeds.
func TestDemoSeeds(t *testing.T) {
	for _, seed := range []uint64{2, 3, 4, 5} {
		runDemoOK(t, demoOptions{duration: 3 * time.Second, loss: 5, lag: 40 * time.Millisecond,
			jitter: 10 * time.Millisecond, seed: seed, every: time.Second})
	}
}

// TestDemoSymmetricConnectLoss runs the script at 20% loss with a seed in
// which bob's first packets to carol are lost, so that carol, joining, dials
// bob while bob is still dialling her: a symmetric connect.
func TestDemoSymmetricConnectLoss(t *testing.T) {
	runDemoOK(t, demoOptions{duration: 3 * time.Second, loss: 20, lag: 30 * time.Millisecond,
		jitter: 5 * time.Millisecond, seed: 7, every: time.Second, direct: true})
}

func runDemoOK(t *testing.T, o demoOptions) {
	t.Helper()
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		if err := demo(o, &out); err != nil {
			t.Fatalf("demo failed: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), demoOK) {
			t.Fatalf("demo output lacks its OK line:\n%s", out.String())
		}
	})
}

// TestDemoDirect runs the demo with ip: identities, directly over UDP
// (netmsg demo --ip).
func TestDemoDirect(t *testing.T) {
	runDemoOK(t, demoOptions{duration: 2 * time.Second, loss: 5, lag: 30 * time.Millisecond,
		jitter: 5 * time.Millisecond, seed: 1, every: time.Second, direct: true})
}
