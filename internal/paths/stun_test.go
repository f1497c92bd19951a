package paths

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netmsg-go/netmsg/internal/ice"
	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/transport"
)

// stunResponderShift answers binding requests on ep with the sender's
// address, its port moved by shift.
func stunResponderShift(ep *netsim.Endpoint, shift *atomic.Int32) {
	pkts := []transport.Packet{{Buf: make([]byte, transport.MaxDatagram)}}
	for {
		n, err := ep.ReadBatch(pkts)
		if err != nil {
			return
		}
		for _, p := range pkts[:n] {
			seen := netip.AddrPortFrom(p.Addr.Addr(), p.Addr.Port()+uint16(shift.Load()))
			if r, ok := ice.BindingResponse(p.Bytes(), seen); ok {
				ep.WriteBatch([]transport.Packet{{Buf: r, N: len(r), Addr: p.Addr}})
			}
		}
	}
}

// TestSTUNClientSchedule: the pure client retransmits on GNS's schedule
// (400 ms, then 1.5 times longer, 5 sends), rests after an unanswered
// transaction and starts a new one, refreshes an answered server every
// stunRefresh, and reports a mapped address that changed.
func TestSTUNClientSchedule(t *testing.T) {
	srv := netip.MustParseAddrPort("198.51.100.1:3478")
	c := newSTUNClient([]netip.AddrPort{srv, srv, {}}, nil) // the duplicate and the invalid one are skipped
	if len(c.servers) != 1 {
		t.Fatalf("%d servers, want 1", len(c.servers))
	}
	t0 := time.Unix(1000, 0)
	if _, _, ok := c.poll(t0); ok || !c.nextWake().IsZero() {
		t.Fatal("sends before start")
	}
	c.start(t0)
	var sendTimes []time.Duration
	var firstTx [12]byte
	now := t0
	for now.Before(t0.Add(25 * time.Second)) {
		if to, b, ok := c.poll(now); ok {
			if to != srv {
				t.Fatalf("sent to %v", to)
			}
			tx, _, _ := parseReq(t, b)
			if len(sendTimes) == 0 {
				firstTx = tx
			}
			if len(sendTimes) < stunSends && tx != firstTx {
				t.Fatalf("retransmission %d has a new transaction id", len(sendTimes))
			}
			sendTimes = append(sendTimes, now.Sub(t0))
			continue
		}
		now = c.nextWake()
	}
	want := []time.Duration{0, 400 * time.Millisecond, 1000 * time.Millisecond, 1900 * time.Millisecond, 3250 * time.Millisecond}
	if len(sendTimes) < len(want)+1 {
		t.Fatalf("sends at %v", sendTimes)
	}
	for i, w := range want {
		if sendTimes[i] != w {
			t.Fatalf("send %d at %v, want %v (all: %v)", i, sendTimes[i], w, sendTimes)
		}
	}
	// Given up 2025 ms after the last send, then rests stunRetryLater.
	if got, w := sendTimes[5], 3250*time.Millisecond+2025*time.Millisecond+stunRetryLater; got != w {
		t.Fatalf("new transaction at %v, want %v", got, w)
	}

	// An answer to the transaction in flight is taken; a stale or
	// foreign one is not.
	c = newSTUNClient([]netip.AddrPort{srv}, nil)
	now = t0
	c.start(now)
	to, req, ok := c.poll(now)
	if !ok || to != srv {
		t.Fatal("no request")
	}
	mappedA := netip.MustParseAddrPort("203.0.113.1:40000")
	resp, _ := ice.BindingResponse(req, mappedA)
	if _, _, taken := c.handleResponse(now, netip.MustParseAddrPort("198.51.100.2:3478"), resp); taken {
		t.Fatal("answer from another address taken")
	}
	if m, changed, taken := c.handleResponse(now, srv, resp); !taken || !changed || m != mappedA {
		t.Fatalf("answer: %v %v %v", m, changed, taken)
	}
	if _, _, taken := c.handleResponse(now, srv, resp); taken {
		t.Fatal("duplicate answer taken")
	}
	if w := c.nextWake(); w != now.Add(stunRefresh) {
		t.Fatalf("refresh at %v, want %v", w.Sub(now), stunRefresh)
	}
	// The refresh reports the same address: not a change; a new one is.
	now = now.Add(stunRefresh)
	_, req, _ = c.poll(now)
	resp, _ = ice.BindingResponse(req, mappedA)
	if _, changed, taken := c.handleResponse(now, srv, resp); !taken || changed {
		t.Fatalf("same mapping: changed %v taken %v", changed, taken)
	}
	now = now.Add(stunRefresh)
	_, req, _ = c.poll(now)
	mappedB := netip.MustParseAddrPort("203.0.113.1:40001")
	resp, _ = ice.BindingResponse(req, mappedB)
	if m, changed, _ := c.handleResponse(now, srv, resp); !changed || m != mappedB {
		t.Fatalf("new mapping: %v %v", m, changed)
	}
	if got := c.mappedAddrs(); len(got) != 1 || got[0] != mappedB {
		t.Fatalf("mapped %v", got)
	}
}

