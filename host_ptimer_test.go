package netmsg

import (
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
)

// TestPreciseTimerOnlyOnRealSocketAndClock: the timer goroutine waits on
// internal/ptimer only in a Host with its own socket on the real clock
// (on Linux); a Host on a given PacketConn (the in-memory network) or a
// fake clock keeps Go's timers, which testing/synctest controls.
func TestPreciseTimerOnlyOnRealSocketAndClock(t *testing.T) {
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	nw, err := netsim.New(netsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	ep, err := nw.Listen(netip.MustParseAddrPort("127.0.0.1:27015"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want bool
	}{
		{"own socket, real clock", Config{ListenAddr: lo}, runtime.GOOS == "linux"},
		{"own socket, given clock", Config{ListenAddr: lo, Now: time.Now}, false},
		{"PacketConn", Config{PacketConn: ep}, false},
	} {
		h, err := NewHost(tc.cfg)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := h.precise != nil; got != tc.want {
			t.Errorf("%s: precise timer %v, want %v", tc.name, got, tc.want)
		}
		h.Close()
	}
}
