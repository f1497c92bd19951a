// Package conn is the state machine of one direct-UDP connection as
// GameNetworkingSockets (GNS) runs it: the handshake (challenge request and
// reply, connect request and OK), certificates and session keys, the data
// packet header and its 16-bit packet numbers, encryption, keepalives,
// timeouts, and closing (connection closed, no connection, linger), with the
// SNP reliability engine (internal/snp) carrying the messages.
//
// The package is pure: every method takes the current time; none blocks,
// reads a clock, starts a goroutine or touches a socket. The host
// (package netmsg) owns the socket, routes each datagram to the Conn or the
// Listener it belongs to (see Classify), sends what Poll returns, and calls
// Poll again at NextWake.
//
// THIS FILE IS THE CONTRACT between the connection layer and the host.
// Exported names and signatures here are fixed; bodies and further helpers
// live in the other files of the package.
package conn

import (
	"io"
	"time"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/snp"
)

// State is a connection's state. The values are GNS's
// ESteamNetworkingConnectionState (and netmsg.ConnectionState's), so the
// host converts by a cast.
type State int32

// The states (see netmsg.ConnectionState for the diagram).
const (
	StateNone                   State = 0
	StateConnecting             State = 1
	StateFindingRoute           State = 2
	StateConnected              State = 3
	StateClosedByPeer           State = 4
	StateProblemDetectedLocally State = 5
	StateFinWait                State = -1
	StateLinger                 State = -2
	StateDead                   State = -3
)

// Kind says what a datagram is, from its first byte, so the host can route
// it without parsing it.
type Kind uint8

// Datagram kinds (GNS's UDP message IDs and the data-packet lead byte).
const (
	KindInvalid          Kind = iota // too short or an unknown lead byte: drop and count
	KindChallengeRequest             // 0x20: to the Listener (stateless)
	KindChallengeReply               // 0x21: to the client Conn with ConnID
	KindConnectRequest               // 0x22: to the Listener, or to the existing server Conn for (from, ConnID)
	KindConnectOK                    // 0x23: to the client Conn with ConnID
	KindConnectionClosed             // 0x24: to the Conn with ConnID (ours), else answer NoConnection via the Listener
	KindNoConnection                 // 0x25: to the Conn with ConnID (ours), else drop
	KindData                         // lead 0x80..0x83: to the Conn with ConnID (ours, the recipient id in the header)
)

// Classify reports the kind of datagram b and the connection id the host
// routes it by: for data packets the recipient id in the header (ours); for
// control messages the id of OUR side that the message names (the client's
// id in a challenge reply or connect OK seen by a client; the client's id in
// a connect request seen by a server, which the host keys together with the
// source address; the "to" id in connection closed and no connection).
// It parses only what it needs and never panics.
func Classify(b []byte) (k Kind, connID uint32) { return classify(b) }

// Config configures connections. The zero value is not usable: Identity and
// Key are required.
type Config struct {
	// Identity is the local identity in GNS's string form ("str:alice").
	Identity string
	// Key is the local Ed25519 identity key (crypto/ed25519 private key
	// bytes) and Cert the certificate that binds Identity to it: a
	// serialized signed certificate, or nil to send an unsigned one made
	// from Key (GNS accepts those unless it requires a CA).
	Key  []byte
	Cert []byte
	// TrustedCAs are the CA public keys a peer's certificate may be signed
	// by. With none, unsigned certificates are accepted (as GNS does
	// without a CA configured); with some, a peer must present a
	// certificate signed by one of them.
	TrustedCAs [][]byte
	// AppID is our app ID; a signed peer certificate must allow it.
	AppID uint32

	TimeoutInitial   time.Duration // default 10 s
	TimeoutConnected time.Duration // default 10 s
	// VirtualPort, for Dial only, is sent in netmsg's connect-request
	// extension so the server can route the connection (netmsg's Messages
	// sessions use GNS's Messages port, 0x7fffffff). 0 sends none, as GNS.
	VirtualPort int
	// OfferLanes is netmsg's lane extension for connections with a virtual
	// port (Messages sessions): a dialled connection offers this many SNP
	// lanes in its connect request, and a listener agrees to at most this
	// many when a request offers some. When both sides agree on more than
	// one, SendKeyed spreads messages over the lanes by key, so a loss on
	// one key (a Messages channel) does not delay another. A peer that
	// offers or answers nothing (GNS) gets one lane. 0 or 1: no offer.
	OfferLanes int
	// SNP configures the reliability engine of each connection
	// (FirstPktNum/PeerFirstPktNum are set by the handshake).
	SNP snp.Config

	// RemoteIdentity, for Dial only, is the identity the server's
	// certificate must name (GNS's identity check; a mismatch ends the
	// connection with 4003). Empty accepts whatever identity it names.
	RemoteIdentity string
	// Rand is the source of the handshake's randomness (the ephemeral
	// X25519 key, then the 8-byte nonce). Nil means crypto/rand. Tests set
	// it to reproduce recorded handshakes byte for byte.
	Rand io.Reader
	// ParseIdentity canonicalizes identity strings (the host passes
	// netmsg.ParseIdentity wrapped). Nil uses a small built-in parser.
	ParseIdentity func(string) (crypto.Identity, error)
}

// Event is a change a Conn reports to the host: a new state (with the end
// reason and debug text when it is a closing state).
type Event struct {
	State     State
	EndReason int
	EndDebug  string
}
