package workload_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/bench/peer"
	"github.com/netmsg-go/netmsg/bench/workload"
)

// runPair runs the server and the client of s over p in this process, on
// 127.0.0.1, shortened.
func runPair(t *testing.T, p peer.Peer, s workload.Spec) workload.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := p.Listen(ctx, "127.0.0.1:0", s.Options())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	srvErr := make(chan error, 1)
	go func() { srvErr <- workload.Serve(ctx, p, l, s) }()
	res, err := workload.Run(ctx, p, l.Addr(), s)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	if err := <-srvErr; err != nil {
		t.Fatalf("server: %v", err)
	}
	if res.Error != "" {
		t.Fatalf("run failed: %s", res.Error)
	}
	return res
}

func TestPeers(t *testing.T) {
	for _, name := range []string{"raw", "kcp", "quic", "enet", "netmsg-msgs", "netmsg-msgs-norelease", "netmsg-msgs-batch"} {
		p, err := peer.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if p.Caps().Unavailable != "" {
			continue // TestENet says whether that may skip
		}
		t.Run(name+"/W1", func(t *testing.T) {
			s, _ := workload.Lookup("W1")
			s.Duration = workload.WindowDelay + 400*time.Millisecond
			r := runPair(t, p, s)
			if r.Sent == 0 || r.WindowMessages == 0 || r.MsgsPerSec <= 0 {
				t.Fatalf("no figures: %+v", r)
			}
			if p.Caps().Reliable && (r.Received != r.Sent || r.LostPct != 0) {
				t.Fatalf("reliable peer: sent %d, received %d", r.Sent, r.Received)
			}
			t.Logf("%s W1: %.0f msg/s, %d sent, %.2f%% lost", name, r.MsgsPerSec, r.Sent, r.LostPct)
		})
		t.Run(name+"/W4", func(t *testing.T) {
			s, _ := workload.Lookup("W4")
			s.Warmup, s.Rounds = 100, 1000
			r := runPair(t, p, s)
			if r.Rounds != 1000 || r.RTTP50us <= 0 || r.RTTP99us < r.RTTP50us {
				t.Fatalf("bad figures: %+v", r)
			}
			t.Logf("%s W4: p50 %.1f µs, p99 %.1f µs", name, r.RTTP50us, r.RTTP99us)
		})
	}
}

// enetPeer returns the ENet peer, skipping the test when this build has
// none (cgo off or -tags noenet) and NETMSG_REQUIRE_ENET is unset.
func enetPeer(t *testing.T) peer.Peer {
	t.Helper()
	p, err := peer.Lookup("enet")
	if err != nil {
		t.Fatal(err)
	}
	if why := p.Caps().Unavailable; why != "" {
		if os.Getenv("NETMSG_REQUIRE_ENET") != "" {
			t.Fatalf("enet: %s, and NETMSG_REQUIRE_ENET is set", why)
		}
		t.Skip("enet: " + why)
	}
	return p
}

// TestENet runs the ENet adapter briefly on every kind of workload: W1
// (reliable small), W3 (256 KiB messages, fragmented by ENet), W4
// (ping-pong), W5 (unreliable, reliable end marker) and W6a (W2 at 10%
// fake loss each way, which ENet's retransmissions must repair).
func TestENet(t *testing.T) {
	p := enetPeer(t)
	short := workload.WindowDelay + 300*time.Millisecond
	for _, id := range []string{"W1", "W3", "W5", "W6a"} {
		t.Run(id, func(t *testing.T) {
			s, _ := workload.Lookup(id)
			s.Duration = short
			r := runPair(t, p, s)
			if r.Sent == 0 || r.WindowMessages == 0 || r.MsgsPerSec <= 0 {
				t.Fatalf("no figures: %+v", r)
			}
			if !s.Unreliable && (r.Received != r.Sent || r.LostPct != 0) {
				t.Fatalf("reliable: sent %d, received %d", r.Sent, r.Received)
			}
			if s.Unreliable && r.Received > r.Sent {
				t.Fatalf("unreliable: received %d of %d sent", r.Received, r.Sent)
			}
			t.Logf("enet %s: %.0f msg/s, %.1f MB/s, %d sent, %.2f%% lost", id, r.MsgsPerSec, r.MBPerSec, r.Sent, r.LostPct)
		})
	}
	t.Run("W4", func(t *testing.T) {
		s, _ := workload.Lookup("W4")
		s.Warmup, s.Rounds = 100, 1000
		r := runPair(t, p, s)
		if r.Rounds != 1000 || r.RTTP50us <= 0 || r.RTTP99us < r.RTTP50us {
			t.Fatalf("bad figures: %+v", r)
		}
		t.Logf("enet W4: p50 %.1f µs, p99 %.1f µs", r.RTTP50us, r.RTTP99us)
	})
}

// TestENetUnavailable checks that a build without ENet reports it.
func TestENetUnavailable(t *testing.T) {
	p, _ := peer.Lookup("enet")
	s, _ := workload.Lookup("W1")
	if why := p.Caps().Unavailable; why != "" && workload.Unsupported(p.Caps(), s) != why {
		t.Fatalf("Unsupported = %q, want %q", workload.Unsupported(p.Caps(), s), why)
	}
}

// TestNetmsgMsgs runs the netmsg Messages adapter's unreliable (W5) and
// lossy (W6a, FakeSend) workloads briefly; TestPeers runs W1 and W4 over
// each of its receivers.
func TestNetmsgMsgs(t *testing.T) {
	p, err := peer.Lookup("netmsg-msgs")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"W5", "W6a"} {
		t.Run(id, func(t *testing.T) {
			s, _ := workload.Lookup(id)
			s.Duration = workload.WindowDelay + 300*time.Millisecond
			r := runPair(t, p, s)
			if r.Sent == 0 || r.WindowMessages == 0 || r.Received > r.Sent {
				t.Fatalf("bad figures: %+v", r)
			}
			if !s.Unreliable && r.Received != r.Sent {
				t.Fatalf("reliable: sent %d, received %d", r.Sent, r.Received)
			}
			t.Logf("netmsg-msgs %s: %.0f msg/s, %.1f MB/s, %.2f%% lost", id, r.MsgsPerSec, r.MBPerSec, r.LostPct)
		})
	}
}

// TestQUICDatagrams runs a short W5 over quic-go (the only peer here with
// an unreliable mode besides raw UDP).
func TestQUICDatagrams(t *testing.T) {
	p, _ := peer.Lookup("quic")
	s, _ := workload.Lookup("W5")
	s.Duration = workload.WindowDelay + 300*time.Millisecond
	r := runPair(t, p, s)
	if r.Received == 0 || r.Received > r.Sent {
		t.Fatalf("bad counts: %+v", r)
	}
}

func TestUnsupported(t *testing.T) {
	kcp, _ := peer.Lookup("kcp")
	raw, _ := peer.Lookup("raw")
	w5, _ := workload.Lookup("W5")
	w3, _ := workload.Lookup("W3")
	if workload.Unsupported(kcp.Caps(), w5) != "no unreliable mode" {
		t.Error("kcp W5 should be unsupported")
	}
	if workload.Unsupported(raw.Caps(), w3) == "" {
		t.Error("raw W3 should be unsupported (256 KiB > one datagram)")
	}
}

func TestPercentile(t *testing.T) {
	v := []int{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if got := workload.Percentile(v, 50); got != 5 {
		t.Errorf("p50 = %d, want 5", got)
	}
	if got := workload.Percentile(v, 99); got != 10 {
		t.Errorf("p99 = %d, want 10", got)
	}
}
