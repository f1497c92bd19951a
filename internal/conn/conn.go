package conn

import (
	"errors"
	"net/netip"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/internal/snp"
)

// Errors of HandleDatagram and the Listener. Each dropped datagram is also
// counted in ConnStats or ListenerStats.
var (
	// ErrNotConnected is returned by Send when the connection is not (or
	// no longer) able to carry messages.
	ErrNotConnected = errors.New("conn: not connected")
	// ErrMalformed: the datagram does not parse.
	ErrMalformed = errors.New("conn: malformed datagram")
	// ErrUnexpected: a well-formed datagram that this side does not take
	// in its current state, or from that address.
	ErrUnexpected = errors.New("conn: unexpected datagram")
	// ErrWrongConnID: the datagram names another connection.
	ErrWrongConnID = errors.New("conn: wrong connection id")
	// ErrReplay: a data packet that is a duplicate or too old.
	ErrReplay = errors.New("conn: duplicate or old packet")
	// ErrAuth: a data packet that failed authentication (dropped; the
	// connection goes on, as in GNS).
	ErrAuth = errors.New("conn: packet authentication failed")
	// ErrChallenge: a connect request whose challenge is wrong or too old.
	ErrChallenge = errors.New("conn: bad or expired challenge")
	// ErrHandshake: the peer's certificate or crypt info was refused; the
	// error also wraps the crypto package's error (crypto.EndReasonOf).
	ErrHandshake = errors.New("conn: handshake refused")
)

// ConnStats counts what the connection layer itself did with datagrams.
// The engine's figures are in Stats.
type ConnStats struct {
	DatagramsRecv, DatagramsSent int64
	// Dropped datagrams, by cause.
	Malformed   int64 // truncated, bad framing, bad protobuf, bad header
	WrongConnID int64
	WrongAddr   int64 // from an address that is not the peer's (ErrWrongAddr): any datagram on a direct connection, a control one on a P2P connection
	Unexpected  int64 // a kind or state this side does not take
	Replayed    int64 // data packets refused as duplicate or too old
	AuthFailed  int64 // data packets failing AES-GCM
	Discarded   int64 // dropped by the engine (receive limits)
	// Handshake and liveness.
	ChallengeRequestsSent, ConnectRequestsSent, ConnectOKsSent int64
	ClosedSent, NoConnectionSent                               int64
	AckRequestsSent, AckRequestsRecv                           int64
	ReplyTimeouts                                              int64
}

// preMsg is a message sent before the connection is connected.
type preMsg struct {
	lane  int // -1: keyed (SendKeyed), mapped to a lane when connected
	key   uint32
	data  []byte
	flags snp.SendFlags
}

// Conn is one connection's state machine. It is not safe for concurrent use:
// its owner calls it from one goroutine or under one lock.
//
// States (see netmsg.ConnectionState) and what moves a Conn between them:
//
//	Dial ─► Connecting ──(connect OK received / Accept)──► Connected
//	           │                                              │
//	           ├── peer closes ─► ClosedByPeer ◄──────────────┤
//	           ├── timeout, bad handshake ─► ProblemDetectedLocally ◄─┤
//	           │                       │                      │
//	           └──── Close ────────────┴──► FinWait ◄── Close ┤ (linger: Linger ─► FinWait)
//	                                          │ 5 s
//	                                          ▼
//	                                         Dead
type Conn struct {
	loc    *local
	server bool

	state    State
	wire     State // the state the peer is told about (GNS's wire state)
	entered  time.Time
	events   []Event
	endCode  int
	endDebug string

	localID, remoteID uint32
	remote            netip.AddrPort
	remoteIdentity    string
	caSigned          bool // the peer's certificate is signed by a trusted CA
	expectIdentity    string

	// out holds control datagrams due now, oldest first.
	out [][]byte

	// Handshake.
	crypt       *crypto.LocalCrypt
	peerVersion uint32
	vport       int       // virtual port: ours when dialling (Config.VirtualPort), the client's when accepted
	lastAttempt time.Time // client: last challenge or connect request (GNS m_usecWhenSentConnectRequest)
	// challenge and challengeAt: client: the challenge of the last
	// challenge reply and when it came (zero: none), for retries
	// (challengeReuse).
	challenge    uint64
	challengeAt  time.Time
	accepted     bool
	pendingPeer  *crypto.Peer        // server: verified, until Accept
	peerKey      []byte              // the public key of the peer's certificate, once connected
	pendingKeys  *crypto.SessionKeys // server: derived, until Accept
	hsTimestamp  uint64              // server: the client's connect request time stamp
	hsTimestampT time.Time           // when it was received (zero: none)
	pingMs       int                 // from the handshake, -1 before a sample

	// Data.
	eng      *snp.Conn
	lanesNeg int       // lanes agreed by netmsg's lane extension (0: none)
	own      *Settings // this connection's own settings (nil: the host's)
	p2p      bool      // the handshake travels in rendezvous messages (p2p.go)
	// peerAddrs tests a P2P peer's addresses other than remote (nil:
	// none); see SetPeerAddrs.
	peerAddrs func(netip.AddrPort) bool
	proven    bool // a data packet from the peer passed decryption
	pre       []preMsg
	preBytes  int
	preNums   []int64
	sendC     *crypto.PacketCipher
	recvC     *crypto.PacketCipher
	win       recvWindow
	statsBuf  []byte

	// Liveness (GNS LinkStatsTracker end to end).
	lastRecv       time.Time
	replyTimeoutAt time.Time // zero: no reply awaited
	replyTimeouts  int
	timeoutStarted time.Time
	lastImmediate  time.Time
	lastPingReq    time.Time

	// Closing.
	closedLeft int
	closedNext time.Time

	st ConnStats
}

