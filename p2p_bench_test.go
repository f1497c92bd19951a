package netmsg

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/coturntest"
	"github.com/netmsg-go/netmsg/internal/netnstest"
	"github.com/netmsg-go/netmsg/internal/udp"
	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

// benchConnect measures, over real sockets on 127.0.0.1 with an in-memory
// signaling hub, the time from the first SendMessageToUser to a peer known
// only by identity until that message arrives (rendezvous, certificate
// checks, ICE, and the first reliable message), with fresh Hosts each time.
func benchConnect(b *testing.B, turn []TURNServer) {
	benchConnectWith(b, func(j int, cfg Config) (*Host, error) {
		cfg.ListenAddr = netip.MustParseAddrPort("127.0.0.1:0")
		cfg.TURNServers, cfg.P2PRelayOnly = turn, turn != nil
		return NewHost(cfg)
	})
}

// benchConnectWith is benchConnect with Host j (0 connects to 1) made by
// mk from a Config holding its identity, signaling and accept callback.
func benchConnectWith(b *testing.B, mk func(j int, cfg Config) (*Host, error)) {
	var times []time.Duration
	for i := 0; b.Loop(); i++ {
		hub, _ := signaling.NewHub(signaling.HubConfig{})
		var hs []*Host
		for j := range 2 {
			id, _ := ParseIdentity(fmt.Sprintf("str:b%d", j))
			sc, _ := hub.Connect(id.String())
			var h *Host
			h, err := mk(j, Config{Identity: id, Signaling: sc,
				OnSessionRequest: func(p Identity) { h.Messages().AcceptSessionWithUser(p) }})
			if err != nil {
				b.Fatal(err)
			}
			hs = append(hs, h)
		}
		start := time.Now()
		hs[0].Messages().SendMessageToUser(hs[1].Identity(), []byte("hi"), SendReliable|SendNoNagle, 0)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		m, err := hs[1].Messages().Receive(ctx, 0)
		cancel()
		if err != nil {
			for j, h := range hs {
				h.mu.Lock()
				for _, hc := range h.conns {
					sel := hc.p2p.route.Selected()
					_, alloc := h.paths.Allocation()
					b.Logf("host %d conn server %v state %v end %v %s path %+v turn %v stats %+v hoststats %+v remoteID %d", j, hc.c.IsServer(), hc.c.State(), hc.c.EndReason(), hc.c.EndDebug(), sel, alloc, hc.p2p.route.Stats(), h.stats, hc.p2p.sess.RemoteID)
				}
				h.mu.Unlock()
			}
			b.Fatal(err)
		}
		times = append(times, time.Since(start))
		if d := time.Since(start); d > 100*time.Millisecond && os.Getenv("NETMSG_BENCH_SLOW") != "" {
			for j, h := range hs {
				h.mu.Lock()
				for _, hc := range h.conns {
					b.Logf("slow %v: host %d server %v agent %+v sess %+v host %+v", d, j, hc.c.IsServer(), hc.p2p.route.Stats(), hc.p2p.sess.Stats(), h.stats)
				}
				h.mu.Unlock()
			}
		}
		m.Release()
		for _, h := range hs {
			h.Close()
		}
	}
	slices.Sort(times)
	b.ReportMetric(float64(times[len(times)/2].Microseconds())/1000, "ms-p50")
	b.ReportMetric(float64(times[len(times)*99/100].Microseconds())/1000, "ms-p99")
}

func BenchmarkP2PConnectDirect(b *testing.B) { benchConnect(b, nil) }

func BenchmarkP2PConnectRelay(b *testing.B) {
	s, err := relay.NewServer(relay.Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"}, MaxAllocations: 100000, MaxAllocationsPerUser: -1, MaxAllocationsPerAddr: -1, AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	benchConnect(b, []TURNServer{{Addr: s.Addr(), Username: "u", Password: "p"}})
}

// benchConnectNetns is benchConnect between Hosts in two network
// namespaces joined through a router namespace (package netnstest), on
// their veth addresses: directly while the router forwards, and through
// coturn on the router when it does not (the host candidates blocked).
func benchConnectNetns(b *testing.B, relayed bool) {
	topo := netnstest.New(b)
	var turn []TURNServer
	if relayed {
		bin := coturntest.Binary(b)
		addr := netip.AddrPortFrom(netnstest.RouterA, 3478)
		// R's namespace is the only one this coturn's ports live in: a
		// wide relay port window, since coturn does not reuse a released
		// port at once and each connect takes two allocations (the
		// package's default window of 100 ports runs out after about 50
		// connects that take a few milliseconds each).
		args := append(coturntest.Args(addr, "u", "p"), "--min-port=49152", "--max-port=65535")
		cmd := topo.Command(topo.R, bin, args...)
		cmd.SysProcAttr = coturntest.ProcAttr()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }() // ours, by its PID
		if err := topo.Do(topo.A, func() error {
			if !coturntest.WaitSTUN(addr) {
				return fmt.Errorf("coturn does not answer at %v", addr)
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
		if err := topo.SetForwarding(false); err != nil {
			b.Fatal(err)
		}
		turn = []TURNServer{{Addr: addr, Username: "u", Password: "p"}}
	}
	benchConnectWith(b, func(j int, cfg Config) (*Host, error) {
		ns, ip := topo.A, netnstest.AddrA
		if j == 1 {
			ns, ip = topo.B, netnstest.AddrB
		}
		var pc *udp.Conn
		err := topo.Do(ns, func() error {
			uc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
			if err != nil {
				return err
			}
			pc, err = udp.New(uc, udp.Options{})
			return err
		})
		if err != nil {
			return nil, err
		}
		cfg.PacketConn, cfg.TURNServers = pc, turn
		return NewHost(cfg)
	})
}

// Run as root (network namespaces; coturn for the relayed one):
// go test -run '^$' -bench P2PConnectNetns -benchtime 200x .
func BenchmarkP2PConnectNetnsDirect(b *testing.B) { benchConnectNetns(b, false) }
func BenchmarkP2PConnectNetnsRelay(b *testing.B)  { benchConnectNetns(b, true) }
