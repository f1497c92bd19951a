package ice

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// TestDemux: two connections on one socket; checks go to the agent their
// USERNAME names, responses to the agent whose transaction they answer
// (even without a USERNAME), and strangers are counted.
func TestDemux(t *testing.T) {
	now := time.Unix(100, 0)
	a1 := newAgent(t, 0x100, true, 20, nil)
	a2 := newAgent(t, 0x200, true, 21, nil)
	r1 := newAgent(t, 0x300, false, 22, nil)
	r2 := newAgent(t, 0x400, false, 23, nil)
	introduce(a1, r1)
	introduce(a2, r2)
	d := NewDemux()
	for _, a := range []*Agent{a1, a2} {
		if err := d.Add(a); err != nil {
			t.Fatal(err)
		}
	}
	twin := newAgent(t, 0x100|1<<30, true, 24, nil) // same low 30 bits
	if err := d.Add(twin); !errors.Is(err, ErrUfragInUse) {
		t.Fatalf("twin ufrag: %v", err)
	}
	host := netip.MustParseAddrPort("10.0.0.1:1")
	r1.AddRemoteCandidate(NewCandidate(Host, host, netip.AddrPort{}))
	r2.AddRemoteCandidate(NewCandidate(Host, host, netip.AddrPort{}))
	c1, _ := r1.Poll(now)
	c2, _ := r2.Poll(now)
	if d.Lookup(c1.B) != a1 || d.Lookup(c2.B) != a2 {
		t.Fatal("checks filed under the wrong agent")
	}
	if err := d.HandleSTUN(now, netip.MustParseAddrPort("10.0.0.3:3"), false, c1.B); err != nil {
		t.Fatal(err)
	}

	// a2's own check to r2, and r2's answer without its USERNAME.
	a2.AddRemoteCandidate(NewCandidate(Host, netip.MustParseAddrPort("10.0.0.4:4"), netip.AddrPort{}))
	chk, _ := a2.Poll(now)
	req := &stun.Message{Raw: chk.B}
	if err := req.Decode(); err != nil {
		t.Fatal(err)
	}
	resp := new(stun.Message)
	resp.SetType(stun.BindingSuccess)
	resp.TransactionID = req.TransactionID
	resp.WriteHeader()
	stun.NewShortTermIntegrity(r2.cfg.LocalPwd).AddTo(resp)
	stun.Fingerprint.AddTo(resp)
	if d.Lookup(resp.Raw) != a2 {
		t.Fatal("response not filed by transaction id")
	}
	if err := d.HandleSTUN(now, netip.MustParseAddrPort("10.0.0.4:4"), false, resp.Raw); err != nil {
		t.Fatal(err)
	}
	if a2.Stats().Succeeded != 1 {
		t.Fatalf("a2 stats %+v", a2.Stats())
	}

	// Strangers.
	for _, b := range [][]byte{nil, []byte("hello"), c1.B[:30], BindingRequest([12]byte{7})} {
		if err := d.HandleSTUN(now, host, false, b); !errors.Is(err, ErrNoAgent) {
			t.Fatalf("stranger %x: %v", b, err)
		}
	}
	if d.Dropped() != 4 {
		t.Fatalf("dropped %d", d.Dropped())
	}
	d.Remove(a1)
	if d.Lookup(c1.B) != nil || d.Len() != 1 {
		t.Fatal("removed agent still found")
	}
}

// hugeAttrs is a well-formed STUN request with n empty attributes.
func hugeAttrs(n int) []byte {
	b := make([]byte, 20+4*n)
	binary.BigEndian.PutUint16(b[0:], 0x0001)
	binary.BigEndian.PutUint16(b[2:], uint16(4*n))
	binary.BigEndian.PutUint32(b[4:], 0x2112A442)
	for i := range n {
		binary.BigEndian.PutUint16(b[20+4*i:], 0x8022) // SOFTWARE, empty
	}
	return b
}

