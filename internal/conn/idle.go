package conn

import "time"

// EndedIdle reports whether c had been connected and holds nothing in
// flight: no reliable data queued or sent and not acked, no reliable data
// received out of order or as part of a message, no message waiting to be
// taken with Receive. It is GNS's test of a Messages session whose
// connection died (CSteamNetworkingMessages CheckConnection: once
// connected, no buffered receive data and no unacked sent reliable data):
// such a session ends as if it had idled out, and the next send makes a
// new connection. A connection that never connected is not idle.
func (c *Conn) EndedIdle(now time.Time) bool {
	if c.eng == nil {
		return false
	}
	s := c.eng.Stats(now)
	return s.PendingReliable == 0 && s.SentUnackedReliable == 0 &&
		s.ReceiveBufferedBytes == 0 && s.ReceiveQueue == 0
}
