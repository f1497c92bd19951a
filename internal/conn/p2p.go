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

// P2P connections (GNS steamnetworkingsockets_p2p.cpp): the handshake's
// certificate and signed crypt info travel in the rendezvous messages'
// connect_request and connect_ok, through signaling (package internal/p2p
// carries them), instead of the UDP challenge and connect request; the
// side that sent connect_ok is the "server" of the key derivation (and
// controls ICE). The checks, the cipher choice and the keys are those of
// the UDP handshake, and so is the protocol version rule that the
// handshake counts as packet 1: data packets start at number 2 both ways,
// as in GNS's own P2P captures (testdata/vectors/p2p_signaling.json).
// Once connected, the data packets are those of direct UDP (same header:
// lead byte 0x80 with its flags, the recipient's connection id, the low 16
// bits of the packet number; same encryption), sent to the remote address
// ICE selected (SetRemoteAddr, which may change). Connection closed and no
// connection datagrams go on that path too; a connection_closed signal is
// CloseByPeer. A P2P Conn never sends UDP handshake datagrams.

// DialP2P returns a P2P client connection in state Connecting. The host
// signals P2PConnectRequest until HandleP2PConnectOK (or the connect
// timeout). cfg.RemoteIdentity, if set, is the identity the peer's
// certificate must name.
func DialP2P(cfg Config, now time.Time, localID uint32) (*Conn, error) {
	loc, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	if localID == 0 {
		return nil, errors.New("conn: localID must be nonzero")
	}
	if cfg.VirtualPort < 0 {
		return nil, errors.New("conn: negative virtual port")
	}
	c := newConn(loc, now, localID, netip.AddrPort{}, false)
	c.p2p = true
	c.expectIdentity = cfg.RemoteIdentity
	c.vport = cfg.VirtualPort
	if c.crypt, err = newLocalCrypt(loc, crypto.DefaultCiphers); err != nil {
		return nil, err
	}
	c.setState(now, StateConnecting)
	return c, nil
}

// IsP2P reports whether c is a P2P connection.
func (c *Conn) IsP2P() bool { return c.p2p }

// SetRemoteAddr sets where c's datagrams go (the ICE path selected for a
// P2P connection, which may change on a route upgrade).
func (c *Conn) SetRemoteAddr(a netip.AddrPort) { c.remote = unmap(a) }

// P2PConnectRequest is the connect_request a P2P client signals.
func (c *Conn) P2PConnectRequest() *pb.P2PRendezvous_ConnectRequest {
	m := &pb.P2PRendezvous_ConnectRequest{
		Crypt: c.crypt.Signed,
		Cert:  c.loc.cert,
	}
	if c.vport > 0 {
		m.ToVirtualPort = proto.Uint32(uint32(c.vport))
		m.FromVirtualPort = proto.Uint32(uint32(c.vport))
		if n := c.loc.cfg.OfferLanes; n > 1 {
			m.NetmsgLanes = proto.Uint32(uint32(min(n, snp.MaxLanes)))
		}
	}
	return m
}

// P2PConnectOK is the connect_ok an accepted P2P server connection signals.
func (c *Conn) P2PConnectOK() *pb.P2PRendezvous_ConnectOK {
	m := &pb.P2PRendezvous_ConnectOK{Crypt: c.crypt.Signed, Cert: c.loc.cert}
	if c.lanesNeg > 1 {
		m.NetmsgLanes = proto.Uint32(uint32(c.lanesNeg))
	}
	return m
}

// HandleP2PConnectOK completes a P2P client's handshake with the peer's
// connect_ok (from connection remoteID). A duplicate after connecting is
// ignored; a bad certificate or crypt info ends the connection (as
// recvConnectOK does).
func (c *Conn) HandleP2PConnectOK(now time.Time, remoteID uint32, ok *pb.P2PRendezvous_ConnectOK) error {
	if !c.p2p || c.server {
		return fmt.Errorf("%w: connect OK on a connection that did not ask", ErrUnexpected)
	}
	if c.state != StateConnecting {
		if remoteID != c.remoteID {
			return fmt.Errorf("%w: connect OK from %d", ErrWrongConnID, remoteID)
		}
		return nil // a duplicate
	}
	if remoteID == 0 {
		return fmt.Errorf("%w: connect OK without connection id", ErrMalformed)
	}
	ident, err := peerIdentity(ok.GetCert(), "", "")
	if err != nil {
		return err
	}
	if ident == "" {
		return fmt.Errorf("%w: certificate names no identity", ErrHandshake)
	}
	c.remoteID = remoteID
	peer, keys, err := c.clientKeys(now, 0, ok.GetCert(), ok.GetCrypt())
	if err != nil {
		return err
	}
	c.remoteIdentity, c.caSigned = ident, peer.CASigned
	if n, ours := int(ok.GetNetmsgLanes()), c.loc.cfg.OfferLanes; c.vport > 0 && n > 1 && ours > 1 {
		c.lanesNeg = min(n, ours, snp.MaxLanes)
	}
	if err := c.connected(now, peer, keys); err != nil {
		c.problem(now, EndMiscInternalError, err.Error())
		return err
	}
	return nil
}

// AcceptP2P checks a connect_request signaled by connection remoteID of the
// peer and returns the server side, in state Connecting until Accept (whose
// connect_ok the host then signals with P2PConnectOK). The certificate and
// signed crypt info are checked with the policy of a UDP connect request
// (Listener.HandleConnectRequest); with cfg.RemoteIdentity set, the
// certificate must also name it (the identity signaling says the request
// came from). A bad request is an error and no connection.
func AcceptP2P(cfg Config, now time.Time, localID, remoteID uint32, req *pb.P2PRendezvous_ConnectRequest) (*Conn, error) {
	loc, err := prepare(cfg)
	if err != nil {
		return nil, err
	}
	if localID == 0 || remoteID == 0 {
		return nil, fmt.Errorf("%w: connection ids must be nonzero", ErrMalformed)
	}
	c := newConn(loc, now, localID, netip.AddrPort{}, true)
	c.p2p = true
	c.expectIdentity = cfg.RemoteIdentity
	hs, err := c.p2pServerHandshake(now, remoteID, req)
	if err != nil {
		return nil, err
	}
	hs.apply(c)
	c.setState(now, StateConnecting)
	return c, nil
}

