package paths

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netmsg-go/netmsg/internal/ice"
	"github.com/netmsg-go/netmsg/netsim"
)

// discardWriter drops what is written and counts it.
type discardWriter struct{ n int }

func (w *discardWriter) WriteTo(netip.AddrPort, []byte, []byte) { w.n++ }

// TestHostileInput: garbage of every lead byte and length, STUN for no
// Route, answers to no request: every datagram that is not GNS is dropped
// and counted, none is taken, nothing panics.
func TestHostileInput(t *testing.T) {
	p, err := New(Config{STUNServers: []netip.AddrPort{netip.MustParseAddrPort("198.51.100.1:3478")}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r, err := p.NewRoute(time.Now(), 7, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.NewRoute(time.Now(), 7|1<<30, false); err != ice.ErrUfragInUse {
		t.Fatalf("second route with the same ufrag: %v", err)
	}
	from := netip.MustParseAddrPort("192.0.2.9:9")
	rng := rand.New(rand.NewPCG(1, 2))
	var gns, dropped int
	take := func(b []byte) {
		switch in := p.HandleDatagram(time.Now(), from, b); in.Disposition {
		case GNS:
			gns++
		case Dropped:
			dropped++
		default:
			t.Fatalf("% x: %v", b[:min(len(b), 8)], in.Disposition)
		}
	}
	for n := range 1500 {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		take(b)
	}
	for lead := range 256 {
		b := make([]byte, 1+rng.IntN(600))
		b[0] = byte(lead)
		take(b)
	}
	// Well-formed STUN: a check for no Route, a server answer nobody
	// asked for, a request to a STUN server.
	other, _ := ice.NewAgent(ice.Config{LocalUfrag: "zzzzz", LocalPwd: "aaaaa", Controlling: true})
	other.SetRemoteCredentials("nobody", "bbbbb")
	other.AddRemoteCandidate(ice.NewCandidate(ice.Host, from, netip.AddrPort{}))
	d, ok := other.Poll(time.Now())
	if !ok {
		t.Fatal("no check to replay")
	}
	take(d.B)
	resp, _ := ice.BindingResponse(ice.BindingRequest([12]byte{9}), from)
	take(resp)
	take(ice.BindingRequest([12]byte{1}))
	st := p.Stats()
	if uint64(dropped) != st.Dropped || st.NoRoute < 3 || gns == 0 {
		t.Fatalf("%d dropped, stats %+v, %d GNS", dropped, st, gns)
	}
	var w discardWriter
	r.Poll(time.Now(), &w) // the route is unharmed
	r.Close()
	p.Close()
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := p.NewRoute(time.Now(), 8, true); err != ErrClosed {
		t.Fatalf("NewRoute after Close: %v, want ErrClosed", err)
	}
}

// TestFloodFromTURNServer: a flood of datagrams from the TURN server's
// address that are not for the fast path goes through pion's bounded
// queue: each is taken or dropped and counted, never buffered beyond
// PionQueue; truncated ChannelData is dropped.
func TestFloodFromTURNServer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, rs, srv := turnNet(t)
		defer nw.Close()
		defer rs.Close()
		o := newOwner(t, nw, "10.0.0.1:1000", Config{TURNServers: []TURNServer{srv}, Allow: ice.EnableRelay})
		defer o.close()
		o.newRoute(1, true)
		waitAllocation(t, o)
		const n = 20000
		var taken, dropped int
		rng := rand.New(rand.NewPCG(3, 4))
		for i := range n {
			var b []byte
			if i%2 == 0 {
				b = ice.BindingRequest([12]byte{byte(i), byte(i >> 8)}) // STUN pion's client did not ask for
			} else {
				b = ChannelData{Channel: uint16(ChannelMin + rng.IntN(0x1000)), Data: make([]byte, 100)}.Append(nil) // unbound channels
			}
			switch o.p.HandleDatagram(time.Now(), srv.Addr, b).Disposition {
			case Taken:
				taken++
			case Dropped:
				dropped++
			default:
				t.Fatal("flood datagram returned to the owner")
			}
		}
		st := o.p.Stats()
		if uint64(dropped) != st.PionQueueDrops || taken+dropped != n {
			t.Fatalf("taken %d dropped %d of %d; stats %+v", taken, dropped, n, st)
		}
		// Truncated ChannelData from the server is malformed.
		before := o.p.Stats().Dropped
		for _, b := range [][]byte{{0x40, 0x00}, {0x40, 0x00, 0x00, 0x09, 1}} {
			if in := o.p.HandleDatagram(time.Now(), srv.Addr, b); in.Disposition != Dropped {
				t.Fatalf("% x: %v", b, in.Disposition)
			}
		}
		if got := o.p.Stats().Dropped - before; got != 2 {
			t.Fatalf("%d counted dropped, want 2", got)
		}
		t.Logf("flood of %d: %d taken by pion's queue, %d dropped", n, taken, dropped)
	})
}

// TestRelayQueueBounded: while pion's relayed connection is stuck (the
// server went deaf, so the permission for a new peer never comes), sends
// through the relay queue up to RelayQueue datagrams and count the rest
// as dropped.
func TestRelayQueueBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, rs, srv := turnNet(t)
		defer nw.Close()
		defer rs.Close()
		o := newOwner(t, nw, "10.0.0.1:1000", Config{TURNServers: []TURNServer{srv}, Allow: ice.EnableRelay})
		defer o.close()
		o.newRoute(1, true)
		waitAllocation(t, o)
		nw.SetIngress(srv.Addr, netsim.LinkConfig{LossPercent: 100})
		peer := netip.MustParseAddrPort("192.0.2.50:5000")
		var w discardWriter
		const n = 3000
		sent := 0
		for i := range n {
			if o.p.relaySend(&w, peer, gnsDatagram(i, 100)) {
				sent++
			}
		}
		st := o.p.Stats()
		if w.n != 0 || sent+int(st.RelayQueueDrops) != n || sent < RelayQueue || sent > RelayQueue+1 {
			t.Fatalf("%d queued, %d written as ChannelData, stats %+v", sent, w.n, st)
		}
	})
}