// TestHostileCounted: each kind of bad input is refused with its error and
// counted once; nothing is answered; the queues stay bounded.
func TestHostileCounted(t *testing.T) {
	now := time.Unix(100, 0)
	x := newAgent(t, 1, false, 30, nil)
	y := newAgent(t, 2, true, 31, nil)
	introduce(x, y)
	y.AddRemoteCandidate(NewCandidate(Host, netip.MustParseAddrPort("10.0.0.1:1"), netip.AddrPort{}))
	good, _ := y.Poll(now)
	from := netip.MustParseAddrPort("10.0.0.2:2")

	wrongUser := newAgent(t, 3, true, 32, nil)
	wrongUser.SetRemoteCredentials(Ufrag(9), x.cfg.LocalPwd)
	wrongUser.AddRemoteCandidate(NewCandidate(Host, netip.MustParseAddrPort("10.0.0.1:1"), netip.AddrPort{}))
	wu, _ := wrongUser.Poll(now)

	wrongKey := newAgent(t, 2, true, 33, nil)
	wrongKey.SetRemoteCredentials(x.cfg.LocalUfrag, "zzzzz")
	wrongKey.AddRemoteCandidate(NewCandidate(Host, netip.MustParseAddrPort("10.0.0.1:1"), netip.AddrPort{}))
	wk, _ := wrongKey.Poll(now)

	unsolicited := new(stun.Message)
	unsolicited.SetType(stun.BindingSuccess)
	unsolicited.WriteHeader()
	stun.Fingerprint.AddTo(unsolicited)

	noFingerprint := append([]byte(nil), good.B[:len(good.B)-8]...)
	binary.BigEndian.PutUint16(noFingerprint[2:], uint16(len(noFingerprint)-20))

	for _, c := range []struct {
		name string
		b    []byte
		err  error
	}{
		{"empty", nil, ErrNotSTUN},
		{"truncated", good.B[:len(good.B)/2], ErrNotSTUN},
		{"huge attribute count", hugeAttrs(250), ErrIntegrity},
		{"too large", hugeAttrs(2000), ErrTooLarge},
		{"no fingerprint", noFingerprint, ErrIntegrity},
		{"wrong username", wu.B, ErrUsername},
		{"wrong key", wk.B, ErrIntegrity},
		{"unsolicited response", unsolicited.Raw, ErrUnsolicited},
	} {
		before := x.Stats().Dropped
		if err := x.HandleSTUN(now, from, c.b); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", c.name, err, c.err)
		}
		if x.Stats().Dropped != before+1 {
			t.Errorf("%s: not counted", c.name)
		}
	}
	if d, ok := x.Poll(now); ok {
		t.Fatalf("answered bad input: %v", d)
	}
	if err := x.HandleSTUN(now, from, good.B); err != nil {
		t.Fatalf("the genuine check: %v", err)
	}

	// A flood of genuine checks without Poll: the queue stays bounded.
	for range 3 * maxOut {
		x.HandleSTUN(now, from, good.B)
	}
	if len(x.out) > maxOut || x.Stats().QueueFull == 0 {
		t.Fatalf("queue %d, stats %+v", len(x.out), x.Stats())
	}
	// So do remote candidates and pairs.
	for i := range 10 * MaxRemoteCandidates {
		x.AddRemoteCandidate(NewCandidate(Host, netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 9), netip.AddrPort{}))
	}
	x.SetRelayBase()
	if len(x.remotes) > MaxRemoteCandidates || len(x.pairs) > 2*MaxRemoteCandidates {
		t.Fatalf("%d remotes, %d pairs", len(x.remotes), len(x.pairs))
	}
}

// TestAllows: GNS's P2P_Transport_ICE_Enable rules for local candidates.
func TestAllows(t *testing.T) {
	host := func(s string) Candidate { return NewCandidate(Host, netip.MustParseAddrPort(s), netip.AddrPort{}) }
	base := netip.MustParseAddrPort("10.0.0.1:1")
	srflx := NewCandidate(ServerReflexive, netip.MustParseAddrPort("203.0.113.1:1"), base)
	relay := NewCandidate(Relay, netip.MustParseAddrPort("203.0.113.2:1"), base)
	for _, c := range []struct {
		e    Enable
		c    Candidate
		want bool
	}{
		{EnablePrivate, host("10.1.2.3:4"), true},
		{EnablePrivate, host("172.20.0.1:4"), true},
		{EnablePrivate, host("192.168.1.1:4"), true},
		{EnablePrivate, host("169.254.1.1:4"), true},
		{EnablePrivate, host("[fd00::1]:4"), true},
		{EnablePrivate, host("[fe80::1]:4"), true},
		{EnablePrivate, host("127.0.0.1:4"), true}, // netmsg: loopback for tests
		{EnablePrivate, host("8.8.8.8:4"), false},
		{EnablePrivate, host("[2001:db8::1]:4"), false},
		{EnablePublic, host("8.8.8.8:4"), true},
		{EnablePublic, host("10.1.2.3:4"), false},
		{EnablePrivate, srflx, false},
		{EnablePublic, srflx, true},
		{EnablePublic, relay, false},
		{EnableRelay, relay, true},
		{EnableAll, host("0.0.0.0:4"), false},
		{EnableAll, host("10.0.0.1:0"), false},
		{EnableDisable, host("10.1.2.3:4"), false},
	} {
		if got := c.e.Allows(c.c); got != c.want {
			t.Errorf("%d allows %v: %v", c.e, c.c, got)
		}
	}
}

