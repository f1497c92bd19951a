package ice

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

type detRand struct{ r *rand.ChaCha8 }

func (d detRand) Read(b []byte) (int, error) { return d.r.Read(b) }

func newRand(seed byte) detRand { return detRand{rand.NewChaCha8([32]byte{seed})} }

// link runs two agents against each other in fake time: each datagram is
// delivered after delay unless drop says otherwise; reachable says which
// remote addresses actually reach the other agent.
type link struct {
	t         *testing.T
	now       time.Time
	a, b      *Agent
	addrA     netip.AddrPort // where a really is
	addrB     netip.AddrPort
	drop      func(i int) bool
	reachable func(to netip.AddrPort) bool
	sent      int
}

func (l *link) run(d time.Duration) {
	end := l.now.Add(d)
	for l.now.Before(end) {
		for _, x := range []struct {
			from, to   *Agent
			fromAddr   netip.AddrPort
			targetAddr netip.AddrPort
		}{{l.a, l.b, l.addrA, l.addrB}, {l.b, l.a, l.addrB, l.addrA}} {
			for {
				dg, ok := x.from.Poll(l.now)
				if !ok {
					break
				}
				l.sent++
				if l.drop != nil && l.drop(l.sent) {
					continue
				}
				if dg.To != x.targetAddr && (l.reachable == nil || !l.reachable(dg.To)) {
					continue
				}
				if err := x.to.HandleSTUN(l.now, x.fromAddr, dg.B); err != nil && !errors.Is(err, ErrUnsolicited) {
					l.t.Fatalf("handle: %v", err)
				}
			}
		}
		l.now = l.now.Add(5 * time.Millisecond)
	}
}

func pairOfAgents(t *testing.T) (*link, string, string) {
	t.Helper()
	ua, ub := Ufrag(0x1111), Ufrag(0x2222)
	pa, _ := NewPassword(newRand(1))
	pb, _ := NewPassword(newRand(2))
	a, err := NewAgent(Config{LocalUfrag: ua, LocalPwd: pa, Controlling: true, Rand: newRand(3)})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewAgent(Config{LocalUfrag: ub, LocalPwd: pb, Rand: newRand(4)})
	a.SetRemoteCredentials(ub, pb)
	b.SetRemoteCredentials(ua, pa)
	l := &link{t: t, now: time.Unix(1000, 0), a: a, b: b,
		addrA: netip.MustParseAddrPort("10.0.0.1:1000"), addrB: netip.MustParseAddrPort("10.0.0.2:2000")}
	return l, pa, pb
}

// TestAgentsConnect: the controlling agent nominates, both select the
// pair that works (not the candidate that leads nowhere), under loss.
func TestAgentsConnect(t *testing.T) {
	for _, loss := range []int{0, 3} {
		l, _, _ := pairOfAgents(t)
		if loss > 0 {
			r := rand.New(rand.NewPCG(uint64(loss), 7))
			l.drop = func(int) bool { return r.IntN(loss) == 0 }
		}
		// b knows a's real address and a dead one; a knows b's and a
		// dead one of higher priority.
		l.b.AddRemoteCandidate(NewCandidate(Host, l.addrA, netip.AddrPort{}))
		l.b.AddRemoteCandidate(NewCandidate(Host, netip.MustParseAddrPort("192.168.9.9:1"), netip.AddrPort{}))
		l.a.AddRemoteCandidate(NewCandidate(ServerReflexive, l.addrB, netip.MustParseAddrPort("10.0.0.2:2000")))
		l.a.AddRemoteCandidate(NewCandidate(Host, netip.MustParseAddrPort("192.168.9.8:1"), netip.AddrPort{}))
		l.run(8 * time.Second)
		if got, ok := l.a.Selected(); !ok || got != l.addrB {
			t.Fatalf("loss 1/%d: a selected %v %v", loss, got, ok)
		}
		if got, ok := l.b.Selected(); !ok || got != l.addrA {
			t.Fatalf("loss 1/%d: b selected %v %v", loss, got, ok)
		}
		if !l.a.SelectedChanged() || l.a.SelectedChanged() {
			t.Error("SelectedChanged should report once")
		}
		// Keepalives keep going, nothing fails.
		l.run(20 * time.Second)
		if _, ok := l.a.Selected(); !ok || l.a.Failed() || l.b.Failed() {
			t.Fatal("lost the pair while idle")
		}
	}
}

