package netmsg

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/conn"
	"github.com/netmsg-go/netmsg/internal/ice"
	"github.com/netmsg-go/netmsg/internal/p2p"
	"github.com/netmsg-go/netmsg/internal/paths"
	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/transport"
)

// Signaling is what a Host needs from a signaling service to make P2P
// sessions: send a rendezvous blob to a peer named by identity, and
// receive the blobs sent to this Host's identity. Package signaling's Conn
// (an in-memory Hub, GNS's trivial TCP protocol, netmsg's authenticated
// protocol) satisfies it. Delivery may be lossy, duplicated and reordered.
type Signaling interface {
	Send(to string, blob []byte) error
	Recv(ctx context.Context) (from string, blob []byte, err error)
}

// sigOutQueue bounds the signals waiting for the signaling writer.
const sigOutQueue = 1024

// p2pConn is the P2P side of a connection: its rendezvous session and its
// route (ICE agent and selected path, package paths).
type p2pConn struct {
	peer      Identity
	since     time.Time // when the connection was made (the route deadline counts from it)
	sess      *p2p.Session
	route     *paths.Route
	okSent    bool
	closeSent bool
	key       p2pKey     // in Host.p2pIncoming, for an accepted connection
	rt        routeState // FindingRoute and route changes (host_route.go)
	api       p2pAPI     // the connection API's side (host_p2pconn.go)
}

// p2pKey names a peer's connection: its identity and connection id.
type p2pKey struct {
	peer string
	id   uint32
}

type signalOut struct {
	to   string
	blob []byte
}

// startSignaling starts the goroutines that read and write signals, and
// the Host's paths (package paths: STUN, TURN, ICE routes), whose
// goroutines reach the Host through pathsDeliver, pathsNotify and the
// socket's writeMu.
func (h *Host) startSignaling() {
	h.sigOut = make(chan signalOut, sigOutQueue)
	h.p2pIncoming = map[p2pKey]*hostConn{}
	// paths.New fails only without Send, which is given. The Host's
	// goroutines run already: they read h.paths under mu.
	ps, _ := paths.New(paths.Config{
		Base: h.pc.LocalAddr(), STUNServers: h.cfg.STUNServers, TURNServers: pathsTURN(h.cfg.TURNServers),
		Allow: ice.Enable(h.cfg.P2PICEEnable), Rand: h.cfg.Rand, Logger: h.cfg.Logger,
		Send: h.writeOne, Deliver: h.pathsDeliver, Notify: h.pathsNotify,
	})
	h.mu.Lock()
	h.paths = ps
	h.mu.Unlock()
	h.startICE() // host_ice.go: servers from the signaling service
	ctx, cancel := context.WithCancel(context.Background())
	h.sigCancel = cancel
	h.wg.Add(2)
	go func() {
		defer h.wg.Done()
		for {
			from, blob, err := h.cfg.Signaling.Recv(ctx)
			if err != nil {
				if ctx.Err() == nil {
					h.cfg.Logger.Warn("netmsg: signaling stopped", "err", err)
				}
				return
			}
			h.mu.Lock()
			if h.closed {
				h.mu.Unlock()
				return
			}
			h.handleSignalLocked(h.cfg.Now(), from, blob)
			h.unlockFlush()
		}
	}()
	go func() {
		defer h.wg.Done()
		for {
			select {
			case <-h.done:
				return
			case s := <-h.sigOut:
				if err := h.cfg.Signaling.Send(s.to, s.blob); err != nil {
					h.mu.Lock()
					h.stats.SignalsDropped++
					h.mu.Unlock()
				}
			}
		}
	}()
}

// newP2PLocked gives hc its rendezvous session and ICE agent, and queues
// our ICE password and candidates on the reliable stream.
func (h *Host) newP2PLocked(now time.Time, hc *hostConn, peer Identity, controlling bool, remoteID uint32) error {
	r, err := h.paths.NewRoute(now, hc.c.LocalID(), controlling)
	if err != nil {
		return fmt.Errorf("netmsg: P2P route: %w", err)
	}
	p := &p2pConn{peer: peer, since: now, route: r}
	p.sess = p2p.NewSession(h.identity.String(), hc.c.LocalID(), peer.String(), remoteID)
	h.queueLocalICELocked(now, p, r.Password())
	hc.p2p = p
	// Control datagrams (a close) are taken only from the peer's addresses.
	hc.c.SetPeerAddrs(r.IsPeerAddr)
	signal(h.timerKick) // the first route starts the STUN client
	return nil
}

