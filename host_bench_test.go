package netmsg

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

// benchPair connects two Hosts over loopback UDP and returns the client's
// handle and the server's.
func benchPair(b testing.TB) (cli, srv *testPeer, c, s ConnHandle) {
	b.Helper()
	t := &testing.T{}
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	srv = newTestPeer(t, Config{ListenAddr: lo}, true)
	cli = newTestPeer(t, Config{ListenAddr: lo}, false)
	c, err := cli.Connect(srv.LocalAddr())
	if err != nil {
		b.Fatal(err)
	}
	end := time.Now().Add(5 * time.Second)
	for {
		st1, _ := cli.lastState(c)
		if st1 == StateConnected {
			for _, ev := range srv.seen() {
				if ev.Info.State == StateConnected {
					return cli, srv, c, ev.Conn
				}
			}
		}
		if time.Now().After(end) {
			b.Fatal("no connection")
		}
		time.Sleep(time.Millisecond)
	}
}

// benchStream sends size-byte reliable messages from one Host to another
// over loopback UDP in one process (encryption on) and reports the
// receiver's rate. The two-process workloads of ../shared/BENCH.md are in
// the bench module; this is the quick in-process figure and the
// allocation check of the send and receive paths.
func benchStream(b *testing.B, size int) { benchStreamRelease(b, size, true) }

func benchStreamRelease(b *testing.B, size int, release bool) {
	cli, srv, c, s := benchPair(b)
	defer cli.Close()
	defer srv.Close()
	msg := make([]byte, size)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	var got int
	recv := func() {
		for _, m := range srv.ReceiveMessagesOnConnection(s, 256) {
			got++
			if release {
				m.Release()
			}
		}
	}
	sent := 0
	cpu0 := processCPU()
	for b.Loop() {
		for {
			_, err := cli.SendMessageToConnection(c, msg, SendReliable)
			if err == nil {
				break
			}
			recv()
			time.Sleep(20 * time.Microsecond)
		}
		sent++
		if sent%64 == 0 {
			recv()
		}
	}
	cli.FlushMessagesOnConnection(c)
	end := time.Now().Add(30 * time.Second)
	for got < sent && time.Now().Before(end) {
		recv()
		time.Sleep(50 * time.Microsecond)
	}
	if got != sent {
		b.Fatalf("received %d of %d", got, sent)
	}
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "msgs/s")
	// CPU time per message, both Hosts and the benchmark's loop: on a
	// shared machine a steadier figure than the rate, which falls
	// whenever the process waits for a core.
	if cpu := processCPU() - cpu0; cpu > 0 {
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(sent), "cpu-ns/msg")
	}
	// Packets the sender took for lost and sent again: on loopback,
	// nothing is lost unless a Host writes a connection's packets out of
	// order or the socket's buffer overflows.
	if hc := cli.lookupConn(c); hc != nil {
		hc.mu.Lock()
		st := hc.c.Stats(time.Now())
		hc.mu.Unlock()
		b.ReportMetric(float64(st.PacketsRetransmitted)/float64(st.PacketsSent), "retx/pkt")
	}
}

func BenchmarkHostLoopback64(b *testing.B)   { benchStream(b, 64) }
func BenchmarkHostLoopback1200(b *testing.B) { benchStream(b, 1200) }

// BenchmarkHostLoopback64NoRelease is BenchmarkHostLoopback64 with a
// receiver that never calls Release: the difference in allocs/op and B/op
// is what leaving messages to the garbage collector costs (one Message
// each, and its share of the arena its payload was copied into).
func BenchmarkHostLoopback64NoRelease(b *testing.B)   { benchStreamRelease(b, 64, false) }
func BenchmarkHostLoopback1200NoRelease(b *testing.B) { benchStreamRelease(b, 1200, false) }

// BenchmarkHostPingPong measures the round trip of a 64-byte reliable
// message (SendNoNagle) between two Hosts over loopback UDP in one process;
// ns/op is one round trip.
func BenchmarkHostPingPong(b *testing.B) {
	cli, srv, c, s := benchPair(b)
	defer cli.Close()
	defer srv.Close()
	ctx := context.Background()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			ms, err := srv.ReceiveBatch(ctx, s, 16)
			if err != nil {
				return
			}
			for _, m := range ms {
				srv.SendMessageToConnection(s, m.Payload, SendReliableNoNagle)
				m.Release()
			}
		}
	}()
	msg := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := cli.SendMessageToConnection(c, msg, SendReliableNoNagle); err != nil {
			b.Fatal(err)
		}
		ms, err := cli.ReceiveBatch(ctx, c, 16)
		if err != nil {
			b.Fatal(err)
		}
		for _, m := range ms {
			m.Release()
		}
	}
	srv.Close()
	<-done
}
