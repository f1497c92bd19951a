package netmsg

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"github.com/netmsg-go/netmsg/internal/rtcframe"
)

// Messages sessions with browser peers run over a WebRTC peer connection
// (pion's on this side, the browser's RTCPeerConnection on the other)
// instead of a GNS connection; web/netmsg.js is the browser's side. The
// offer and the answer travel as signaling blobs through Config.Signaling;
// the two data channels are negotiated out of band (ids 0 and 1, so
// neither side waits for the other to announce them): id 0 reliable and
// ordered, id 1 unordered without retransmissions. Messages travel on
// them in the frames of package rtcframe. See docs/browser.md.

// rtcSignalPrefix starts every WebRTC signaling blob. Its first byte, 'W'
// (0x57), has protobuf wire type 7, which does not exist, so no GNS
// rendezvous message (a protobuf) starts with it: a Host tells the two
// kinds apart by the first byte, and a GNS peer that got one would fail
// to parse it and drop it.
const rtcSignalPrefix = "WRTC"

// Our tuning of WebRTC sessions.
const (
	// rtcOfferRepeat is how often an offer not yet answered is signaled
	// again (signals are best effort).
	rtcOfferRepeat = time.Second
	// rtcOfferStale is how long an incoming request stays when its
	// offer is not repeated (the peer gave up).
	rtcOfferStale = 4 * time.Second
	// rtcPing is how often each side of a connected session pings.
	rtcPing = time.Second
	// rtcTick is the period of the goroutine that runs these timers.
	rtcTick = 100 * time.Millisecond
	// rtcCloseFlush bounds how long a closing session waits for its close
	// frame (and the data before it) to leave.
	rtcCloseFlush = time.Second
	// rtcMaxPending bounds the session requests from browsers that wait
	// for the application; offers beyond it are refused (counted).
	rtcMaxPending = 1024
	// rtcUnreliableBuffer is the most unreliable data that may wait in a
	// data channel's buffer; a send beyond it fails with
	// ResultLimitExceeded.
	rtcUnreliableBuffer = 256 << 10
)

// WebRTCConfig configures the Messages sessions a Host has with browser
// peers (Config.WebRTC). The zero value takes browser sessions, and
// treats as a browser every peer whose identity starts with
// DefaultBrowserPrefix.
type WebRTCConfig struct {
	// Disable refuses browser sessions: their offers are dropped.
	Disable bool

	// IsBrowser reports whether a peer this Host sends to first (no
	// session with it exists) is a browser, to be reached over WebRTC
	// rather than GNS. nil means the identity's string form starts with
	// DefaultBrowserPrefix. A peer that offered a WebRTC session is a
	// browser whatever this says.
	IsBrowser func(peer Identity) bool

	// HostAddrs, when set, are the only local addresses WebRTC gathers
	// host candidates on (loopback ones included); by default every
	// interface but loopback (pion's default). Tests set 127.0.0.1.
	HostAddrs []netip.Addr
}

// DefaultBrowserPrefix starts the identities a Host treats as browsers
// by default: generic string identities whose string begins with "web-"
// (str:web-alice). web/netmsg.js makes such identities when asked for a
// random one.
const DefaultBrowserPrefix = "str:web-"

// rtcSignal is a WebRTC signaling blob after rtcSignalPrefix (JSON).
type rtcSignal struct {
	Kind   string `json:"k"`             // "offer", "answer" or "bye"
	Sid    string `json:"s"`             // the session, named by its offerer
	SDP    string `json:"sdp,omitempty"` // offer, answer: the whole description, candidates included
	Reason int    `json:"r,omitempty"`   // bye: the end reason
	Debug  string `json:"d,omitempty"`   // bye: the end debug text
}

func isRTCSignal(blob []byte) bool { return strings.HasPrefix(string(blob), rtcSignalPrefix) }

func marshalRTCSignal(s rtcSignal) []byte {
	b, _ := json.Marshal(s)
	return append([]byte(rtcSignalPrefix), b...)
}

