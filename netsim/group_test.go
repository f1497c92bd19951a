package netsim

import (
	"errors"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netmsg-go/netmsg/transport"
)

// TestMulticastGroup: a datagram to a group reaches every member at the
// group's port (the sender too, when it is a member), not endpoints that
// left, did not join, or listen on another port; each copy is counted on
// its own direction.
func TestMulticastGroup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, _ := New(Config{Link: LinkConfig{Delay: 5 * time.Millisecond}})
		defer n.Close()
		g := netip.MustParseAddr("239.255.1.2")
		a := listen(t, n, "10.0.0.1:7000")
		b := listen(t, n, "10.0.0.2:7000")
		c := listen(t, n, "10.0.0.3:7000")
		d := listen(t, n, "10.0.0.4:7001") // member, other port
		e := listen(t, n, "10.0.0.5:7000") // not a member
		sender := listen(t, n, "10.0.0.9:1234")
		for _, ep := range []*Endpoint{a, b, c, d} {
			if err := ep.JoinGroup(g); err != nil {
				t.Fatal(err)
			}
		}
		c.LeaveGroup(g)
		cols := map[*Endpoint]*collector{}
		for _, ep := range []*Endpoint{a, b, c, d, e} {
			cols[ep] = collect(ep)
		}
		send(t, sender, netip.AddrPortFrom(g, 7000), payload(1, 32))
		send(t, a, netip.AddrPortFrom(g, 7000), payload(2, 32)) // a gets its own
		time.Sleep(10 * time.Millisecond)
		n.Close()
		want := map[*Endpoint]int{a: 2, b: 2, c: 0, d: 0, e: 0}
		for ep, col := range cols {
			<-col.done
			if got := len(col.got); got != want[ep] {
				t.Errorf("%v got %d datagrams, want %d", ep.LocalAddr(), got, want[ep])
			}
			for _, r := range col.got {
				if r.idx == 1 && r.from != sender.LocalAddr() || r.idx == 2 && r.from != a.LocalAddr() {
					t.Errorf("%v: datagram %d from %v", ep.LocalAddr(), r.idx, r.from)
				}
				if r.latency != 5*time.Millisecond {
					t.Errorf("latency %v", r.latency)
				}
			}
		}
		if st := n.LinkStats(sender.LocalAddr(), b.LocalAddr()); st.Sent != 1 || st.Delivered != 1 {
			t.Errorf("sender->b: %+v", st)
		}
		if err := a.JoinGroup(netip.MustParseAddr("10.0.0.1")); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("joining a unicast address: %v", err)
		}
		if err := a.JoinGroup(g); !errors.Is(err, transport.ErrClosed) {
			t.Errorf("joining after close: %v", err)
		}
	})
}

// TestMulticastLossPerReceiver: each receiver's copy meets the conditions
// of its own direction.
func TestMulticastLossPerReceiver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, _ := New(Config{})
		defer n.Close()
		g := netip.MustParseAddr("239.255.1.2")
		a := listen(t, n, "10.0.0.1:7000")
		b := listen(t, n, "10.0.0.2:7000")
		s := listen(t, n, "10.0.0.9:1")
		a.JoinGroup(g)
		b.JoinGroup(g)
		n.SetLink(s.LocalAddr(), b.LocalAddr(), LinkConfig{LossPercent: 100})
		ca, cb := collect(a), collect(b)
		for i := range 10 {
			send(t, s, netip.AddrPortFrom(g, 7000), payload(uint64(i), 16))
		}
		time.Sleep(time.Millisecond)
		n.Close()
		<-ca.done
		<-cb.done
		if len(ca.got) != 10 || len(cb.got) != 0 {
			t.Fatalf("a got %d, b got %d", len(ca.got), len(cb.got))
		}
		if st := n.LinkStats(s.LocalAddr(), b.LocalAddr()); st.DroppedLoss != 10 {
			t.Fatalf("s->b: %+v", st)
		}
	})
}

// TestLimitedBroadcast: a datagram to 255.255.255.255:port reaches every
// IPv4 endpoint with that port, joined to a group or not; not IPv6 ones,
// nor endpoints behind another NAT.
func TestLimitedBroadcast(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n, _ := New(Config{})
		defer n.Close()
		if _, err := n.AddNAT(NATConfig{Inside: netip.MustParsePrefix("192.168.1.0/24"), Public: netip.MustParseAddr("203.0.113.1")}); err != nil {
			t.Fatal(err)
		}
		a := listen(t, n, "10.0.0.1:7000")
		b := listen(t, n, "10.0.0.2:7000")
		v6 := listen(t, n, "[fd00::1]:7000")
		natted := listen(t, n, "192.168.1.2:7000")
		other := listen(t, n, "10.0.0.3:7001")
		s := listen(t, n, "10.0.0.9:1")
		cols := map[*Endpoint]*collector{}
		for _, ep := range []*Endpoint{a, b, v6, natted, other} {
			cols[ep] = collect(ep)
		}
		send(t, s, netip.AddrPortFrom(LimitedBroadcast, 7000), payload(1, 16))
		time.Sleep(time.Millisecond)
		n.Close()
		want := map[*Endpoint]int{a: 1, b: 1}
		for ep, col := range cols {
			<-col.done
			if len(col.got) != want[ep] {
				t.Errorf("%v got %d, want %d", ep.LocalAddr(), len(col.got), want[ep])
			}
		}
	})
}