func parseReq(t *testing.T, b []byte) (tx [12]byte, to netip.AddrPort, ok bool) {
	t.Helper()
	if Classify(b) != KindSTUN {
		t.Fatalf("request is %v", Classify(b))
	}
	copy(tx[:], b[8:20])
	return tx, netip.AddrPort{}, true
}

// TestSTUNThroughNAT: Paths behind a NAT of the in-memory network asks a
// STUN server, through a link that loses the first requests, and learns
// its public address: one EventLocalCandidate with a server-reflexive
// candidate, which the Route's local candidates then include; the
// refreshes keep going without news, and a new mapping (the server
// reports another address) is reported again.
func TestSTUNThroughNAT(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 10 * time.Millisecond}})
		defer nw.Close()
		if _, err := nw.AddNAT(netsim.NATConfig{Inside: netip.MustParsePrefix("10.1.0.0/16"), Public: netip.MustParseAddr("203.0.113.1"),
			Type: netsim.PortRestricted, MappingTimeout: 30 * time.Second}); err != nil {
			t.Fatal(err)
		}
		stunAddr := netip.MustParseAddrPort("198.51.100.10:3478")
		stun, _ := nw.Listen(stunAddr)
		defer stun.Close()
		var shift atomic.Int32
		go stunResponderShift(stun, &shift)
		o := newOwner(t, nw, "10.1.0.2:27015", Config{STUNServers: []netip.AddrPort{stunAddr}})
		defer o.close()
		// The first two requests are lost.
		nw.SetIngress(stunAddr, netsim.LinkConfig{Delay: 10 * time.Millisecond, Drop: netsim.DropSeqs(0, 1)})
		r := o.newRoute(1, true)
		time.Sleep(5 * time.Second)
		st := o.p.Stats()
		if st.STUNSent != 3 || st.STUNAnswers != 1 {
			t.Fatalf("sent %d answers %d, want 3 and 1", st.STUNSent, st.STUNAnswers)
		}
		evs := o.events()
		if len(evs) != 1 || evs[0].Candidate.Type != ice.ServerReflexive || evs[0].Candidate.Addr.Addr() != netip.MustParseAddr("203.0.113.1") {
			t.Fatalf("events %+v", evs)
		}
		first := evs[0].Candidate.Addr
		o.mu.Lock()
		found := false
		for _, c := range r.LocalCandidates() {
			found = found || c.Type == ice.ServerReflexive && c.Addr == first
		}
		o.mu.Unlock()
		if !found {
			t.Fatal("the route does not offer the reflexive candidate")
		}
		// Refreshes every stunRefresh keep the mapping: no new event.
		time.Sleep(3 * stunRefresh)
		if st := o.p.Stats(); st.STUNAnswers != 4 {
			t.Fatalf("%d answers after three refreshes, want 4", st.STUNAnswers)
		}
		if evs := o.events(); len(evs) != 0 {
			t.Fatalf("events on refresh: %+v", evs)
		}
		// The server sees us at another address from now on.
		shift.Store(7)
		time.Sleep(stunRefresh + time.Second)
		evs = o.events()
		if len(evs) != 1 || evs[0].Candidate.Addr == first {
			t.Fatalf("events after the NAT forgot: %+v (first %v)", evs, first)
		}
	})
}

// TestSTUNAskAgain: askAgain moves an answered server's refresh to now,
// but not within stunAskAgainMin of its answer, not for a server that
// never answered, and not while a transaction is out.
func TestSTUNAskAgain(t *testing.T) {
	srv := netip.MustParseAddrPort("198.51.100.1:3478")
	c := newSTUNClient([]netip.AddrPort{srv}, nil)
	t0 := time.Unix(1000, 0)
	if c.askAgain(t0) {
		t.Fatal("asks again before start")
	}
	c.start(t0)
	_, b, ok := c.poll(t0)
	if !ok {
		t.Fatal("no request")
	}
	if c.askAgain(t0) {
		t.Fatal("asks again while a transaction is out, before any answer")
	}
	answer := func(now time.Time, b []byte, mapped netip.AddrPort) {
		t.Helper()
		r, _ := ice.BindingResponse(b, mapped)
		if _, _, taken := c.handleResponse(now, srv, r); !taken {
			t.Fatal("answer not taken")
		}
	}
	t1 := t0.Add(50 * time.Millisecond)
	answer(t1, b, netip.MustParseAddrPort("203.0.113.1:40000"))
	if w := c.nextWake(); w != t1.Add(stunRefresh) {
		t.Fatalf("next refresh at %v", w)
	}
	if c.askAgain(t1.Add(stunAskAgainMin / 2)) {
		t.Fatal("asks again within stunAskAgainMin of the answer")
	}
	t2 := t1.Add(3 * time.Second)
	if !c.askAgain(t2) || c.nextWake() != t2 {
		t.Fatalf("askAgain at %v: next wake %v", t2, c.nextWake())
	}
	_, b, ok = c.poll(t2)
	if !ok {
		t.Fatal("no request after askAgain")
	}
	mapped, changed, taken := c.handleResponse(t2, srv, func() []byte {
		r, _ := ice.BindingResponse(b, netip.MustParseAddrPort("203.0.113.1:40001"))
		return r
	}())
	if !taken || !changed || mapped.Port() != 40001 {
		t.Fatalf("the new mapping: %v changed %v taken %v", mapped, changed, taken)
	}
}
