package conn

import (
	"time"

	"github.com/netmsg-go/netmsg/internal/pb"
)

// think runs the timers of the connection at now (GNS ThinkConnection and
// the end-to-end stats tracker's Think): handshake retries and timeouts,
// linger, reply timeouts, the connected timeout, FinWait and repeated
// connection closed messages.
func (c *Conn) think(now time.Time) {
	switch c.state {
	case StateConnecting:
		if !now.Before(c.entered.Add(c.timeoutInitial())) {
			if c.server {
				c.problem(now, EndMiscTimeout, "App didn't accept or close incoming connection in time.")
			} else {
				c.problem(now, EndMiscTimeout, "Timed out attempting to connect")
			}
			return
		}
		if !c.server && !c.p2p && (c.lastAttempt.IsZero() || !now.Before(c.lastAttempt.Add(connectRetryInterval))) {
			if !c.challengeAt.IsZero() && now.Sub(c.challengeAt) < challengeReuse {
				c.sendConnectRequest(now)
			} else {
				c.sendChallengeRequest(now)
			}
		}
	case StateLinger:
		if c.lingerDone(now) {
			c.setState(now, StateFinWait)
			return
		}
		c.thinkLiveness(now)
	case StateConnected:
		c.thinkLiveness(now)
	case StateFinWait:
		if !now.Before(c.entered.Add(finWaitTimeout)) {
			c.setState(now, StateDead)
			return
		}
		c.resendClosed(now)
	case StateProblemDetectedLocally:
		c.resendClosed(now)
	}
}

// resendClosed repeats our connection closed a few times while the peer
// has not answered (ours; GNS relies on the peer's next packet).
func (c *Conn) resendClosed(now time.Time) {
	if c.closedLeft > 0 && !now.Before(c.closedNext) {
		c.closedLeft--
		c.queueClosedOrNoConnection(now)
	}
}

// heard records that a valid datagram came from the peer (GNS
// TrackRecvPacket): reply timeouts reset.
func (c *Conn) heard(now time.Time) {
	c.lastRecv = now
	c.replyTimeoutAt = time.Time{}
	c.replyTimeouts = 0
	c.timeoutStarted = time.Time{}
}

// thinkLiveness counts reply timeouts and ends a connection that has heard
// nothing for TimeoutConnected after at least four unanswered requests
// (GNS: 5003 "Connection dropped"; plain UDP has no better guess).
func (c *Conn) thinkLiveness(now time.Time) {
	if !c.replyTimeoutAt.IsZero() && !now.Before(c.replyTimeoutAt) {
		c.replyTimeoutAt = time.Time{}
		if c.timeoutStarted.IsZero() {
			c.timeoutStarted = now
		}
		c.replyTimeouts++
		c.st.ReplyTimeouts++
	}
	if !c.timeoutStarted.IsZero() {
		start := c.timeoutStarted
		if c.lastRecv.After(start) {
			start = c.lastRecv
		}
		if !now.Before(start.Add(c.timeoutConnected())) && c.replyTimeouts >= replyTimeoutsToDrop {
			c.problem(now, EndMiscTimeout, "Connection dropped")
		}
	}
}

// livenessWake is when thinkLiveness or a keepalive next needs to run.
func (c *Conn) livenessWake() time.Time {
	var t time.Time
	at := func(x time.Time) {
		if !x.IsZero() && (t.IsZero() || x.Before(t)) {
			t = x
		}
	}
	at(c.replyTimeoutAt)
	if !c.timeoutStarted.IsZero() {
		start := c.timeoutStarted
		if c.lastRecv.After(start) {
			start = c.lastRecv
		}
		if c.replyTimeouts >= replyTimeoutsToDrop {
			at(start.Add(c.timeoutConnected()))
		}
		if c.canForce() {
			at(c.lastImmediate.Add(aggressivePingInterval))
		}
	}
	if c.replyTimeoutAt.IsZero() && c.canForce() {
		at(c.lastRecv.Add(keepAliveInterval))
	}
	return t
}

// canForce reports whether the engine can be made to send a packet.
func (c *Conn) canForce() bool {
	_, ok := any(c.eng).(ackQueuer)
	return ok
}

// statsFlags returns the UDPStats flags the next data packet should carry
// and whether a packet must go out now even with nothing else in it (GNS
// UDPSendPacketContext_t::Populate and GetSendReasonOrUpdateNextThinkTime):
//
//   - timing out (a reply is overdue) and no urgent ping for 200 ms:
//     ACK_REQUEST_E2E|ACK_REQUEST_IMMEDIATE, now;
//   - nothing heard for 10 s and no reply awaited: ACK_REQUEST_E2E (a
//     keepalive), now;
//   - no ping request for 7 s: ACK_REQUEST_E2E on a packet that goes out
//     anyway (a tracer ping).
func (c *Conn) statsFlags(now time.Time) (flags uint32, force bool) {
	const e2e, imm = uint32(pb.UDPStats_ACK_REQUEST_E2E), uint32(pb.UDPStats_ACK_REQUEST_IMMEDIATE)
	switch {
	case c.replyTimeouts > 0 && !now.Before(c.lastImmediate.Add(aggressivePingInterval)):
		return e2e | imm, true
	case c.replyTimeoutAt.IsZero() && !now.Before(c.lastRecv.Add(keepAliveInterval)):
		return e2e, true
	case !now.Before(c.lastPingReq.Add(pingRequestInterval)):
		return e2e, false
	}
	return 0, false
}

// sentAckRequest records a packet that asked for an ack (GNS
// TrackSentMessageExpectingReply and TrackSentPingRequest).
func (c *Conn) sentAckRequest(now time.Time, flags uint32) {
	c.st.AckRequestsSent++
	immediate := flags&uint32(pb.UDPStats_ACK_REQUEST_IMMEDIATE) != 0
	if c.replyTimeoutAt.IsZero() {
		d := replyTimeoutMax
		if c.eng != nil {
			if s := c.eng.Stats(now); s.Ping >= 0 {
				d = min(time.Duration(s.Ping)*2*time.Millisecond+replyTimeoutSlack, replyTimeoutMax)
			}
		} else if c.pingMs >= 0 {
			d = min(time.Duration(c.pingMs)*2*time.Millisecond+replyTimeoutSlack, replyTimeoutMax)
		}
		if !immediate {
			d += replyDelayAllowance
		}
		c.replyTimeoutAt = now.Add(d)
	}
	if immediate {
		c.lastImmediate = now
	}
	c.lastPingReq = now
}
