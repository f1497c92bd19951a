package netmsg

import (
	"io"
	"net/netip"
	"time"

	"github.com/netmsg-go/netmsg/internal/ice"
	"github.com/netmsg-go/netmsg/internal/p2p"
)

// Server-reflexive candidates: the Host asks each of Config.STUNServers
// for the address its socket appears at from outside (a NAT's mapping),
// retrying while unanswered and asking again now and then to keep the
// mapping open, and offers that address to its P2P peers as a candidate
// (as GNS does with P2P_STUN_ServerList).
const (
	stunRetry   = 500 * time.Millisecond
	stunTries   = 6
	stunRefresh = 25 * time.Second
)

type stunServer struct {
	addr   netip.AddrPort
	tx     [12]byte
	tries  int
	nextAt time.Time
	mapped netip.AddrPort // learned (invalid until then)
}

// stunStartLocked begins querying the STUN servers (once, when P2P is
// first used).
func (h *Host) stunStartLocked(now time.Time) {
	if h.stunServers != nil || len(h.cfg.STUNServers) == 0 {
		return
	}
	for _, a := range h.cfg.STUNServers {
		h.stunServers = append(h.stunServers, &stunServer{addr: a, nextAt: now})
	}
	signal(h.timerKick)
}

// stunTickLocked sends the binding requests due and returns when it next
// needs to run (zero: never).
func (h *Host) stunTickLocked(now time.Time) time.Time {
	var next time.Time
	for _, s := range h.stunServers {
		if s.nextAt.IsZero() {
			continue
		}
		if !now.Before(s.nextAt) {
			if s.tries >= stunTries {
				s.tries, s.nextAt = 0, now.Add(stunRefresh) // no answer: try again later
				continue
			}
			io.ReadFull(h.cfg.Rand, s.tx[:])
			s.tries++
			s.nextAt = now.Add(stunRetry)
			h.queueLocked(s.addr, ice.BindingRequest(s.tx))
		}
		if next.IsZero() || s.nextAt.Before(next) {
			next = s.nextAt
		}
	}
	return next
}

// stunResponseLocked takes a binding response from a STUN server. It
// reports whether b was one.
func (h *Host) stunResponseLocked(now time.Time, from netip.AddrPort, b []byte) bool {
	if len(h.stunServers) == 0 {
		return false
	}
	tx, mapped, ok := ice.ParseBindingResponse(b)
	if !ok {
		return false
	}
	for _, s := range h.stunServers {
		if s.tries == 0 || s.tx != tx || s.addr != from {
			continue
		}
		s.tries, s.nextAt = 0, now.Add(stunRefresh)
		if mapped == s.mapped {
			return true
		}
		s.mapped = mapped
		if h.isHostCandidate(mapped) || h.cfg.P2PICEEnable&ICEEnablePublic == 0 {
			return true // not behind a NAT (the host candidate says it all), or relay only
		}
		// A new reflexive address: offer it to every P2P peer.
		c := h.srflxCandidate(mapped).String()
		for _, hc := range h.conns {
			if hc.p2p != nil && hc.handle != InvalidConn {
				hc.p2p.sess.QueueReliable(now, p2p.ICECandidate(c))
				h.pollLocked(now, hc)
			}
		}
		return true
	}
	return false
}

func (h *Host) isHostCandidate(a netip.AddrPort) bool {
	for _, c := range h.hostCandidates() {
		if c == a {
			return true
		}
	}
	return false
}

func (h *Host) srflxCandidate(mapped netip.AddrPort) ice.Candidate {
	return ice.NewCandidate(ice.ServerReflexive, mapped, h.pc.LocalAddr())
}

// srflxCandidates are the reflexive addresses learned so far.
func (h *Host) srflxCandidates() []ice.Candidate {
	var out []ice.Candidate
	for _, s := range h.stunServers {
		if s.mapped.IsValid() && !h.isHostCandidate(s.mapped) {
			dup := false
			for _, c := range out {
				dup = dup || c.Addr == s.mapped
			}
			if !dup {
				out = append(out, h.srflxCandidate(s.mapped))
			}
		}
	}
	return out
}
