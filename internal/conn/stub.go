package conn

// Placeholder bodies so the package builds while the connection layer is
// written. Its author replaces this file, keeping every signature.

import (
	"errors"
	"net/netip"
	"time"

	"github.com/netmsg-go/netmsg/internal/snp"
)

// ErrNotConnected is returned by Send when the connection is not (or no
// longer) able to carry messages.
var ErrNotConnected = errors.New("conn: not connected")

func classify(b []byte) (Kind, uint32) { return KindInvalid, 0 }

// Conn is one connection's state machine. It is not safe for concurrent use:
// its owner calls it from one goroutine or under one lock.
type Conn struct{}

// Dial returns a client connection to remote that starts the handshake at
// now: its first Poll returns a challenge request. localID is the id the
// host chose for it (nonzero, unique on the host).
func Dial(cfg Config, now time.Time, localID uint32, remote netip.AddrPort) (*Conn, error) {
	return nil, errors.New("conn: not built yet")
}

// Listener answers the stateless part of the server's handshake for one
// socket: it keeps no state per sender until a connect request carries a
// valid challenge.
type Listener struct{}

// NewListener returns a Listener. secret keys the challenges (random, 32
// bytes; the host makes it).
func NewListener(cfg Config, secret []byte) (*Listener, error) {
	return nil, errors.New("conn: not built yet")
}

// HandleChallengeRequest answers a challenge request from from by appending
// the reply to dst[:0]; the reply is never longer than the request. It
// returns an error (count and drop) for a bad request.
func (l *Listener) HandleChallengeRequest(now time.Time, from netip.AddrPort, b, dst []byte) ([]byte, error) {
	return nil, errors.New("conn: not built yet")
}

// HandleConnectRequest checks a connect request (challenge, certificate,
// signed crypt info) and, if it is good, returns a new server connection
// with id localID in state Connecting, waiting for Accept. A bad request
// returns an error (count and drop), and, where GNS answers one, a reply
// datagram to send (e.g. a connection closed with the 4xxx reason).
func (l *Listener) HandleConnectRequest(now time.Time, from netip.AddrPort, b []byte, localID uint32) (c *Conn, reply []byte, err error) {
	return nil, nil, errors.New("conn: not built yet")
}

// HandleStray answers a connection-closed or data datagram that matched no
// connection with a no-connection reply appended to dst[:0], as GNS does
// (nil when none is due; rate-limit in the host).
func (l *Listener) HandleStray(now time.Time, from netip.AddrPort, b, dst []byte) []byte {
	return nil
}

// Accept lets a server connection in state Connecting complete the
// handshake (its next Poll sends connect OK). It fails on a client
// connection or one not waiting to be accepted.
func (c *Conn) Accept(now time.Time) error { return ErrNotConnected }

// HandleDatagram processes a datagram the host routed to this connection.
// It returns an error for a datagram that was dropped (counted); the
// connection goes on unless an Event says otherwise.
func (c *Conn) HandleDatagram(now time.Time, from netip.AddrPort, b []byte) error {
	return ErrNotConnected
}

// Poll appends the next datagram due now to dst[:0] and returns it, or
// ok=false when nothing is due. Call it until !ok.
func (c *Conn) Poll(now time.Time, dst []byte) (datagram []byte, ok bool) { return nil, false }

// NextWake returns when Poll should next be called (zero: nothing
// scheduled; in the past: now).
func (c *Conn) NextWake() time.Time { return time.Time{} }

// Send queues a message (see snp.Conn.SendMessage). Before the connection
// is connected, messages are queued and go out once it is.
func (c *Conn) Send(now time.Time, lane int, data []byte, flags snp.SendFlags) (int64, error) {
	return 0, ErrNotConnected
}

// Flush sends what is queued as soon as pacing allows.
func (c *Conn) Flush(now time.Time) {}

// Receive moves received messages into dst (see snp.Conn.Receive).
func (c *Conn) Receive(dst []snp.Message) int { return 0 }

// Close ends the connection with reason (GNS's end reason; 1000-1999 for
// the application) and debug text. With linger, queued reliable data is
// flushed first (state Linger) before the connection closed message.
func (c *Conn) Close(now time.Time, reason int, debug string, linger bool) {}

// NextEvent returns the oldest state change not yet reported.
func (c *Conn) NextEvent() (Event, bool) { return Event{}, false }

// State returns the current state.
func (c *Conn) State() State { return StateNone }

// EndReason and EndDebug describe why a connection ended (0 and "" while
// it has not).
func (c *Conn) EndReason() int   { return 0 }
func (c *Conn) EndDebug() string { return "" }

// LocalID and RemoteID are the two connection ids (RemoteID is 0 until
// known).
func (c *Conn) LocalID() uint32  { return 0 }
func (c *Conn) RemoteID() uint32 { return 0 }

// RemoteAddr is the peer's address; RemoteIdentity its identity in GNS's
// string form once its certificate was checked ("" before).
func (c *Conn) RemoteAddr() netip.AddrPort { return netip.AddrPort{} }
func (c *Conn) RemoteIdentity() string     { return "" }

// IsServer reports whether the connection was accepted by a Listener.
func (c *Conn) IsServer() bool { return false }

// Stats returns the engine's figures plus the connection's own.
func (c *Conn) Stats(now time.Time) snp.Stats { return snp.Stats{} }