// queueLocalICELocked queues our ICE password and the candidates
// Config.P2PICEEnable lets us share on p's reliable stream: host ones
// (private or public by their address), server-reflexive ones (public) and
// the TURN allocation's relayed one (relay; with neither private nor
// public it is the only one, as GNS's relay-only setting).
func (h *Host) queueLocalICELocked(now time.Time, p *p2pConn, pwd string) {
	p.sess.QueueReliable(now, p2p.ICEAuth(pwd))
	for _, c := range p.route.LocalCandidates() {
		p.sess.QueueReliable(now, p2p.ICECandidate(c.String()))
	}
}

// pathsEventsLocked offers the local candidates paths found since the last
// call (a server-reflexive address, the TURN allocation) to every P2P
// connection, and signals them to its peer where allowed.
func (h *Host) pathsEventsLocked(now time.Time) {
	for _, ev := range h.paths.Events() {
		if ev.Kind != paths.EventLocalCandidate {
			continue
		}
		c := ev.Candidate.String()
		for _, hc := range h.conns {
			if hc.p2p != nil && hc.handle != InvalidConn && hc.p2p.route.AddLocalCandidate(ev.Candidate) {
				hc.p2p.sess.QueueReliable(now, p2p.ICECandidate(c))
				h.pollLocked(now, hc)
			}
		}
	}
}

// pathsNotify is paths' Config.Notify: its events have news (a TURN
// allocation was made). It runs on a goroutine of package paths.
func (h *Host) pathsNotify() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.pathsEventsLocked(h.cfg.Now())
	h.unlockFlush()
}

// pathsDeliver is paths' Config.Deliver: a datagram a peer sent to our
// TURN allocation that pion's client read. It runs on a goroutine of
// package paths.
func (h *Host) pathsDeliver(in paths.Input) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.stats.DatagramsIn++
	h.stats.BytesIn += int64(len(in.B))
	h.pathsInputLocked(h.cfg.Now(), in)
	h.unlockFlush()
}

// pathsInputLocked takes a datagram paths classified as an ICE check for
// a route, or as GNS data that came through the relay.
func (h *Host) pathsInputLocked(now time.Time, in paths.Input) {
	switch in.Disposition {
	case paths.Check:
		hc := h.conns[ConnHandle(in.Conn)]
		if hc == nil || hc.p2p == nil || hc.p2p.route != in.Route {
			h.stats.Dropped++
			return
		}
		if err := in.Route.HandleSTUN(now, in); err != nil {
			h.stats.Dropped++
		}
		h.pollLocked(now, hc)
	case paths.GNS:
		kind, id := conn.Classify(in.B)
		hc := h.conns[ConnHandle(id)]
		if kind != conn.KindData || hc == nil || hc.p2p == nil {
			h.stats.Dropped++
			return
		}
		h.deliverLocked(now, hc, in.From, in.B)
	default:
		h.stats.Dropped++
	}
}

// writeOne writes one datagram on the socket at once (for pion's TURN
// client, from package paths' goroutines, holding no lock but writeMu).
func (h *Host) writeOne(to netip.AddrPort, b []byte) error {
	pkt := []transport.Packet{{Buf: b, N: len(b), Addr: to}}
	h.writeMu.Lock()
	n, err := h.pc.WriteBatch(pkt)
	h.writeMu.Unlock()
	if n > 0 {
		h.datagramsOut.Add(1)
		h.bytesOut.Add(int64(len(b)))
	}
	return err
}

// hostWriter is the Host as package paths' Writer: datagrams join the
// outgoing batch (mu is held).
type hostWriter Host

func (w *hostWriter) WriteTo(to netip.AddrPort, header, b []byte) {
	(*Host)(w).queuePrefixedLocked(to, header, b)
}

func (h *Host) writer() paths.Writer { return (*hostWriter)(h) }

