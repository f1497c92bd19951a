package p2p

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
)

// Stats counts what a Session did. Every refused or ignored rendezvous
// and reliable message is counted in one of these, never panicked on.
type Stats struct {
	SignalsSent, SignalsReceived int64
	// Refused rendezvous (Receive returned an error; nothing changed).
	Malformed       int64
	WrongConnection int64
	// Reliable messages: put in a sent rendezvous (first time), put in
	// again (retransmissions), taken (delivered), and skipped on receipt
	// because already taken (duplicates) or because they came after a gap
	// (the peer sends them again).
	ReliableSent, ReliableResent int64
	ReliableTaken                int64
	ReliableDuplicate            int64
	ReliableGap                  int64
	// Refused by QueueReliable (ErrBacklog).
	ReliableRefused int64
	// Acks of reliable messages we never sent (taken as acking them all).
	BadAcks int64
	// A connect OK sent to the accepting side, which GNS ignores too.
	UnexpectedConnectOK int64
	// Rendezvous that reached the session after it closed (answered with
	// its closed).
	AfterClose int64
}

// outMsg is a reliable message waiting for its ack.
type outMsg struct {
	m    *pb.P2PRendezvous_ReliableMessage
	size int
	rto  time.Time // when it is (re)sent without waiting for another reason
	sent bool
}

// Session is the rendezvous state of one P2P connection (the Host owns
// one per P2P connection). The zero value is not usable: make one with
// NewSession. It is not safe for concurrent use.
//
// Roles and what a Session sends:
//
//	client:  SetConnectRequest ─► connect_request in every rendezvous ─(connect_ok received)─► plain rendezvous
//	server:  NewSession(.., remoteID) ─► quiet ─ SetConnectOK ─► connect_ok once (again per repeated request)
//	either:  Close ─► connection_closed once, then again in answer to each rendezvous
type Session struct {
	// LocalIdentity and RemoteIdentity are the two identities in GNS's
	// string form (from_identity and to_identity of what we send).
	LocalIdentity, RemoteIdentity string
	// LocalID is our connection id; RemoteID the peer's, 0 until known.
	LocalID, RemoteID uint32
	// MinInterval is the least time between two rendezvous, connect
	// requests aside: GNS paces its signals at MinSendInterval. Zero (the
	// default) sends each as soon as it is due. Paced, a relay candidate
	// trickled in late can reach the peer after the ICE checks that come
	// through that relay; the peer's agent (internal/ice) then keeps the
	// path as peer-reflexive and never learns it is a relay, which the
	// Host's NAT test notices. Answers to
	// rendezvous after a close are always at least MinSendInterval apart.
	MinInterval time.Duration

	connectRequest *pb.P2PRendezvous_ConnectRequest // client: in every rendezvous until answered
	connReqDue     time.Time                        // when the next connect request is due
	connectOK      *pb.P2PRendezvous_ConnectOK      // server: ours, once accepted
	okPending      bool                             // connect OK to go in the next rendezvous
	hold           bool                             // server not yet accepted: send nothing

	closed        *pb.P2PRendezvous_ConnectionClosed // ours, once closed
	peerClosed    bool                               // the peer closed (we answer "no connection")
	closeDue      time.Time                          // a closed (ours or the answer) to send at this time
	closeIsNoConn bool                               // ... and it is the "no connection" answer

	out      []outMsg // unacked, out[i] is number firstOut+i
	outBytes int
	firstOut uint32
	nextIn   uint32 // the next reliable number we take

	deadline time.Time // a rendezvous was asked for by then (GNS m_usecSendSignalDeadline)
	lastSent time.Time // zero: never

	st Stats
}