// TestAgentsFail: with no reachable candidate every pair fails.
func TestAgentsFail(t *testing.T) {
	l, _, _ := pairOfAgents(t)
	l.a.AddRemoteCandidate(NewCandidate(Host, netip.MustParseAddrPort("192.168.9.8:1"), netip.AddrPort{}))
	l.run(30 * time.Second)
	if !l.a.Failed() {
		t.Fatal("a did not fail")
	}
	if w := l.a.NextWake(); !w.IsZero() {
		t.Errorf("a failed agent still wants to wake at %v", w)
	}
}

// TestRoleConflict: both sides think they control; the tiebreaker settles
// it and they still connect.
func TestRoleConflict(t *testing.T) {
	l, _, _ := pairOfAgents(t)
	l.b.SetControlling(true)
	l.b.AddRemoteCandidate(NewCandidate(Host, l.addrA, netip.AddrPort{}))
	l.a.AddRemoteCandidate(NewCandidate(Host, l.addrB, netip.AddrPort{}))
	l.run(3 * time.Second)
	if l.a.Controlling() == l.b.Controlling() {
		t.Fatal("roles not settled")
	}
	if _, ok := l.a.Selected(); !ok {
		t.Fatal("a selected nothing")
	}
	if _, ok := l.b.Selected(); !ok {
		t.Fatal("b selected nothing")
	}
}

// TestHostileSTUN: garbage, bad integrity and wrong usernames are dropped
// and counted.
func TestHostileSTUN(t *testing.T) {
	l, _, _ := pairOfAgents(t)
	l.a.AddRemoteCandidate(NewCandidate(Host, l.addrB, netip.AddrPort{}))
	dg, _ := l.a.Poll(l.now)
	good := dg.B
	from := l.addrA
	if err := l.b.HandleSTUN(l.now, from, []byte("garbage")); err == nil {
		t.Error("garbage taken")
	}
	bad := append([]byte(nil), good...)
	bad[len(bad)-30] ^= 1 // inside MESSAGE-INTEGRITY
	if err := l.b.HandleSTUN(l.now, from, bad); err == nil {
		t.Error("tampered check taken")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		b := append([]byte(nil), good[:r.IntN(len(good)+1)]...)
		for range r.IntN(4) {
			if len(b) > 0 {
				b[r.IntN(len(b))] = byte(r.Uint32())
			}
		}
		l.b.HandleSTUN(l.now, from, b)
		Route(b)
	}
	if l.b.Stats().Dropped < 2 {
		t.Errorf("stats %+v", l.b.Stats())
	}
	if err := l.b.HandleSTUN(l.now, from, good); err != nil {
		t.Fatalf("the genuine check after the noise: %v", err)
	}
}

func FuzzHandleSTUN(f *testing.F) {
	l, _, _ := pairOfAgents(&testing.T{})
	l.a.AddRemoteCandidate(NewCandidate(Host, l.addrB, netip.AddrPort{}))
	dg, _ := l.a.Poll(l.now)
	f.Add(dg.B)
	f.Add([]byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, _ := NewAgent(Config{LocalUfrag: Ufrag(0x2222), LocalPwd: "abcde", Rand: newRand(9)})
		a.SetRemoteCredentials(Ufrag(0x1111), "fghij")
		a.HandleSTUN(time.Unix(1, 0), netip.MustParseAddrPort("10.0.0.1:1"), b)
		Route(b)
		for range 3 {
			a.Poll(time.Unix(2, 0))
		}
	})
}

