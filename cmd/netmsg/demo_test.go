package main

import (
	"bytes"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// TestDemo runs the demo's default script in fake time: it must end with
// every reliable message delivered exactly once and in order.
func TestDemo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		err := runDemo(nil, &out)
		if err != nil {
			t.Fatalf("demo failed: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "OK: every reliable message arrived exactly once") {
			t.Fatalf("demo output lacks its OK line:\n%s", out.String())
		}
	})
}

// TestDemoHeavyLoss runs the script at 20% loss each way.
func TestDemoHeavyLoss(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		err := demo(demoOptions{duration: 3 * time.Second, loss: 20, lag: 30 * time.Millisecond,
			jitter: 5 * time.Millisecond, seed: 7, every: time.Second}, &out)
		if err != nil {
			t.Fatalf("demo failed: %v\n%s", err, out.String())
		}
	})
}
