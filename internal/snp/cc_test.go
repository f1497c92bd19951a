package snp

import (
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
)

// ccRun sends 1000-byte reliable messages from a to b for d of fake time
// over link, keeping a's send buffer full, and returns the goodput (payload
// bytes/s delivered over the second half of the run) and a's final rate.
func ccRun(t *testing.T, link netsim.LinkConfig, cfg Config, d time.Duration) (goodput float64, rate int) {
	synctest.Test(t, func(t *testing.T) {
		nw := mustNetsim(t, netsim.Config{Seed: 5, Link: link})
		defer nw.Close()
		ea, _ := nw.Listen(netip.MustParseAddrPort("127.0.0.1:1000"))
		eb, _ := nw.Listen(netip.MustParseAddrPort("127.0.0.2:1000"))
		now := time.Now()
		ca, _ := New(cfg, now)
		cb, _ := New(Config{}, now)
		pa := newSimPeer(ca, ea, eb.LocalAddr())
		pb := newSimPeer(cb, eb, ea.LocalAddr())
		var got int64
		pb.onMsg = func(m *Message) { got += int64(len(m.Data)); m.Release() }
		done := make(chan struct{})
		var wg sync.WaitGroup
		for _, p := range []*simPeer{pa, pb} {
			wg.Go(p.readLoop)
			wg.Go(func() { p.timerLoop(done) })
		}
		start := time.Now()
		msg := make([]byte, 1000)
		var gotHalf int64
		for time.Since(start) < d {
			pa.mu.Lock()
			for {
				if _, err := ca.SendMessage(time.Now(), 0, msg, Reliable); err != nil {
					break
				}
			}
			pa.mu.Unlock()
			pa.wake()
			time.Sleep(5 * time.Millisecond)
			if gotHalf == 0 && time.Since(start) >= d/2 {
				pb.mu.Lock()
				gotHalf = got
				pb.mu.Unlock()
			}
		}
		pb.mu.Lock()
		goodput = float64(got-gotHalf) / (d / 2).Seconds()
		pb.mu.Unlock()
		pa.mu.Lock()
		rate = ca.Stats(time.Now()).SendRateBytesPerSecond
		if pa.fail != nil || pb.fail != nil {
			t.Errorf("protocol errors: %v %v", pa.fail, pb.fail)
		}
		pa.mu.Unlock()
		close(done)
		ea.Close()
		eb.Close()
		wg.Wait()
	})
	return goodput, rate
}

// TestCongestionBottleneck: behind a 1 MB/s bottleneck with a 64 KiB
// tail-drop queue, the adaptive rate finds the bottleneck: goodput near it,
// and the rate neither stuck at the minimum nor far above the link.
func TestCongestionBottleneck(t *testing.T) {
	const bottleneck = 1_000_000
	link := netsim.LinkConfig{Delay: 20 * time.Millisecond, Rate: bottleneck, QueueBytes: 64 << 10}
	goodput, rate := ccRun(t, link, Config{SendRateMin: 64 << 10, SendRateMax: 64 << 20}, 20*time.Second)
	t.Logf("goodput %.0f B/s, rate %d B/s", goodput, rate)
	if goodput < 0.7*bottleneck {
		t.Errorf("goodput %.0f B/s, want at least 70%% of the %d B/s bottleneck", goodput, bottleneck)
	}
	if rate > 3*bottleneck || rate < bottleneck/3 {
		t.Errorf("rate %d B/s is far from the %d B/s bottleneck", rate, bottleneck)
	}
}

// TestCongestionRandomLoss: 5% random loss without congestion must not pin
// the rate at its minimum (it is not a congestion signal below 10%).
func TestCongestionRandomLoss(t *testing.T) {
	const min = 64 << 10
	link := netsim.LinkConfig{Delay: 20 * time.Millisecond, LossPercent: 5}
	goodput, rate := ccRun(t, link, Config{SendRateMin: min, SendRateMax: 8 << 20}, 10*time.Second)
	t.Logf("goodput %.0f B/s, rate %d B/s", goodput, rate)
	if rate < 16*min {
		t.Errorf("rate %d B/s under 5%% random loss, want at least %d", rate, 16*min)
	}
	if goodput < 8*min {
		t.Errorf("goodput %.0f B/s under 5%% random loss, want at least %d", goodput, 8*min)
	}
}

