package netmsg

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/conn"
	"github.com/netmsg-go/netmsg/internal/p2p"
	"github.com/netmsg-go/netmsg/internal/pb"
)

// The connection API over P2P (GNS's ConnectP2P and CreateListenSocketP2P):
// connections to an identity on a virtual port, through signaling and ICE
// (and a TURN relay where ICE needs one), with the handshake, rules and
// symmetric connect of the Messages layer's P2P sessions, which keep their
// own port, 0x7fffffff. An incoming connect request goes to the listen
// socket on the port it names (to_virtual_port); one for a port nobody
// listens on is refused with a connection_closed signal.

// MaxP2PVirtualPort is the highest virtual port of ListenP2P and
// ConnectP2P (GNS's regular P2P virtual ports are 0-0xffff; the Messages
// port, 0x7fffffff, is the Messages layer's).
const MaxP2PVirtualPort = 0xffff

// endNoListenSocket is the reason a connect request to a virtual port
// nobody listens on is refused with. GNS ignores such a request with its
// default signaling and leaves it to the application with custom
// signaling; the rejections it sends itself for a request it cannot take
// carry k_ESteamNetConnectionEnd_Misc_Generic (SendP2PRejection,
// steamnetworkingsockets_p2p.cpp).
const endNoListenSocket = EndMiscGeneric

// P2POptions are the options of ConnectP2P and ListenP2P. The zero value
// (and nil) is GNS's default.
type P2POptions struct {
	// SymmetricConnect is GNS's k_ESteamNetworkingConfig_SymmetricConnect:
	// two peers that connect to each other at once on the same virtual
	// port end up with one connection, not two. When both sides' connect
	// requests cross, one side (by GNS's rule on the connection ids)
	// turns its own connection into the accepting side of the other's,
	// accepted at once; ConnectP2P while an incoming connection from the
	// peer on that port waits to be accepted accepts it and returns it.
	// A listen socket with SymmetricConnect makes every connection on its
	// port symmetric. Default false.
	SymmetricConnect bool
}

// p2pListens is the Host's P2P listen sockets, guarded by mu.
type p2pListens struct {
	byPort   map[int]*p2pListen
	byHandle map[ListenHandle]*p2pListen
}

// p2pListen is one P2P listen socket.
type p2pListen struct {
	handle    ListenHandle
	vport     int
	symmetric bool
}

// p2pAPI is the connection API's side of a P2P connection (guarded with
// it, under mu).
type p2pAPI struct {
	on          bool // a connection of the connection API (not a Messages session)
	vport       int  // our virtual port (GNS: the remote one unless set)
	remoteVport int  // the peer's (from_virtual_port of its request)
	symmetric   bool
}

// checkP2PLocked checks what every P2P API call needs.
func (h *Host) checkP2PLocked(vport int) error {
	if h.closed {
		return ErrHostClosed
	}
	if vport < 0 || vport > MaxP2PVirtualPort {
		return fmt.Errorf("netmsg: virtual port %d outside 0-%d: %w", vport, MaxP2PVirtualPort, ResultInvalidParam)
	}
	if h.cfg.Signaling == nil {
		return fmt.Errorf("netmsg: P2P needs Config.Signaling: %w", ResultInvalidState)
	}
	if h.identity.IsLocalhost() || !h.identity.IsValid() {
		return fmt.Errorf("netmsg: P2P needs a Host identity (Config.Identity), not %v: %w", h.identity, ResultInvalidParam)
	}
	return nil
}

// ListenP2P makes the Host accept P2P connections to its identity on
// virtual port vport (GNS's CreateListenSocketP2P), 0-MaxP2PVirtualPort.
// New connections appear in state Connecting through
// OnConnectionStatusChanged, with ConnectionInfo.ListenSocket the handle
// returned, and must be accepted with AcceptConnection; they then find
// their route (StateFindingRoute) and connect. It needs Config.Signaling
// and an identity; one listen socket per port (ResultInvalidParam for a
// second). CloseListen closes the listen socket and every connection
// accepted on it, as GNS does.
func (h *Host) ListenP2P(vport int, opts *P2POptions) (ListenHandle, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.checkP2PLocked(vport); err != nil {
		return InvalidListen, err
	}
	ls := &h.p2pListens
	if ls.byPort[vport] != nil {
		return InvalidListen, fmt.Errorf("netmsg: a listen socket on virtual port %d exists already: %w", vport, ResultInvalidParam)
	}
	if ls.byPort == nil {
		ls.byPort, ls.byHandle = map[int]*p2pListen{}, map[ListenHandle]*p2pListen{}
	}
	h.nextListen++
	l := &p2pListen{handle: h.nextListen, vport: vport, symmetric: opts != nil && opts.SymmetricConnect}
	ls.byPort[vport], ls.byHandle[l.handle] = l, l
	return l.handle, nil
}