func newConn(loc *local, now time.Time, localID uint32, remote netip.AddrPort, server bool) *Conn {
	c := &Conn{
		loc:      loc,
		server:   server,
		localID:  localID,
		remote:   unmap(remote),
		pingMs:   -1,
		lastRecv: now,
		preNums:  make([]int64, loc.lanes),
	}
	return c
}

// Dial returns a client connection to remote that starts the handshake at
// now: its first Poll returns a challenge request. localID is the id the
// host chose for it (nonzero, unique on the host).
func Dial(cfg Config, now time.Time, localID uint32, remote netip.AddrPort) (*Conn, error) {
	loc, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	if localID == 0 {
		return nil, errors.New("conn: localID must be nonzero")
	}
	c := newConn(loc, now, localID, remote, false)
	c.expectIdentity = cfg.RemoteIdentity
	if cfg.VirtualPort < 0 {
		return nil, errors.New("conn: negative virtual port")
	}
	c.vport = cfg.VirtualPort
	c.crypt, err = newLocalCrypt(loc, crypto.DefaultCiphers)
	if err != nil {
		return nil, err
	}
	c.setState(now, StateConnecting)
	return c, nil
}

// State returns the current state.
func (c *Conn) State() State { return c.state }

// EndReason and EndDebug describe why a connection ended (0 and "" while
// it has not).
func (c *Conn) EndReason() int   { return c.endCode }
func (c *Conn) EndDebug() string { return c.endDebug }

// PeerKey returns the public key the peer's certificate binds to its
// identity, once the handshake verified it (nil before).
func (c *Conn) PeerKey() []byte {
	if c.peerKey == nil && c.pendingPeer != nil {
		return c.pendingPeer.Cert.GetKeyData()
	}
	return c.peerKey
}

// StateSince returns when the connection entered its current state.
func (c *Conn) StateSince() time.Time { return c.entered }

// LocalID and RemoteID are the two connection ids (RemoteID is 0 until
// known).
func (c *Conn) LocalID() uint32  { return c.localID }
func (c *Conn) RemoteID() uint32 { return c.remoteID }

// RemoteAddr is the peer's address; RemoteIdentity its identity in GNS's
// string form once its certificate was checked ("" before).
func (c *Conn) RemoteAddr() netip.AddrPort { return c.remote }
func (c *Conn) RemoteIdentity() string     { return c.remoteIdentity }

// PeerCASigned reports whether the peer's certificate was signed by one of
// Config.TrustedCAs (false with an unsigned certificate, which only a
// Config without TrustedCAs accepts, and before the handshake).
func (c *Conn) PeerCASigned() bool { return c.caSigned }

// IsServer reports whether the connection was accepted by a Listener.
func (c *Conn) IsServer() bool { return c.server }

// PeerProtocolVersion is the peer's protocol version (0 until known).
func (c *Conn) PeerProtocolVersion() int { return int(c.peerVersion) }

// VirtualPort is the virtual port the connection was made to (netmsg's
// connect-request extension): Config.VirtualPort on a dialled connection,
// the client's on an accepted one; 0 for a plain connection, and for every
// connection from a GNS peer.
func (c *Conn) VirtualPort() int { return c.vport }

