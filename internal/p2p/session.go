// Package p2p is the signaling side of one P2P connection as GNS runs it
// (steamnetworkingsockets_p2p.cpp): the rendezvous messages it sends and
// takes through signaling (internal/pb's P2PRendezvous), with the small
// reliable stream inside them that carries the ICE credentials and
// candidates. It is pure: the host passes the time, sends what Build
// returns through its signaling Conn, and feeds received rendezvous in.
//
// The rules (checked against ../shared/vectors/p2p_signaling.json):
//
//   - Every rendezvous names from_identity and from_connection_id, and
//     to_identity (and to_connection_id once the peer's id is known).
//   - The client repeats connect_request in every rendezvous until the
//     peer's connect_ok arrives; the accepting side puts connect_ok in
//     every rendezvous until it hears from the peer again.
//   - Reliable messages are numbered from 1. A rendezvous carries every
//     message not yet acknowledged (first_reliable_msg numbers the first)
//     and ack_reliable_msg, the last number received in order; a receiver
//     takes each message once, in order, ignoring duplicates and gaps.
//   - Signals are resent while something is unacknowledged, backing off.
package p2p

import (
	"errors"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
)

// Limits and timing.
const (
	// MaxUnacked bounds the reliable messages waiting for an ack; more
	// are refused (ErrBacklog).
	MaxUnacked = 64
	// MaxRendezvousSize is the largest rendezvous taken from signaling.
	MaxRendezvousSize = 16 << 10
	resendFirst       = 200 * time.Millisecond
	resendMax         = 2 * time.Second
	// ackDelay batches an ack with whatever else is due soon.
	ackDelay = 10 * time.Millisecond
)

// Errors.
var (
	ErrBacklog   = errors.New("p2p: too many unacknowledged reliable messages")
	ErrMalformed = errors.New("p2p: malformed rendezvous")
)

// Session is the rendezvous state of one P2P connection.
type Session struct {
	LocalIdentity, RemoteIdentity string
	LocalID, RemoteID             uint32

	connectRequest *pb.P2PRendezvous_ConnectRequest // resent until the peer answers
	connectOK      *pb.P2PRendezvous_ConnectOK      // resent until the peer is heard from again
	closed         *pb.P2PRendezvous_ConnectionClosed

	out      []*pb.P2PRendezvous_ReliableMessage // unacked, out[0] is number firstOut
	firstOut uint32
	nextIn   uint32 // the next reliable number we expect

	dueAt   time.Time // when the next signal is due (zero: none)
	backoff time.Duration
	sent    int
}

// NewSession returns the session of a connection between local and remote
// identities; remoteID is 0 until the peer's connection id is known.
func NewSession(localIdentity string, localID uint32, remoteIdentity string, remoteID uint32) *Session {
	return &Session{LocalIdentity: localIdentity, LocalID: localID, RemoteIdentity: remoteIdentity, RemoteID: remoteID,
		firstOut: 1, nextIn: 1, backoff: resendFirst}
}

func (s *Session) dueBy(t time.Time) {
	if s.dueAt.IsZero() || t.Before(s.dueAt) {
		s.dueAt = t
	}
}

// SetConnectRequest makes every signal carry req until SetConnectOKSeen.
func (s *Session) SetConnectRequest(now time.Time, req *pb.P2PRendezvous_ConnectRequest) {
	s.connectRequest = req
	s.dueBy(now)
}

// SetConnectOK makes the next signals carry ok (we accepted).
func (s *Session) SetConnectOK(now time.Time, ok *pb.P2PRendezvous_ConnectOK) {
	s.connectOK = ok
	s.backoff = resendFirst
	s.dueBy(now)
}

// Close makes the next signal a connection_closed (sent a few times).
func (s *Session) Close(now time.Time, reason int, debug string) {
	s.closed = &pb.P2PRendezvous_ConnectionClosed{ReasonCode: proto.Uint32(uint32(reason)), Debug: proto.String(debug)}
	s.connectRequest, s.connectOK, s.out = nil, nil, nil
	s.sent = 0
	s.dueBy(now)
}

// BecomeServer makes the session that of the server side of the peer's
// connection remoteID (symmetric connect: our connection changed role): it
// stops asking and answers from the same connection id.
func (s *Session) BecomeServer(remoteID uint32) {
	s.RemoteID = remoteID
	s.connectRequest = nil
}

// QueueReliable adds a message to the reliable stream.
func (s *Session) QueueReliable(now time.Time, m *pb.P2PRendezvous_ReliableMessage) error {
	if len(s.out) >= MaxUnacked {
		return ErrBacklog
	}
	s.out = append(s.out, m)
	s.backoff = resendFirst
	s.dueBy(now)
	return nil
}

// NextWake is when Build next has a signal to send (zero: none).
func (s *Session) NextWake() time.Time { return s.dueAt }

