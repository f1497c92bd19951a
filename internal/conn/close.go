package conn

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
)

// Close ends the connection with reason (GNS's end reason; 1000-1999 for
// the application) and debug text. With linger, queued reliable data is
// flushed first (state Linger) before the connection closed message.
//
// As GNS APICloseConnection: a reason of 0 becomes 1000, one outside
// 1000-2999 becomes 1999 with the debug text "Invalid numeric reason code";
// an empty debug text becomes "Application closed connection" (or "...in
// an unusual way" for 2000-2999). A connection that already has a reason
// (closed by the peer, problem detected) keeps it. The connection then
// enters FinWait (sending connection closed, or no connection if the peer
// closed first) and is Dead 5 s later.
func (c *Conn) Close(now time.Time, reason int, debug string, linger bool) {
	if c.endCode == 0 || c.active() {
		if reason == 0 {
			reason = EndAppGeneric
		} else if reason < EndAppGeneric || reason > EndAppExceptionMax {
			reason, debug = EndAppMax, "Invalid numeric reason code"
		}
		c.endCode = reason
		if c.endDebug == "" {
			if debug == "" {
				if reason >= EndAppExceptionMin {
					debug = "Application closed connection in an unusual way"
				} else {
					debug = "Application closed connection"
				}
			}
			c.endDebug = clip(debug)
		}
	}
	switch c.state {
	case StateDead, StateNone, StateFinWait:
		return
	case StateConnected:
		if linger && !c.lingerDone(now) {
			c.setState(now, StateLinger)
			return
		}
	}
	c.setState(now, StateFinWait)
}

// lingerDone is GNS BReadyToExitLingerState: no reliable data left to send
// or to be acked.
func (c *Conn) lingerDone(now time.Time) bool {
	if c.eng == nil {
		return true
	}
	s := c.eng.Stats(now)
	return s.PendingReliable == 0 && s.SentUnackedReliable == 0
}

// queueClosedOrNoConnection is GNS SendConnectionClosedOrNoConnection: a
// no connection when the peer closed first, else a connection closed with
// our reason.
func (c *Conn) queueClosedOrNoConnection(now time.Time) {
	if c.wire == StateClosedByPeer {
		c.queueNoConnection(c.localID, c.remoteID)
	} else {
		m := &pb.UDPConnectionClosed{
			FromConnectionId: proto.Uint32(c.localID),
			ReasonCode:       proto.Uint32(uint32(c.endCode)),
		}
		if c.remoteID != 0 {
			m.ToConnectionId = proto.Uint32(c.remoteID)
		}
		if c.endDebug != "" {
			m.Debug = proto.String(c.endDebug)
		}
		c.queueControl(pb.UDPMsgID_UDP_MSG_CONNECTION_CLOSED, m)
	}
	c.closedNext = now.Add(closedResendInterval)
}

func (c *Conn) queueNoConnection(from, to uint32) {
	if from == 0 && to == 0 {
		return
	}
	m := &pb.UDPNoConnection{}
	if from != 0 {
		m.FromConnectionId = proto.Uint32(from)
	}
	if to != 0 {
		m.ToConnectionId = proto.Uint32(to)
	}
	c.queueControl(pb.UDPMsgID_UDP_MSG_NO_CONNECTION, m)
}

// recvConnectionClosed is GNS Received_ConnectionClosed on a connection:
// answer with a no connection echoing the ids, then, if it is ours, the
// connection is closed by the peer.
func (c *Conn) recvConnectionClosed(now time.Time, m *pb.UDPConnectionClosed) error {
	match := m.GetToConnectionId() == c.localID ||
		(m.GetToConnectionId() == 0 && m.GetFromConnectionId() != 0 && m.GetFromConnectionId() == c.remoteID)
	if !match {
		// GNS answers these too, under a global rate limit; we leave
		// them to the host's Listener.HandleStray.
		return fmt.Errorf("%w: connection closed for %d", ErrWrongConnID, m.GetToConnectionId())
	}
	c.queueNoConnection(m.GetToConnectionId(), m.GetFromConnectionId())
	c.closedLeft = 0
	c.closedByPeer(now, int(m.GetReasonCode()), m.GetDebug())
	return nil
}

// recvNoConnection is GNS Received_NoConnection: the peer has no such
// connection (or acknowledges our connection closed).
func (c *Conn) recvNoConnection(now time.Time, m *pb.UDPNoConnection) error {
	if m.GetToConnectionId() != c.localID || m.GetFromConnectionId() != c.remoteID {
		return fmt.Errorf("%w: no connection for %d/%d", ErrWrongConnID, m.GetToConnectionId(), m.GetFromConnectionId())
	}
	c.closedLeft = 0 // our connection closed, if any, was heard
	c.closedByPeer(now, EndMiscPeerSentNoConnection, "Received unexpected 'no connection' from peer")
	return nil
}
