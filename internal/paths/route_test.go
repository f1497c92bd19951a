package paths

import (
	"bytes"
	"log/slog"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/netmsg-go/netmsg/internal/ice"
	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/relay"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// signal gives each Route the other's credentials and the local
// candidates keep lets through, as the rendezvous would.
func signal(a, b *owner, ra, rb *Route, keep func(ice.Candidate) bool) {
	a.mu.Lock()
	b.mu.Lock()
	defer a.mu.Unlock()
	defer b.mu.Unlock()
	ra.SetRemoteCredentials(rb.Ufrag(), rb.Password())
	rb.SetRemoteCredentials(ra.Ufrag(), ra.Password())
	for _, c := range ra.LocalCandidates() {
		if keep(c) {
			rb.AddRemoteCandidate(c.String())
		}
	}
	for _, c := range rb.LocalCandidates() {
		if keep(c) {
			ra.AddRemoteCandidate(c.String())
		}
	}
}

func all(ice.Candidate) bool { return true }

// gnsDatagram is a datagram that classifies as GNS data, numbered i.
func gnsDatagram(i int, n int) []byte {
	b := make([]byte, n)
	b[0], b[1], b[2] = 0x80, byte(i), byte(i>>8)
	return b
}

// exchange sends n datagrams each way on the Routes' paths and checks they
// all arrive, from the expected addresses.
func exchange(t *testing.T, a, b *owner, ra, rb *Route, n int, fromA, fromB netip.AddrPort, relayed bool) {
	t.Helper()
	for i := range n {
		a.mu.Lock()
		if !ra.Send(epWriter{a.ep}, gnsDatagram(i, 1000)) {
			t.Fatalf("a could not send %d", i)
		}
		a.mu.Unlock()
		b.mu.Lock()
		if !rb.Send(epWriter{b.ep}, gnsDatagram(i, 300)) {
			t.Fatalf("b could not send %d", i)
		}
		b.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	time.Sleep(time.Second)
	for _, c := range []struct {
		o    *owner
		from netip.AddrPort
		size int
	}{{b, fromA, 1000}, {a, fromB, 300}} {
		got := c.o.received()
		if len(got) != n {
			t.Fatalf("%v received %d datagrams, want %d", c.o.ep.LocalAddr(), len(got), n)
		}
		for i, in := range got {
			if in.From != c.from || in.Relayed != relayed || in.Kind != KindGNSData || !bytes.Equal(in.B, gnsDatagram(i, c.size)) {
				t.Fatalf("datagram %d: from %v relayed %v kind %v, %d bytes; want from %v relayed %v", i, in.From, in.Relayed, in.Kind, len(in.B), c.from, relayed)
			}
		}
	}
}

// TestRouteDirect: two Routes on one network select the direct path
// (a RouteSelected event on each side) and datagrams go both ways on it.
func TestRouteDirect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 5 * time.Millisecond}})
		defer nw.Close()
		a := newOwner(t, nw, "10.0.0.1:1000", Config{})
		defer a.close()
		b := newOwner(t, nw, "10.0.0.2:1000", Config{})
		defer b.close()
		ra, rb := a.newRoute(0x1111, true), b.newRoute(0x2222, false)
		signal(a, b, ra, rb, all)
		time.Sleep(2 * time.Second)
		for _, c := range []struct {
			o    *owner
			id   uint32
			peer netip.AddrPort
		}{{a, 0x1111, b.ep.LocalAddr()}, {b, 0x2222, a.ep.LocalAddr()}} {
			evs := c.o.routeEvents(c.id)
			if len(evs) != 1 || evs[0].Kind != RouteSelected || evs[0].Path.Remote != c.peer || evs[0].Path.Relayed || evs[0].Old.Valid {
				t.Fatalf("%v: events %+v", c.o.ep.LocalAddr(), evs)
			}
		}
		exchange(t, a, b, ra, rb, 50, a.ep.LocalAddr(), b.ep.LocalAddr(), false)

		// Closed: a Route's checks are dropped and counted.
		a.mu.Lock()
		ra.Close()
		a.mu.Unlock()
		before := a.p.Stats().NoRoute
		time.Sleep(5 * time.Second) // b's consent checks go on
		if a.p.Stats().NoRoute == before {
			t.Fatal("checks for a closed route not counted")
		}
	})
}

