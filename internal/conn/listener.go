package conn

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/internal/snp"
)

// ListenerStats counts what a Listener did.
type ListenerStats struct {
	ChallengeRequests, ChallengeReplies int64
	ConnectRequests, ConnectsAccepted   int64
	// Refused connect requests, by cause.
	Malformed, BadChallenge, ChallengeTooOld, Handshake int64
	StrayClosed, StrayData                              int64
}

// Listener answers the stateless part of the server's handshake for one
// socket: it keeps no state per sender until a connect request carries a
// valid challenge. Its memory does not grow with the number of senders.
// It is not safe for concurrent use.
type Listener struct {
	loc *local
	ch  *challenger
	st  ListenerStats
}

// NewListener returns a Listener. secret keys the challenges (random, 32
// bytes; the host makes it).
func NewListener(cfg Config, secret []byte) (*Listener, error) {
	loc, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	if len(secret) < 16 {
		return nil, fmt.Errorf("%w: challenge secret of %d bytes, want at least 16", ErrConfig, len(secret))
	}
	return &Listener{loc: loc, ch: newChallenger(secret)}, nil
}

// Stats returns the Listener's counters.
func (l *Listener) Stats() ListenerStats { return l.st }

// HandleChallengeRequest answers a challenge request from from by appending
// the reply to dst[:0]; the reply is never longer than the request. It
// returns an error (count and drop) for a bad request.
func (l *Listener) HandleChallengeRequest(now time.Time, from netip.AddrPort, b, dst []byte) ([]byte, error) {
	l.st.ChallengeRequests++
	id, m, err := pb.ParseControl(b)
	if err != nil || id != pb.UDPMsgID_UDP_MSG_CHALLENGE_REQUEST {
		l.st.Malformed++
		return nil, fmt.Errorf("%w: challenge request: %v", ErrMalformed, err)
	}
	req := m.(*pb.UDPChallengeRequest)
	if req.GetConnectionId() == 0 {
		l.st.Malformed++
		return nil, fmt.Errorf("%w: challenge request without connection id", ErrMalformed)
	}
	t := challengeTime(now)
	reply := &pb.UDPChallengeReply{
		ConnectionId:    proto.Uint32(req.GetConnectionId()),
		Challenge:       proto.Uint64(l.ch.make(t, from)),
		YourTimestamp:   proto.Uint64(req.GetMyTimestamp()),
		ProtocolVersion: proto.Uint32(ProtocolVersion),
	}
	out, err := pb.AppendControl(dst[:0], pb.UDPMsgID_UDP_MSG_CHALLENGE_REPLY, reply)
	if err != nil || len(out) > len(b) {
		// Cannot happen: the request is padded to 512 bytes and the reply
		// is at most 37. Never amplify, whatever happens.
		l.st.Malformed++
		return nil, fmt.Errorf("%w: reply would be larger than the request", ErrMalformed)
	}
	l.st.ChallengeReplies++
	return out, nil
}

