package netmsg

import (
	"bytes"
	"time"

	"github.com/netmsg-go/netmsg/internal/conn"
	"github.com/netmsg-go/netmsg/internal/snp"
)

// service is what rides on a virtual port above the Host, as GNS's
// Messages layer does on port 0x7fffffff: the Host hands it the
// connections that arrive on its port, their messages and their state
// changes, and ticks it; the service makes and closes connections with the
// Host's connection machinery. The Host knows services only through this
// interface (Host.services, and hostConn.svc for the connections a service
// owns).
type service interface {
	// acceptingLocked reports whether the service takes incoming
	// connections now. mu is held.
	acceptingLocked() bool
	// incomingLocked takes a new incoming connection on the service's
	// port and reports whether it did. One it does not take is dropped by
	// the Host as if its request had never arrived: no answer, no state,
	// so the peer's next attempt is judged afresh (GNS drops such
	// requests the same way). mu and hc's lock are held.
	incomingLocked(now time.Time, hc *hostConn) bool
	// deliverAll takes messages that arrived on one of the service's
	// connections (it owns their buffers). hc's lock is held, mu maybe not.
	deliverAll(now time.Time, hc *hostConn, ms []snp.Message)
	// stateLocked follows a state change of one of its connections. mu and
	// hc's lock are held.
	stateLocked(hc *hostConn, old ConnectionState)
	// connInfoLocked is the ConnectionInfo of one of its connections as
	// the service presents it. mu and hc's lock are held.
	connInfoLocked(hc *hostConn) ConnectionInfo
	// tickLocked runs the service's timers and returns when it next needs
	// to run (zero: no need). mu is held.
	tickLocked(now time.Time) time.Time
	// p2pClientLocked returns the service's live P2P client connection to
	// peer, if any (symmetric connect). mu is held.
	p2pClientLocked(peer Identity) *hostConn
	// clientLocked returns the service's live client connection, direct
	// or P2P, to peer, if any (a peer that restarted). mu is held.
	clientLocked(peer Identity) *hostConn
}

// endSupersededLocked ends old, our connected client connection to a
// peer that made a new connection to us on the same service (new): the
// peer restarted, or gave ours up, and the new connection takes over
// (the service sees ours end first, closed by the peer with
// EndSessionClosed, as when the peer closes a session: quietly, and the
// new one is a new session rather than a late copy of a symmetric
// connect's losing request). mu is held, and new's lock when it is a
// direct one.
func (h *Host) endSupersededLocked(now time.Time, old *hostConn) {
	lockConn(old)
	old.c.CloseByPeer(now, int(EndSessionClosed), "the peer made a new connection (it restarted)")
	h.pollLocked(now, old)
	unlockConn(old)
}

// lateRequestWindow is how long after our connection of a symmetric
// connect came up a copy of the peer's losing request may still arrive
// (delayed or duplicated by the network).
const lateRequestWindow = 2 * time.Second

// supersedesLocked reports whether hc, a direct connection on service
// svc's port that the peer just asked for, supersedes our client
// connection to the same peer: ours is connected, to the same address,
// and the peer's certificate has another key (it restarted with a fresh
// one), or ours was connected for longer than lateRequestWindow (a
// symmetric connect's losing request, from the same peer with the same
// key, cannot come that late: the peer stops asking on its losing
// connection once it accepted ours, so only copies still in flight
// arrive after ours is up; a request later than that is the peer's new
// session, made after it closed or lost ours). It returns our
// connection, or nil.
func (h *Host) supersedesLocked(now time.Time, svc service, hc *hostConn) *hostConn {
	old := svc.clientLocked(hc.identity)
	if old == nil || old.p2p != nil || old == hc || old.c.RemoteAddr() != hc.c.RemoteAddr() ||
		old.c.State() != conn.StateConnected || old.c.RemoteID() == hc.c.RemoteID() {
		return nil
	}
	if !bytes.Equal(old.c.PeerKey(), hc.c.PeerKey()) || !now.Before(old.c.StateSince().Add(lateRequestWindow)) {
		return old
	}
	return nil
}

// serviceLocked returns the service on virtual port vport, or nil. mu is
// held.
func (h *Host) serviceLocked(vport int) service { return h.services[vport] }

// acceptingLocked reports whether a service takes connections on vport.
// mu is held.
func (h *Host) acceptingLocked(vport int) bool {
	s := h.services[vport]
	return s != nil && s.acceptingLocked()
}

// tickServicesLocked ticks every service and returns the soonest time one
// needs to run again. mu is held.
func (h *Host) tickServicesLocked(now time.Time) time.Time {
	var next time.Time
	for _, s := range h.services {
		if w := s.tickLocked(now); !w.IsZero() && (next.IsZero() || w.Before(next)) {
			next = w
		}
	}
	return next
}