// Build returns the rendezvous due now, or nil.
func (s *Session) Build(now time.Time) *pb.P2PRendezvous {
	if s.dueAt.IsZero() || now.Before(s.dueAt) {
		return nil
	}
	rv := &pb.P2PRendezvous{
		FromIdentity:     proto.String(s.LocalIdentity),
		FromConnectionId: proto.Uint32(s.LocalID),
		ToIdentity:       proto.String(s.RemoteIdentity),
		IceEnabled:       proto.Bool(true),
		AckReliableMsg:   proto.Uint32(s.nextIn - 1),
	}
	if s.RemoteID != 0 {
		rv.ToConnectionId = proto.Uint32(s.RemoteID)
	}
	switch {
	case s.closed != nil:
		rv.ConnectionClosed = s.closed // ice_enabled stays: GNS fails ICE on a signal without it
	case s.connectRequest != nil:
		rv.ConnectRequest = s.connectRequest
	case s.connectOK != nil:
		rv.ConnectOk = s.connectOK
	}
	if len(s.out) > 0 {
		rv.FirstReliableMsg = proto.Uint32(s.firstOut)
		rv.ReliableMessages = s.out
	}
	s.sent++
	s.dueAt = time.Time{}
	if s.closed != nil {
		if s.sent < 3 {
			s.dueAt = now.Add(resendFirst)
		}
	} else if len(s.out) > 0 || s.connectRequest != nil || s.connectOK != nil {
		s.dueAt = now.Add(s.backoff)
		s.backoff = min(2*s.backoff, resendMax)
	}
	return rv
}

// Received is what a rendezvous brought.
type Received struct {
	ConnectRequest *pb.P2PRendezvous_ConnectRequest
	ConnectOK      *pb.P2PRendezvous_ConnectOK
	Closed         *pb.P2PRendezvous_ConnectionClosed
	// Reliable are the reliable messages new to us, in order.
	Reliable []*pb.P2PRendezvous_ReliableMessage
}

// Receive takes a rendezvous addressed to this session: it learns the
// peer's connection id, drops what the peer acknowledged, and returns the
// reliable messages new to us, in order, exactly once.
func (s *Session) Receive(now time.Time, rv *pb.P2PRendezvous) (Received, error) {
	var r Received
	if id := rv.GetFromConnectionId(); id != 0 {
		if s.RemoteID != 0 && s.RemoteID != id {
			return r, ErrMalformed
		}
		s.RemoteID = id
	}
	r.ConnectRequest, r.ConnectOK, r.Closed = rv.ConnectRequest, rv.ConnectOk, rv.ConnectionClosed
	if r.ConnectOK != nil {
		s.connectRequest = nil // answered
	} else if s.connectOK != nil && r.ConnectRequest == nil {
		s.connectOK = nil // the peer has it (it sends without a request now)
	}
	// Acks.
	if ack := rv.GetAckReliableMsg(); ack >= s.firstOut && len(s.out) > 0 {
		n := min(int(ack-s.firstOut)+1, len(s.out))
		clear(s.out[:n])
		s.out = s.out[n:]
		s.firstOut += uint32(n)
		s.backoff = resendFirst
		if len(s.out) == 0 {
			s.out = nil
		}
	}
	// Reliable messages.
	if msgs := rv.GetReliableMessages(); len(msgs) > 0 {
		first := rv.GetFirstReliableMsg()
		if first == 0 || len(msgs) > MaxUnacked {
			return r, ErrMalformed
		}
		for i, m := range msgs {
			if num := first + uint32(i); num == s.nextIn {
				r.Reliable = append(r.Reliable, m)
				s.nextIn++
			}
		}
		s.dueBy(now.Add(ackDelay)) // ack (even what we had already: the ack was lost)
	}
	if r.ConnectRequest != nil && s.connectOK != nil {
		s.dueBy(now) // the peer did not get our connect OK yet
	}
	return r, nil
}

// ParseRendezvous decodes a rendezvous from a signal, bounded.
func ParseRendezvous(b []byte) (*pb.P2PRendezvous, error) {
	if len(b) > MaxRendezvousSize {
		return nil, ErrMalformed
	}
	rv := new(pb.P2PRendezvous)
	if err := proto.Unmarshal(b, rv); err != nil {
		return nil, errors.Join(ErrMalformed, err)
	}
	if rv.GetFromIdentity() == "" || rv.GetFromConnectionId() == 0 {
		return nil, ErrMalformed
	}
	return rv, nil
}

// ICEAuth returns the reliable message carrying our ICE password.
func ICEAuth(pwd string) *pb.P2PRendezvous_ReliableMessage {
	return &pb.P2PRendezvous_ReliableMessage{Ice: &pb.ICERendezvous{Auth: &pb.ICERendezvous_Auth{PwdFrag: proto.String(pwd)}}}
}

// ICECandidate returns the reliable message carrying one of our candidates.
func ICECandidate(c string) *pb.P2PRendezvous_ReliableMessage {
	return &pb.P2PRendezvous_ReliableMessage{Ice: &pb.ICERendezvous{AddCandidate: &pb.ICECandidate{Candidate: proto.String(c)}}}
}
