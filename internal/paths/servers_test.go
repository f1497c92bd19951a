package paths

import (
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netmsg-go/netmsg/internal/ice"
)

// turnFailedNow reports whether every TURN server of o failed to allocate.
func turnFailedNow(o *owner) bool {
	o.p.mu.Lock()
	defer o.p.mu.Unlock()
	for _, ta := range o.p.turns {
		if !ta.failed {
			return false
		}
	}
	return len(o.p.turns) > 0
}

// TestSetTURNServers: a relay-only Paths made without TURN servers gets
// them after its first Route: TURN starts at once; credentials the
// server refuses leave no allocation; fresh credentials for the same
// server make one, announced as an event; credentials for a server not
// listed when TURN started are ignored.
func TestSetTURNServers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, rs, srv := turnNet(t)
		defer nw.Close()
		defer rs.Close()
		a := newOwner(t, nw, "10.0.0.1:1000", Config{Allow: ice.EnableRelay})
		defer a.close()
		a.newRoute(0x1111, true)
		time.Sleep(time.Second)
		if _, ok := a.p.Allocation(); ok {
			t.Fatal("an allocation without a TURN server")
		}
		bad := srv
		bad.Password = "forged"
		if err := a.p.SetTURNServers([]TURNServer{bad}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second)
		if _, ok := a.p.Allocation(); ok || !turnFailedNow(a) {
			t.Fatalf("allocated with a wrong password, or not failed (failed %v)", turnFailedNow(a))
		}
		if n := rs.Stats().AuthFailed; n == 0 {
			t.Errorf("the relay counted %d authentication failures", n)
		}
		other := srv
		other.Addr = netip.MustParseAddrPort("198.51.100.99:3478")
		if err := a.p.SetTURNServers([]TURNServer{other, srv}); err != nil {
			t.Fatal(err)
		}
		al := waitAllocation(t, a)
		if al.Server != srv.Addr || al.Index != 0 {
			t.Fatalf("allocation %+v, want on %v, the first server listed", al, srv.Addr)
		}
		a.p.mu.Lock()
		n := len(a.p.turns)
		a.p.mu.Unlock()
		if n != 1 {
			t.Errorf("%d TURN clients, want 1", n)
		}
	})
}

// TestSetTURNServersBeforeRoute: servers given before the first Route
// are used when it is made; SetTURNServers without Config.Send fails;
// SetSTUNServers starts asking the new servers once a Route exists.
func TestSetTURNServersBeforeRoute(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, rs, srv := turnNet(t)
		defer nw.Close()
		defer rs.Close()
		if p, _ := New(Config{}); p.SetTURNServers([]TURNServer{srv}) != ErrTURNNeedsSend {
			t.Error("SetTURNServers without Send did not fail")
		}
		a := newOwner(t, nw, "10.0.0.1:1000", Config{Allow: ice.EnableRelay | ice.EnablePublic})
		defer a.close()
		if err := a.p.SetTURNServers([]TURNServer{srv}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		if _, ok := a.p.Allocation(); ok {
			t.Fatal("allocated before a Route asked")
		}
		a.newRoute(0x1111, true)
		waitAllocation(t, a)
		before := a.p.Stats().STUNSent
		a.p.SetSTUNServers(time.Now(), []netip.AddrPort{srv.Addr})
		time.Sleep(time.Second)
		if st := a.p.Stats(); st.STUNSent == before || st.STUNAnswers == 0 {
			t.Errorf("STUN: %d requests sent (%d before), %d answers", st.STUNSent, before, st.STUNAnswers)
		}
	})
}