// connectP2PLocked starts a P2P connection to peer (a Messages session
// when vport is the Messages port).
func (h *Host) connectP2PLocked(now time.Time, peer Identity, vport int) (*hostConn, error) {
	if h.cfg.Signaling == nil {
		return nil, fmt.Errorf("netmsg: no route to %v: P2P needs Config.Signaling: %w", peer, ResultNoConnection)
	}
	if h.identity.IsLocalhost() || !h.identity.IsValid() {
		return nil, fmt.Errorf("netmsg: P2P needs a Host identity (Config.Identity), not %v: %w", h.identity, ResultInvalidParam)
	}
	handle, err := h.newHandleLocked()
	if err != nil {
		return nil, err
	}
	cfg := h.connCfg
	cfg.VirtualPort = vport
	cfg.RemoteIdentity = peer.String()
	c, err := conn.DialP2P(cfg, now, uint32(handle))
	if err != nil {
		return nil, fmt.Errorf("netmsg: connect: %w", err)
	}
	hc := &hostConn{userData: -1, handle: handle, c: c, state: StateNone, recv: recvQueue{ready: make(chan struct{}, 1)}, hidx: -1, identity: peer}
	if err := h.newP2PLocked(now, hc, peer, false, 0); err != nil {
		return nil, err
	}
	hc.p2p.sess.SetConnectRequest(now, c.P2PConnectRequest())
	h.addConnLocked(handle, hc)
	h.pollLocked(now, hc)
	return hc, nil
}

// handleSignalLocked takes one signal: a rendezvous for one of our P2P
// connections, or a connect request for a new one.
func (h *Host) handleSignalLocked(now time.Time, from string, blob []byte) {
	if isRTCSignal(blob) {
		h.webSignalLocked(now, from, blob) // a browser's (host_webrtc.go)
		return
	}
	rv, err := p2p.ParseRendezvous(blob)
	if err != nil || rv.GetFromIdentity() != from ||
		(rv.GetToIdentity() != "" && rv.GetToIdentity() != h.identity.String()) {
		h.stats.SignalsDropped++
		return
	}
	key := p2pKey{from, rv.GetFromConnectionId()}
	var hc *hostConn
	if id := rv.GetToConnectionId(); id != 0 {
		hc = h.conns[ConnHandle(id)]
		if hc == nil || hc.p2p == nil || hc.p2p.peer.String() != from {
			h.stats.SignalsDropped++
			return
		}
	} else if hc = h.p2pIncoming[key]; hc == nil {
		if rv.ConnectRequest == nil {
			h.stats.SignalsDropped++
			return
		}
		if !isMessagesRequest(rv.ConnectRequest) {
			// The connection API's listen sockets (host_p2pconn.go).
			if hc = h.incomingP2PConnLocked(now, from, key, rv); hc == nil {
				return
			}
		} else if mine := h.p2pClientToLocked(from); mine != nil && (mine.c.State() == conn.StateConnecting || mine.c.RemoteID() == key.id) {
			// Symmetric connect: we asked this peer too (or a late copy
			// of its request, which our connection already answered
			// from the same id, is dropped there).
			if hc = h.symmetricLocked(now, mine, key, rv); hc == nil {
				return
			}
		} else {
			if mine != nil {
				// A new connection from a peer ours is connected to: the
				// peer restarted (or gave ours up). Ours ends; theirs is
				// a new session.
				h.endSupersededLocked(now, mine)
			}
			if hc = h.acceptP2PLocked(now, from, rv.GetFromConnectionId(), rv.ConnectRequest); hc == nil {
				return
			}
		}
	}
	p := hc.p2p
	rec, err := p.sess.Receive(now, rv)
	if err != nil {
		h.stats.SignalsDropped++
		return
	}
	for _, m := range rec.Reliable {
		ie := m.GetIce()
		if a := ie.GetAuth(); a != nil {
			p.route.SetRemoteCredentials(ice.Ufrag(p.sess.RemoteID), a.GetPwdFrag())
		}
		if c := ie.GetAddCandidate(); c != nil {
			p.route.AddRemoteCandidate(c.GetCandidate()) // one netmsg cannot use is ignored
		}
	}
	if rec.ConnectOK != nil && !hc.c.IsServer() {
		if err := hc.c.HandleP2PConnectOK(now, p.sess.RemoteID, rec.ConnectOK); err == nil {
			p.route.SetControlling(false) // the accepting side controls
		}
	}
	if rec.Closed != nil {
		hc.c.CloseByPeer(now, int(rec.Closed.GetReasonCode()), rec.Closed.GetDebug())
		p.closeSent = true // nothing to tell a peer that closed
	}
	if !hc.identity.IsValid() {
		if s := hc.c.RemoteIdentity(); s != "" {
			hc.identity, _ = parseIdentityGNS(s)
		}
	}
	h.pollLocked(now, hc)
}

// p2pClientToLocked returns our live P2P Messages client connection to
// peer, if any.
func (h *Host) p2pClientToLocked(peer string) *hostConn {
	id, err := ParseIdentity(peer)
	if err != nil {
		return nil
	}
	svc := h.serviceLocked(messagesVirtualPort)
	if svc == nil {
		return nil
	}
	return svc.p2pClientLocked(id)
}

