package netmsg

import (
	"time"

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