// p2pHandshake is the server side of a P2P crypto handshake, checked and
// derived but not yet applied to the connection.
type p2pHandshake struct {
	remoteID uint32
	ident    string
	vport    int
	lanes    int
	peer     *crypto.Peer
	local    *crypto.LocalCrypt
	keys     *crypto.SessionKeys
}

// p2pServerHandshake checks a connect_request from the peer's connection
// remoteID and derives the server's keys, as the Listener does for a UDP
// connect request (same policy, cipher choice and key derivation), without
// changing c.
func (c *Conn) p2pServerHandshake(now time.Time, remoteID uint32, req *pb.P2PRendezvous_ConnectRequest) (*p2pHandshake, error) {
	if remoteID == 0 || req.GetCert() == nil || req.GetCrypt() == nil {
		return nil, fmt.Errorf("%w: connect request without id, certificate or crypt info", ErrMalformed)
	}
	ident, err := peerIdentity(req.GetCert(), "", "")
	if err != nil {
		return nil, err
	}
	if ident == "" || (c.expectIdentity != "" && ident != c.expectIdentity) {
		return nil, fmt.Errorf("%w: certificate names %q", ErrHandshake, ident)
	}
	hs := &p2pHandshake{remoteID: remoteID, ident: ident, vport: int(req.GetToVirtualPort())}
	if offer, ours := int(req.GetNetmsgLanes()), c.loc.cfg.OfferLanes; hs.vport > 0 && offer > 1 && ours > 1 {
		hs.lanes = min(offer, ours, snp.MaxLanes)
	}
	hs.peer, err = crypto.VerifyPeer(c.loc.policy(now, "", 0), req.GetCert(), req.GetCrypt())
	if err == nil {
		err = c.checkLanes(hs.peer)
	}
	if err == nil {
		var ciph pb.Cipher
		ciph, err = crypto.NegotiateCipher(crypto.DefaultCiphers, hs.peer.Crypt.GetCiphers(), false)
		if err == nil {
			hs.local, err = newLocalCrypt(c.loc, []pb.Cipher{ciph})
		}
		if err == nil {
			hs.keys, err = crypto.DeriveKeys(crypto.KeyParams{
				IsServer:    true,
				LocalConnID: c.localID, RemoteConnID: remoteID,
				LocalCert: c.loc.cert.GetCert(), Local: hs.local, Peer: hs.peer, Cipher: ciph,
			})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return hs, nil
}

// apply makes c the server side of hs, waiting for Accept.
func (hs *p2pHandshake) apply(c *Conn) {
	c.server = true
	c.remoteID = hs.remoteID
	c.remoteIdentity, c.caSigned = hs.ident, hs.peer.CASigned
	c.vport = hs.vport
	c.crypt = hs.local
	c.lanesNeg = hs.lanes
	c.peerVersion = hs.peer.Crypt.GetProtocolVersion()
	c.pendingPeer, c.pendingKeys = hs.peer, hs.keys
}

// endP2PNoConnection is the reason of a rendezvous "no connection" closed
// (k_ESteamNetConnectionEnd_Internal_P2PNoConnection,
// steamnetworkingsockets_p2p.h; p2p.ReasonNoConnection).
const endP2PNoConnection = 9999

// CloseByPeer ends c because the peer's rendezvous said connection_closed
// (reason and debug from it), as a UDP connection closed does: state
// ClosedByPeer with the peer's reason. A "no connection" closed (reason
// 9999) ends it with 5010, as GNS does. A connection that is closing or
// closed already is left as it is.
func (c *Conn) CloseByPeer(now time.Time, reason int, debug string) {
	if reason == endP2PNoConnection {
		reason, debug = EndMiscPeerSentNoConnection, "Received unexpected P2P 'no connection' signal"
	}
	switch c.state {
	case StateConnecting, StateFindingRoute, StateConnected, StateLinger:
		c.closedLeft = 0
		c.closedByPeer(now, reason, debug)
	}
}

// FailRoute ends a P2P connection that found no path to its peer
// (ProblemDetectedLocally with reason, as GNS does when ICE fails).
func (c *Conn) FailRoute(now time.Time, reason int, debug string) {
	switch c.state {
	case StateConnecting, StateFindingRoute, StateConnected:
		c.problem(now, reason, debug)
	}
}

// BecomeP2PServer turns a P2P client connection that is still connecting
// into the server side of the peer's connection remoteID, whose connect
// request req it accepts (GNS's symmetric connect: when both sides asked,
// the role rule, p2p.CompareSymmetric, makes one of them change role). The
// handshake is redone as the server, with fresh session keys, and the
// connection is accepted at once: the host then signals P2PConnectOK from
// the same connection id. The virtual port stays the one we dialled.
func (c *Conn) BecomeP2PServer(now time.Time, remoteID uint32, req *pb.P2PRendezvous_ConnectRequest) error {
	if !c.p2p || c.server || c.state != StateConnecting {
		return fmt.Errorf("%w: only a connecting P2P client can change role", ErrUnexpected)
	}
	hs, err := c.p2pServerHandshake(now, remoteID, req)
	if err != nil {
		return err
	}
	hs.vport = c.vport
	hs.apply(c)
	return c.Accept(now)
}