// compareSymmetric is GNS's symmetric-connect role rule, from our side:
// <= 0 means our connection stays the client (the peer will accept it);
// > 0 means ours should become the server and accept theirs. The lower
// connection id would be the client, but the rule flips when the low bits
// of the two ids differ, so that neither side can pick its role by picking
// its id.
func compareSymmetric(ours, theirs uint32) int {
	r := 0
	switch {
	case ours < theirs:
		r = -1
	case ours > theirs:
		r = 1
	}
	if (ours^theirs)&1 != 0 {
		r = -r
	}
	return r
}

// symmetricLocked handles the peer's connect request while our own
// connection to it is out (GNS's symmetric connect): by the role rule,
// either we drop theirs and wait for them to accept ours, or our
// connection changes role and accepts theirs, from the same connection id.
// It returns the connection the rendezvous continues on, or nil.
func (h *Host) symmetricLocked(now time.Time, mine *hostConn, key p2pKey, rv *pb.P2PRendezvous) *hostConn {
	if compareSymmetric(mine.c.LocalID(), key.id) <= 0 || mine.c.State() != conn.StateConnecting {
		return nil // ours stays the client (or is past changing): theirs is dropped, as GNS does
	}
	if err := mine.c.BecomeP2PServer(now, key.id, rv.ConnectRequest); err != nil {
		h.stats.ConnectsRefused++
		return nil
	}
	p := mine.p2p
	p.sess.BecomeServer(key.id)
	// As GNS: ICE starts over with the new role (the accepting side
	// controls) and a fresh password, signaled with our candidates again.
	pwd, err := p.route.Restart(true)
	if err != nil {
		h.stats.ConnectsRefused++
		return nil
	}
	h.queueLocalICELocked(now, p, pwd)
	h.stats.ICERestarts++
	p.key = key
	h.p2pIncoming[key] = mine
	return mine
}

// acceptP2PLocked takes a connect request signaled by connection id of
// peer from: a new Messages session (or the other half of a symmetric
// connect). It returns nil when it refuses it.
func (h *Host) acceptP2PLocked(now time.Time, from string, id uint32, req *pb.P2PRendezvous_ConnectRequest) *hostConn {
	if int(req.GetToVirtualPort()) != messagesVirtualPort {
		h.stats.ConnectsRefused++ // other ports go to the listen sockets (host_p2pconn.go)
		return nil
	}
	// As GNS, which makes its Messages interface on demand for such a
	// request: a P2P Host takes Messages sessions even before the
	// application first called Messages (the request is posted to
	// Config.OnSessionRequest, or waits for a send to the peer).
	var svc service = h.messagesLocked() // made on demand, as GNS does
	peer, err := ParseIdentity(from)
	if err != nil {
		h.stats.SignalsDropped++
		return nil
	}
	mark, ok := h.admitHalfOpenLocked(now, netip.AddrPort{}, peer.String(), true)
	if !ok {
		return nil
	}
	refuse := func() *hostConn {
		h.ho.release(mark.src, mark.msgs)
		h.stats.ConnectsRefused++
		return nil
	}
	handle, err := h.newHandleLocked()
	if err != nil {
		return refuse()
	}
	c, err := conn.AcceptP2P(h.connCfg, now, uint32(handle), id, req)
	if err != nil {
		return refuse()
	}
	if c.RemoteIdentity() != peer.String() {
		// The certificate names someone else than the signaling sender.
		return refuse()
	}
	hc := &hostConn{userData: -1, handle: handle, c: c, listen: InvalidListen, state: StateNone, recv: recvQueue{ready: make(chan struct{}, 1)}, hidx: -1, identity: peer, ho: mark}
	if err := h.newP2PLocked(now, hc, peer, true, id); err != nil {
		return refuse()
	}
	hc.p2p.key = p2pKey{from, id}
	h.addConnLocked(handle, hc)
	h.p2pIncoming[hc.p2p.key] = hc
	if !svc.incomingLocked(now, hc) {
		h.removeLocked(hc)
		h.stats.ConnectsDropped++
		return nil
	}
	return hc
}

