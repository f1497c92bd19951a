package ice

import (
	"fmt"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/pion/stun/v4"
)

// bothSelected runs s until both x and y selected a pair (at most limit)
// and returns how long that took.
func bothSelected(s *simNet, x, y *simNode, limit time.Duration) time.Duration {
	start := time.Now()
	for time.Since(start) < limit {
		_, okx := x.a.Selected()
		_, oky := y.a.Selected()
		if okx && oky {
			break
		}
		s.run(100 * time.Microsecond)
	}
	return time.Since(start)
}

// TestSimRelayNotBehindDirect: with every direct path blocked, the checks
// through the relay do not wait behind the direct pairs (one per
// candidate of the peer, each a check that only times out): the relay's
// lane starts at once, and both sides select a relayed path within one
// pacing interval (a few one-way delays of 1 ms). With one pacing for
// every pair, the relayed ones started only after the five direct pairs
// above them.
func TestSimRelayNotBehindDirect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimNet(t, 11)
		s.delay = func(from, to netip.AddrPort) time.Duration { return time.Millisecond }
		x := s.add("x", newAgent(t, 1, true, 31, nil), "10.0.0.1:1")
		x.relay = netip.MustParseAddrPort("198.51.100.50:40000")
		y := s.add("y", newAgent(t, 2, false, 32, nil), "10.0.1.2:2")
		y.relay = netip.MustParseAddrPort("198.51.100.50:40001")
		s.blocked = func(from, to netip.AddrPort) bool {
			return from != x.relay && from != y.relay && to != x.relay && to != y.relay
		}
		introduce(x.a, y.a)
		x.a.AddHostCandidates([]netip.AddrPort{x.addr})
		x.a.AddLocalCandidate(NewCandidate(Relay, x.relay, x.addr))
		y.a.AddHostCandidates([]netip.AddrPort{y.addr, netip.MustParseAddrPort("10.0.2.2:2"), netip.MustParseAddrPort("10.0.3.2:2"), netip.MustParseAddrPort("10.0.4.2:2")})
		y.a.AddLocalCandidate(NewCandidate(Relay, y.relay, y.addr))
		signal(t, x.a, y.a)
		signal(t, y.a, x.a)
		took := bothSelected(s, x, y, 10*time.Second)
		if took > pacing {
			t.Errorf("both sides selected a path after %v, want within one pacing interval (%v)", took, pacing)
		}
		got, _ := x.a.Selected()
		if !x.a.SelectedRelay() && !x.a.SelectedPeerRelay() {
			t.Errorf("x selected %v, not through a relay", got)
		}
		got, _ = y.a.Selected()
		if !y.a.SelectedRelay() && !y.a.SelectedPeerRelay() {
			t.Errorf("y selected %v, not through a relay", got)
		}
		t.Logf("selected after %v", took)
	})
}

// TestSimRelayAnswersFirst: the relay's lane runs beside the direct one,
// so a relayed pair may work first (here the direct path is slower) and
// be nominated; the direct pair, better, that works while that
// nomination is still out is nominated too, and both sides end on it.
func TestSimRelayAnswersFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimNet(t, 12)
		x := s.add("x", newAgent(t, 1, true, 33, nil), "10.0.0.1:1")
		x.relay = netip.MustParseAddrPort("198.51.100.50:40000")
		y := s.add("y", newAgent(t, 2, false, 34, nil), "10.0.0.2:2")
		s.delay = func(from, to netip.AddrPort) time.Duration {
			if from == x.relay || to == x.relay {
				return time.Millisecond
			}
			return 1500 * time.Microsecond
		}
		introduce(x.a, y.a)
		x.a.AddHostCandidates([]netip.AddrPort{x.addr})
		x.a.AddLocalCandidate(NewCandidate(Relay, x.relay, x.addr))
		y.a.AddHostCandidates([]netip.AddrPort{y.addr})
		signal(t, x.a, y.a)
		signal(t, y.a, x.a)
		s.run(time.Second)
		if got, ok := x.a.Selected(); !ok || got != y.addr || x.a.SelectedRelay() {
			t.Fatalf("x selected %v %v relayed %v, want the direct pair", got, ok, x.a.SelectedRelay())
		}
		if got, ok := y.a.Selected(); !ok || got != x.addr {
			t.Fatalf("y selected %v %v, want the direct pair", got, ok)
		}
		var relayFirst bool
		for _, e := range x.a.Events() {
			if e.Kind == EventSelected {
				relayFirst = e.Relay
				break
			}
		}
		if !relayFirst {
			t.Error("the relayed pair was not selected first: the test no longer shows the upgrade")
		}
	})
}