// webSession is a Messages session with a browser peer.
//
// Locks: the fields under "mu" are guarded by the Host's table lock; send
// (the send side: data channels, the queue of messages sent before the
// channels opened) is taken after it, never the other way round. No pion
// call is made under the Host's lock. The reassemblers belong to the
// goroutines pion runs each data channel's OnMessage on.
type webSession struct {
	h       *Host
	peer    Identity
	sid     string
	offerer bool
	since   time.Time

	// mu: the Host's table lock.
	state      ConnectionState
	accepted   bool
	failed     bool
	info       ConnectionInfo // the end, once ended
	requestAt  time.Time      // the next repeat of the session request (zero: none)
	remoteSDP  string         // the peer's offer or answer
	offerSeen  time.Time      // when the peer last sent its offer (answerer)
	offerSent  time.Time      // when our offer was last signaled (offerer)
	localBlob  []byte         // our offer or answer, once made
	answered   bool           // offerer: the answer was applied
	started    bool           // the peer connection is being made
	connectBy  time.Time      // the session fails if not connected by then
	pingNext   time.Time
	route      rtcRoute
	pc         *webrtc.PeerConnection
	ended      bool // left the table: its peer connection is closing
	closeFrame bool // ended by the peer's close frame or bye

	open     map[int]bool // channels in use (Messages.chMu)
	lastUsed atomic.Int64
	rtt      atomic.Int64 // smoothed round-trip time in ns; 0 until measured
	unread   atomic.Int32 // received messages the application has not taken
	bytesIn  atomic.Int64
	bytesOut atomic.Int64

	send struct {
		sync.Mutex
		rel, unrel *webrtc.DataChannel
		opened     int  // data channels open
		up         bool // both open: messages go out at once
		closed     bool
		queue      []rtcQueued // sent before up, in order
		queued     int         // bytes in queue
		num        uint32      // the next message number
		buf        []byte
	}
	rrel   rtcframe.Reliable
	runrel rtcframe.Unreliable
}

type rtcQueued struct {
	channel int
	data    []byte
}

// rtcRoute is a connected session's selected candidate pair.
type rtcRoute struct {
	relayed bool
	remote  netip.AddrPort
	desc    string
}

func (ws *webSession) used(now time.Time) { ws.lastUsed.Store(now.UnixNano()) }
func (ws *webSession) lastUse() time.Time { return time.Unix(0, ws.lastUsed.Load()) }

// isBrowserLocked reports whether peer is to be reached over WebRTC.
func (h *Host) isBrowserLocked(peer Identity) bool {
	if h.cfg.WebRTC.Disable || h.cfg.Signaling == nil {
		return false
	}
	if h.rtc != nil && h.rtc.known[peer] {
		return true
	}
	if f := h.cfg.WebRTC.IsBrowser; f != nil {
		return f(peer)
	}
	return strings.HasPrefix(peer.String(), DefaultBrowserPrefix)
}

// rtcState is the Host's WebRTC machinery, made on first use.
type rtcState struct {
	api   *webrtc.API
	known map[Identity]bool // peers that offered WebRTC sessions (at most rtcKnownMax)
}

// rtcKnownMax bounds the peers a Host remembers as browsers because they
// offered a session (beyond it, one is forgotten for each new one).
const rtcKnownMax = 4096

// knowBrowserLocked remembers that peer offered a WebRTC session, so a
// later send to it goes over WebRTC. mu is held.
func (h *Host) knowBrowserLocked(peer Identity) {
	h.rtcAPILocked()
	k := h.rtc.known
	if !k[peer] && len(k) >= rtcKnownMax {
		for id := range k {
			delete(k, id)
			break
		}
	}
	k[peer] = true
}

// rtcAPILocked returns the pion API of the Host, made on first use, and
// starts the goroutine of the sessions' timers. mu is held.
func (h *Host) rtcAPILocked() *webrtc.API {
	if h.rtc != nil {
		return h.rtc.api
	}
	var se webrtc.SettingEngine
	lf := logging.NewDefaultLoggerFactory()
	lf.DefaultLogLevel = logging.LogLevelDisabled
	se.LoggerFactory = lf
	se.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second)
	if addrs := h.cfg.WebRTC.HostAddrs; len(addrs) > 0 {
		se.SetIncludeLoopbackCandidate(true)
		se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
		se.SetIPFilter(func(ip net.IP) bool {
			a, ok := netip.AddrFromSlice(ip)
			if !ok {
				return false
			}
			a = a.Unmap()
			for _, b := range addrs {
				if b.Unmap() == a {
					return true
				}
			}
			return false
		})
	}
	h.rtc = &rtcState{api: webrtc.NewAPI(webrtc.WithSettingEngine(se)), known: map[Identity]bool{}}
	h.wg.Add(1)
	go h.rtcTimers()
	return h.rtc.api
}

