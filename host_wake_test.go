package netmsg

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestWakeHeap: random sets and removals keep the heap ordered, every
// index right, and due/next equal to a brute-force scan.
func TestWakeHeap(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := time.Unix(1000, 0)
	conns := make([]*hostConn, 300)
	for i := range conns {
		conns[i] = &hostConn{hidx: -1}
	}
	var w wakeHeap
	for step := range 20000 {
		hc := conns[r.IntN(len(conns))]
		switch r.IntN(4) {
		case 0:
			w.remove(hc)
			hc.wake = time.Time{}
		case 1:
			w.set(hc, time.Time{})
		default:
			w.set(hc, base.Add(time.Duration(r.IntN(100))*time.Millisecond))
		}
		var want time.Time
		n := 0
		for _, c := range conns {
			if c.hidx >= 0 {
				n++
				if w[c.hidx].hc != c || w[c.hidx].ns != c.wakeNs {
					t.Fatalf("step %d: entry %d is wrong", step, c.hidx)
				}
				if c.wake.IsZero() {
					t.Fatalf("step %d: a connection without wake-up is in the heap", step)
				}
				if want.IsZero() || c.wake.Before(want) {
					want = c.wake
				}
			} else if !c.wake.IsZero() {
				t.Fatalf("step %d: a connection with a wake-up is not in the heap", step)
			}
		}
		if n != len(w) {
			t.Fatalf("step %d: %d in heap, %d indexed", step, len(w), n)
		}
		for i := 1; i < len(w); i++ {
			if w[i].ns < w[(i-1)/wakeArity].ns {
				t.Fatalf("step %d: heap order broken at %d", step, i)
			}
		}
		if !w.next().Equal(want) {
			t.Fatalf("step %d: next %v, want %v", step, w.next(), want)
		}
		now := base.Add(50 * time.Millisecond)
		if d := w.due(now); (d != nil) != (!want.IsZero() && !want.After(now)) {
			t.Fatalf("step %d: due %v with earliest %v", step, d != nil, want)
		}
	}
}

// TestKeepFarWake: a far wake-up is kept when the new one is later or
// none; a near one, or a sooner new one, is always taken.
func TestKeepFarWake(t *testing.T) {
	now := time.Unix(1000, 0)
	ns := func(d time.Duration) int64 { return now.Add(d).UnixNano() }
	for _, c := range []struct {
		cur  int64
		w    time.Time
		keep bool
	}{
		{ns(10 * time.Second), now.Add(10*time.Second + time.Millisecond), true}, // the keepalive moved by a packet
		{ns(10 * time.Second), time.Time{}, true},                                // nothing to wake for: an early poll finds it
		{ns(10 * time.Second), now.Add(50 * time.Millisecond), false},            // sooner: taken
		{ns(500 * time.Millisecond), now.Add(time.Second), false},                // near: moved
		{0, now.Add(20 * time.Second), false},                                    // not in the heap
		{ns(lazyWake), now.Add(2 * lazyWake), true},
	} {
		if got := keepFarWake(c.cur, c.w, now.UnixNano()); got != c.keep {
			t.Errorf("cur +%v, w %v: keep %v, want %v", time.Duration(c.cur-now.UnixNano()), c.w, got, c.keep)
		}
	}
}