// NewSession returns the session of our connection localID between the
// local and remote identities. remoteID is the peer's connection id when it
// is known: for the accepting side, whose session stays quiet (as GNS's
// does) until SetConnectOK or Close. A client passes 0 and calls
// SetConnectRequest.
func NewSession(localIdentity string, localID uint32, remoteIdentity string, remoteID uint32) *Session {
	return &Session{
		LocalIdentity: localIdentity, LocalID: localID,
		RemoteIdentity: remoteIdentity, RemoteID: remoteID,
		hold:     remoteID != 0,
		firstOut: 1, nextIn: 1,
	}
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats { return s.st }

// Closed reports whether the session closed (Close, or the peer's
// connection closed).
func (s *Session) Closed() bool { return s.closed != nil || s.peerClosed }

// Unacked is the number of our reliable messages not yet acknowledged.
func (s *Session) Unacked() int { return len(s.out) }

// scheduleSend asks for a rendezvous within SendDelay (GNS
// ScheduleSendSignal).
func (s *Session) scheduleSend(now time.Time) {
	if d := now.Add(SendDelay); s.deadline.IsZero() || d.Before(s.deadline) {
		s.deadline = d
	}
}

// SetConnectRequest makes s the client side: every rendezvous carries req
// until the peer's connect OK arrives, and one goes out at least every
// ConnectRetryInterval; the first at once.
func (s *Session) SetConnectRequest(now time.Time, req *pb.P2PRendezvous_ConnectRequest) {
	if s.Closed() {
		return
	}
	s.connectRequest = req
	s.connReqDue = now
	s.hold = false
}

// SetConnectOK makes s the accepting side, accepted: the next rendezvous
// carries ok, and so does the answer to each connect request the peer
// repeats.
func (s *Session) SetConnectOK(now time.Time, ok *pb.P2PRendezvous_ConnectOK) {
	if s.Closed() {
		return
	}
	s.connectOK = ok
	s.connectRequest = nil
	s.okPending = true
	s.hold = false
	s.scheduleSend(now)
}

// BecomeServer turns a client session into the accepting side of the
// peer's connection remoteID (symmetric connect: our connection changed
// role, see CompareSymmetric). It stops asking and stays quiet until
// SetConnectOK; the reliable stream goes on unchanged.
func (s *Session) BecomeServer(remoteID uint32) {
	s.RemoteID = remoteID
	s.connectRequest = nil
	s.hold = s.connectOK == nil
}

// Close makes the next rendezvous a connection_closed with reason and
// debug, sent at once; afterwards the session sends nothing else, and
// answers each rendezvous it receives with its closed again. Unacked
// reliable messages are dropped (GNS never sends them again). Once the
// session closed (either way) Close does nothing.
func (s *Session) Close(now time.Time, reason int, debug string) {
	if s.Closed() {
		return
	}
	s.closed = ConnectionClosed(reason, debug)
	s.dropOut()
	s.connectRequest, s.okPending, s.hold = nil, false, false
	s.closeDue, s.closeIsNoConn = now, false
}

func (s *Session) dropOut() {
	clear(s.out)
	s.out, s.outBytes = nil, 0
}

// QueueReliable adds m to the reliable stream. It goes out in the next
// rendezvous (at once unless one was sent less than MinInterval ago)
// and again every ReliableRTO until acknowledged. It fails with
// ErrBacklog past MaxUnacked messages or MaxUnackedBytes, or once closed.
func (s *Session) QueueReliable(now time.Time, m *pb.P2PRendezvous_ReliableMessage) error {
	size := proto.Size(m)
	if s.Closed() || len(s.out) >= MaxUnacked || s.outBytes+size > MaxUnackedBytes {
		s.st.ReliableRefused++
		return ErrBacklog
	}
	s.out = append(s.out, outMsg{m: m, size: size, rto: now})
	s.outBytes += size
	s.scheduleSend(now)
	return nil
}

// NextWake is when Build next has a rendezvous to send (zero: none until
// something happens). It may be in the past: send at once.
func (s *Session) NextWake() time.Time {
	if !s.closeDue.IsZero() {
		return s.closeDue
	}
	if s.Closed() || s.hold {
		return time.Time{}
	}
	want := s.deadline
	for i := range s.out {
		want = earliest(want, s.out[i].rto)
	}
	if !want.IsZero() && !s.lastSent.IsZero() && s.MinInterval > 0 {
		want = latest(want, s.lastSent.Add(s.MinInterval))
	}
	if s.connectRequest != nil {
		// A connecting client's signals are not spaced (GNS
		// ThinkConnection_ClientConnecting): the retry, or anything asked for.
		want = earliest(want, earliest(s.connReqDue, s.deadline))
	}
	return want
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

func latest(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// common returns a rendezvous with the fields every one carries.
func (s *Session) common() *pb.P2PRendezvous {
	rv := &pb.P2PRendezvous{
		FromIdentity:     proto.String(s.LocalIdentity),
		FromConnectionId: proto.Uint32(s.LocalID),
		IceEnabled:       proto.Bool(true), // GNS fails ICE on a rendezvous without it, closed ones too
	}
	if s.RemoteIdentity != "" {
		rv.ToIdentity = proto.String(s.RemoteIdentity)
	}
	if s.RemoteID != 0 {
		rv.ToConnectionId = proto.Uint32(s.RemoteID)
	}
	return rv
}

// Build returns the rendezvous due at now, or nil. Call it until it
// returns nil; then NextWake says when to call again. The returned message
// shares s's reliable messages and handshake parts: marshal it before
// calling s again.
func (s *Session) Build(now time.Time) *pb.P2PRendezvous {
	w := s.NextWake()
	if w.IsZero() || now.Before(w) {
		return nil
	}
	rv := s.common()
	s.st.SignalsSent++
	s.lastSent = now
	s.deadline = time.Time{}
	if !s.closeDue.IsZero() {
		if s.closeIsNoConn {
			rv.ConnectionClosed = ConnectionClosed(ReasonNoConnection, "")
		} else {
			rv.ConnectionClosed = s.closed
		}
		s.closeDue = time.Time{}
		return rv
	}
	if s.okPending {
		rv.ConnectOk = s.connectOK
		s.okPending = false
	}
	if s.connectRequest != nil {
		rv.ConnectRequest = s.connectRequest
		rv.ToConnectionId = nil // GNS names no connection in a request
		s.connReqDue = now.Add(ConnectRetryInterval)
	}
	// Reliable messages: from the first whose timer ran out (the first
	// unacked in a handshake rendezvous) to the last.
	start := len(s.out)
	if rv.ConnectRequest != nil || rv.ConnectOk != nil {
		start = 0
	} else {
		for i := range s.out {
			if !now.Before(s.out[i].rto) {
				start = i
				break
			}
		}
	}
	if start < len(s.out) {
		rv.FirstReliableMsg = proto.Uint32(s.firstOut + uint32(start))
		for i := start; i < len(s.out); i++ {
			o := &s.out[i]
			rv.ReliableMessages = append(rv.ReliableMessages, o.m)
			if o.sent {
				s.st.ReliableResent++
			} else {
				s.st.ReliableSent++
			}
			o.sent = true
			o.rto = now.Add(ReliableRTO)
		}
	}
	rv.AckReliableMsg = proto.Uint32(s.nextIn - 1)
	return rv
}

// NextBlob returns the encoded rendezvous due at now, or nil (see Build).
func (s *Session) NextBlob(now time.Time) []byte {
	rv := s.Build(now)
	if rv == nil {
		return nil
	}
	b, err := MarshalRendezvous(rv)
	if err != nil {
		return nil // cannot happen: we built it
	}
	return b
}

// Received is what one rendezvous brought.
type Received struct {
	// ConnectRequest is the peer's connect request (certificate, signed
	// crypt info, virtual ports); on an accepting session that already
	// sent its connect OK it is a repeat, answered with the OK again.
	ConnectRequest *pb.P2PRendezvous_ConnectRequest
	// ConnectOK is the answer to our connect request (certificate and
	// signed crypt info); nil on the accepting side (GNS ignores it too).
	ConnectOK *pb.P2PRendezvous_ConnectOK
	// Closed is the peer's connection closed (reason and debug; reason
	// ReasonNoConnection means the peer has no such connection).
	Closed *pb.P2PRendezvous_ConnectionClosed
	// Reliable are the reliable messages new to us, in order, each once.
	Reliable []*pb.P2PRendezvous_ReliableMessage
	// ICE are the ICE items of Reliable, in order.
	ICE []ICEItem
	// Application are application messages carried in the rendezvous
	// (unreliable; GNS sends them only when configured to).
	Application []*pb.P2PRendezvous_ApplicationMessage
}

// ReceiveBlob decodes a blob that signaling delivered from the identity
// from and takes it (Receive). A blob that does not decode, or whose
// sender is not from, is refused and counted.
func (s *Session) ReceiveBlob(now time.Time, from string, blob []byte) (Received, error) {
	rv, err := ParseRendezvous(blob)
	if err != nil {
		s.st.Malformed++
		return Received{}, err
	}
	if rv.GetFromIdentity() != from {
		s.st.WrongConnection++
		return Received{}, fmt.Errorf("%w: from %q, signaled by %q", ErrWrongConnection, rv.GetFromIdentity(), from)
	}
	return s.Receive(now, rv)
}

// check refuses a rendezvous that is not for this session or breaks a
// rule of the format, before anything changes.
func (s *Session) check(rv *pb.P2PRendezvous) error {
	from := rv.GetFromConnectionId()
	switch {
	case from == 0 || rv.GetFromIdentity() == "":
		return fmt.Errorf("%w: no sender", ErrMalformed)
	case s.RemoteID != 0 && from != s.RemoteID:
		return fmt.Errorf("%w: from connection %d, not %d", ErrWrongConnection, from, s.RemoteID)
	case rv.ToConnectionId != nil && rv.GetToConnectionId() != s.LocalID:
		return fmt.Errorf("%w: to connection %d, not %d", ErrWrongConnection, rv.GetToConnectionId(), s.LocalID)
	case s.RemoteIdentity != "" && rv.GetFromIdentity() != s.RemoteIdentity:
		return fmt.Errorf("%w: from %q, not %q", ErrWrongConnection, rv.GetFromIdentity(), s.RemoteIdentity)
	case rv.GetToIdentity() != "" && s.LocalIdentity != "" && rv.GetToIdentity() != s.LocalIdentity:
		return fmt.Errorf("%w: to %q, not %q", ErrWrongConnection, rv.GetToIdentity(), s.LocalIdentity)
	}
	if n := len(rv.GetReliableMessages()); n > 0 {
		first := rv.GetFirstReliableMsg()
		switch {
		case first == 0:
			return fmt.Errorf("%w: reliable messages without a number", ErrMalformed)
		case n > MaxReliablePerSignal:
			return fmt.Errorf("%w: %d reliable messages", ErrMalformed, n)
		case first+uint32(n-1) < first:
			return fmt.Errorf("%w: reliable message numbers wrap", ErrMalformed)
		}
	}
	return nil
}

// Receive takes a rendezvous addressed to this session, as GNS's
// ProcessSignal does: it learns the peer's connection id, drops what the
// peer acknowledged, and returns what the rendezvous brought, with the
// reliable messages new to us in order, exactly once. A rendezvous for
// another connection (ids or identities) or that breaks a rule of the
// format is refused with an error, counted, and changes nothing.
func (s *Session) Receive(now time.Time, rv *pb.P2PRendezvous) (Received, error) {
	var r Received
	if err := s.check(rv); err != nil {
		if errors.Is(err, ErrMalformed) {
			s.st.Malformed++
		} else {
			s.st.WrongConnection++
		}
		return r, err
	}
	s.st.SignalsReceived++
	s.RemoteID = rv.GetFromConnectionId()

	if c := rv.GetConnectionClosed(); rv.ConnectionClosed != nil {
		r.Closed = c
		s.dropOut()
		s.connectRequest, s.okPending, s.hold = nil, false, false
		if s.closed == nil {
			s.peerClosed = true
		}
		if c.GetReasonCode() != ReasonNoConnection {
			s.answerClosed(now, true)
		}
		return r, nil
	}
	if s.Closed() {
		// GNS: a closed connection answers with its closed, one closed by
		// the peer with "no connection".
		s.st.AfterClose++
		s.answerClosed(now, s.closed == nil)
		return r, nil
	}

	// Acks.
	if ack := rv.GetAckReliableMsg(); ack > 0 && len(s.out) > 0 {
		last := s.firstOut + uint32(len(s.out)) - 1
		if ack > last {
			s.st.BadAcks++
			ack = last
		}
		if ack >= s.firstOut {
			n := int(ack - s.firstOut + 1)
			for i := range n {
				s.outBytes -= s.out[i].size
			}
			clear(s.out[:n])
			s.out = s.out[n:]
			s.firstOut += uint32(n)
			if len(s.out) == 0 {
				s.out = nil
			}
		}
	}

	// Reliable messages: take them in order; a gap drops the lot.
	if rv.FirstReliableMsg != nil {
		s.scheduleSend(now) // ack, even what we had (our ack was lost)
		msgs, first := rv.GetReliableMessages(), rv.GetFirstReliableMsg()
		switch {
		case first > s.nextIn:
			s.st.ReliableGap += int64(len(msgs))
		default:
			skip := int(s.nextIn - first) // first <= nextIn: no overflow
			if skip > len(msgs) {
				skip = len(msgs)
			}
			s.st.ReliableDuplicate += int64(skip)
			r.Reliable = msgs[skip:]
			s.nextIn += uint32(len(r.Reliable))
			s.st.ReliableTaken += int64(len(r.Reliable))
			r.ICE = ICEItems(r.Reliable)
		}
	}

	if rv.ConnectRequest != nil {
		r.ConnectRequest = rv.ConnectRequest
		if s.connectOK != nil {
			// Our connect OK was lost: send it again (GNS
			// QueueSendConnectOKSignal).
			s.okPending = true
			s.scheduleSend(now)
		}
	}
	if rv.ConnectOk != nil {
		if s.connectOK != nil || s.hold {
			s.st.UnexpectedConnectOK++ // we are the accepting side
		} else {
			r.ConnectOK = rv.ConnectOk
			s.connectRequest = nil // answered
		}
	}
	r.Application = rv.GetApplicationMessages()
	return r, nil
}

// answerClosed schedules our closed (or, with noConn, the "no connection"
// answer) in reply to a received rendezvous, at most every
// MinSendInterval.
func (s *Session) answerClosed(now time.Time, noConn bool) {
	if !s.closeDue.IsZero() {
		return // one is due already
	}
	at := now
	if !s.lastSent.IsZero() {
		at = latest(at, s.lastSent.Add(MinSendInterval))
	}
	s.closeDue, s.closeIsNoConn = at, noConn
}
