//go:build linux

package ptimer

import (
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func newTimer(t *testing.T) *Timer {
	t.Helper()
	tm, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tm.Close() })
	return tm
}

// waitC reports whether C receives within d.
func waitC(tm *Timer, d time.Duration) bool {
	select {
	case <-tm.C:
		return true
	case <-time.After(d):
		return false
	}
}

func TestFiresNotEarly(t *testing.T) {
	tm := newTimer(t)
	for _, d := range []time.Duration{0, 200 * time.Microsecond, time.Millisecond} {
		start := time.Now()
		tm.Reset(d)
		if !waitC(tm, 10*time.Second) {
			t.Fatalf("Reset(%v): no expiry within 10 s", d)
		}
		if got := time.Since(start); got < d {
			t.Fatalf("Reset(%v): fired after %v", d, got)
		}
	}
}

func TestStop(t *testing.T) {
	tm := newTimer(t)
	tm.Reset(5 * time.Millisecond)
	tm.Stop()
	if waitC(tm, 50*time.Millisecond) {
		t.Fatal("a stopped timer fired")
	}
}

func TestResetReplacesDeadline(t *testing.T) {
	tm := newTimer(t)
	tm.Reset(time.Hour)
	tm.Reset(100 * time.Microsecond)
	if !waitC(tm, 10*time.Second) {
		t.Fatal("the earlier deadline did not replace the later one")
	}
	tm.Reset(100 * time.Microsecond)
	tm.Reset(time.Hour)
	if waitC(tm, 50*time.Millisecond) {
		t.Fatal("the later deadline did not replace the earlier one")
	}
}

func TestOneValuePerExpiry(t *testing.T) {
	tm := newTimer(t)
	tm.Reset(0)
	if !waitC(tm, 10*time.Second) {
		t.Fatal("no expiry")
	}
	if waitC(tm, 20*time.Millisecond) {
		t.Fatal("a one-shot timer fired twice")
	}
}

func TestCloseEndsGoroutine(t *testing.T) {
	tm, err := New()
	if err != nil {
		t.Fatal(err)
	}
	tm.Reset(time.Hour)
	if err := tm.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tm.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	tm.Reset(0) // no effect, no panic
	tm.Stop()
	goleak.VerifyNone(t)
}

// BenchmarkLateness reports how late a 250 µs wait ends, for the precise
// timer and for time.Timer, in µs per wait.
func BenchmarkLateness(b *testing.B) {
	const d = 250 * time.Microsecond
	b.Run("ptimer", func(b *testing.B) {
		tm, err := New()
		if err != nil {
			b.Fatal(err)
		}
		defer tm.Close()
		lateness(b, d, tm.Reset, func() { <-tm.C })
	})
	b.Run("time.Timer", func(b *testing.B) {
		tm := time.NewTimer(time.Hour)
		defer tm.Stop()
		lateness(b, d, func(d time.Duration) { tm.Reset(d) }, func() { <-tm.C })
	})
}

// lateness arms a timer for d with reset and waits for it with wait, over
// and over, and reports how late each wait ended on average.
func lateness(b *testing.B, d time.Duration, reset func(time.Duration), wait func()) {
	var late time.Duration
	for b.Loop() {
		start := time.Now()
		reset(d)
		wait()
		late += time.Since(start) - d
	}
	b.ReportMetric(float64(late.Microseconds())/float64(b.N), "late-µs/op")
}