// TestCongestionRandomLossAndBottleneck: 10% random loss each way on a
// path with a 1 MB/s bottleneck, with a deep (64 KiB) and a shallow (8 KiB)
// tail-drop queue: the random loss is the path's baseline, not congestion,
// so goodput stays near the bottleneck (a controller that cuts on any loss
// above 10% fell to the minimum rate here).
func TestCongestionRandomLossAndBottleneck(t *testing.T) {
	const bottleneck = 1_000_000
	for _, q := range []int{64 << 10, 8 << 10} {
		link := netsim.LinkConfig{Delay: 20 * time.Millisecond, Rate: bottleneck, QueueBytes: q, LossPercent: 10}
		goodput, rate := ccRun(t, link, Config{SendRateMin: 64 << 10, SendRateMax: 64 << 20}, 20*time.Second)
		t.Logf("queue %d: goodput %.0f B/s, rate %d B/s", q, goodput, rate)
		if goodput < 0.7*bottleneck {
			t.Errorf("queue %d: goodput %.0f B/s, want at least 70%% of the %d B/s bottleneck", q, goodput, bottleneck)
		}
		if rate > 2*bottleneck {
			t.Errorf("queue %d: rate %d B/s, far above the %d B/s bottleneck", q, rate, bottleneck)
		}
	}
}

// TestCongestionShallowQueue: a bottleneck whose queue is too short for
// the delay signal: loss is the only sign of congestion, and the rate must
// stay close to the bottleneck (the loss baseline is 0 here, since
// intervals below the bottleneck lose nothing).
func TestCongestionShallowQueue(t *testing.T) {
	const bottleneck = 1_000_000
	link := netsim.LinkConfig{Delay: 20 * time.Millisecond, Rate: bottleneck, QueueBytes: 8 << 10}
	goodput, rate := ccRun(t, link, Config{SendRateMin: 64 << 10, SendRateMax: 64 << 20}, 20*time.Second)
	t.Logf("goodput %.0f B/s, rate %d B/s", goodput, rate)
	if goodput < 0.8*bottleneck {
		t.Errorf("goodput %.0f B/s, want at least 80%% of the %d B/s bottleneck", goodput, bottleneck)
	}
	if rate > 3*bottleneck/2 {
		t.Errorf("rate %d B/s overshoots the %d B/s bottleneck by more than half", rate, bottleneck)
	}
}

// TestCongestionRandomLossFast: W6 in miniature: 10% random loss each way
// on a fast, short path (no bottleneck below the 50 MB/s cap). Start-up
// must not stop at the first noisy interval and the rate must reach the
// cap; goodput at least 70% of it.
func TestCongestionRandomLossFast(t *testing.T) {
	const max = 50 << 20
	link := netsim.LinkConfig{Delay: 50 * time.Microsecond, LossPercent: 10}
	goodput, rate := ccRun(t, link, Config{SendRateMin: 256 << 10, SendRateMax: max, SendBufferSize: 4 << 20}, 2*time.Second)
	t.Logf("goodput %.0f B/s, rate %d B/s", goodput, rate)
	if goodput < 0.7*max {
		t.Errorf("goodput %.0f B/s, want at least 70%% of %d B/s", goodput, max)
	}
}

// TestCongestionBurstCutsAtMostHalf: an interval that lost most of its
// packets at once (a receiver's socket buffer overflowing for a moment)
// halves the rate at most; before, the rate fell by the loss fraction,
// to a fifth for 80% lost, and W5's 8% growth took seconds to come back.
func TestCongestionBurstCutsAtMostHalf(t *testing.T) {
	var cc congestion
	var rtt rttEstimator
	rtt.init()
	var p pacer
	cfg := Config{SendRateMin: 1 << 10, SendRateMax: 1 << 30}
	p.rate = 100e6
	t0 := int64(1_000_000)
	cc.update(t0, &rtt, &p, cfg) // starts
	// Clean intervals first, so the path's own loss is known to be 0.
	tt := t0
	for range 20 {
		tt += int64(ccMinInterval / time.Microsecond)
		cc.acked, cc.sent = 1000, int(p.rate*0.02)
		cc.update(tt, &rtt, &p, cfg)
	}
	before := p.rate
	tt += int64(ccMinInterval / time.Microsecond)
	cc.acked, cc.lost, cc.sent = 200, 800, int(p.rate*0.02)
	cc.update(tt, &rtt, &p, cfg)
	if p.rate < before/2 || p.rate >= before {
		t.Fatalf("80%% lost in one interval took the rate from %.0f to %.0f, want a cut to no less than half", before, p.rate)
	}
}
