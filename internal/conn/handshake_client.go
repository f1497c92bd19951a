package conn

import (
	"crypto/ecdh"
	"encoding/binary"
	"fmt"
	"io"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/internal/snp"
)

// newLocalCrypt makes our signed session crypt info. With Config.Rand set,
// the X25519 key (32 bytes) and then the nonce (8 bytes, little-endian)
// are read from it, so a recorded handshake can be reproduced.
func newLocalCrypt(loc *local, ciphers []pb.Cipher) (*crypto.LocalCrypt, error) {
	if loc.cfg.Rand == nil {
		return crypto.NewLocalCrypt(nil, loc.key, ciphers)
	}
	var b [40]byte
	if _, err := io.ReadFull(loc.cfg.Rand, b[:]); err != nil {
		return nil, fmt.Errorf("conn: Rand: %w", err)
	}
	priv, err := ecdh.X25519().NewPrivateKey(b[:32])
	if err != nil {
		return nil, err
	}
	return crypto.NewLocalCryptFromKey(priv, binary.LittleEndian.Uint64(b[32:]), loc.key, ciphers)
}

// timestamp is the local clock as GNS puts it in handshake messages:
// microseconds (we use Unix microseconds).
func timestamp(now time.Time) uint64 { return uint64(now.UnixMicro()) }

// sendChallengeRequest queues a challenge request (GNS
// SendEndToEndConnectRequest): padded, so that the server's reply is never
// larger; it doubles as a ping request.
func (c *Conn) sendChallengeRequest(now time.Time) {
	c.queueControl(pb.UDPMsgID_UDP_MSG_CHALLENGE_REQUEST, &pb.UDPChallengeRequest{
		ConnectionId:    proto.Uint32(c.localID),
		MyTimestamp:     proto.Uint64(timestamp(now)),
		ProtocolVersion: proto.Uint32(ProtocolVersion),
	})
	c.lastAttempt = now
}

// handshakePing records a round trip measured from an echoed time stamp
// (GNS ignores samples that are negative or above 2 s).
func (c *Conn) handshakePing(now time.Time, echoed uint64, delay uint64) {
	el := int64(timestamp(now)) - int64(echoed) - int64(delay)
	if el < 0 || el > int64(pingSampleMax/time.Microsecond) {
		return
	}
	c.pingMs = int((el + 500) / 1000)
}

// recvChallengeReply is GNS Received_ChallengeReply.
func (c *Conn) recvChallengeReply(now time.Time, m *pb.UDPChallengeReply) error {
	if c.server {
		return fmt.Errorf("%w: challenge reply on a server connection", ErrUnexpected)
	}
	if c.state != StateConnecting {
		return nil // late duplicate
	}
	if m.GetConnectionId() != c.localID {
		return fmt.Errorf("%w: challenge reply for %d", ErrWrongConnID, m.GetConnectionId())
	}
	if m.GetProtocolVersion() < MinProtocolVersion {
		c.problem(now, EndMiscGeneric, "Peer is running old software and needs to be udpated")
		return nil
	}
	if m.YourTimestamp != nil {
		c.handshakePing(now, m.GetYourTimestamp(), 0)
	}
	c.peerVersion = m.GetProtocolVersion()
	c.challenge, c.challengeAt = m.GetChallenge(), now
	c.sendConnectRequest(now)
	return nil
}

// sendConnectRequest queues a connect request with the challenge the
// client holds (GNS does so on a challenge reply; netmsg also on a retry
// while the challenge is younger than challengeReuse).
func (c *Conn) sendConnectRequest(now time.Time) {
	req := &pb.UDPConnectRequest{
		ClientConnectionId: proto.Uint32(c.localID),
		Challenge:          proto.Uint64(c.challenge),
		MyTimestamp:        proto.Uint64(timestamp(now)),
		Cert:               c.loc.cert,
		Crypt:              c.crypt.Signed,
	}
	if c.pingMs >= 0 {
		req.PingEstMs = proto.Uint32(uint32(c.pingMs))
	}
	if !c.loc.certHasID {
		req.IdentityString = proto.String(c.loc.cfg.Identity)
	}
	if c.vport > 0 {
		req.NetmsgVirtualPort = proto.Uint32(uint32(c.vport))
		if n := c.loc.cfg.OfferLanes; n > 1 {
			req.NetmsgLanes = proto.Uint32(uint32(min(n, snp.MaxLanes)))
		}
	}
	c.queueControl(pb.UDPMsgID_UDP_MSG_CONNECT_REQUEST, req)
	c.lastAttempt = now // GNS SentEndToEndConnectRequest: the retry clock restarts
}

