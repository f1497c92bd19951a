package ice

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/stun/v4"
)

// simNode is an agent on the simulated network: at addr, with a TURN
// allocation at relay (when valid), seen from outside at public (when
// valid: a full-cone NAT).
type simNode struct {
	name   string
	a      *Agent
	addr   netip.AddrPort
	relay  netip.AddrPort
	public netip.AddrPort
}

type inflight struct {
	at    time.Time
	to    netip.AddrPort
	from  netip.AddrPort
	b     []byte
	order uint64
}

// simNet delivers datagrams between agents in fake time (synctest) with
// loss, duplication and random delays (which reorder), and answers
// binding requests to its STUN servers.
type simNet struct {
	t        *testing.T
	rng      *rand.Rand
	loss     float64
	dup      float64
	maxDelay time.Duration
	nodes    []*simNode
	stun     map[netip.AddrPort]bool
	blocked  func(from, to netip.AddrPort) bool // on the addresses as seen on the wire
	// delay, when set, gives a path's one-way delay (on the addresses as
	// seen on the wire) instead of the random one.
	delay     func(from, to netip.AddrPort) time.Duration
	q         []inflight
	n         uint64
	sent      []simSent
	stunAsked int
}

// simSent is a datagram an agent sent, and when.
type simSent struct {
	from *simNode
	d    Datagram
	at   time.Time
}

func newSimNet(t *testing.T, seed uint64) *simNet {
	return &simNet{t: t, rng: rand.New(rand.NewPCG(seed, 99)), maxDelay: 5 * time.Millisecond, stun: map[netip.AddrPort]bool{}}
}

func (s *simNet) add(name string, a *Agent, addr string) *simNode {
	n := &simNode{name: name, a: a, addr: netip.MustParseAddrPort(addr)}
	s.nodes = append(s.nodes, n)
	return n
}

// wireFrom is where n's datagram appears to come from.
func (n *simNode) wireFrom(relay bool) netip.AddrPort {
	switch {
	case relay:
		return n.relay
	case n.public.IsValid():
		return n.public
	}
	return n.addr
}

func (s *simNet) send(from *simNode, d Datagram, now time.Time) {
	s.sent = append(s.sent, simSent{from, d, now})
	src := from.wireFrom(d.Relay)
	if !src.IsValid() {
		s.t.Fatalf("%s sent through a relay it does not have", from.name)
	}
	if s.blocked != nil && s.blocked(src, d.To) {
		return
	}
	copies := 1
	if s.rng.Float64() < s.dup {
		copies = 2
	}
	for range copies {
		if s.rng.Float64() < s.loss {
			continue
		}
		delay := time.Millisecond + time.Duration(s.rng.Int64N(int64(s.maxDelay)))
		if s.delay != nil {
			delay = s.delay(src, d.To)
		}
		s.n++
		s.q = append(s.q, inflight{at: now.Add(delay), to: d.To, from: src, b: append([]byte(nil), d.B...), order: s.n})
	}
}

func (s *simNet) deliver(f inflight, now time.Time) {
	if s.stun[f.to] {
		s.stunAsked++
		if r, ok := BindingResponse(f.b, f.from); ok {
			s.q = append(s.q, inflight{at: now.Add(time.Millisecond), to: f.from, from: f.to, b: r})
		}
		return
	}
	for _, n := range s.nodes {
		relay := n.relay.IsValid() && f.to == n.relay
		if relay || f.to == n.addr || (n.public.IsValid() && f.to == n.public) {
			n.a.HandleSTUNVia(now, f.from, relay, f.b)
			return
		}
	}
}

// run drives the network for d of fake time, sleeping to the agents' next
// wake each round; every loop is bounded.
func (s *simNet) run(d time.Duration) {
	end := time.Now().Add(d)
	for rounds := 0; time.Now().Before(end); rounds++ {
		if rounds > 200000 {
			s.t.Fatal("simulation does not settle")
		}
		now := time.Now()
		for i := 0; i < len(s.q); {
			if f := s.q[i]; !f.at.After(now) {
				s.q = append(s.q[:i], s.q[i+1:]...)
				s.deliver(f, now)
				continue
			}
			i++
		}
		for _, n := range s.nodes {
			for range 1000 {
				dg, ok := n.a.Poll(now)
				if !ok {
					break
				}
				s.send(n, dg, now)
			}
		}
		next := end
		for _, n := range s.nodes {
			if w := n.a.NextWake(); !w.IsZero() && w.Before(next) {
				next = w
			}
		}
		for _, f := range s.q {
			if f.at.Before(next) {
				next = f.at
			}
		}
		time.Sleep(max(next.Sub(now), time.Millisecond))
	}
}