// rtcICEServers are the STUN and TURN servers the Host's ICE uses: those
// of Config, or, for the lists it leaves empty, those the signaling
// service hands out.
func (h *Host) rtcICEServers() []webrtc.ICEServer {
	var out []webrtc.ICEServer
	for _, a := range h.cfg.STUNServers {
		out = append(out, webrtc.ICEServer{URLs: []string{"stun:" + a.String()}})
	}
	for _, t := range h.cfg.TURNServers {
		out = append(out, webrtc.ICEServer{URLs: []string{"turn:" + t.Addr.String() + "?transport=udp"}, Username: t.Username, Credential: t.Password})
	}
	if src, ok := h.cfg.Signaling.(iceSource); ok {
		if stun, turn, user, pass, _, ok := src.ICEServerStrings(); ok {
			if len(h.cfg.STUNServers) == 0 {
				for _, s := range stun {
					out = append(out, webrtc.ICEServer{URLs: []string{"stun:" + s}})
				}
			}
			if len(h.cfg.TURNServers) == 0 {
				for _, s := range turn {
					out = append(out, webrtc.ICEServer{URLs: []string{"turn:" + s + "?transport=udp"}, Username: user, Credential: pass})
				}
			}
		}
	}
	return out
}

func newSid() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// dialWebLocked starts a session to browser peer: we offer.
func (ms *Messages) dialWebLocked(now time.Time, peer Identity) *webSession {
	h := ms.h
	ws := ms.newWebLocked(now, peer, newSid(), true)
	ws.accepted = true
	ws.connectBy = now.Add(h.cfg.TimeoutInitial)
	ws.started = true
	h.rtcAPILocked()
	h.wg.Add(1)
	go h.rtcStart(ws, "")
	return ws
}

func (ms *Messages) newWebLocked(now time.Time, peer Identity, sid string, offerer bool) *webSession {
	if ms.web == nil {
		ms.web = make(map[Identity]*webSession)
	}
	ws := &webSession{h: ms.h, peer: peer, sid: sid, offerer: offerer, since: now, state: StateConnecting, open: map[int]bool{}}
	ws.used(now)
	ms.web[peer] = ws
	return ws
}

// rtcStart makes ws's peer connection and its description (an offer, or
// the answer to offer), and signals it. It runs on its own goroutine.
func (h *Host) rtcStart(ws *webSession, offer string) {
	defer h.wg.Done()
	h.mu.Lock()
	api := h.rtcAPILocked()
	relayOnly := h.cfg.P2PICEEnable&(ICEEnablePrivate|ICEEnablePublic) == 0
	h.mu.Unlock()
	fail := func(err error) {
		h.cfg.Logger.Debug("netmsg: WebRTC session", "peer", ws.peer, "err", err)
		h.mu.Lock()
		h.failWebLocked(ws, StateProblemDetectedLocally, EndMiscGeneric, "WebRTC: "+err.Error())
		h.mu.Unlock()
	}
	conf := webrtc.Configuration{ICEServers: h.rtcICEServers()}
	if relayOnly {
		conf.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	pc, err := api.NewPeerConnection(conf)
	if err != nil {
		fail(err)
		return
	}
	h.mu.Lock()
	if ws.ended || h.closed {
		h.mu.Unlock()
		pc.Close()
		return
	}
	ws.pc = pc
	h.mu.Unlock()
	yes, no := true, false
	id0, id1 := uint16(0), uint16(1)
	zero := uint16(0)
	rel, err := pc.CreateDataChannel("reliable", &webrtc.DataChannelInit{Negotiated: &yes, ID: &id0})
	if err != nil {
		fail(err)
		return
	}
	unrel, err := pc.CreateDataChannel("unreliable", &webrtc.DataChannelInit{Negotiated: &yes, ID: &id1, Ordered: &no, MaxRetransmits: &zero})
	if err != nil {
		fail(err)
		return
	}
	for _, dc := range []*webrtc.DataChannel{rel, unrel} {
		dc.OnOpen(func() { h.rtcOpened(ws) })
		dc.OnClose(func() { h.rtcLost(ws, "data channel closed") })
	}
	rel.OnMessage(func(m webrtc.DataChannelMessage) { h.rtcReceive(ws, m.Data, true) })
	unrel.OnMessage(func(m webrtc.DataChannelMessage) { h.rtcReceive(ws, m.Data, false) })
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed {
			h.rtcLost(ws, "ICE failed")
		}
	})
	ws.send.Lock()
	ws.send.rel, ws.send.unrel = rel, unrel
	ws.send.Unlock()
	var desc webrtc.SessionDescription
	if offer == "" {
		desc, err = pc.CreateOffer(nil)
	} else {
		if err = pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err == nil {
			desc, err = pc.CreateAnswer(nil)
		}
	}
	if err != nil {
		fail(err)
		return
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(desc); err != nil {
		fail(err)
		return
	}
	select {
	case <-gathered:
	case <-h.done:
		return
	case <-time.After(h.cfg.TimeoutInitial):
		fail(fmt.Errorf("ICE gathering did not complete"))
		return
	}
	kind := "offer"
	if offer != "" {
		kind = "answer"
	}
	blob := marshalRTCSignal(rtcSignal{Kind: kind, Sid: ws.sid, SDP: pc.LocalDescription().SDP})
	h.mu.Lock()
	defer h.mu.Unlock()
	if ws.ended {
		return
	}
	ws.localBlob = blob
	h.sendSignalLocked(ws.peer, blob)
	ws.offerSent = h.cfg.Now()
	if ws.offerer && ws.remoteSDP != "" && !ws.answered {
		// The answer came while we gathered (a repeat of our offer
		// reached the peer first).
		ws.answered = true
		h.wg.Add(1)
		go h.rtcAnswered(ws, ws.remoteSDP)
	}
}