func FuzzParseCandidate(f *testing.F) {
	f.Add("candidate:37062591 0 udp 2130706431 10.99.0.1 34750 typ host")
	f.Add("candidate:1 1 udp 1 ::1 5 typ srflx raddr 10.0.0.1 rport 9")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCandidate(s)
		if err != nil {
			return
		}
		c2, err := ParseCandidate(c.String())
		if err != nil || c2 != c {
			t.Fatalf("%q -> %+v -> %q -> %+v %v", s, c, c.String(), c2, err)
		}
	})
}

// TestCheckRetransmission: a retransmitted check keeps its transaction id
// (so a late answer to the first transmission still counts), and a check
// the peer's own request shows to be answerable now (a TURN permission or
// NAT binding that was not open for the first one) goes again at once, not
// at its retransmission timer.
func TestCheckRetransmission(t *testing.T) {
	l, _, _ := pairOfAgents(t)
	l.a.AddRemoteCandidate(NewCandidate(Host, l.addrB, netip.AddrPort{}))
	l.b.AddRemoteCandidate(NewCandidate(Host, l.addrA, netip.AddrPort{}))
	now := l.now
	first, ok := l.b.Poll(now) // b's first check: lost on the way
	if !ok {
		t.Fatal("b sent no check")
	}
	// The peer's check reaches b 10 ms later, well before b's timer (100 ms).
	now = now.Add(10 * time.Millisecond)
	req, ok := l.a.Poll(now)
	if !ok {
		t.Fatal("a sent no check")
	}
	if err := l.b.HandleSTUN(now, l.addrA, req.B); err != nil {
		t.Fatal(err)
	}
	var again []Datagram
	for {
		d, ok := l.b.Poll(now)
		if !ok {
			break
		}
		again = append(again, d)
	}
	// b answers a, and sends its check again at once, the same bytes.
	var retx *Datagram
	for i, d := range again {
		if string(d.B) == string(first.B) {
			retx = &again[i]
		}
	}
	if retx == nil {
		t.Fatalf("b did not retransmit its check at once (%d datagrams)", len(again))
	}
	// a answers the first transmission (say it arrived late after all):
	// the answer matches, the pair works.
	if err := l.a.HandleSTUN(now, l.addrB, first.B); err != nil {
		t.Fatal(err)
	}
	for {
		d, ok := l.a.Poll(now)
		if !ok {
			break
		}
		if d.To == l.addrB {
			if err := l.b.HandleSTUN(now, l.addrA, d.B); err != nil && !errors.Is(err, ErrUnsolicited) {
				t.Fatal(err)
			}
		}
	}
	if st := l.b.Stats(); st.Succeeded != 1 {
		t.Fatalf("b's check did not succeed on the answer to its first transmission: %+v", st)
	}
}

// TestPeerReflexiveThenSignaled: b learns a's address from a's check (a
// peer-reflexive candidate) and selects it; when a's candidate at that
// address is signaled afterwards as a relay candidate, b's selected pair
// is known as one to the peer's relay (SelectedPeerRelay), still
// selected.
func TestPeerReflexiveThenSignaled(t *testing.T) {
	l, _, _ := pairOfAgents(t)
	l.a.AddRemoteCandidate(NewCandidate(Host, l.addrB, netip.AddrPort{}))
	l.run(time.Second)
	sel, ok := l.b.Selected()
	if !ok || sel != l.addrA {
		t.Fatalf("b selected %v %v, want a's address", sel, ok)
	}
	if l.b.SelectedPeerRelay() {
		t.Fatal("a peer-reflexive pair taken for one to the peer's relay")
	}
	l.b.SelectedChanged()
	l.b.AddRemoteCandidate(NewCandidate(Relay, l.addrA, netip.MustParseAddrPort("192.0.2.7:5000")))
	if !l.b.SelectedChanged() {
		t.Error("the selected pair's new type is not reported as a change")
	}
	if sel, ok := l.b.Selected(); !ok || sel != l.addrA || !l.b.SelectedPeerRelay() {
		t.Fatalf("after the signal: selected %v %v, peer relay %v; want a's address as the peer's relay", sel, ok, l.b.SelectedPeerRelay())
	}
}