func newAgent(t *testing.T, connID uint32, controlling bool, seed byte, mod func(*Config)) *Agent {
	t.Helper()
	pwd, _ := NewPassword(newRand(seed))
	cfg := Config{LocalUfrag: Ufrag(connID), LocalPwd: pwd, Controlling: controlling, Rand: newRand(seed + 100)}
	if mod != nil {
		mod(&cfg)
	}
	a, err := NewAgent(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// introduce gives each agent the other's credentials.
func introduce(x, y *Agent) {
	x.SetRemoteCredentials(y.cfg.LocalUfrag, y.cfg.LocalPwd)
	y.SetRemoteCredentials(x.cfg.LocalUfrag, x.cfg.LocalPwd)
}

// signal passes every local candidate x announced to y through its string
// form, as the rendezvous messages carry them.
func signal(t *testing.T, x, y *Agent) {
	for _, e := range x.Events() {
		if e.Kind != EventLocalCandidate {
			continue
		}
		c, err := ParseCandidate(e.Candidate.String())
		if err != nil {
			t.Fatal(err)
		}
		y.AddRemoteCandidate(c)
	}
}

// TestSimConnect: under loss, duplication and reordering both agents select
// the pair that works; only the controlling side (the one that accepted
// the connection) sends USE-CANDIDATE.
func TestSimConnect(t *testing.T) {
	for _, tc := range []struct {
		name      string
		loss, dup float64
	}{{"clean", 0, 0}, {"lossy", 0.2, 0.1}, {"duplicating", 0.05, 0.5}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := newSimNet(t, 1)
				s.loss, s.dup, s.maxDelay = tc.loss, tc.dup, 30*time.Millisecond
				acc := s.add("acceptor", newAgent(t, 0x1234, true, 1, nil), "10.0.0.1:1000")
				ini := s.add("initiator", newAgent(t, 0x5678, false, 2, nil), "10.0.0.2:2000")
				introduce(acc.a, ini.a)
				acc.a.AddHostCandidates([]netip.AddrPort{acc.addr, netip.MustParseAddrPort("192.168.7.7:1000")})
				ini.a.AddHostCandidates([]netip.AddrPort{netip.MustParseAddrPort("172.16.9.9:2000"), ini.addr})
				signal(t, acc.a, ini.a)
				signal(t, ini.a, acc.a)
				start := time.Now()
				s.run(10 * time.Second)
				for _, x := range []struct{ n, peer *simNode }{{acc, ini}, {ini, acc}} {
					got, ok := x.n.a.Selected()
					if !ok || got != x.peer.addr {
						t.Fatalf("%s selected %v %v", x.n.name, got, ok)
					}
				}
				for _, e := range s.sent {
					m := &stun.Message{Raw: e.d.B}
					if m.Decode() == nil && m.Contains(stun.AttrUseCandidate) && e.from != acc {
						t.Fatalf("%s sent USE-CANDIDATE", e.from.name)
					}
				}
				var sel int
				for _, e := range acc.a.Events() {
					if e.Kind == EventSelected {
						sel++
					}
				}
				if sel != 1 {
					t.Errorf("%d selection events", sel)
				}
				t.Logf("%s: %d datagrams in %v", tc.name, len(s.sent), time.Since(start))
			})
		})
	}
}