// rtcAnswered applies the peer's answer to our offer.
func (h *Host) rtcAnswered(ws *webSession, sdp string) {
	defer h.wg.Done()
	if err := ws.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: sdp}); err != nil {
		h.mu.Lock()
		h.failWebLocked(ws, StateProblemDetectedLocally, EndMiscP2PRendezvous, "WebRTC: bad answer: "+err.Error())
		h.mu.Unlock()
	}
}

// sendSignalLocked queues a signal for the signaling writer.
func (h *Host) sendSignalLocked(to Identity, blob []byte) {
	select {
	case h.sigOut <- signalOut{to.String(), blob}:
	default:
		h.stats.SignalsDropped++
	}
}

// webSignalLocked takes a WebRTC signaling blob from a peer.
func (h *Host) webSignalLocked(now time.Time, from string, blob []byte) {
	var sg rtcSignal
	peer, err := ParseIdentity(from)
	if err != nil || json.Unmarshal(blob[len(rtcSignalPrefix):], &sg) != nil || sg.Sid == "" || len(sg.Sid) > 64 || h.cfg.WebRTC.Disable {
		h.stats.SignalsDropped++
		return
	}
	ms := h.messagesLocked()
	ws := ms.web[peer]
	switch sg.Kind {
	case "offer":
		h.knowBrowserLocked(peer)
		if ws != nil && ws.sid == sg.Sid {
			// A repeat: the peer has not seen our answer yet.
			ws.offerSeen = now
			if !ws.offerer && ws.localBlob != nil {
				h.sendSignalLocked(peer, ws.localBlob)
			}
			return
		}
		var queue []rtcQueued
		accepted := false
		if ws != nil && ws.offerer && !ws.answered && ws.state == StateConnecting && !ws.failed {
			// Both sides offered at once: the offer of the lower identity
			// wins, on both sides.
			if h.identity.String() < from {
				return
			}
			ws.send.Lock()
			queue, ws.send.queue, ws.send.queued = ws.send.queue, nil, 0
			ws.send.Unlock()
			accepted = true
			h.endWebLocked(ws, 0, "")
		} else if ws != nil {
			// The peer started over: the old session goes.
			ms.freeWebLocked(now, ws, EndSessionClosed, "Session replaced")
		} else if s := ms.sessions[peer]; s != nil {
			ms.freeLocked(now, s, EndSessionClosed, "Session replaced by a WebRTC session")
		}
		if !accepted && ms.webPendingLocked() >= rtcMaxPending {
			h.stats.ConnectsRefused++
			return
		}
		ws = ms.newWebLocked(now, peer, sg.Sid, false)
		ws.remoteSDP, ws.offerSeen = sg.SDP, now
		ws.send.queue = queue
		for _, q := range queue {
			ws.send.queued += len(q.data)
		}
		if accepted {
			ms.acceptWebLocked(now, ws)
			return
		}
		ws.requestAt = now
		ms.postWebRequestLocked(now, ws)
	case "answer":
		if ws == nil || ws.sid != sg.Sid || !ws.offerer || ws.answered || ws.ended {
			h.stats.SignalsDropped++
			return
		}
		ws.remoteSDP = sg.SDP
		if ws.localBlob == nil {
			return // applied once our offer is set (rtcStart)
		}
		ws.answered = true
		h.wg.Add(1)
		go h.rtcAnswered(ws, sg.SDP)
	case "bye":
		if ws == nil || ws.sid != sg.Sid {
			return
		}
		ws.closeFrame = true
		h.webClosedByPeerLocked(now, ws, EndReason(sg.Reason), sg.Debug)
	default:
		h.stats.SignalsDropped++
	}
}

// webPendingLocked counts the browser session requests not accepted.
func (ms *Messages) webPendingLocked() int {
	n := 0
	for _, ws := range ms.web {
		if !ws.accepted {
			n++
		}
	}
	return n
}

