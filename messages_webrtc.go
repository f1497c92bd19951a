package netmsg

import "time"

// The Messages API's side of sessions with browser peers
// (host_webrtc.go): each method looks in Messages.web first.

// webTargetLocked finds or makes the browser session a send to peer goes
// on: ok is false when peer is not a browser (the send goes on GNS). A
// failed session returns its ConnError unless flags restart it. mu is
// held.
func (ms *Messages) webTargetLocked(now time.Time, peer Identity, flags SendFlags) (*webSession, bool, error) {
	h := ms.h
	ws := ms.web[peer]
	if ws == nil {
		if ms.sessions[peer] != nil || !h.isBrowserLocked(peer) {
			return nil, false, nil
		}
		return ms.dialWebLocked(now, peer), true, nil
	}
	if ws.failed {
		if flags&SendAutoRestartBrokenSession == 0 {
			return nil, true, &ConnError{Conn: InvalidConn, Peer: peer, State: ws.info.State, Reason: ws.info.EndReason, Debug: ws.info.EndDebug}
		}
		ms.freeWebLocked(now, ws, EndSessionClosed, "Session restarted")
		return ms.dialWebLocked(now, peer), true, nil
	}
	ms.acceptWebLocked(now, ws)
	return ws, true, nil
}

// sendWeb sends on a browser session; no lock is held.
func (ms *Messages) sendWeb(now time.Time, ws *webSession, channel int, data []byte, flags SendFlags) error {
	ws.used(now)
	ms.chMu.Lock()
	ws.open[channel] = true
	ms.chMu.Unlock()
	return ws.sendMsg(channel, data, flags)
}

// closeWebChannelLocked is CloseChannelWithUser for a browser session.
func (ms *Messages) closeWebChannelLocked(ws *webSession, channel int) {
	ms.chMu.Lock()
	ms.dropPeerChLocked(ws.peer, channel)
	delete(ws.open, channel)
	last := len(ws.open) == 0
	ms.chMu.Unlock()
	if last {
		ms.freeWebLocked(ms.h.cfg.Now(), ws, EndSessionClosed, "Session closed")
	}
}