// closeP2PListenLocked closes P2P listen socket l, if it is one, with
// every connection accepted on it or waiting to be (GNS's
// CloseListenSocket: their handles are released and no callback is
// posted; the peers are told the connection closed, with EndAppGeneric
// and "listen socket closed", where GNS tells them nothing).
func (h *Host) closeP2PListenLocked(l ListenHandle) bool {
	ls := &h.p2pListens
	pl := ls.byHandle[l]
	if pl == nil {
		return false
	}
	delete(ls.byHandle, l)
	delete(ls.byPort, pl.vport)
	now := h.cfg.Now()
	for _, hc := range h.conns {
		if hc.p2p == nil || !hc.p2p.api.on || hc.listen != l || hc.handle == InvalidConn {
			continue
		}
		hc.c.Close(now, int(EndAppGeneric), "listen socket closed", false)
		h.pollLocked(now, hc)
		hc.recv.drop()
		hc.queued.Store(0)
		hc.listen = InvalidListen
		hc.userData = -1
		hc.state = StateNone
		if !hc.removed {
			h.forgetHandleLocked(hc)
		}
	}
	return true
}

// ConnectP2P starts a P2P connection to peer's virtual port vport (GNS's
// ConnectP2P), 0-MaxP2PVirtualPort: a connect request through
// Config.Signaling, then ICE (and a TURN relay when ICE needs one). It
// returns at once with the connection in state Connecting; it reports
// StateFindingRoute once the peer accepted, and StateConnected when a
// route is found, through OnConnectionStatusChanged. Messages sent before
// are queued. A peer that does not listen on vport refuses it (the
// connection ends ClosedByPeer with EndMiscGeneric); one that does not
// answer within Config.TimeoutInitial leaves it ProblemDetectedLocally.
//
// With SymmetricConnect (in opts, or on our listen socket on vport), a
// connection from peer on vport that waits to be accepted is accepted and
// returned instead, and a second symmetric connection to peer on vport
// while one is alive is refused (ResultDuplicateRequest).
func (h *Host) ConnectP2P(peer Identity, vport int, opts *P2POptions) (ConnHandle, error) {
	if !peer.IsValid() {
		return InvalidConn, fmt.Errorf("netmsg: connect: invalid identity: %w", ResultInvalidParam)
	}
	h.mu.Lock()
	if err := h.checkP2PLocked(vport); err != nil {
		h.mu.Unlock()
		return InvalidConn, err
	}
	now := h.cfg.Now()
	sym := opts != nil && opts.SymmetricConnect
	if l := h.p2pListens.byPort[vport]; l != nil && l.symmetric {
		sym = true
	}
	if m := h.matchP2PLocked(peer.String(), vport, vport, !sym); m != nil {
		if !m.c.IsServer() || m.state != StateConnecting {
			h.mu.Unlock()
			return InvalidConn, fmt.Errorf("netmsg: connect: a symmetric connection to %v on port %d exists already (#%d): %w", peer, vport, m.c.LocalID(), ResultDuplicateRequest)
		}
		if err := m.c.Accept(now); err != nil {
			h.mu.Unlock()
			return InvalidConn, fmt.Errorf("netmsg: connect: accept %v: %v: %w", peer, err, ResultInvalidState)
		}
		h.pollLocked(now, m)
		h.unlockFlush()
		return m.handle, nil
	}
	hc, err := h.dialP2PLocked(now, peer, vport, sym)
	if err != nil {
		h.mu.Unlock()
		return InvalidConn, err
	}
	h.unlockFlush()
	return hc.handle, nil
}

// dialP2PLocked makes our side of a connection API P2P connection to
// peer's port vport and sends its connect request.
func (h *Host) dialP2PLocked(now time.Time, peer Identity, vport int, sym bool) (*hostConn, error) {
	handle, err := h.newHandleLocked()
	if err != nil {
		return nil, err
	}
	cfg := h.connCfg
	cfg.VirtualPort = vport
	cfg.OfferLanes = 0 // netmsg's lane offer is the Messages layer's
	cfg.RemoteIdentity = peer.String()
	c, err := conn.DialP2P(cfg, now, uint32(handle))
	if err != nil {
		return nil, fmt.Errorf("netmsg: connect: %w", err)
	}
	hc := &hostConn{userData: -1, handle: handle, c: c, listen: InvalidListen, state: StateNone, recv: recvQueue{ready: make(chan struct{}, 1)}, hidx: -1, identity: peer}
	if err := h.newP2PLocked(now, hc, peer, false, 0); err != nil {
		return nil, err
	}
	hc.p2p.api = p2pAPI{on: true, vport: vport, remoteVport: vport, symmetric: sym}
	req := c.P2PConnectRequest()
	// GNS names both ports in a request whenever they are set, 0
	// included (CSteamNetworkConnectionP2P's connect request).
	req.ToVirtualPort = proto.Uint32(uint32(vport))
	req.FromVirtualPort = proto.Uint32(uint32(vport))
	hc.p2p.sess.SetConnectRequest(now, req)
	h.addConnLocked(handle, hc)
	h.pollLocked(now, hc)
	return hc, nil
}

