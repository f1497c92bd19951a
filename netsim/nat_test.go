package netsim

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"
)

// watcher collects what an endpoint receives; next returns the source of
// the next datagram that arrived within 100 ms (fake time), or an invalid
// address.
type watcher struct {
	c    *collector
	seen int
}

func watch(e *Endpoint) *watcher { return &watcher{c: collect(e)} }

func (w *watcher) next() netip.AddrPort {
	time.Sleep(100 * time.Millisecond)
	got := w.c.snapshot()
	if len(got) <= w.seen {
		return netip.AddrPort{}
	}
	w.seen++
	return got[w.seen-1].from
}

func TestNAT(t *testing.T) {
	cases := []struct {
		typ        NATType
		samePort   bool // one public port for two destinations
		strangerIn bool // may an address inside never sent to send in
		sameIPIn   bool // may a new port of an IP inside sent to send in
	}{
		{FullCone, true, true, true},
		{Restricted, true, false, true},
		{PortRestricted, true, false, false},
		{Symmetric, false, false, false},
	}
	for _, tc := range cases {
		t.Run(tc.typ.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := mustNew(t, Config{Link: LinkConfig{Delay: time.Millisecond}})
				defer n.Close()
				nat, err := n.AddNAT(NATConfig{Inside: netip.MustParsePrefix("10.0.1.0/24"), Public: netip.MustParseAddr("203.0.113.1"), Type: tc.typ, MappingTimeout: 30 * time.Second})
				if err != nil {
					t.Fatal(err)
				}
				in := listen(t, n, "10.0.1.2:5000")
				s1 := listen(t, n, "198.51.100.1:3478")
				s1b := listen(t, n, "198.51.100.1:3479") // same IP, other port
				stranger := listen(t, n, "198.51.100.2:3478")
				inside2 := listen(t, n, "10.0.1.3:5000")
				win, w1, w1b, w2 := watch(in), watch(s1), watch(s1b), watch(inside2)
				_ = watch(stranger)

				// Inside to outside: translated.
				send(t, in, s1.LocalAddr(), payload(1, 32))
				p1 := w1.next()
				if p1.Addr() != netip.MustParseAddr("203.0.113.1") {
					t.Fatalf("s1 saw %v", p1)
				}
				send(t, in, s1b.LocalAddr(), payload(2, 32))
				p2 := w1b.next()
				if (p1 == p2) != tc.samePort {
					t.Fatalf("mappings %v and %v", p1, p2)
				}
				// Inside to inside: untouched.
				send(t, in, inside2.LocalAddr(), payload(3, 32))
				if got := w2.next(); got != in.LocalAddr() {
					t.Fatalf("inside peer saw %v", got)
				}
				// The private network is not routable from outside.
				send(t, s1, in.LocalAddr(), payload(10, 32))
				if got := win.next(); got.IsValid() {
					t.Fatalf("an outside endpoint reached the inside address directly (from %v)", got)
				}
				if st := nat.Stats(n); st.Unroutable != 1 {
					t.Fatalf("Unroutable %d, want 1", st.Unroutable)
				}
				// Replies come in.
				send(t, s1, p1, payload(4, 32))
				if got := win.next(); got != s1.LocalAddr() {
					t.Fatalf("reply from s1: %v", got)
				}
				// Filters, on the mapping made for s1 only.
				send(t, in, s1.LocalAddr(), payload(5, 32)) // refresh
				w1.next()
				send(t, stranger, p1, payload(6, 32))
				if got := win.next(); got.IsValid() != tc.strangerIn {
					t.Errorf("stranger got in: %v (want %v)", got.IsValid(), tc.strangerIn)
				}
				// s1b: same IP as s1, other port. With a cone NAT inside has
				// sent to s1b through this very mapping, so it gets in;
				// with the symmetric NAT, s1's mapping is for s1 alone.
				send(t, s1b, p1, payload(7, 32))
				if got := win.next(); got.IsValid() != tc.samePort {
					t.Errorf("s1b on s1's mapping got in: %v (want %v)", got.IsValid(), tc.samePort)
				}
				s1c := listen(t, n, "198.51.100.1:3480") // never sent to
				send(t, s1c, p1, payload(9, 32))
				if got := win.next(); got.IsValid() != tc.sameIPIn {
					t.Errorf("a new port of s1's IP got in: %v (want %v)", got.IsValid(), tc.sameIPIn)
				}
				s1c.Close()
				// Expiry.
				time.Sleep(31 * time.Second)
				send(t, s1, p1, payload(8, 32))
				if got := win.next(); got.IsValid() {
					t.Errorf("datagram through an expired mapping")
				}
				st := nat.Stats(n)
				if st.MappingsCreated == 0 || st.NoMapping == 0 {
					t.Errorf("stats %+v", st)
				}
				for _, e := range []*Endpoint{in, s1, s1b, stranger, inside2} {
					e.Close()
				}
			})
		})
	}
}

