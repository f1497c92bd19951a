package netmsg

import (
	"net/netip"

	"github.com/netmsg-go/netmsg/internal/conn"
	"github.com/netmsg-go/netmsg/internal/paths"
)

// The route of a P2P connection, as the API reports it.
//
// A P2P connection whose handshake is done (the peer's connect OK came, or
// we accepted) has no end-to-end path until ICE selects one: it reports
// StateFindingRoute then (GNS's k_ESteamNetworkingConnectionState_
// FindingRoute), and StateConnected once a path is selected. It goes
// through FindingRoute even when ICE had a path before the handshake ended,
// as GNS's connections do. Once connected it stays connected when ICE
// loses its path (an ICE restart) or changes it; a change is reported by
// Config.OnRouteChanged and seen in ConnectionInfo (Flags, RemoteAddress,
// Description). The engine's own state (package conn) knows nothing of
// this: it is Connected from the end of the handshake, and its data waits
// for a path (Host.pollLocked).

// RouteChanged is the event passed to Config.OnRouteChanged: the route of
// a connected P2P connection or Messages session changed.
type RouteChanged struct {
	// Conn is the connection API's handle of the connection, or
	// InvalidConn for a Messages session.
	Conn ConnHandle
	// Identity is the peer.
	Identity Identity
	// Info is the connection's (or session's) info on the new route:
	// Flags has ConnInfoRelayed when it goes through a TURN relay,
	// RemoteAddress is the peer's address on a direct route (zero when
	// relayed, as in GNS), Description names the path.
	Info ConnectionInfo
	// OldRemote is the peer's address on the route before (behind the
	// relay when OldRelayed).
	OldRemote netip.AddrPort
	// OldRelayed reports that the route before went through a TURN relay
	// (ours or the peer's).
	OldRelayed bool
}

// routeState is what a P2P connection's route reported to the API.
// Guarded with the connection (the Host's mu).
type routeState struct {
	routed bool       // StateConnected was reported: FindingRoute is over
	path   paths.Path // the last path selected
}

// apiState is the state the API reports for hc whose engine is in st: a
// P2P connection that is connected but has not reported its route yet is
// finding its route. hc's lock is held.
func apiState(hc *hostConn, st ConnectionState) ConnectionState {
	if st == StateConnected && hc.p2p != nil && !hc.p2p.rt.routed {
		return StateFindingRoute
	}
	return st
}

// routeEventLocked takes one change of hc's ICE path: once hc reported
// its route, a different path is reported to Config.OnRouteChanged. mu
// is held.
func (h *Host) routeEventLocked(hc *hostConn, ev paths.RouteEvent) {
	if !ev.Path.Valid {
		return // lost: the connection keeps its address until the next path
	}
	rt := &hc.p2p.rt
	old := rt.path
	rt.path = ev.Path
	cb := h.cfg.OnRouteChanged
	if !rt.routed || cb == nil || !old.Valid || old == ev.Path {
		return
	}
	rc := RouteChanged{Conn: hc.handle, Identity: hc.identity, OldRemote: old.Remote, OldRelayed: old.Relayed || old.PeerRelay}
	switch {
	case hc.svc != nil:
		rc.Conn = InvalidConn
		rc.Info = hc.svc.connInfoLocked(hc)
		rc.Identity = rc.Info.Identity
	case hc.handle == InvalidConn:
		return // closed by the application
	default:
		rc.Info = h.infoLocked(hc)
	}
	h.postLocked(func() { cb(rc) })
}

// routeFoundLocked ends hc's FindingRoute once its handshake is done and
// ICE selected a path: the API's state becomes Connected, with its
// callbacks. mu is held.
func (h *Host) routeFoundLocked(hc *hostConn) {
	p := hc.p2p
	if p.rt.routed || hc.state != StateFindingRoute || !p.rt.path.Valid || hc.c.State() != conn.StateConnected {
		return
	}
	p.rt.routed = true
	h.stateChangedLocked(hc, conn.Event{State: conn.StateConnected})
}