// peerIdentity works out who the peer says it is, as GNS does for connect
// requests and connect OK: the identity in its certificate, else the one in
// the message, else the anonymous localhost identity, which becomes its
// address. An IP identity not taken from the certificate is refused.
func peerIdentity(cert *pb.CertificateSigned, msgIdentity string, from string) (string, error) {
	var c pb.Certificate
	if err := proto.Unmarshal(cert.GetCert(), &c); err != nil {
		return "", fmt.Errorf("%w: certificate does not parse", ErrMalformed)
	}
	id, ok, err := crypto.CertIdentity(&c)
	if err != nil {
		return "", fmt.Errorf("%w: bad identity in certificate: %v", ErrHandshake, err)
	}
	if ok && id != "" {
		return id, nil
	}
	if msgIdentity == "" {
		return from, nil
	}
	if len(msgIdentity) > 3 && msgIdentity[:3] == "ip:" {
		return "", fmt.Errorf("%w: cannot use a specific IP address as identity", ErrHandshake)
	}
	return msgIdentity, nil
}

// recvConnectOK is GNS Received_ConnectOK.
func (c *Conn) recvConnectOK(now time.Time, m *pb.UDPConnectOK) error {
	if c.server {
		return fmt.Errorf("%w: connect OK on a server connection", ErrUnexpected)
	}
	if m.GetClientConnectionId() != c.localID {
		return fmt.Errorf("%w: connect OK for %d", ErrWrongConnID, m.GetClientConnectionId())
	}
	ident, err := peerIdentity(m.GetCert(), m.GetIdentityString(), ipIdentity(c.remote))
	if err != nil {
		return err
	}
	if c.remoteIdentity != "" && c.remoteIdentity != ident {
		return fmt.Errorf("%w: server identity changed", ErrUnexpected)
	}
	if m.YourTimestamp != nil {
		c.handshakePing(now, m.GetYourTimestamp(), uint64(m.GetDelayTimeUsec()))
	}
	switch c.state {
	case StateClosedByPeer, StateFinWait, StateProblemDetectedLocally:
		c.queueClosedOrNoConnection(now)
		return nil
	case StateConnecting:
	default:
		return nil // connected already: a duplicate
	}
	c.remoteID = m.GetServerConnectionId()
	if c.remoteID&0xffff == 0 {
		c.problem(now, EndRemoteBadCrypt, "Didn't send valid connection ID")
		return nil
	}
	peer, keys, err := c.clientKeys(now, c.peerVersion, m.GetCert(), m.GetCrypt())
	if err != nil {
		return err
	}
	c.remoteIdentity, c.caSigned = ident, peer.CASigned
	if peer.IdentityIsLocalhost {
		// GNS's anonymous identity: the peer is known by its address.
		c.remoteIdentity = ipIdentity(c.remote)
	}
	if n, ours := int(m.GetNetmsgLanes()), c.loc.cfg.OfferLanes; c.vport > 0 && n > 1 && ours > 1 {
		c.lanesNeg = min(n, ours, snp.MaxLanes) // never more than we offered
	}
	if err := c.connected(now, peer, keys); err != nil {
		c.problem(now, EndMiscInternalError, err.Error())
		return err
	}
	return nil
}

// checkLanes refuses a peer too old for the lanes we configured (GNS: 4006).
func (c *Conn) checkLanes(p *crypto.Peer) error {
	v := p.Crypt.GetProtocolVersion()
	if c.lanesConfigured() > 1 && v < protoVersionLanes {
		return fmt.Errorf("%w: peer is using old protocol and cannot receive multiple lanes", crypto.ErrBadProtocolVersion)
	}
	return nil
}

// clientKeys checks the server's certificate and signed crypt info (and
// the lanes we need) and derives the client's session keys (GNS's client
// side of the crypto handshake: UDP connect OK and P2P connect_ok alike).
// A failure ends the connection with GNS's reason and is returned.
func (c *Conn) clientKeys(now time.Time, earlierVersion uint32, cert *pb.CertificateSigned, crypt *pb.SessionCryptInfoSigned) (*crypto.Peer, *crypto.SessionKeys, error) {
	peer, err := crypto.VerifyPeer(c.loc.policy(now, c.expectIdentity, earlierVersion), cert, crypt)
	if err == nil {
		err = c.checkLanes(peer)
	}
	var keys *crypto.SessionKeys
	if err == nil {
		var ciph pb.Cipher
		ciph, err = crypto.NegotiateCipher(c.crypt.Info.GetCiphers(), peer.Crypt.GetCiphers(), true)
		if err == nil {
			keys, err = crypto.DeriveKeys(crypto.KeyParams{
				LocalConnID: c.localID, RemoteConnID: c.remoteID,
				LocalCert: c.loc.cert.GetCert(), Local: c.crypt, Peer: peer, Cipher: ciph,
			})
		}
	}
	if err != nil {
		reason := crypto.EndReasonOf(err)
		if reason == 0 {
			reason = EndRemoteBadCrypt
		}
		c.problem(now, reason, err.Error())
		return nil, nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return peer, keys, nil
}