// TestSimTriggeredFirst: a check triggered by the peer's request on a
// pair (RFC 8445 7.3.1.4) is the next check of its lane, ahead of
// waiting pairs of higher priority.
func TestSimTriggeredFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimNet(t, 13)
		s.delay = func(from, to netip.AddrPort) time.Duration { return time.Millisecond }
		x := s.add("x", newAgent(t, 1, false, 35, nil), "10.0.0.1:1")
		y := s.add("y", newAgent(t, 2, true, 36, nil), "10.0.0.2:2")
		introduce(x.a, y.a)
		// x knows three addresses of y; y is at the last (lowest priority).
		x.a.AddHostCandidates([]netip.AddrPort{x.addr})
		for i, a := range []string{"10.0.8.2:2", "10.0.9.2:2", y.addr.String()} {
			c := NewCandidate(Host, netip.MustParseAddrPort(a), netip.AddrPort{})
			c.Priority = PriorityPref(Host, uint16(65535-i))
			x.a.AddRemoteCandidate(c)
		}
		signal(t, x.a, y.a)
		y.a.Events()
		s.run(5 * time.Millisecond)
		var tos []netip.AddrPort
		seen := map[[stun.TransactionIDSize]byte]bool{}
		for _, e := range s.sent {
			m := &stun.Message{Raw: e.d.B}
			if e.from != x || m.Decode() != nil || m.Type != stun.BindingRequest || seen[m.TransactionID] {
				continue
			}
			seen[m.TransactionID] = true
			tos = append(tos, e.d.To)
		}
		if len(tos) < 2 || tos[0] != netip.MustParseAddrPort("10.0.8.2:2") || tos[1] != y.addr {
			t.Fatalf("x's checks went to %v: want the best pair first, then the triggered one to %v", tos, y.addr)
		}
		if _, ok := x.a.Selected(); !ok {
			t.Error("x selected nothing")
		}
	})
}

// TestSimPacingBounded: an agent with the most pairs it takes (every
// remote candidate, from the socket and through the relay), none of
// which answers, never floods: each lane starts at most one check per
// pacing interval, every check is one transaction sent at most
// checkTries times, and once all failed the agent sends nothing more.
func TestSimPacingBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := newSimNet(t, 14)
		s.blocked = func(from, to netip.AddrPort) bool { return true }
		x := s.add("x", newAgent(t, 1, true, 37, nil), "10.0.0.1:1")
		x.relay = netip.MustParseAddrPort("198.51.100.50:40000")
		y := newAgent(t, 2, false, 38, nil)
		introduce(x.a, y)
		x.a.AddHostCandidates([]netip.AddrPort{x.addr})
		x.a.AddLocalCandidate(NewCandidate(Relay, x.relay, x.addr))
		for i := range MaxRemoteCandidates + 4 { // the extra ones are ignored
			x.a.AddRemoteCandidate(NewCandidate(Host, netip.MustParseAddrPort(fmt.Sprintf("10.1.%d.2:2", i)), netip.AddrPort{}))
		}
		const pairs = 2 * MaxRemoteCandidates
		start := time.Now()
		s.run(20 * time.Second)

		tries := map[[stun.TransactionIDSize]byte]int{}
		var last [2]time.Time
		for i, e := range s.sent {
			m := &stun.Message{Raw: e.d.B}
			if m.Decode() != nil || m.Type != stun.BindingRequest {
				t.Fatalf("datagram %d is not a binding request", i)
			}
			tries[m.TransactionID]++
			if tries[m.TransactionID] > 1 {
				continue
			}
			l := lane(e.d.Relay)
			if !last[l].IsZero() {
				gap := e.at.Sub(last[l])
				if gap < pacing {
					t.Fatalf("lane %d: a new check %v after the last, under the pacing interval %v", l, gap, pacing)
				}
			}
			last[l] = e.at
		}
		if len(tries) != pairs {
			t.Errorf("%d transactions, want one per pair (%d)", len(tries), pairs)
		}
		for _, n := range tries {
			if n > checkTries {
				t.Fatalf("a check sent %d times, at most %d", n, checkTries)
			}
		}
		if len(s.sent) != pairs*checkTries {
			t.Errorf("%d datagrams, want %d (every pair tried %d times, then failed)", len(s.sent), pairs*checkTries, checkTries)
		}
		// Each lane walked its 32 pairs no faster than the pacing.
		for l, at := range last {
			if d := at.Sub(start); d < (MaxRemoteCandidates-1)*pacing {
				t.Errorf("lane %d started its last check %v after the first, under %d pacing intervals", l, d, MaxRemoteCandidates-1)
			}
		}
		if !x.a.Failed() || !x.a.NextWake().IsZero() {
			t.Fatalf("failed %v, next wake %v: the agent does not rest", x.a.Failed(), x.a.NextWake())
		}
		n := len(s.sent)
		s.run(10 * time.Second)
		if len(s.sent) != n {
			t.Errorf("%d more datagrams after every pair failed", len(s.sent)-n)
		}
	})
}