// TestSimRoleConflict: both sides think they control (or both that they
// are controlled); the tiebreakers settle it and they connect.
func TestSimRoleConflict(t *testing.T) {
	for _, both := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			s := newSimNet(t, 2)
			s.loss = 0.1
			x := s.add("x", newAgent(t, 1, both, 3, nil), "10.0.0.1:1")
			y := s.add("y", newAgent(t, 2, both, 4, nil), "10.0.0.2:2")
			introduce(x.a, y.a)
			x.a.AddRemoteCandidate(NewCandidate(Host, y.addr, netip.AddrPort{}))
			y.a.AddRemoteCandidate(NewCandidate(Host, x.addr, netip.AddrPort{}))
			s.run(5 * time.Second)
			if x.a.Controlling() == y.a.Controlling() {
				t.Fatalf("both controlling=%v: roles not settled", both)
			}
			// RFC 8445: the larger tiebreaker controls.
			if (x.a.cfg.Tiebreaker > y.a.cfg.Tiebreaker) != x.a.Controlling() {
				t.Errorf("the smaller tiebreaker controls")
			}
			if _, ok := x.a.Selected(); !ok {
				t.Fatal("x selected nothing")
			}
			if _, ok := y.a.Selected(); !ok {
				t.Fatal("y selected nothing")
			}
		})
	}
}

// TestSimAllFail: with nothing reachable the failure event comes before
// GNS's initial connection timeout (10 s), and a failed agent sleeps.
func TestSimAllFail(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimNet(t, 3)
		s.blocked = func(from, to netip.AddrPort) bool { return true }
		x := s.add("x", newAgent(t, 1, true, 5, nil), "10.0.0.1:1")
		y := s.add("y", newAgent(t, 2, false, 6, nil), "10.0.0.2:2")
		introduce(x.a, y.a)
		x.a.AddRemoteCandidate(NewCandidate(Host, y.addr, netip.AddrPort{}))
		x.a.AddRemoteCandidate(NewCandidate(ServerReflexive, netip.MustParseAddrPort("203.0.113.5:7"), y.addr))
		start := time.Now()
		var failedAt time.Duration
		for range 200 {
			s.run(50 * time.Millisecond)
			for _, e := range x.a.Events() {
				if e.Kind == EventFailed && failedAt == 0 {
					failedAt = time.Since(start)
				}
			}
		}
		if failedAt == 0 || failedAt > 10*time.Second {
			t.Fatalf("failure reported after %v", failedAt)
		}
		if !x.a.Failed() || !x.a.NextWake().IsZero() {
			t.Fatalf("failed %v, next wake %v", x.a.Failed(), x.a.NextWake())
		}
		t.Logf("all pairs failed after %v", failedAt)
	})
}

// TestSimServerReflexive: an agent behind a full-cone NAT learns its
// public address from a fake STUN server (under loss, so requests are
// retransmitted), signals it, and the peer reaches it there and nowhere
// else.
func TestSimServerReflexive(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimNet(t, 4)
		s.loss = 0.3
		stunSrv := netip.MustParseAddrPort("198.51.100.1:3478")
		s.stun[stunSrv] = true
		base := netip.MustParseAddrPort("10.0.0.1:1000")
		x := s.add("natted", newAgent(t, 1, true, 7, func(c *Config) {
			c.Base = base
			c.STUNServers = []netip.AddrPort{stunSrv, stunSrv, {}}
		}), base.String())
		x.public = netip.MustParseAddrPort("203.0.113.1:5000")
		y := s.add("public", newAgent(t, 2, false, 8, nil), "198.51.100.9:2000")
		// The NAT lets nothing reach the private address from outside.
		s.blocked = func(from, to netip.AddrPort) bool { return to == base }
		introduce(x.a, y.a)
		x.a.AddHostCandidates([]netip.AddrPort{base})
		y.a.AddHostCandidates([]netip.AddrPort{y.addr})
		signal(t, y.a, x.a)
		var srflx []Candidate
		for range 100 {
			s.run(100 * time.Millisecond)
			for _, e := range x.a.Events() {
				if e.Kind == EventLocalCandidate {
					if e.Candidate.Type == ServerReflexive {
						srflx = append(srflx, e.Candidate)
					}
					y.a.AddRemoteCandidate(e.Candidate)
				}
			}
		}
		if len(srflx) != 1 || srflx[0].Addr != x.public || srflx[0].Related != base {
			t.Fatalf("server-reflexive candidates %v", srflx)
		}
		if got := srflx[0].Foundation; got != Foundation(ServerReflexive, base, stunSrv) {
			t.Errorf("foundation %s", got)
		}
		if got, ok := y.a.Selected(); !ok || got != x.public {
			t.Fatalf("the public side selected %v %v", got, ok)
		}
		if got, ok := x.a.Selected(); !ok || got != y.addr {
			t.Fatalf("the natted side selected %v %v", got, ok)
		}
		// The STUN server is asked again to keep the binding open.
		asked := s.stunAsked
		s.run(40 * time.Second)
		if s.stunAsked <= asked {
			t.Error("no refresh of the server-reflexive candidate")
		}
	})
}