// TestNATHairpin: an inside endpoint reaches another through the public
// address only with hairpinning.
func TestNATHairpin(t *testing.T) {
	for _, hairpin := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			n := mustNew(t, Config{})
			defer n.Close()
			n.AddNAT(NATConfig{Inside: netip.MustParsePrefix("10.0.1.0/24"), Public: netip.MustParseAddr("203.0.113.1"), Type: FullCone, Hairpin: hairpin})
			a := listen(t, n, "10.0.1.2:5000")
			b := listen(t, n, "10.0.1.3:5000")
			s := listen(t, n, "198.51.100.1:3478")
			wb, ws := watch(b), watch(s)
			send(t, b, s.LocalAddr(), payload(1, 32))
			pb := ws.next() // b's public address
			send(t, a, pb, payload(2, 32))
			if got := wb.next(); got.IsValid() != hairpin {
				t.Errorf("hairpin %v: delivered %v", hairpin, got.IsValid())
			}
			for _, e := range []*Endpoint{a, b, s} {
				e.Close()
			}
		})
	}
}

// TestNATRebind: after Rebind, datagrams to the old public port are
// dropped and the inside endpoint's next datagram out leaves from a new
// public port, which then works both ways.
func TestNATRebind(t *testing.T) {
	for _, typ := range []NATType{FullCone, Restricted, PortRestricted, Symmetric} {
		t.Run(typ.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				n := mustNew(t, Config{Link: LinkConfig{Delay: time.Millisecond}})
				defer n.Close()
				nat, _ := n.AddNAT(NATConfig{Inside: netip.MustParsePrefix("10.0.1.0/24"), Public: netip.MustParseAddr("203.0.113.1"), Type: typ})
				in := listen(t, n, "10.0.1.2:5000")
				s := listen(t, n, "198.51.100.1:3478")
				win, ws := watch(in), watch(s)
				send(t, in, s.LocalAddr(), payload(1, 32))
				old := ws.next()
				if !old.IsValid() {
					t.Fatal("nothing came out")
				}
				if got := nat.Rebind(n); got != 1 {
					t.Errorf("Rebind dropped %d mappings, want 1", got)
				}
				send(t, s, old, payload(2, 32))
				if got := win.next(); got.IsValid() {
					t.Errorf("a datagram to the old port %v came in after Rebind", old)
				}
				send(t, in, s.LocalAddr(), payload(3, 32))
				moved := ws.next()
				if !moved.IsValid() || moved == old || moved.Addr() != old.Addr() {
					t.Fatalf("after Rebind the endpoint comes out as %v, was %v: want a new port", moved, old)
				}
				send(t, s, moved, payload(4, 32))
				if got := win.next(); got != s.LocalAddr() {
					t.Errorf("a datagram to the new port: got from %v", got)
				}
				st := nat.Stats(n)
				if st.Rebinds != 1 || st.NoMapping != 1 || st.MappingsCreated != 2 || st.Mappings != 1 {
					t.Errorf("stats %+v", st)
				}
				in.Close()
				s.Close()
			})
		})
	}
}

func TestNATConfig(t *testing.T) {
	n := mustNew(t, Config{})
	defer n.Close()
	if _, err := n.AddNAT(NATConfig{Inside: netip.MustParsePrefix("10.0.0.0/8"), Public: netip.MustParseAddr("10.1.1.1")}); err == nil {
		t.Error("public address inside the prefix accepted")
	}
	if _, err := n.AddNAT(NATConfig{Inside: netip.MustParsePrefix("10.0.0.0/8"), Public: netip.MustParseAddr("1.1.1.1")}); err != nil {
		t.Fatal(err)
	}
	if _, err := n.AddNAT(NATConfig{Inside: netip.MustParsePrefix("10.1.0.0/16"), Public: netip.MustParseAddr("1.1.1.2")}); err == nil {
		t.Error("overlapping NAT accepted")
	}
}
