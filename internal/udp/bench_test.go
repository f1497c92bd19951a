package udp

import (
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/transport"
)

// Benchmarks: 1200-byte datagrams from one socket to another on
// 127.0.0.1 in batches of 64 (../shared/BENCH.md has this machine's raw
// UDP figures to compare with). One b.Loop iteration writes one batch; a
// goroutine reads and counts. Metrics:
//
//	sent/s    datagrams WriteBatch handed to the kernel per second
//	recv/s    datagrams the receiver got per second (to its last read)
//	recvMB/s  their payload, MB = 10^6 bytes
//	loss%     datagrams sent but never received
//
// Open runs the sender as fast as WriteBatch returns (the kernel drops
// what the receiver cannot take). Window keeps at most benchWindow
// datagrams sent but not yet read, as a congestion window would, so that
// nothing is lost and recv/s is what the pair can carry.

const (
	benchBatch  = 64
	benchSize   = 1200
	benchWindow = 2048 // 2.4 MB in flight, below the 4 MiB socket buffers
)

// benchModes are the sender's and the receiver's Options.
var benchModes = []struct {
	name     string
	src, dst Options
}{
	{"gso+gro", Options{}, Options{}}, // the default
	{"gso", Options{}, Options{DisableGRO: true}},
	{"sendmmsg+gro", Options{DisableGSO: true}, Options{}},
	{"sendmmsg", Options{DisableGSO: true}, Options{DisableGRO: true}},
	{"fallback", Options{DisableBatch: true}, Options{DisableBatch: true}},
}

func BenchmarkOpen(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) { benchThroughput(b, m.src, m.dst, 0) })
	}
}

func BenchmarkWindow(b *testing.B) {
	for _, m := range benchModes {
		b.Run(m.name, func(b *testing.B) { benchThroughput(b, m.src, m.dst, benchWindow) })
	}
}

// benchThroughput sends batches of benchBatch datagrams; window > 0 bounds
// the datagrams sent and not yet read.
func benchThroughput(b *testing.B, srcOpts, dstOpts Options, window int64) {
	src := listen(b, "udp4", lo4, srcOpts)
	dst := listen(b, "udp4", lo4, dstOpts)
	var got, lastRead, wake atomic.Int64 // wake: the count the sender waits for
	progress := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		in := newPackets(benchBatch, transport.MaxDatagram)
		for {
			k, err := dst.ReadBatch(in)
			if err != nil {
				return
			}
			n := got.Add(int64(k))
			lastRead.Store(time.Now().UnixNano())
			if n >= wake.Load() {
				select {
				case progress <- struct{}{}:
				default:
				}
			}
		}
	}()
	out := newPackets(benchBatch, benchSize)
	for i := range out {
		out[i].N, out[i].Addr = benchSize, dst.LocalAddr()
	}
	b.ReportAllocs()
	b.SetBytes(benchBatch * benchSize)
	var sent int64
	start := time.Now()
	for b.Loop() {
		for window > 0 && sent-got.Load() > window-benchBatch {
			wake.Store(sent - window/2) // wake when half the window is free
			select {
			case <-progress:
			case <-time.After(100 * time.Millisecond): // a lost datagram would stall the window
				sent = got.Load()
			}
		}
		if _, err := src.WriteBatch(out); err != nil {
			b.Fatal(err)
		}
		sent += benchBatch
	}
	sendTime := time.Since(start)
	wake.Store(0)
	// Drain: wait until the receiver has everything or makes no progress
	// for 50 ms (bounded by 2 s).
	for deadline := time.Now().Add(2 * time.Second); got.Load() < sent && time.Now().Before(deadline); {
		select {
		case <-progress:
		case <-time.After(50 * time.Millisecond):
			deadline = time.Now()
		}
	}
	dst.Close()
	<-done
	n := got.Load()
	recvTime := time.Duration(lastRead.Load() - start.UnixNano())
	b.ReportMetric(float64(sent)/sendTime.Seconds(), "sent/s")
	b.ReportMetric(float64(n)/recvTime.Seconds(), "recv/s")
	b.ReportMetric(float64(n)*benchSize/1e6/recvTime.Seconds(), "recvMB/s")
	b.ReportMetric(100*float64(sent-n)/float64(sent), "loss%")
	b.ReportMetric(0, "ns/op") // the per-batch time says little here
	st := src.Stats()
	if st.SendErrors > 0 {
		b.Errorf("send errors: %+v", st)
	}
	rs := dst.Stats()
	b.Logf("sender %d syscalls, %d GSO batches; receiver %d syscalls, %d GRO reads, %d kernel drops, buffers %d/%d",
		st.SyscallsOut, st.GSOBatches, rs.SyscallsIn, rs.GROReads, rs.RecvDropped, dst.Info().ReadBuffer, src.Info().WriteBuffer)
}

// BenchmarkPingPong measures the round trip of one 64-byte datagram
// between two sockets on 127.0.0.1 (an echo goroutine answers): ns/op is
// the mean RTT; p50-µs and p99-µs are percentiles.
func BenchmarkPingPong(b *testing.B) {
	for _, m := range benchModes {
		if m.name == "gso" || m.name == "sendmmsg+gro" {
			continue // same paths as others for single datagrams
		}
		b.Run(m.name, func(b *testing.B) {
			a := listen(b, "udp4", lo4, m.src)
			e := listen(b, "udp4", lo4, m.dst)
			done := make(chan struct{})
			go func() {
				defer close(done)
				in := newPackets(8, transport.MaxDatagram)
				for {
					k, err := e.ReadBatch(in)
					if err != nil {
						return
					}
					if _, err := e.WriteBatch(in[:k]); err != nil {
						return
					}
				}
			}()
			out := newPackets(1, 64)
			out[0].N, out[0].Addr = 64, e.LocalAddr()
			in := newPackets(1, transport.MaxDatagram)
			rtts := make([]time.Duration, 0, 1<<16)
			b.ReportAllocs()
			for b.Loop() {
				t0 := time.Now()
				if _, err := a.WriteBatch(out); err != nil {
					b.Fatal(err)
				}
				if _, err := a.ReadBatch(in); err != nil {
					b.Fatal(err)
				}
				if len(rtts) < cap(rtts) {
					rtts = append(rtts, time.Since(t0))
				}
			}
			e.Close()
			<-done
			slices.Sort(rtts)
			b.ReportMetric(float64(rtts[len(rtts)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(rtts[len(rtts)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}
