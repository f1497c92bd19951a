package netmsg

import (
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Limits bound what unproven peers can make a Host hold. A connect request
// is signed by its sender's key but not bound to the challenge it carries,
// so one captured request can be replayed with fresh challenges from many
// source ports, each making a server connection, without any crypto work
// by the attacker. Such a connection is half-open until the client proves
// it holds the session keys (a data packet from it decrypts). The zero
// value is fit for a public server.
type Limits struct {
	// MaxHalfOpen is the most half-open incoming connections (direct and
	// P2P, the connection API and Messages sessions together): made from
	// a connect request and not yet proven by an authenticated packet
	// from the client. Connect requests beyond it are dropped (the client
	// retries) and counted in HostStats.HalfOpenRefused. Default 1024.
	MaxHalfOpen int

	// MaxHalfOpenPerAddr is the most half-open incoming connections from
	// one IP address (for P2P, from one identity). Loopback addresses are
	// not limited (local processes share one). Default 16.
	MaxHalfOpenPerAddr int

	// MaxPendingSessionRequests is the most incoming Messages sessions that
	// are half-open at once: requested and not yet accepted, or accepted
	// but not yet heard from. Requests beyond it are dropped (the peer
	// retries) and counted in HostStats.HalfOpenRefused. Default 256.
	MaxPendingSessionRequests int
}

const (
	defaultMaxHalfOpen               = 1024
	defaultMaxHalfOpenPerAddr        = 16
	defaultMaxPendingSessionRequests = 256

	// refusalLogEvery is the least time between two logs of refusals;
	// the log in between counts those not logged.
	refusalLogEvery = 10 * time.Second
)

// withDefaults fills l's zero fields and checks the others.
func (l Limits) withDefaults() (Limits, error) {
	for _, f := range []struct {
		name string
		v    *int
		def  int
	}{
		{"MaxHalfOpen", &l.MaxHalfOpen, defaultMaxHalfOpen},
		{"MaxHalfOpenPerAddr", &l.MaxHalfOpenPerAddr, defaultMaxHalfOpenPerAddr},
		{"MaxPendingSessionRequests", &l.MaxPendingSessionRequests, defaultMaxPendingSessionRequests},
	} {
		switch {
		case *f.v < 0:
			return l, configErr("%s %d is negative", f.name, *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	return l, nil
}

// halfOpenTable counts the Host's half-open incoming connections, in
// total, by source and of Messages sessions. mu is a leaf lock: nothing is
// taken under it; refuse is guarded by the Host's mu. A hostConn's ho is
// guarded by the connection's lock (lockConn).
type halfOpenTable struct {
	mu     sync.Mutex
	total  int
	msgs   int
	bySrc  map[string]int
	refuse refusalLog
}

// halfOpenSource is the key a half-open connection is counted under: its
// IP address, or the identity of a P2P peer; "" for loopback.
func halfOpenSource(addr netip.AddrPort, identity string) string {
	if identity != "" {
		return "id:" + identity
	}
	if a := addr.Addr().Unmap(); !a.IsLoopback() {
		return a.String()
	}
	return ""
}

// admit counts a new half-open connection from src, or reports why it is
// refused ("" when admitted).
func (t *halfOpenTable) admit(l *Limits, src string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.total >= l.MaxHalfOpen:
		return "half-open connections at MaxHalfOpen"
	case src != "" && t.bySrc[src] >= l.MaxHalfOpenPerAddr:
		return "half-open connections from one source at MaxHalfOpenPerAddr"
	}
	t.total++
	if src != "" {
		if t.bySrc == nil {
			t.bySrc = make(map[string]int)
		}
		t.bySrc[src]++
	}
	return ""
}

// admitMsgs counts an admitted half-open connection as a Messages session
// request too, or reports why it is refused.
func (t *halfOpenTable) admitMsgs(l *Limits) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.msgs >= l.MaxPendingSessionRequests {
		return "pending session requests at MaxPendingSessionRequests"
	}
	t.msgs++
	return ""
}

// release uncounts a half-open connection.
func (t *halfOpenTable) release(src string, msgs bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total--
	if msgs {
		t.msgs--
	}
	if src != "" {
		if t.bySrc[src] <= 1 {
			delete(t.bySrc, src)
		} else {
			t.bySrc[src]--
		}
	}
}

// counts returns the half-open connections in total and of Messages.
func (t *halfOpenTable) counts() (total, msgs int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total, t.msgs
}

// halfOpenMark is a hostConn's record in the half-open table.
type halfOpenMark struct {
	counted bool
	src     string
	msgs    bool
}

// admitHalfOpenLocked decides whether a connect request from addr (or, for
// P2P, from identity) may make a new incoming connection, before any
// crypto work on it; it counts and logs a refusal. With msgs (a Messages
// session request) the request must also fit MaxPendingSessionRequests.
// mu is held.
func (h *Host) admitHalfOpenLocked(now time.Time, addr netip.AddrPort, identity string, msgs bool) (halfOpenMark, bool) {
	src := halfOpenSource(addr, identity)
	why := h.ho.admit(&h.cfg.Limits, src)
	if why == "" && msgs {
		if why = h.ho.admitMsgs(&h.cfg.Limits); why != "" {
			h.ho.release(src, false)
		}
	}
	if why != "" {
		h.stats.HalfOpenRefused++
		h.ho.refuse.note(h.cfg.Logger, now, why, addr, identity)
		return halfOpenMark{}, false
	}
	return halfOpenMark{counted: true, src: src, msgs: msgs}, true
}

// admitSessionLocked makes hc's half-open record count as a Messages
// session request too (a direct connect request, whose virtual port is
// known only once it was checked), or refuses it: the caller then drops
// hc, which is in no table yet, and the client asks again. mu is held.
func (h *Host) admitSessionLocked(now time.Time, hc *hostConn) bool {
	if !hc.ho.counted || hc.ho.msgs {
		return true
	}
	if why := h.ho.admitMsgs(&h.cfg.Limits); why != "" {
		h.stats.HalfOpenRefused++
		h.ho.refuse.note(h.cfg.Logger, now, why, hc.c.RemoteAddr(), "")
		return false
	}
	hc.ho.msgs = true
	return true
}

// halfOpenUpdate releases hc's place in the half-open table once the
// client proved its keys or the connection left the table (a connection
// that ended keeps its place while it stays in the table to say goodbye,
// since it holds memory as long). hc's lock (lockConn) is held.
func (h *Host) halfOpenUpdate(hc *hostConn) {
	if !hc.ho.counted || (!hc.removed && !hc.c.Proven()) {
		return
	}
	hc.ho.counted = false
	h.ho.release(hc.ho.src, hc.ho.msgs)
}

// refusalLog logs refusals at most once per refusalLogEvery, with the
// number not logged in between.
type refusalLog struct {
	last       time.Time
	suppressed atomic.Int64
}

func (r *refusalLog) note(log *slog.Logger, now time.Time, why string, addr netip.AddrPort, identity string) {
	if !r.last.IsZero() && now.Sub(r.last) < refusalLogEvery {
		r.suppressed.Add(1)
		return
	}
	r.last = now
	from := addr.String()
	if identity != "" {
		from = identity
	}
	log.Warn("netmsg: connect request refused", "reason", why, "from", from, "refused_since_last_log", r.suppressed.Swap(0))
}

// String describes the table, for logs and tests.
func (t *halfOpenTable) String() string {
	total, msgs := t.counts()
	return fmt.Sprintf("%d half-open (%d Messages)", total, msgs)
}