// turnNet is a network with a TURN server (package relay) at
// 198.51.100.20:3478, user u password p.
func turnNet(t *testing.T) (*netsim.Network, *relay.Server, TURNServer) {
	nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 5 * time.Millisecond}})
	rs, err := relay.NewServer(relay.Config{Logger: slog.New(slog.DiscardHandler), ListenPacket: nw.ListenPacket, ListenAddr: "198.51.100.20:3478", RelayIP: netip.MustParseAddr("198.51.100.20"), Users: map[string]string{"u": "p"}})
	if err != nil {
		t.Fatal(err)
	}
	return nw, rs, TURNServer{Addr: rs.Addr(), Username: "u", Password: "p"}
}

// waitAllocation waits for o's allocation, and checks the event for it.
func waitAllocation(t *testing.T, o *owner) Allocation {
	t.Helper()
	for range 100 {
		if al, ok := o.p.Allocation(); ok {
			time.Sleep(50 * time.Millisecond) // the tick takes the event
			evs := o.events()
			if len(evs) != 1 || evs[0].Candidate.Type != ice.Relay || evs[0].Candidate.Addr != al.Relayed {
				t.Fatalf("events %+v for allocation %+v", evs, al)
			}
			return al
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("no allocation")
	return Allocation{}
}

// TestRouteTURN: two relay-only Paths allocate on a TURN server (package
// relay on the in-memory network), their Routes select the relayed path
// and datagrams go both ways, as ChannelData on the fast path once pion
// bound the channels.
func TestRouteTURN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, rs, srv := turnNet(t)
		defer nw.Close()
		defer rs.Close()
		cfg := Config{TURNServers: []TURNServer{srv}, Allow: ice.EnableRelay}
		a := newOwner(t, nw, "10.0.0.1:1000", cfg)
		defer a.close()
		b := newOwner(t, nw, "10.0.0.2:1000", cfg)
		defer b.close()
		ra, rb := a.newRoute(0x1111, true), b.newRoute(0x2222, false)
		alA, alB := waitAllocation(t, a), waitAllocation(t, b)
		if alA.Server != srv.Addr || alA.Index != 0 {
			t.Fatalf("allocation %+v", alA)
		}
		signal(a, b, ra, rb, all)
		time.Sleep(3 * time.Second)
		for _, c := range []struct {
			o    *owner
			id   uint32
			peer netip.AddrPort
		}{{a, 0x1111, alB.Relayed}, {b, 0x2222, alA.Relayed}} {
			evs := c.o.routeEvents(c.id)
			if len(evs) != 1 || evs[0].Kind != RouteSelected || !evs[0].Path.Relayed || evs[0].Path.Remote != c.peer {
				t.Fatalf("%v: events %+v, want relayed to %v", c.o.ep.LocalAddr(), evs, c.peer)
			}
		}
		exchange(t, a, b, ra, rb, 100, alA.Relayed, alB.Relayed, true)
		for _, o := range []*owner{a, b} {
			st := o.p.Stats()
			if st.ChannelDataIn == 0 || st.ChannelDataOut == 0 {
				t.Errorf("%v: %d in and %d out as ChannelData on the fast path, want some each way (%+v)", o.ep.LocalAddr(), st.ChannelDataIn, st.ChannelDataOut, st)
			}
		}
	})
}