// p2pPollLocked runs a P2P connection's signaling and ICE: connect OK once
// accepted, connection closed once closing, the agent's checks, the
// selected path, and the signals due.
func (h *Host) p2pPollLocked(now time.Time, hc *hostConn) {
	p := hc.p2p
	st := hc.c.State()
	if hc.c.IsServer() && !p.okSent && (st == conn.StateConnected || st == conn.StateLinger) {
		p.okSent = true
		p.sess.SetConnectOK(now, hc.c.P2PConnectOK())
	}
	if !p.closeSent && (st == conn.StateProblemDetectedLocally || st == conn.StateFinWait || st == conn.StateLinger || st == conn.StateDead) {
		p.closeSent = true
		if hc.handle != InvalidConn { // a symmetric-connect loser or zombie says nothing
			reason, debug := hc.c.EndReason(), hc.c.EndDebug()
			if reason == 0 {
				reason = int(EndAppMin)
			}
			p.sess.Close(now, reason, debug)
		}
	}
	h.p2pRouteLocked(now, hc)
	for {
		rv := p.sess.Build(now)
		if rv == nil {
			break
		}
		blob, err := proto.Marshal(rv)
		if err != nil {
			break
		}
		select {
		case h.sigOut <- signalOut{p.peer.String(), blob}:
		default:
			h.stats.SignalsDropped++
		}
	}
}

// p2pRouteLocked sends the ICE agent's checks and follows the path it
// selects. A connection whose handshake is done (the peer answered
// through signaling) but that found no path within the connect timeout
// (TimeoutInitial) after it was made ends with EndMiscP2PNATFirewall, as
// GNS's does when ICE fails; one still waiting for the peer's answer (the
// signaling service never carried it) times out as any connection that
// is not answered does (EndMiscTimeout).
func (h *Host) p2pRouteLocked(now time.Time, hc *hostConn) {
	p := hc.p2p
	if st := hc.c.State(); (st == conn.StateFindingRoute || st == conn.StateConnected) && !hc.c.RemoteAddr().IsValid() && !now.Before(p.since.Add(h.cfg.TimeoutInitial)) {
		hc.c.FailRoute(now, int(EndMiscP2PNATFirewall), "ICE found no path to the peer (NAT or firewall; no relay configured)")
		h.paths.CheckRelay(now) // no path through our relay either: is our allocation still there?
	}
	p.route.Poll(now, h.writer())
	for _, ev := range p.route.Events() {
		if ev.Path.Valid {
			hc.c.SetRemoteAddr(ev.Path.Remote)
		}
		h.cfg.Logger.Debug("netmsg: P2P path", "conn", hc.c.LocalID(), "peer", p.peer, "event", ev.Kind, "remote", ev.Path.Remote, "relayed", ev.Path.Relayed)
		if ev.Kind == paths.RouteLost && h.paths.AskSTUNAgain(now) {
			// Our NAT may have moved us: a new server-reflexive address
			// is signaled to the peers as soon as a STUN server says so.
			signal(h.timerKick)
		}
		if ev.Kind == paths.RouteLost && ev.Old.Relayed {
			// The path through our TURN allocation broke: a server that
			// restarted or went away loses it, and a new one (on another
			// server first) is made and signaled (pathsEventsLocked).
			h.paths.CheckRelay(now)
		}
		h.routeEventLocked(hc, ev)
	}
	h.routeFoundLocked(hc)
}

// noRouteRecheck is how often a connected P2P connection without a path
// looks again (its data waits in the engine meanwhile, which would
// otherwise ask to be polled at once).
const noRouteRecheck = 20 * time.Millisecond

// p2pWake folds a P2P connection's agent and session wake-ups into w.
func (h *Host) p2pWake(hc *hostConn, w time.Time) time.Time {
	if !w.IsZero() && !hc.c.RemoteAddr().IsValid() && hc.c.State() == conn.StateConnected {
		w = maxTime(w, h.cfg.Now().Add(noRouteRecheck))
	}
	deadline := time.Time{}
	if st := hc.c.State(); !hc.c.RemoteAddr().IsValid() && (st == conn.StateConnected || st == conn.StateConnecting) {
		deadline = hc.p2p.since.Add(h.cfg.TimeoutInitial)
	}
	for _, t := range []time.Time{hc.p2p.route.NextWake(), hc.p2p.sess.NextWake(), deadline} {
		if !t.IsZero() && (w.IsZero() || t.Before(w)) {
			w = t
		}
	}
	return w
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// removeP2PLocked forgets a P2P connection's indexes.
func (h *Host) removeP2PLocked(hc *hostConn) {
	if p := hc.p2p; p != nil {
		p.route.Close()
		if h.p2pIncoming[p.key] == hc {
			delete(h.p2pIncoming, p.key)
		}
	}
}