// postWebRequestLocked posts OnSessionRequest for ws and schedules the
// repeat.
func (ms *Messages) postWebRequestLocked(now time.Time, ws *webSession) {
	ws.requestAt = now.Add(sessionRequestRepeat)
	if cb := ms.h.cfg.OnSessionRequest; cb != nil {
		peer := ws.peer
		ms.h.postLocked(func() { cb(peer) })
	}
}

// acceptWebLocked accepts the peer's offer: our answer is made and
// signaled.
func (ms *Messages) acceptWebLocked(now time.Time, ws *webSession) {
	if ws.accepted {
		return
	}
	ws.accepted, ws.requestAt = true, time.Time{}
	ws.connectBy = now.Add(ms.h.cfg.TimeoutInitial)
	ws.used(now)
	if !ws.started {
		ws.started = true
		ms.h.rtcAPILocked()
		ms.h.wg.Add(1)
		go ms.h.rtcStart(ws, ws.remoteSDP)
	}
}

// rtcOpened follows a data channel's opening; with both open, the session
// is connected and the messages sent before go out.
func (h *Host) rtcOpened(ws *webSession) {
	ws.send.Lock()
	ws.send.opened++
	if ws.send.opened < 2 || ws.send.up || ws.send.closed {
		ws.send.Unlock()
		return
	}
	ws.send.up = true
	for _, q := range ws.send.queue {
		ws.sendLocked(q.channel, q.data, rtcframe.FlagReliable, ws.send.rel)
	}
	ws.send.queue, ws.send.queued = nil, 0
	ws.send.Unlock()
	route := ws.readRoute()
	h.mu.Lock()
	defer h.mu.Unlock()
	if ws.ended || ws.state != StateConnecting {
		return
	}
	now := h.cfg.Now()
	ws.state = StateConnected
	ws.route = route
	ws.used(now)
	ws.pingNext = now
	if cb := h.cfg.OnSessionConnected; cb != nil {
		info := ws.infoLocked()
		h.postLocked(func() { cb(info) })
	}
}

// readRoute reads the selected candidate pair.
func (ws *webSession) readRoute() rtcRoute {
	var r rtcRoute
	pc := ws.pc
	if pc == nil || pc.SCTP() == nil || pc.SCTP().Transport() == nil {
		return r
	}
	pair, err := pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair()
	if err != nil || pair == nil || pair.Local == nil || pair.Remote == nil {
		return r
	}
	r.relayed = pair.Local.Typ == webrtc.ICECandidateTypeRelay || pair.Remote.Typ == webrtc.ICECandidateTypeRelay
	if a, err := netip.ParseAddr(pair.Remote.Address); err == nil {
		r.remote = netip.AddrPortFrom(a.Unmap(), pair.Remote.Port)
	}
	kind := "direct"
	if r.relayed {
		kind = "relay"
	}
	r.desc = fmt.Sprintf("WebRTC %s %s %s:%d <-> %s %s:%d", kind, pair.Local.Typ, pair.Local.Address, pair.Local.Port, pair.Remote.Typ, pair.Remote.Address, pair.Remote.Port)
	if len(r.desc) > 127 {
		r.desc = r.desc[:127] // GNS's limit
	}
	return r
}

// sendLocked sends one message on dc in frames; ws.send is held.
func (ws *webSession) sendLocked(channel int, data []byte, flags byte, dc *webrtc.DataChannel) error {
	num := ws.send.num
	ws.send.num++
	ws.bytesOut.Add(int64(len(data)))
	return rtcframe.Split(ws.send.buf[:0], data, flags, int32(channel), num, func(f []byte) error {
		ws.send.buf = f[:0]
		return dc.Send(f)
	})
}

// sendMsg sends a message to the peer (queued until the data channels
// are open, then sent reliably).
func (ws *webSession) sendMsg(channel int, data []byte, flags SendFlags) error {
	h := ws.h
	ws.send.Lock()
	defer ws.send.Unlock()
	if ws.send.closed {
		return &ConnError{Conn: InvalidConn, Peer: ws.peer, State: StateNone, Reason: EndSessionClosed, Debug: "session closed"}
	}
	if !ws.send.up {
		if ws.send.queued+len(data) > h.cfg.SendBufferSize {
			return fmt.Errorf("netmsg: send to %v: %d bytes wait for the session: %w", ws.peer, ws.send.queued, ResultLimitExceeded)
		}
		ws.send.queue = append(ws.send.queue, rtcQueued{channel, append([]byte(nil), data...)})
		ws.send.queued += len(data)
		return nil
	}
	dc, fl, limit := ws.send.unrel, byte(0), uint64(rtcUnreliableBuffer)
	if flags&SendReliable != 0 {
		dc, fl, limit = ws.send.rel, rtcframe.FlagReliable, uint64(h.cfg.SendBufferSize)
	}
	if dc.BufferedAmount() > limit {
		return fmt.Errorf("netmsg: send to %v: %d bytes buffered: %w", ws.peer, dc.BufferedAmount(), ResultLimitExceeded)
	}
	if err := ws.sendLocked(channel, data, fl, dc); err != nil {
		return fmt.Errorf("netmsg: send to %v: %v: %w", ws.peer, err, ResultNoConnection)
	}
	return nil
}