// HandleConnectRequest checks a connect request (challenge, certificate,
// signed crypt info) and, if it is good, returns a new server connection
// with id localID in state Connecting, waiting for Accept. A bad request
// returns an error (count and drop), and, where GNS answers one, a reply
// datagram to send.
//
// GNS answers none of the failures checked here: a bad or old challenge, a
// missing connection id, a bad identity and a refused certificate or crypt
// info are all dropped silently (the client retries and, in the end, times
// out with 5003). The one answer GNS gives at this point, a connection
// closed with 5001 "A connection with that ID already exists." for an
// identity and client connection id that already have a connection from
// another address, is the host's to send (see ConnectionExistsReply),
// since only the host knows its connections.
func (l *Listener) HandleConnectRequest(now time.Time, from netip.AddrPort, b []byte, localID uint32) (c *Conn, reply []byte, err error) {
	l.st.ConnectRequests++
	id, m, err := pb.ParseControl(b)
	if err != nil || id != pb.UDPMsgID_UDP_MSG_CONNECT_REQUEST {
		l.st.Malformed++
		return nil, nil, fmt.Errorf("%w: connect request: %v", ErrMalformed, err)
	}
	req := m.(*pb.UDPConnectRequest)
	ok, tooOld := l.ch.check(now, from, req.GetChallenge())
	if tooOld {
		l.st.ChallengeTooOld++
		return nil, nil, fmt.Errorf("%w: too old", ErrChallenge)
	}
	if !ok {
		l.st.BadChallenge++
		return nil, nil, fmt.Errorf("%w: incorrect, could be spoofed", ErrChallenge)
	}
	if req.GetClientConnectionId() == 0 {
		l.st.Malformed++
		return nil, nil, fmt.Errorf("%w: connect request without connection id", ErrMalformed)
	}
	if localID == 0 {
		return nil, nil, errors.New("conn: localID must be nonzero")
	}
	ident, err := peerIdentity(req.GetCert(), req.GetIdentityString(), ipIdentity(from))
	if err != nil {
		l.st.Handshake++
		return nil, nil, err
	}
	peer, err := crypto.VerifyPeer(l.loc.policy(now, "", 0), req.GetCert(), req.GetCrypt())
	c = newConn(l.loc, now, localID, from, true)
	c.remoteID = req.GetClientConnectionId()
	c.vport = int(req.GetNetmsgVirtualPort())
	if offer, ours := int(req.GetNetmsgLanes()), l.loc.cfg.OfferLanes; c.vport > 0 && offer > 1 && ours > 1 {
		c.lanesNeg = min(offer, ours, snp.MaxLanes)
	}
	if err == nil {
		err = c.checkLanes(peer)
	}
	var keys *crypto.SessionKeys
	if err == nil {
		var ciph pb.Cipher
		ciph, err = crypto.NegotiateCipher(crypto.DefaultCiphers, peer.Crypt.GetCiphers(), false)
		if err == nil {
			c.crypt, err = newLocalCrypt(l.loc, []pb.Cipher{ciph})
		}
		if err == nil {
			keys, err = crypto.DeriveKeys(crypto.KeyParams{
				IsServer:    true,
				LocalConnID: localID, RemoteConnID: c.remoteID,
				LocalCert: l.loc.cert.GetCert(), Local: c.crypt, Peer: peer, Cipher: ciph,
			})
		}
	}
	if err != nil {
		l.st.Handshake++
		return nil, nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	c.remoteIdentity, c.caSigned = ident, peer.CASigned
	if peer.IdentityIsLocalhost {
		// GNS's anonymous identity: the peer is known by its address.
		c.remoteIdentity = ipIdentity(from)
	}
	c.peerVersion = peer.Crypt.GetProtocolVersion()
	c.pendingPeer, c.pendingKeys = peer, keys
	c.lastRecv = now
	if req.PingEstMs != nil && req.GetPingEstMs() <= maxPingEstimateMs {
		c.pingMs = int(req.GetPingEstMs())
	}
	if req.MyTimestamp != nil {
		c.hsTimestamp, c.hsTimestampT = req.GetMyTimestamp(), now
	}
	c.setState(now, StateConnecting)
	l.st.ConnectsAccepted++
	return c, nil, nil
}

// ConnectionExistsReply appends to dst[:0] the answer GNS gives a connect
// request whose identity and client connection id already belong to a
// connection of this host (from another address): a connection closed with
// 5001 and "A connection with that ID already exists.".
func ConnectionExistsReply(dst []byte, clientConnID uint32) []byte {
	out, _ := pb.AppendControl(dst[:0], pb.UDPMsgID_UDP_MSG_CONNECTION_CLOSED, &pb.UDPConnectionClosed{
		ToConnectionId: proto.Uint32(clientConnID),
		ReasonCode:     proto.Uint32(EndMiscGeneric),
		Debug:          proto.String("A connection with that ID already exists."),
	})
	return out
}

// HandleStray answers a connection-closed or data datagram that matched no
// connection with a no-connection reply appended to dst[:0], as GNS does
// (nil when none is due; rate-limit in the host).
//
// GNS's listen socket answers a stray connection closed (which is padded,
// so the small reply cannot amplify) by echoing its ids in a no
// connection, and ignores stray data packets and anything else.
func (l *Listener) HandleStray(now time.Time, from netip.AddrPort, b, dst []byte) []byte {
	if len(b) == 0 || b[0] != leadConnectionClosed {
		if len(b) > 0 && b[0]&0x80 != 0 {
			l.st.StrayData++
		}
		return nil
	}
	id, m, err := pb.ParseControl(b)
	if err != nil || id != pb.UDPMsgID_UDP_MSG_CONNECTION_CLOSED {
		l.st.Malformed++
		return nil
	}
	l.st.StrayClosed++
	cl := m.(*pb.UDPConnectionClosed)
	nc := &pb.UDPNoConnection{}
	if cl.GetFromConnectionId() != 0 {
		nc.ToConnectionId = proto.Uint32(cl.GetFromConnectionId())
	}
	if cl.GetToConnectionId() != 0 {
		nc.FromConnectionId = proto.Uint32(cl.GetToConnectionId())
	}
	out, err := pb.AppendControl(dst[:0], pb.UDPMsgID_UDP_MSG_NO_CONNECTION, nc)
	if err != nil {
		return nil
	}
	return out
}

// Accept lets a server connection in state Connecting complete the
// handshake (its next Poll sends connect OK). It fails on a client
// connection or one not waiting to be accepted.
func (c *Conn) Accept(now time.Time) error {
	if !c.server {
		return fmt.Errorf("%w: not a server connection", ErrUnexpected)
	}
	if c.state != StateConnecting || c.accepted {
		return fmt.Errorf("%w: cannot accept in state %d", ErrNotConnected, c.state)
	}
	c.accepted = true
	if err := c.connected(now, c.pendingPeer, c.pendingKeys); err != nil {
		c.problem(now, EndMiscInternalError, "Failed to accept connection.")
		return err
	}
	if !c.p2p { // a P2P connect OK travels in the rendezvous
		c.sendConnectOK(now)
	}
	return nil
}

// sendConnectOK queues a connect OK (GNS SendConnectOK). The client's time
// stamp is echoed, with our delay, while it is younger than 4 s.
func (c *Conn) sendConnectOK(now time.Time) {
	m := &pb.UDPConnectOK{
		ClientConnectionId: proto.Uint32(c.remoteID),
		ServerConnectionId: proto.Uint32(c.localID),
		Cert:               c.loc.cert,
		Crypt:              c.crypt.Signed,
	}
	if !c.loc.certHasID {
		m.IdentityString = proto.String(c.loc.cfg.Identity)
	}
	if c.lanesNeg > 1 {
		m.NetmsgLanes = proto.Uint32(uint32(c.lanesNeg))
	}
	if !c.hsTimestampT.IsZero() {
		el := now.Sub(c.hsTimestampT)
		if el < handshakeTimestampMaxAge {
			m.YourTimestamp = proto.Uint64(c.hsTimestamp)
			m.DelayTimeUsec = proto.Uint32(uint32(el / time.Microsecond))
		} else {
			c.hsTimestampT = time.Time{}
		}
	}
	// ConnectOK is sent in the same Poll as the state change; put it ahead
	// of any datagram queued before.
	c.queueControl(pb.UDPMsgID_UDP_MSG_CONNECT_OK, m)
}

// recvChallengeOrConnectRequest is GNS Received_ChallengeOrConnectRequest:
// a request that reached an existing connection from its peer's address.
func (c *Conn) recvChallengeOrConnectRequest(now time.Time, connID uint32) error {
	if connID != c.remoteID {
		return fmt.Errorf("%w: request for %d", ErrWrongConnID, connID)
	}
	switch c.state {
	case StateClosedByPeer, StateFinWait, StateProblemDetectedLocally:
		c.queueClosedOrNoConnection(now)
	case StateConnecting:
		// waiting for the application to accept
	case StateConnected, StateLinger:
		if !c.server {
			return fmt.Errorf("%w: connect request to a client", ErrUnexpected)
		}
		c.sendConnectOK(now) // our connect OK was lost
	}
	return nil
}
