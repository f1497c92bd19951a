package p2p

import (
	"errors"
	"time"
)

// Protocol constants of GNS's P2P signaling (snapshot e707b3a), each with
// the place that fixes it.
const (
	// ReliableRTO is how long a reliable message waits for its ack before
	// it is sent again (k_usecP2PSignalReliableRTO,
	// steamnetworkingsockets_p2p.cpp). GNS does not back off.
	ReliableRTO = time.Second
	// ConnectRetryInterval is how often a connecting client repeats its
	// connect request (k_usecConnectRetryInterval,
	// steamnetworkingsockets_connections.h).
	ConnectRetryInterval = 500 * time.Millisecond
	// MinSendInterval is the least time between two rendezvous of one
	// connection, connect requests aside (k_usecP2PSignalMinSendInterval,
	// steamnetworkingsockets_p2p.h).
	MinSendInterval = 100 * time.Millisecond
	// SendDelay is how soon a rendezvous goes out once something asks for
	// one, an ack for instance (ScheduleSendSignal: now + 10 ms).
	SendDelay = 10 * time.Millisecond
	// ReasonNoConnection is the end reason of a "no connection" closed:
	// the answer to a connection closed, never itself answered
	// (k_ESteamNetConnectionEnd_Internal_P2PNoConnection,
	// steamnetworkingsockets_p2p.h). A connection that receives it ends
	// with 5010 (k_ESteamNetConnectionEnd_Misc_PeerSentNoConnection).
	ReasonNoConnection = 9999
	// MaxAppMessageBytes bounds the application data GNS puts in one
	// rendezvous (k_cbMaxSendMessagDataInRSVP, steamnetworkingsockets_p2p.h).
	MaxAppMessageBytes = 4200
)

// Our own limits (not from GNS, which has none for these).
const (
	// MaxRendezvousSize is the largest rendezvous taken from signaling.
	// GNS's own are a few hundred bytes (about 400 in the vectors).
	MaxRendezvousSize = 16 << 10
	// MaxUnacked bounds the reliable messages waiting for an ack; more
	// are refused (ErrBacklog). GNS queues a password and a handful of
	// candidates per ICE session.
	MaxUnacked = 64
	// MaxUnackedBytes bounds their encoded size, so that a rendezvous that
	// carries all of them stays well below MaxRendezvousSize.
	MaxUnackedBytes = 8 << 10
	// MaxReliablePerSignal bounds the reliable messages taken from one
	// received rendezvous; one with more is refused as malformed.
	MaxReliablePerSignal = 256
	// maxDebugLen bounds the debug text we send (GNS keeps 128 bytes with
	// the terminator, m_szEndDebug).
	maxDebugLen = 127
)

// Errors. Receive and ReceiveBlob also count each refused rendezvous in
// Stats.
var (
	// ErrBacklog: QueueReliable refused a message (MaxUnacked or
	// MaxUnackedBytes reached, or the session is closed).
	ErrBacklog = errors.New("p2p: too many unacknowledged reliable messages")
	// ErrMalformed: a rendezvous that does not parse or breaks a rule of
	// the format (no sender, reliable messages without a number, too big).
	ErrMalformed = errors.New("p2p: malformed rendezvous")
	// ErrWrongConnection: a rendezvous for another connection: its
	// connection ids or identities are not this session's.
	ErrWrongConnection = errors.New("p2p: rendezvous for another connection")
)