// NextEvent returns the oldest state change not yet reported.
func (c *Conn) NextEvent() (Event, bool) {
	if len(c.events) == 0 {
		return Event{}, false
	}
	e := c.events[0]
	c.events = c.events[1:]
	return e, true
}

// ConnStats returns the connection layer's own counters.
func (c *Conn) ConnStats() ConnStats { return c.st }

// Stats returns the engine's figures plus the connection's own: datagrams
// refused as replays count as duplicates, and malformed or unauthenticated
// ones as bad packets. Before the engine exists (while connecting) only
// those and the handshake ping are set.
func (c *Conn) Stats(now time.Time) snp.Stats {
	var s snp.Stats
	if c.eng != nil {
		s = c.eng.Stats(now)
	} else {
		s.Ping, s.SmoothedRTT, s.MinRTT = c.pingMs, -1, -1
		s.ConnectionQualityLocal, s.ConnectionQualityRemote = -1, -1
	}
	s.PacketsDuplicate += c.st.Replayed
	s.PacketsBad += c.st.Malformed + c.st.AuthFailed
	return s
}

// setState moves to s at now, reports it and, on entering FinWait or
// ProblemDetectedLocally, tells the peer (GNS TransportConnectionStateChanged).
func (c *Conn) setState(now time.Time, s State) {
	if s == c.state {
		return
	}
	old := c.state
	c.state = s
	c.entered = now
	switch s {
	case StateFinWait:
		switch old {
		case StateClosedByPeer, StateProblemDetectedLocally:
			// the peer was told (or told us) already
		default:
			c.wire = StateFinWait
		}
	case StateLinger:
		c.wire = StateConnected
	default:
		c.wire = s
	}
	c.events = append(c.events, Event{State: s, EndReason: c.endCode, EndDebug: c.endDebug})
	if s == StateFinWait || s == StateProblemDetectedLocally {
		c.closedLeft = closedResends
		c.queueClosedOrNoConnection(now)
	}
	if s == StateDead || s == StateFinWait {
		c.dropPre()
	}
}

// active reports GNS's BStateIsActive.
func (c *Conn) active() bool {
	switch c.state {
	case StateConnecting, StateFindingRoute, StateConnected, StateLinger:
		return true
	}
	return false
}

// problem is GNS ConnectionState_ProblemDetectedLocally.
func (c *Conn) problem(now time.Time, reason int, debug string) {
	if c.endCode == 0 || c.state == StateLinger {
		c.endCode, c.endDebug = reason, clip(debug)
	}
	switch c.state {
	case StateLinger:
		c.setState(now, StateFinWait)
	case StateConnecting, StateFindingRoute, StateConnected:
		c.setState(now, StateProblemDetectedLocally)
	}
}

// closedByPeer is GNS ConnectionState_ClosedByPeer.
func (c *Conn) closedByPeer(now time.Time, reason int, debug string) {
	switch c.state {
	case StateLinger:
		c.setState(now, StateFinWait)
	case StateConnecting, StateFindingRoute, StateConnected:
		if debug != "" {
			c.endDebug = clip(debug)
		} else if c.endDebug == "" {
			c.endDebug = "The remote host closed the connection."
		}
		c.endCode = reason
		c.setState(now, StateClosedByPeer)
	}
}

func clip(s string) string {
	if len(s) > maxDebugLen {
		s = s[:maxDebugLen]
	}
	return s
}

// queueControl queues a control datagram for Poll.
func (c *Conn) queueControl(id pb.UDPMsgID, m proto.Message) {
	b, err := pb.AppendControl(nil, id, m)
	if err != nil {
		return // cannot happen for the messages we build (they are far below the MTU)
	}
	c.out = append(c.out, b)
	switch id {
	case pb.UDPMsgID_UDP_MSG_CONNECTION_CLOSED:
		c.st.ClosedSent++
	case pb.UDPMsgID_UDP_MSG_NO_CONNECTION:
		c.st.NoConnectionSent++
	case pb.UDPMsgID_UDP_MSG_CONNECT_REQUEST:
		c.st.ConnectRequestsSent++
	case pb.UDPMsgID_UDP_MSG_CONNECT_OK:
		c.st.ConnectOKsSent++
	case pb.UDPMsgID_UDP_MSG_CHALLENGE_REQUEST:
		c.st.ChallengeRequestsSent++
	}
}

// unmap returns a with an IPv4-mapped IPv6 address made IPv4, so that
// addresses compare equal however the socket reported them.
func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// PendingEvents reports whether NextEvent has an event to return.
func (c *Conn) PendingEvents() bool { return len(c.events) > 0 }
