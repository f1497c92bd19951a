package conn

import "time"

// Idle reports whether c has been connected and holds nothing in flight:
// no reliable data queued or sent and not acked, no reliable data received
// out of order or as part of a message, no message waiting to be taken
// with Receive. It is GNS's test of a Messages session whose connection
// died (CSteamNetworkingMessages CheckConnection: once connected, no
// buffered receive data and no unacked sent reliable data): such a session
// ends as if it had idled out, and the next send makes a new connection;
// and the test of a session that may idle out. A connection that never
// connected is not idle.
func (c *Conn) Idle(now time.Time) bool {
	if c.eng == nil {
		return false
	}
	s := c.eng.Stats(now)
	return s.PendingReliable == 0 && s.SentUnackedReliable == 0 &&
		s.ReceiveBufferedBytes == 0 && s.ReceiveQueue == 0
}

// Proven reports whether the peer has shown it holds the session keys: a
// data packet from it passed decryption. Until then an accepted
// connection may be a replayed connect request (its certificate and
// signed crypt info are not bound to the challenge), so the host counts it
// as half-open.
func (c *Conn) Proven() bool { return c.proven }
