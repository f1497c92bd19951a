package netmsg

import "time"

// endedIdleLocked applies GNS's rule for a Messages session whose
// connection died (closed by the peer, or a problem detected locally) while
// idle (CSteamNetworkingMessages CheckConnection): once connected, with no
// reliable data in flight either way and nothing waiting to be received,
// the end is treated like an idle timeout on our side. The session is
// forgotten without OnSessionFailed, and the next send to the peer makes a
// new session (a peer that restarted is reached again). It reports whether
// it did so. mu and hc's lock are held; hc was s's connection.
func (ms *Messages) endedIdleLocked(now time.Time, s *session, hc *hostConn, info ConnectionInfo) bool {
	if !hc.c.Idle(now) {
		return false
	}
	ms.h.cfg.Logger.Debug("netmsg: idle session ended, as an idle timeout", "peer", s.peer, "state", info.State, "reason", info.EndReason, "debug", info.EndDebug)
	ms.forgetLocked(s)
	return true
}
