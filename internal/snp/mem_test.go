package snp

import (
	"runtime"
	"testing"
	"time"
)

// BenchmarkIdleConnMemory reports the heap held by one idle engine pair
// member after it exchanged a few messages both ways and went quiet: the
// figure behind the goal of 10,000 idle sessions at under 16 KiB each.
func BenchmarkIdleConnMemory(b *testing.B) {
	const n = 1000
	// The timer runs throughout: with it stopped, b.Loop never sees
	// the time pass and goes on for ever.
	for b.Loop() {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		conns := make([]*Conn, 0, 2*n)
		now := t0
		buf := make([]byte, 0, 2048)
		var ms [8]Message
		for range n {
			x, _ := New(Config{}, now)
			y, _ := New(Config{}, now)
			for i := range 3 {
				x.SendMessage(now, 0, payload(i, 100), Reliable|NoNagle)
				y.SendMessage(now, 0, payload(i, 100), Reliable|NoNagle)
			}
			// Exchange until both sides are quiet, then let time pass.
			for step := 0; step < 20; step++ {
				now = now.Add(10 * time.Millisecond)
				for _, pair := range [][2]*Conn{{x, y}, {y, x}} {
					for {
						pkt, num, ok := pair[0].Poll(now, buf)
						if !ok {
							break
						}
						pair[1].ReceivePacket(now, num, pkt)
					}
					for k := pair[1].Receive(ms[:]); k > 0; k = pair[1].Receive(ms[:]) {
						for i := range ms[:k] {
							ms[i].Release()
						}
					}
				}
			}
			now = now.Add(5 * time.Second)
			x.Poll(now, buf)
			y.Poll(now, buf)
			conns = append(conns, x, y)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(len(conns)), "B/idle-conn")
		runtime.KeepAlive(conns)
	}
}