// TestSimForceRelay: a relay-only agent signals only its relayed candidate
// and selects a pair through its allocation though a direct path exists.
func TestSimForceRelay(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimNet(t, 5)
		s.loss = 0.05
		x := s.add("relayonly", newAgent(t, 1, true, 9, func(c *Config) { c.OnlyRelay = true }), "10.0.0.1:1")
		x.relay = netip.MustParseAddrPort("198.51.100.50:40000")
		y := s.add("peer", newAgent(t, 2, false, 10, nil), "10.0.0.2:2")
		introduce(x.a, y.a)
		if len(x.a.AddHostCandidates([]netip.AddrPort{x.addr})) != 0 {
			t.Fatal("a relay-only agent took a host candidate")
		}
		if !x.a.AddLocalCandidate(NewCandidate(Relay, x.relay, x.addr)) {
			t.Fatal("relay candidate refused")
		}
		y.a.AddHostCandidates([]netip.AddrPort{y.addr})
		signal(t, x.a, y.a)
		signal(t, y.a, x.a)
		s.run(5 * time.Second)
		if got, ok := x.a.Selected(); !ok || got != y.addr || !x.a.SelectedRelay() {
			t.Fatalf("relay-only side selected %v %v relayed %v", got, ok, x.a.SelectedRelay())
		}
		if got, ok := y.a.Selected(); !ok || got != x.relay || !y.a.SelectedPeerRelay() {
			t.Fatalf("peer selected %v %v", got, ok)
		}
		for _, e := range s.sent {
			if e.from == x && !e.d.Relay {
				t.Fatalf("relay-only side sent directly to %v", e.d.To)
			}
		}
	})
}

// TestSimRouteUpgrade: the agents first find each other through a relay;
// when the direct path opens later, the controlling side nominates it and
// both move to it.
func TestSimRouteUpgrade(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimNet(t, 6)
		persist := func(c *Config) { c.Persistent = true }
		x := s.add("x", newAgent(t, 1, true, 11, persist), "10.0.0.1:1")
		x.relay = netip.MustParseAddrPort("198.51.100.50:40000")
		y := s.add("y", newAgent(t, 2, false, 12, persist), "10.0.0.2:2")
		open := false
		s.blocked = func(from, to netip.AddrPort) bool {
			return !open && from != x.relay && to != x.relay
		}
		introduce(x.a, y.a)
		x.a.AddHostCandidates([]netip.AddrPort{x.addr})
		x.a.AddLocalCandidate(NewCandidate(Relay, x.relay, x.addr))
		y.a.AddHostCandidates([]netip.AddrPort{y.addr})
		signal(t, x.a, y.a)
		signal(t, y.a, x.a)
		s.run(3 * time.Second)
		if got, ok := y.a.Selected(); !ok || got != x.relay || !x.a.SelectedRelay() {
			t.Fatalf("before: y selected %v %v, x relayed %v", got, ok, x.a.SelectedRelay())
		}
		open = true
		s.run(10 * time.Second)
		if got, ok := y.a.Selected(); !ok || got != x.addr {
			t.Fatalf("after: y selected %v %v", got, ok)
		}
		if got, ok := x.a.Selected(); !ok || got != y.addr || x.a.SelectedRelay() {
			t.Fatalf("after: x selected %v %v relayed %v", got, ok, x.a.SelectedRelay())
		}
	})
}