// TestRouteChangedAndLost: Routes that first know only each other's
// relayed candidates select the relayed path; once the direct candidates
// are signaled the controlling side moves to the direct path
// (RouteChanged on both sides); an ICE restart loses it (RouteLost).
func TestRouteChangedAndLost(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, rs, srv := turnNet(t)
		defer nw.Close()
		defer rs.Close()
		cfg := Config{TURNServers: []TURNServer{srv}}
		a := newOwner(t, nw, "10.0.0.1:1000", cfg)
		defer a.close()
		b := newOwner(t, nw, "10.0.0.2:1000", cfg)
		defer b.close()
		ra, rb := a.newRoute(0x1111, true), b.newRoute(0x2222, false)
		waitAllocation(t, a)
		alB := waitAllocation(t, b)
		signal(a, b, ra, rb, func(c ice.Candidate) bool { return c.Type == ice.Relay })
		time.Sleep(3 * time.Second)
		evA := a.routeEvents(0x1111)
		if len(evA) != 1 || evA[0].Kind != RouteSelected || evA[0].Path.Remote != alB.Relayed {
			t.Fatalf("a: %+v", evA)
		}
		b.routeEvents(0x2222)
		signal(a, b, ra, rb, func(c ice.Candidate) bool { return c.Type == ice.Host })
		time.Sleep(5 * time.Second)
		for _, c := range []struct {
			o    *owner
			id   uint32
			peer netip.AddrPort
		}{{a, 0x1111, b.ep.LocalAddr()}, {b, 0x2222, a.ep.LocalAddr()}} {
			evs := c.o.routeEvents(c.id)
			if len(evs) == 0 {
				t.Fatalf("%v: no change", c.o.ep.LocalAddr())
			}
			last := evs[len(evs)-1]
			if last.Kind != RouteChanged || last.Path.Remote != c.peer || last.Path.Relayed || !last.Old.Valid {
				t.Fatalf("%v: events %+v, want a change to direct %v", c.o.ep.LocalAddr(), evs, c.peer)
			}
		}
		a.mu.Lock()
		if _, err := ra.Restart(true); err != nil {
			t.Fatal(err)
		}
		a.mu.Unlock()
		time.Sleep(100 * time.Millisecond)
		evs := a.routeEvents(0x1111)
		if len(evs) != 1 || evs[0].Kind != RouteLost || evs[0].Path.Valid || !evs[0].Old.Valid {
			t.Fatalf("after restart: %+v", evs)
		}
		a.mu.Lock()
		if a.routes[0x1111].Send(epWriter{a.ep}, gnsDatagram(0, 10)) {
			t.Fatal("sent without a path")
		}
		a.mu.Unlock()
	})
}

// TestCheckRelay: CheckRelay leaves an allocation its server still has;
// once that server has stopped, it drops the allocation within
// probeTimeout and allocates on the other server at once, reported as a
// new relayed candidate.
func TestCheckRelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, rs0, srv0 := turnNet(t)
		defer nw.Close()
		rs1, err := relay.NewServer(relay.Config{Logger: slog.New(slog.DiscardHandler), ListenPacket: nw.ListenPacket, ListenAddr: "198.51.100.21:3478", RelayIP: netip.MustParseAddr("198.51.100.21"), Users: map[string]string{"u": "p"}})
		if err != nil {
			t.Fatal(err)
		}
		srv1 := TURNServer{Addr: rs1.Addr(), Username: "u", Password: "p"}
		servers := []*relay.Server{rs0, rs1}
		defer func() {
			for _, rs := range servers {
				if rs != nil {
					rs.Close()
				}
			}
		}()
		a := newOwner(t, nw, "10.0.0.1:1000", Config{TURNServers: []TURNServer{srv0, srv1}, Allow: ice.EnableRelay})
		defer a.close()
		a.newRoute(0x1111, true)
		al := waitAllocation(t, a)
		time.Sleep(time.Second) // the other server's allocation is made and let go

		a.p.CheckRelay(time.Now())
		time.Sleep(2 * probeTimeout)
		if st := a.p.Stats(); st.RelayChecks != 1 || st.AllocationsLost != 0 {
			t.Fatalf("a live allocation checked: %+v", st)
		}
		if now, _ := a.p.Allocation(); now != al {
			t.Fatalf("allocation %+v, was %+v", now, al)
		}
		a.p.CheckRelay(time.Now()) // within probeEvery: not checked again
		if st := a.p.Stats(); st.RelayChecks != 1 {
			t.Fatalf("checked again within probeEvery: %+v", st)
		}

		servers[al.Index].Close()
		servers[al.Index] = nil
		time.Sleep(probeEvery)
		stopped := time.Now()
		a.p.CheckRelay(stopped)
		time.Sleep(probeTimeout + 100*time.Millisecond)
		if st := a.p.Stats(); st.RelayChecks != 2 || st.AllocationsLost != 1 {
			t.Fatalf("the allocation on the stopped server: %+v", st)
		}
		got, ok := a.p.Allocation()
		for !ok && time.Since(stopped) < 10*time.Second {
			time.Sleep(10 * time.Millisecond)
			got, ok = a.p.Allocation()
		}
		if !ok || got.Index == al.Index {
			t.Fatalf("after the loss: allocation %+v (%v), was %+v", got, ok, al)
		}
		t.Logf("a new allocation on server %d %v after the check", got.Index, time.Since(stopped))
		time.Sleep(100 * time.Millisecond)
		evs := a.events()
		if len(evs) != 1 || evs[0].Candidate.Type != ice.Relay || evs[0].Candidate.Addr != got.Relayed {
			t.Fatalf("events %+v, want the new relayed candidate %v", evs, got.Relayed)
		}
		if st := a.p.Stats(); st.Reallocations != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}