// rtcReceive takes a frame from one of ws's data channels (on the
// goroutine pion runs that channel's OnMessage on).
func (h *Host) rtcReceive(ws *webSession, b []byte, reliable bool) {
	f, err := rtcframe.Parse(b)
	if err != nil {
		h.fast.dropped.Add(1)
		if reliable {
			h.rtcProtocolError(ws, err)
		}
		return
	}
	switch f.Kind {
	case rtcframe.KindData:
		var msg []byte
		if reliable {
			if msg, err = ws.rrel.Add(f.Data); err != nil {
				h.rtcProtocolError(ws, err)
				return
			}
		} else {
			msg = ws.runrel.Add(f.Data)
		}
		if msg != nil {
			h.rtcDeliver(ws, f.Data, msg, reliable)
		}
	case rtcframe.KindClose:
		h.mu.Lock()
		ws.closeFrame = true
		h.webClosedByPeerLocked(h.cfg.Now(), ws, EndReason(f.Reason), f.Debug)
		h.mu.Unlock()
	case rtcframe.KindPing:
		ws.send.Lock()
		if ws.send.up && !ws.send.closed {
			ws.send.unrel.Send(rtcframe.AppendPing(nil, rtcframe.KindPong, f.Ping))
		}
		ws.send.Unlock()
	case rtcframe.KindPong:
		sample := h.cfg.Now().UnixNano() - int64(f.Ping)
		if sample < 0 || sample > int64(time.Minute) {
			return
		}
		if old := ws.rtt.Load(); old != 0 {
			sample = old - old/8 + sample/8
		}
		ws.rtt.Store(sample)
	}
}

func (h *Host) rtcProtocolError(ws *webSession, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failWebLocked(ws, StateProblemDetectedLocally, EndMiscInternalError, "WebRTC: "+err.Error())
}

// rtcDeliver queues a received message on its channel. When the
// session's unread messages reach Config.RecvBufferMessages, an
// unreliable message is dropped, and a reliable one waits until the
// application reads (which holds up the data channel, so the peer's sends
// back up), or the session or the Host closes.
func (h *Host) rtcDeliver(ws *webSession, d rtcframe.Data, msg []byte, reliable bool) {
	ms := h.messagesIfAny()
	if ms == nil {
		return
	}
	now := h.cfg.Now()
	ws.used(now)
	ws.bytesIn.Add(int64(len(msg)))
	m := msgPool.Get().(*Message)
	*m = Message{
		web: ws, Payload: msg, Size: len(msg), Identity: ws.peer, ReceiverUserData: -1,
		TimeReceived: now, MessageNumber: int64(d.Num), Channel: int(d.Channel), Flags: SendUnreliable,
	}
	if d.Flags&rtcframe.FlagReliable != 0 {
		m.Flags = SendReliable
	}
	for wait := time.Millisecond; ; wait = min(2*wait, 20*time.Millisecond) {
		if int(ws.unread.Load()) < h.cfg.RecvBufferMessages {
			ms.chMu.Lock()
			q := ms.channelLocked(m.Channel)
			ws.open[m.Channel] = true
			ms.chMu.Unlock()
			ws.unread.Add(1)
			q.inMu.Lock()
			q.in.push(m)
			q.inMu.Unlock()
			q.pushed()
			return
		}
		if !reliable {
			h.fast.dropped.Add(1)
			return
		}
		ws.send.Lock()
		closed := ws.send.closed
		ws.send.Unlock()
		if closed {
			return
		}
		select {
		case <-h.done:
			return
		case <-time.After(wait):
		}
	}
}

// messagesIfAny returns the Messages service if it was made.
func (h *Host) messagesIfAny() *Messages {
	h.mu.Lock()
	defer h.mu.Unlock()
	ms, _ := h.services[messagesVirtualPort].(*Messages)
	return ms
}