// matchP2PLocked returns a live connection API P2P connection with peer
// on our port vport and its port remoteVport (GNS's
// FindDuplicateConnection), only a symmetric one if onlySymmetric.
func (h *Host) matchP2PLocked(peer string, vport, remoteVport int, onlySymmetric bool) *hostConn {
	for _, hc := range h.conns {
		p := hc.p2p
		if p == nil || !p.api.on || hc.handle == InvalidConn || p.peer.String() != peer ||
			p.api.vport != vport || p.api.remoteVport != remoteVport || (onlySymmetric && !p.api.symmetric) {
			continue
		}
		switch hc.state {
		case StateConnecting, StateFindingRoute, StateConnected:
			return hc
		}
	}
	return nil
}

// isMessagesRequest reports whether a P2P connect request is for the
// Messages layer's port.
func isMessagesRequest(req *pb.P2PRendezvous_ConnectRequest) bool {
	return req.ToVirtualPort != nil && int(req.GetToVirtualPort()) == messagesVirtualPort
}

// incomingP2PConnLocked takes a P2P connect request for a port other than
// the Messages one, signaled by connection key.id of peer from: the other
// half of a symmetric connect, a new connection on a listen socket, or,
// with nobody listening on that port, a refusal. It returns the
// connection the rendezvous continues on, or nil.
func (h *Host) incomingP2PConnLocked(now time.Time, from string, key p2pKey, rv *pb.P2PRendezvous) *hostConn {
	req := rv.ConnectRequest
	vport, remoteVport := -1, -1
	if req.ToVirtualPort != nil {
		vport = int(req.GetToVirtualPort())
		remoteVport = vport
	}
	if req.FromVirtualPort != nil {
		remoteVport = int(req.GetFromVirtualPort())
	}
	var l *p2pListen
	if vport >= 0 {
		l = h.p2pListens.byPort[vport]
		// As GNS: a symmetric listen socket matches any connection of
		// ours, another only a symmetric one.
		if m := h.matchP2PLocked(from, vport, remoteVport, l == nil || !l.symmetric); m != nil {
			if m.c.IsServer() {
				h.stats.ConnectsRefused++ // ours was accepted already: GNS drops the request
				return nil
			}
			return h.symmetricLocked(now, m, key, rv)
		}
	}
	if l == nil {
		h.stats.ConnectsRefused++
		h.rejectP2PLocked(from, rv, int(endNoListenSocket), fmt.Sprintf("No listen socket on virtual port %d", vport))
		return nil
	}
	peer, err := ParseIdentity(from)
	if err != nil {
		h.stats.SignalsDropped++
		return nil
	}
	handle, err := h.newHandleLocked()
	if err != nil {
		h.stats.ConnectsRefused++
		return nil
	}
	cfg := h.connCfg
	cfg.OfferLanes = 0
	c, err := conn.AcceptP2P(cfg, now, uint32(handle), key.id, req)
	if err != nil || c.RemoteIdentity() != peer.String() {
		// A bad request, or a certificate that names someone else than
		// the signaling sender.
		h.stats.ConnectsRefused++
		return nil
	}
	hc := &hostConn{userData: -1, handle: handle, c: c, listen: l.handle, state: StateNone, recv: recvQueue{ready: make(chan struct{}, 1)}, hidx: -1, identity: peer}
	if err := h.newP2PLocked(now, hc, peer, true, key.id); err != nil {
		h.stats.ConnectsRefused++
		return nil
	}
	hc.p2p.key = key
	hc.p2p.api = p2pAPI{on: true, vport: vport, remoteVport: remoteVport, symmetric: l.symmetric}
	h.addConnLocked(handle, hc)
	h.p2pIncoming[key] = hc
	return hc
}

// rejectP2PLocked answers a connect request rv from peer with a
// connection_closed signal (GNS's rejection), from a connection id that
// names no connection here.
func (h *Host) rejectP2PLocked(peer string, rv *pb.P2PRendezvous, reason int, debug string) {
	id, err := h.newHandleLocked()
	if err != nil || rv.GetFromConnectionId() == 0 {
		return
	}
	blob, err := proto.Marshal(&pb.P2PRendezvous{
		FromIdentity:     proto.String(h.identity.String()),
		FromConnectionId: proto.Uint32(uint32(id)),
		ToIdentity:       proto.String(peer),
		ToConnectionId:   proto.Uint32(rv.GetFromConnectionId()),
		ConnectionClosed: p2p.ConnectionClosed(reason, debug),
	})
	if err != nil {
		return
	}
	select {
	case h.sigOut <- signalOut{peer, blob}:
	default:
		h.stats.SignalsDropped++
	}
}
