package netsim

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/transport"
)

// benchBatch is the number of datagrams per WriteBatch in the benchmarks,
// about what a sender drains per wakeup under load.
const benchBatch = 32

// BenchmarkZeroDelay measures datagrams/s through a perfect link: WriteBatch
// and ReadBatch in one goroutine, each datagram copied in and out.
func BenchmarkZeroDelay(b *testing.B) {
	n := mustNew(b, Config{})
	defer n.Close()
	src, dst := listen(b, n, ""), listen(b, n, "")
	out := make([]transport.Packet, benchBatch)
	for i := range out {
		out[i] = transport.Packet{Buf: make([]byte, 1200), N: 1200, Addr: dst.LocalAddr()}
	}
	in := make([]transport.Packet, benchBatch)
	for i := range in {
		in[i].Buf = make([]byte, transport.MaxDatagram)
	}
	b.ReportAllocs()
	b.SetBytes(benchBatch * 1200)
	start := time.Now()
	for b.Loop() {
		if _, err := src.WriteBatch(out); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < benchBatch; {
			k, err := dst.ReadBatch(in)
			if err != nil {
				b.Fatal(err)
			}
			got += k
		}
	}
	b.ReportMetric(float64(b.N*benchBatch)/time.Since(start).Seconds(), "datagrams/s")
}

// BenchmarkDelay1ms measures datagrams/s through a link with 1 ms of delay
// in real time: one goroutine writes, another reads, and every datagram
// goes through the scheduler's heap and timer. The writer keeps at most
// window datagrams unread, as a sender's congestion window would; without
// such a bound an open-loop writer only measures how fast the heap grows.
func BenchmarkDelay1ms(b *testing.B) {
	const window = 8192
	n := mustNew(b, Config{Link: LinkConfig{Delay: time.Millisecond}, RecvQueue: window})
	defer n.Close()
	src, dst := listen(b, n, ""), listen(b, n, "")
	out := make([]transport.Packet, benchBatch)
	for i := range out {
		out[i] = transport.Packet{Buf: make([]byte, 1200), N: 1200, Addr: dst.LocalAddr()}
	}
	var read atomic.Int64
	progress := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		in := make([]transport.Packet, benchBatch)
		for i := range in {
			in[i].Buf = make([]byte, transport.MaxDatagram)
		}
		for {
			k, err := dst.ReadBatch(in)
			if err != nil {
				return
			}
			read.Add(int64(k))
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	}()
	b.ReportAllocs()
	b.SetBytes(benchBatch * 1200)
	start := time.Now()
	sent := int64(0)
	for b.Loop() {
		for sent-read.Load() > window-benchBatch {
			<-progress
		}
		if _, err := src.WriteBatch(out); err != nil {
			b.Fatal(err)
		}
		sent += benchBatch
	}
	for read.Load() < sent {
		<-progress
	}
	el := time.Since(start)
	dst.Close()
	<-done
	b.ReportMetric(float64(sent)/el.Seconds(), "datagrams/s")
	if st := n.Stats(); st.Dropped() > 0 {
		b.Fatalf("dropped: %+v", st)
	}
}
