package snp

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
)

// benchNetsim sends size-byte reliable messages from one engine to another
// over a perfect netsim link in real time (no bubble), each side driven by
// its own goroutines as the connection layer will.
func benchNetsim(b *testing.B, size int) {
	nw := mustNetsim(b, netsim.Config{})
	defer nw.Close()
	ea, _ := nw.Listen(netip.MustParseAddrPort("10.0.0.1:1"))
	eb, _ := nw.Listen(netip.MustParseAddrPort("10.0.0.2:1"))
	now := time.Now()
	cfg := Config{SendRateMin: 1 << 40, SendRateMax: 1 << 40}
	ca, _ := New(cfg, now)
	cb, _ := New(cfg, now)
	pa := newSimPeer(ca, ea, eb.LocalAddr())
	pb := newSimPeer(cb, eb, ea.LocalAddr())
	var got int64
	pb.onMsg = func(m *Message) { got++; m.Release() }
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range []*simPeer{pa, pb} {
		wg.Go(p.readLoop)
		wg.Go(func() { p.timerLoop(done) })
	}
	msg := make([]byte, size)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	sent := int64(0)
	for b.Loop() {
		for {
			pa.mu.Lock()
			_, err := ca.SendMessage(time.Now(), 0, msg, Reliable)
			pa.mu.Unlock()
			if err == nil {
				break
			}
			pa.wake()
			time.Sleep(50 * time.Microsecond)
		}
		sent++
		if sent%64 == 0 {
			pa.wake()
		}
	}
	pa.mu.Lock()
	ca.Flush(time.Now())
	pa.mu.Unlock()
	pa.wake()
	for {
		pb.mu.Lock()
		g := got
		pb.mu.Unlock()
		if g >= sent {
			break
		}
		time.Sleep(100 * time.Microsecond)
	}
	el := b.Elapsed().Seconds()
	b.ReportMetric(float64(sent)/el, "msgs/s")
	close(done)
	ea.Close()
	eb.Close()
	wg.Wait()
}

func BenchmarkNetsim64(b *testing.B)   { benchNetsim(b, 64) }
func BenchmarkNetsim1200(b *testing.B) { benchNetsim(b, 1200) }