// rtcLost follows the loss of ws's peer connection (ICE failed, or a data
// channel closed without a close frame: the peer vanished).
func (h *Host) rtcLost(ws *webSession, why string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if ws.ended || ws.closeFrame {
		return
	}
	h.failWebLocked(ws, StateProblemDetectedLocally, EndMiscTimeout, "WebRTC: "+why)
}

// webClosedByPeerLocked ends ws as the peer asked (its close frame or
// bye): a plain close (EndSessionClosed, EndIdleTimeout) forgets the
// session, as a GNS peer's close does; anything else fails it.
func (h *Host) webClosedByPeerLocked(now time.Time, ws *webSession, reason EndReason, debug string) {
	ms := h.messagesIfAnyLocked()
	if ws.ended || ms == nil || ms.web[ws.peer] != ws {
		return
	}
	if !ws.accepted || reason == EndSessionClosed || reason == EndIdleTimeout {
		info := ws.infoLocked()
		info.State, info.EndReason, info.EndDebug = StateClosedByPeer, reason, debug
		accepted := ws.accepted
		ms.dropWebLocked(ws)
		h.endWebLocked(ws, 0, "")
		if cb := h.cfg.OnSessionClosedByPeer; cb != nil && accepted {
			h.postLocked(func() { cb(info) })
		}
		return
	}
	h.failWebLocked(ws, StateClosedByPeer, reason, debug)
}

func (h *Host) messagesIfAnyLocked() *Messages {
	ms, _ := h.services[messagesVirtualPort].(*Messages)
	return ms
}

// failWebLocked ends ws with reason: it stays in the table, failed, and
// sends fail until it is closed or restarted (OnSessionFailed tells).
func (h *Host) failWebLocked(ws *webSession, state ConnectionState, reason EndReason, debug string) {
	ms := h.messagesIfAnyLocked()
	if ws.ended || ws.failed || ms == nil || ms.web[ws.peer] != ws {
		return
	}
	ws.info = ws.infoLocked()
	ws.failed = true
	ws.info.State, ws.info.EndReason, ws.info.EndDebug = state, reason, debug
	ws.state = state
	if !ws.accepted {
		ms.dropWebLocked(ws)
		h.endWebLocked(ws, 0, "")
		return
	}
	info := ws.info
	tell := EndReason(0)
	if state == StateProblemDetectedLocally {
		tell = reason
	}
	h.endWebLocked(ws, tell, debug) // it stays in the table, failed
	if cb := h.cfg.OnSessionFailed; cb != nil {
		h.postLocked(func() { cb(info) })
	}
}

// endWebLocked stops ws's traffic and closes its peer connection in the
// background, after a close frame (or a bye signal, when the data
// channels are not open) with reason when it is not zero.
func (h *Host) endWebLocked(ws *webSession, reason EndReason, debug string) {
	if ws.ended {
		return
	}
	ws.ended = true
	ws.send.Lock()
	up := ws.send.up && !ws.send.closed
	ws.send.closed = true
	ws.send.Unlock()
	if reason != 0 && !up && (!ws.offerer || ws.localBlob != nil) {
		h.sendSignalLocked(ws.peer, marshalRTCSignal(rtcSignal{Kind: "bye", Sid: ws.sid, Reason: int(reason), Debug: debug}))
	}
	pc := ws.pc
	if pc == nil {
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if up && reason != 0 {
			ws.send.Lock()
			rel := ws.send.rel
			ws.send.Unlock()
			rel.Send(rtcframe.AppendClose(nil, int32(reason), debug))
			deadline := time.Now().Add(rtcCloseFlush)
			for rel.BufferedAmount() > 0 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond) // the last frame's ack
		}
		pc.Close()
	}()
}

// freeWebLocked closes ws with reason (told to the peer) and forgets it
// and its unread messages.
func (ms *Messages) freeWebLocked(now time.Time, ws *webSession, reason EndReason, debug string) {
	if ws.failed {
		reason = 0 // the peer knows
	}
	ms.h.endWebLocked(ws, reason, debug)
	ms.dropWebLocked(ws)
}

// dropWebLocked removes ws from the table and drops its unread messages.
func (ms *Messages) dropWebLocked(ws *webSession) {
	if ms.web[ws.peer] == ws {
		delete(ms.web, ws.peer)
	}
	ms.chMu.Lock()
	for ch := range ws.open {
		ms.dropPeerChLocked(ws.peer, ch)
	}
	ms.chMu.Unlock()
}

// dropPeerChLocked releases the unread messages from peer on channel ch;
// chMu is held.
func (ms *Messages) dropPeerChLocked(peer Identity, ch int) {
	q := ms.channels[ch]
	if q == nil {
		return
	}
	gone, counted := q.filter(func(m *Message) bool { return m.Identity != peer || m.web == nil })
	for i, m := range gone {
		if counted[i] {
			m.web.unread.Add(-1)
		}
		m.Release()
	}
}

