package netmsg

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/netsim"
)

// connectOver opens a server (listening, accepting every connection) and a
// client Host on nw and returns them with the client's connection to the
// server.
func connectOver(t *testing.T, nw *netsim.Network) (srv, cli *testPeer, c ConnHandle, srvAddr netip.AddrPort) {
	t.Helper()
	srvAddr, cliAddr := netip.MustParseAddrPort("10.0.0.1:27015"), netip.MustParseAddrPort("10.0.0.2:27015")
	se, err := nw.Listen(srvAddr)
	if err != nil {
		t.Fatal(err)
	}
	ce, err := nw.Listen(cliAddr)
	if err != nil {
		t.Fatal(err)
	}
	srv = newTestPeer(t, Config{PacketConn: se}, true)
	cli = newTestPeer(t, Config{PacketConn: ce}, false)
	if c, err = cli.Connect(srvAddr); err != nil {
		t.Fatal(err)
	}
	return srv, cli, c, srvAddr
}

// waitConnected waits (fake time) until c is connected, up to limit, and
// returns how long that took.
func waitConnected(t *testing.T, p *testPeer, c ConnHandle, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		if st, _ := p.lastState(c); st == StateConnected {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			st, info := p.lastState(c)
			t.Fatalf("not connected after %v: %v %+v", limit, st, info)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConnectTimeAtLoss: 300 connects, each over its own in-memory network
// (5 ms each way, 10% of the datagrams lost each way, seeds 1-300), in
// fake time. A lost handshake datagram costs a retry 500 ms later
// (connectRetryInterval); a retry after a lost connect OK (or connect
// request) is a connect request with the challenge the client holds, one
// round trip, and the server answers a client it accepted with connect OK
// again, so the slowest 1% connect within the third retry (1.5 s and a
// round trip; under 1.8 s). With every retry a new challenge (two round
// trips) p99 was the fourth retry, 2.04 s, on these seeds.
func TestConnectTimeAtLoss(t *testing.T) {
	bubble(t, func(t *testing.T) {
		var times []time.Duration
		for seed := range uint64(300) {
			nw, _ := netsim.New(netsim.Config{Seed: seed + 1, Link: netsim.LinkConfig{Delay: 5 * time.Millisecond, LossPercent: 10}})
			srv, cli, c, _ := connectOver(t, nw)
			times = append(times, waitConnected(t, cli, c, 10*time.Second))
			cli.Close()
			srv.Close()
			nw.Close()
		}
		slices.Sort(times)
		p50, p99 := times[len(times)/2], times[len(times)*99/100]
		t.Logf("connect time at 10%% loss: p50 %v, p99 %v, max %v", p50, p99, times[len(times)-1])
		if p99 > 1800*time.Millisecond {
			t.Errorf("p99 connect time %v, want at most 1.8 s", p99)
		}
	})
}

// TestConnectRetryChallengeToConn: a client whose connect OKs are all lost
// for 3 s retries with its challenge's connect request, then (the
// challenge too old) with a challenge request; the server hands that to
// the connection it accepted, which answers with connect OK (as GNS's
// Received_ChallengeOrConnectRequest), so the server answered one
// challenge request only, and the client connects.
func TestConnectRetryChallengeToConn(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 5 * time.Millisecond}})
		defer nw.Close()
		lost := time.Now().Add(3 * time.Second)
		nw.SetDefault(netsim.LinkConfig{Delay: 5 * time.Millisecond, Drop: func(_ uint64, b []byte) bool {
			return len(b) > 0 && b[0] == byte(pb.UDPMsgID_UDP_MSG_CONNECT_OK) && time.Now().Before(lost)
		}})
		srv, cli, c, _ := connectOver(t, nw)
		defer srv.Close()
		defer cli.Close()
		took := waitConnected(t, cli, c, 10*time.Second)
		if took < 3*time.Second || took > 3600*time.Millisecond {
			t.Errorf("connected after %v, want at the first retry after 3 s", took)
		}
		if n := srv.Stats().ChallengesAnswered; n != 1 {
			t.Errorf("the server answered %d challenge requests, want 1 (the others to the accepted connection)", n)
		}
	})
}
