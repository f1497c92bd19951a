package netmsg

import "strconv"

// ConnectionState is the high-level state of a connection or Messages
// session: GNS's ESteamNetworkingConnectionState, with the same numbers
// (the "state" key of GodotSteam's getSessionConnectionInfo). The constants
// are named StateXxx.
//
// The transitions:
//
//	StateNone
//	   │ connect, or a peer's request arrives
//	   ▼
//	StateConnecting ──► StateFindingRoute ──► StateConnected
//	   │                 (P2P and relayed        │
//	   │                  connections only)      │
//	   ├─────────────────────┬───────────────────┘
//	   │ the peer closes     │ timeout or error here
//	   ▼                     ▼
//	StateClosedByPeer    StateProblemDetectedLocally
//	   │                     │
//	   └──────────┬──────────┘ the application closes (from any state above)
//	              ▼
//	StateLinger ──► StateFinWait ──► StateDead
//	(flushing       (waiting for     (ready to be
//	 reliable data)  the peer's ack)  destroyed)
//
// A connection the application closes while connected with linger goes
// through StateLinger until its reliable data is flushed; otherwise it goes
// straight to StateFinWait. StateLinger, StateFinWait and
// StateDead are internal: as in GNS, the API reports a connection in them
// as StateNone, since from the application's view it is gone.
type ConnectionState int32

// Connection states (GNS ESteamNetworkingConnectionState,
// steamnetworkingtypes.h).
const (
	// StateNone: no such connection, or it has been closed locally.
	StateNone ConnectionState = 0
	// StateConnecting: the handshake is in progress (or, on the accepting
	// side, the connection is waiting to be accepted). Unreliable messages
	// sent now are almost certainly dropped; reliable ones are queued.
	StateConnecting ConnectionState = 1
	// StateFindingRoute: the peer has accepted through signaling, but no
	// end-to-end route (ICE or relay) is up yet.
	StateFindingRoute ConnectionState = 2
	// StateConnected: the connection is up. Closing it now makes a best
	// effort to flush unacknowledged reliable data.
	StateConnected ConnectionState = 3
	// StateClosedByPeer: the peer closed the connection; queued received
	// messages can still be read, and the application must close it to
	// free it (like TCP's CLOSE_WAIT).
	StateClosedByPeer ConnectionState = 4
	// StateProblemDetectedLocally: a timeout or other failure was detected
	// here. Sends fail; queued received messages can still be read, and the
	// application must close it to free it.
	StateProblemDetectedLocally ConnectionState = 5
	// StateFinWait (internal): closed locally and flushed; waiting to be
	// sure the peer knows.
	StateFinWait ConnectionState = -1
	// StateLinger (internal): closed locally but still flushing reliable
	// data before telling the peer.
	StateLinger ConnectionState = -2
	// StateDead (internal): completely inactive, ready to be destroyed.
	StateDead ConnectionState = -3
)

// String returns the state in lowercase words, e.g. "finding route", or
// "state N" for a value GNS does not define.
func (s ConnectionState) String() string {
	switch s {
	case StateNone:
		return "none"
	case StateConnecting:
		return "connecting"
	case StateFindingRoute:
		return "finding route"
	case StateConnected:
		return "connected"
	case StateClosedByPeer:
		return "closed by peer"
	case StateProblemDetectedLocally:
		return "problem detected locally"
	case StateFinWait:
		return "fin wait"
	case StateLinger:
		return "linger"
	case StateDead:
		return "dead"
	}
	return "state " + strconv.Itoa(int(s))
}
