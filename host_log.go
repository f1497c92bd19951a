package netmsg

import (
	"net/netip"
	"time"
)

// refusedLogEvery is how often a refused peer (a handshake or certificate
// the Host would not take, or one the peer's side reported with a remote
// end reason) is logged per reason; the others are counted in the next
// line.
const refusedLogEvery = 10 * time.Second

// refusedLog remembers when each reason was last logged; guarded by the
// Host's mu.
type refusedLog struct {
	last       map[string]time.Time
	suppressed map[string]int
}

// logRefusedLocked logs a refused peer at most once per reason and
// refusedLogEvery, with the reason's text (GNS's, from the handshake's
// checks) and how many were not logged since. mu is held.
func (h *Host) logRefusedLocked(from netip.AddrPort, reason string) {
	l := &h.refused
	if l.last == nil {
		l.last, l.suppressed = map[string]time.Time{}, map[string]int{}
	}
	now := h.cfg.Now()
	if t, ok := l.last[reason]; ok && now.Sub(t) < refusedLogEvery {
		l.suppressed[reason]++
		return
	}
	if len(l.last) > 256 { // bounded: forget the oldest reasons
		clear(l.last)
		clear(l.suppressed)
	}
	n := l.suppressed[reason]
	l.last[reason], l.suppressed[reason] = now, 0
	h.cfg.Logger.Warn("netmsg: peer refused", "peer", from, "reason", reason, "suppressed", n)
}
