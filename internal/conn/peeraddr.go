package conn

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrWrongAddr: a datagram for this connection from an address that is
// not the peer's: any datagram on a direct connection; on a P2P connection
// (whose path may change) a control datagram (connection closed, no
// connection, a handshake message). Control datagrams are not
// authenticated (only data packets are), so anyone who learnt the
// connection id could otherwise end the connection with one. It is counted
// (ConnStats.WrongAddr) and dropped.
var ErrWrongAddr = errors.New("conn: datagram from an address that is not the peer's")

// SetPeerAddrs gives a P2P connection the test of the peer's other
// addresses: the candidates the peer signaled and those ICE learnt from
// its checks (the selected path's address, RemoteAddr, is always the
// peer's). A P2P connection takes control datagrams only from an address
// that passes; without a test, only from RemoteAddr. Data packets are
// taken from any address: their encryption proves them. The host calls
// it under the lock that guards c, and c calls is under the same lock.
func (c *Conn) SetPeerAddrs(is func(netip.AddrPort) bool) { c.peerAddrs = is }

// fromPeer reports whether a datagram from a may change c: data packets
// always (they are authenticated), control datagrams only from the peer's
// address (a direct connection's RemoteAddr; a P2P connection's selected
// path or candidates).
func (c *Conn) fromPeer(from netip.AddrPort, data bool) error {
	from = unmap(from)
	switch {
	case from == c.remote && c.remote.IsValid():
		return nil
	case c.p2p && data:
		return nil
	case c.p2p && c.peerAddrs != nil && c.peerAddrs(from):
		return nil
	}
	c.st.WrongAddr++
	if c.p2p {
		return fmt.Errorf("%w: from %v", ErrWrongAddr, from)
	}
	return fmt.Errorf("%w: from %v, not the peer %v", ErrWrongAddr, from, c.remote)
}