// TestSimRestart: after an ICE restart with the roles flipped (as a
// symmetric connect does) the agents connect again with the new passwords,
// and now the other side nominates.
func TestSimRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimNet(t, 7)
		x := s.add("x", newAgent(t, 1, true, 13, nil), "10.0.0.1:1")
		y := s.add("y", newAgent(t, 2, false, 14, nil), "10.0.0.2:2")
		introduce(x.a, y.a)
		x.a.AddHostCandidates([]netip.AddrPort{x.addr})
		y.a.AddHostCandidates([]netip.AddrPort{y.addr})
		signal(t, x.a, y.a)
		signal(t, y.a, x.a)
		s.run(2 * time.Second)
		if _, ok := y.a.Selected(); !ok {
			t.Fatal("no pair before the restart")
		}
		px, _ := NewPassword(newRand(50))
		py, _ := NewPassword(newRand(51))
		x.a.Restart(px, false)
		y.a.Restart(py, true)
		if _, ok := x.a.Selected(); ok {
			t.Fatal("selected pair kept across a restart")
		}
		s.run(time.Second) // nothing to check without the new credentials
		introduce(x.a, y.a)
		s.sent = nil
		s.run(2 * time.Second)
		if _, ok := x.a.Selected(); !ok {
			t.Fatal("x: no pair after the restart")
		}
		if _, ok := y.a.Selected(); !ok {
			t.Fatal("y: no pair after the restart")
		}
		nominated := false
		for _, e := range s.sent {
			m := &stun.Message{Raw: e.d.B}
			if m.Decode() == nil && m.Contains(stun.AttrUseCandidate) {
				if e.from != y {
					t.Fatal("the old controlling side nominated")
				}
				nominated = true
			}
		}
		if !nominated {
			t.Fatal("nobody nominated")
		}
	})
}

// TestSimRouteFailover: the direct path in use breaks; the selected pair's
// keepalives go unanswered, the agents drop it and move to the relay
// (within consentTries of keepalive); when the direct path comes back,
// the route moves back to it.
func TestSimRouteFailover(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimNet(t, 7)
		persist := func(c *Config) { c.Persistent = true }
		x := s.add("x", newAgent(t, 1, true, 21, persist), "10.0.0.1:1")
		x.relay = netip.MustParseAddrPort("198.51.100.50:40000")
		y := s.add("y", newAgent(t, 2, false, 22, persist), "10.0.0.2:2")
		cut := false
		s.blocked = func(from, to netip.AddrPort) bool {
			return cut && from != x.relay && to != x.relay
		}
		introduce(x.a, y.a)
		x.a.AddHostCandidates([]netip.AddrPort{x.addr})
		x.a.AddLocalCandidate(NewCandidate(Relay, x.relay, x.addr))
		y.a.AddHostCandidates([]netip.AddrPort{y.addr})
		signal(t, x.a, y.a)
		signal(t, y.a, x.a)
		s.run(3 * time.Second)
		if got, ok := y.a.Selected(); !ok || got != x.addr || x.a.SelectedRelay() {
			t.Fatalf("before: y selected %v %v, x relayed %v", got, ok, x.a.SelectedRelay())
		}
		cut = true
		start := time.Now()
		for time.Since(start) < 20*time.Second {
			s.run(100 * time.Millisecond)
			if got, ok := y.a.Selected(); ok && got == x.relay && x.a.SelectedRelay() {
				break
			}
		}
		if got, ok := y.a.Selected(); !ok || got != x.relay || !x.a.SelectedRelay() {
			t.Fatalf("after the cut: y selected %v %v, x relayed %v", got, ok, x.a.SelectedRelay())
		}
		if d := time.Since(start); d > 6*time.Second {
			t.Errorf("the relay took over after %v", d)
		}
		if x.a.Stats().ConsentLost != 1 {
			t.Errorf("x lost consent %d times", x.a.Stats().ConsentLost)
		}
		cut = false
		s.run(20 * time.Second)
		if got, ok := y.a.Selected(); !ok || got != x.addr || x.a.SelectedRelay() {
			t.Errorf("after the repair: y selected %v %v, x relayed %v", got, ok, x.a.SelectedRelay())
		}
	})
}