// infoLocked is ws's connection info.
func (ws *webSession) infoLocked() ConnectionInfo {
	if ws.failed {
		return ws.info
	}
	info := ConnectionInfo{Identity: ws.peer, UserData: -1, State: ws.state, Flags: ConnInfoUnauthenticated}
	if ws.state == StateConnected {
		r := ws.route
		info.Description = r.desc
		if r.relayed {
			info.Flags |= ConnInfoRelayed
		} else {
			info.RemoteAddress = r.remote
			if a := r.remote.Addr(); a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() {
				info.Flags |= ConnInfoFast
			}
		}
	} else {
		info.Description = "WebRTC session with " + ws.peer.String() + " (connecting)"
	}
	return info
}

// statusLocked is ws's real-time status.
func (ws *webSession) statusLocked() RealTimeStatus {
	st := RealTimeStatus{State: ws.state, Ping: -time.Millisecond, ConnectionQualityLocal: -1, ConnectionQualityRemote: -1}
	if ws.failed {
		st.State = ws.info.State
	}
	if r := ws.rtt.Load(); r > 0 {
		st.Ping = time.Duration(r)
	}
	ws.send.Lock()
	if ws.send.up {
		st.PendingReliable = int(ws.send.rel.BufferedAmount())
		st.PendingUnreliable = int(ws.send.unrel.BufferedAmount())
	} else {
		st.PendingReliable = ws.send.queued
	}
	ws.send.Unlock()
	return st
}

// rtcTimers is the goroutine of the WebRTC sessions' timers: offers
// repeated, session requests repeated and expired, connect timeouts,
// idle timeouts, pings.
func (h *Host) rtcTimers() {
	defer h.wg.Done()
	t := time.NewTicker(rtcTick)
	defer t.Stop()
	var ping []*webSession
	for {
		select {
		case <-h.done:
			return
		case <-t.C:
		}
		h.mu.Lock()
		ms := h.messagesIfAnyLocked()
		if h.closed || ms == nil {
			h.mu.Unlock()
			continue
		}
		now := h.cfg.Now()
		ping = ping[:0]
		for _, ws := range ms.web {
			switch {
			case ws.failed:
			case ws.state == StateConnecting && !ws.accepted:
				if now.Sub(ws.offerSeen) > rtcOfferStale {
					ms.dropWebLocked(ws)
					h.endWebLocked(ws, 0, "")
				} else if !now.Before(ws.requestAt) {
					ms.postWebRequestLocked(now, ws)
				}
			case ws.state == StateConnecting:
				if !ws.connectBy.IsZero() && now.After(ws.connectBy) {
					h.failWebLocked(ws, StateProblemDetectedLocally, EndMiscP2PNATFirewall, "WebRTC: no connection (ICE found no path, or the peer did not answer)")
				} else if ws.offerer && !ws.answered && ws.localBlob != nil && now.Sub(ws.offerSent) >= rtcOfferRepeat {
					ws.offerSent = now
					h.sendSignalLocked(ws.peer, ws.localBlob)
				}
			case ws.state == StateConnected:
				if now.Sub(ws.lastUse()) >= h.cfg.SessionIdleTimeout {
					ms.freeWebLocked(now, ws, EndIdleTimeout, "Session Idle Timeout")
					continue
				}
				if !now.Before(ws.pingNext) {
					ws.pingNext = now.Add(rtcPing)
					ping = append(ping, ws)
				}
			}
		}
		h.mu.Unlock()
		for _, ws := range ping {
			ws.send.Lock()
			if ws.send.up && !ws.send.closed {
				ws.send.unrel.Send(rtcframe.AppendPing(nil, rtcframe.KindPing, uint64(h.cfg.Now().UnixNano())))
			}
			ws.send.Unlock()
		}
		clear(ping)
	}
}

// closeWebLocked ends every WebRTC session as the Host closes (the peers
// are told); the Host waits for their peer connections to close.
func (h *Host) closeWebLocked() {
	ms := h.messagesIfAnyLocked()
	if ms == nil {
		return
	}
	for _, ws := range ms.web {
		ms.freeWebLocked(h.cfg.Now(), ws, EndAppMin, "host closed")
	}
}

// webSessionCountLocked counts the sessions for the Host's metrics.
func (ms *Messages) webStatesLocked(count func(ConnectionState, bool)) {
	for _, ws := range ms.web {
		if ws.failed {
			count(StateNone, true)
			continue
		}
		count(ws.state, false)
	}
}