// TestGatherer: retransmissions on GNS's schedule, giving up after about
// 5.3 s; a late answer is ignored; two servers behind the same NAT give
// one candidate.
func TestGatherer(t *testing.T) {
	t0 := time.Unix(100, 0)
	base := netip.MustParseAddrPort("10.0.0.1:1000")
	dead := netip.MustParseAddrPort("198.51.100.1:3478")
	g := NewGatherer(base, []netip.AddrPort{dead}, newRand(40))
	var sends []time.Duration
	var last Datagram
	for now := t0; now.Before(t0.Add(20 * time.Second)); now = now.Add(10 * time.Millisecond) {
		if d, ok := g.Poll(now); ok {
			sends = append(sends, now.Sub(t0))
			last = d
		}
	}
	want := []time.Duration{0, 400 * time.Millisecond, 1000 * time.Millisecond, 1900 * time.Millisecond, 3250 * time.Millisecond}
	if len(sends) != len(want) {
		t.Fatalf("sends at %v", sends)
	}
	for i := range want {
		if sends[i] != want[i] {
			t.Fatalf("sends at %v, want %v", sends, want)
		}
	}
	if !g.Done() || len(g.Mapped()) != 0 || !g.NextWake().IsZero() {
		t.Fatal("a dead server is not given up")
	}
	var tx [12]byte
	copy(tx[:], last.B[8:20])
	late, _ := BindingResponse(last.B, base)
	if g.HandleResponse(t0.Add(30*time.Second), dead, late) {
		t.Fatal("late answer taken")
	}

	s1, s2 := netip.MustParseAddrPort("198.51.100.2:3478"), netip.MustParseAddrPort("198.51.100.3:3478")
	public := netip.MustParseAddrPort("203.0.113.1:5000")
	g = NewGatherer(base, []netip.AddrPort{s1, s2}, newRand(41))
	for range 2 {
		d, ok := g.Poll(t0)
		if !ok {
			t.Fatal("no request")
		}
		r, _ := BindingResponse(d.B, public)
		if g.HandleResponse(t0, netip.MustParseAddrPort("192.0.2.1:1"), r) {
			t.Fatal("answer from a stranger taken")
		}
		if !g.HandleResponse(t0, d.To, r) {
			t.Fatal("answer refused")
		}
	}
	if c := g.Candidates(); len(c) != 1 || c[0].Addr != public || c[0].Related != base {
		t.Fatalf("candidates %v", c)
	}
	if !g.Done() || len(g.Mapped()) != 2 {
		t.Fatal("not done")
	}
}

func FuzzDemux(f *testing.F) {
	x := newAgent(&testing.T{}, 0x100, true, 60, nil)
	y := newAgent(&testing.T{}, 0x200, false, 61, nil)
	introduce(x, y)
	y.AddRemoteCandidate(NewCandidate(Host, netip.MustParseAddrPort("10.0.0.1:1"), netip.AddrPort{}))
	d, _ := y.Poll(time.Unix(1, 0))
	f.Add(d.B)
	f.Add(hugeAttrs(30))
	f.Add(BindingRequestFrom([12]byte{1}, netip.MustParseAddrPort("10.0.0.1:1")))
	f.Fuzz(func(t *testing.T, b []byte) {
		x := newAgent(t, 0x100, true, 60, nil)
		x.SetRemoteCredentials(Ufrag(0x200), "abcde")
		dm := NewDemux()
		dm.Add(x)
		dm.HandleSTUN(time.Unix(1, 0), netip.MustParseAddrPort("10.0.0.2:2"), false, b)
		for range 3 {
			x.Poll(time.Unix(2, 0))
		}
	})
}

func FuzzGatherer(f *testing.F) {
	base := netip.MustParseAddrPort("10.0.0.1:1000")
	server := netip.MustParseAddrPort("198.51.100.1:3478")
	r, _ := BindingResponse(BindingRequestFrom([12]byte{}, base), base)
	f.Add(r)
	f.Fuzz(func(t *testing.T, b []byte) {
		g := NewGatherer(base, []netip.AddrPort{server}, newRand(1))
		d, _ := g.Poll(time.Unix(1, 0))
		if len(b) >= 20 {
			copy(b[8:20], d.B[8:20]) // give the input our transaction id
		}
		g.HandleResponse(time.Unix(1, 0), server, b)
		for _, c := range g.Candidates() {
			if _, err := ParseCandidate(c.String()); err != nil {
				t.Fatalf("our candidate %q: %v", c, err)
			}
		}
	})
}
