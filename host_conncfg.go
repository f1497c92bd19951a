package netmsg

import (
	"errors"
	"fmt"
	"time"

	"github.com/netmsg-go/netmsg/internal/conn"
	"github.com/netmsg-go/netmsg/internal/snp"
)

// connSettings merges cc over the Host's ConnConfig into a connection's
// own settings; nil for the zero ConnConfig (the connection then shares
// the Host's settings).
func (h *Host) connSettings(cc ConnConfig) (*conn.Settings, error) {
	if cc == (ConnConfig{}) {
		return nil, nil
	}
	return h.mergedSettings(cc)
}

// mergedSettings is cc over the Host's ConnConfig as a connection's
// settings, or an error wrapping ErrBadConfig.
func (h *Host) mergedSettings(cc ConnConfig) (*conn.Settings, error) {
	merged, err := cc.withDefaults(&h.cfg.ConnConfig)
	if err != nil {
		return nil, err
	}
	return &conn.Settings{SNP: snpConfig(&merged), TimeoutInitial: merged.TimeoutInitial, TimeoutConnected: merged.TimeoutConnected}, nil
}

// SetConnectionConfig changes the settings of a live connection (GNS's
// SetConnectionConfigValue): cc's zero fields take the Host's values, as in
// ConnectWith. Every field may change at any time except MTUPacketSize,
// which is fixed once the connection is connected; the lanes set by
// ConfigureConnectionLanes stay. It returns ErrNoSuchConn for an unknown handle and
// an error wrapping ErrBadConfig for an invalid cc.
func (h *Host) SetConnectionConfig(c ConnHandle, cc ConnConfig) error {
	s, err := h.mergedSettings(cc)
	if err != nil {
		return err
	}
	return h.withConn(c, func(hc *hostConn) error {
		s.SNP.Lanes = hc.c.EngineConfig().Lanes
		if err := hc.c.Configure(*s); err != nil {
			return fmt.Errorf("netmsg: connection config: %v: %w", err, ErrBadConfig)
		}
		h.rescheduleLocked(hc)
		return nil
	})
}

// ConfigureConnectionLanes sets the send lanes of connection c (GNS's
// ConfigureConnectionLanes): messages sent with SendMessageOnLane on a lane
// of a lower Priority go first, and lanes of equal priority share the send
// rate by Weight. Lanes may be added, not removed; at most 255. The peer
// needs nothing configured to receive them.
func (h *Host) ConfigureConnectionLanes(c ConnHandle, lanes []Lane) error {
	if len(lanes) == 0 || len(lanes) > snp.MaxLanes {
		return fmt.Errorf("netmsg: %d lanes, want 1 to %d: %w", len(lanes), snp.MaxLanes, ResultInvalidParam)
	}
	return h.withConn(c, func(hc *hostConn) error {
		// The connection's current settings with the new lanes.
		s := conn.Settings{SNP: hc.c.EngineConfig()}
		s.SNP.Lanes = laneConfig(lanes)
		s.TimeoutInitial, s.TimeoutConnected = hc.c.Timeouts()
		if err := hc.c.Configure(s); err != nil {
			return fmt.Errorf("netmsg: lanes: %v: %w", err, ResultInvalidParam)
		}
		return nil
	})
}

// SendMessageOnLane is SendMessageToConnection on one of the lanes
// ConfigureConnectionLanes set (lane 0 is the default lane). A lane that
// does not exist is ResultInvalidParam.
func (h *Host) SendMessageOnLane(c ConnHandle, lane int, data []byte, flags SendFlags) (int64, error) {
	return h.send(c, lane, data, flags)
}

// LaneStatus is the state of one send lane of a connection (GNS's
// SteamNetConnectionRealTimeLaneStatus_t).
type LaneStatus struct {
	// PendingUnreliable and PendingReliable are the bytes queued on the
	// lane and not yet sent.
	PendingUnreliable int
	PendingReliable   int
	// SentUnackedReliable is the reliable bytes sent on the lane and not
	// yet acknowledged.
	SentUnackedReliable int
	// QueueTime estimates how long a message queued on the lane now would
	// wait before it is sent: the data of lanes of a more urgent priority
	// go first, and lanes of equal priority share the rate by weight.
	QueueTime time.Duration
}

// ConnectionLaneStatus returns the state of each send lane of c, in lane
// order (none before the connection is connected).
func (h *Host) ConnectionLaneStatus(c ConnHandle) ([]LaneStatus, error) {
	var out []LaneStatus
	err := h.withConn(c, func(hc *hostConn) error {
		for _, l := range hc.c.LaneStats(nil) {
			out = append(out, LaneStatus{PendingUnreliable: l.PendingUnreliable, PendingReliable: l.PendingReliable, SentUnackedReliable: l.SentUnacked, QueueTime: l.QueueTime})
		}
		return nil
	})
	return out, err
}

// withConn runs f with connection c locked (the table lock and the
// connection's), then writes what it queued.
func (h *Host) withConn(c ConnHandle, f func(hc *hostConn) error) error {
	h.mu.Lock()
	hc := h.connLocked(c)
	if hc == nil {
		h.mu.Unlock()
		return ErrNoSuchConn
	}
	lockConn(hc)
	err := f(hc)
	unlockConn(hc)
	h.unlockFlush()
	return err
}

// OutgoingMessage is one message of a SendMessages batch.
type OutgoingMessage struct {
	Conn  ConnHandle
	Lane  int // 0 unless the connection has lanes (ConfigureConnectionLanes)
	Data  []byte
	Flags SendFlags
}

// SendResult is the outcome of one message of a SendMessages batch: its
// message number, or the error SendMessageToConnection would have returned.
type SendResult struct {
	MessageNumber int64
	Err           error
}

// SendMessages sends many messages to many connections in one call (GNS's
// SendMessages): the messages of each connection are queued in their order
// under one lock round for that connection, and each gets its result in
// results, which is returned (grown as needed; pass nil to allocate).
func (h *Host) SendMessages(msgs []OutgoingMessage, results []SendResult) []SendResult {
	if cap(results) < len(msgs) {
		results = make([]SendResult, len(msgs))
	} else {
		results = results[:len(msgs)]
		clear(results)
	}
	done := make([]bool, len(msgs))
	now := h.cfg.Now()
	for i := range msgs {
		if done[i] {
			continue
		}
		c := msgs[i].Conn
		h.mu.Lock()
		hc := h.connLocked(c)
		if hc == nil {
			h.mu.Unlock()
			for j := i; j < len(msgs); j++ {
				if !done[j] && msgs[j].Conn == c {
					results[j].Err, done[j] = ErrNoSuchConn, true
				}
			}
			continue
		}
		lockConn(hc)
		var any bool
		var nagle SendFlags = SendNoNagle
		for j := i; j < len(msgs); j++ {
			if done[j] || msgs[j].Conn != c {
				continue
			}
			m := &msgs[j]
			done[j] = true
			if len(m.Data) > h.cfg.MaxMessageSize {
				results[j].Err = fmt.Errorf("netmsg: message of %d bytes over the %d limit: %w", len(m.Data), h.cfg.MaxMessageSize, ResultInvalidParam)
				continue
			}
			num, err := hc.c.Send(now, m.Lane, m.Data, snp.SendFlags(m.Flags&(SendReliable|SendNoNagle|SendNoDelay)))
			if err != nil {
				results[j].Err = h.sendErr(hc, err)
				continue
			}
			results[j].MessageNumber = num
			any = true
			nagle &= m.Flags & SendNoNagle
		}
		if any {
			if nagle != 0 {
				h.pollLocked(now, hc)
			} else {
				h.rescheduleBatchLocked(now, hc)
			}
		}
		unlockConn(hc)
		h.unlockFlush()
	}
	return results
}

// ConnError is the error of a send or receive on a connection (or Messages
// session) that ended: it carries the state it ended in and the end reason
// and debug text, and matches ResultNoConnection under errors.Is.
type ConnError struct {
	Conn   ConnHandle // the connection (InvalidConn for a Messages session)
	Peer   Identity   // the peer, when known
	State  ConnectionState
	Reason EndReason
	Debug  string
}

func (e *ConnError) Error() string {
	who := fmt.Sprintf("connection %d", e.Conn)
	if e.Conn == InvalidConn && e.Peer.IsValid() {
		who = "session with " + e.Peer.String()
	}
	if e.Reason == EndInvalid {
		return fmt.Sprintf("netmsg: %s: %v", who, e.State)
	}
	return fmt.Sprintf("netmsg: %s ended (%v): %v (%d) %s", who, e.State, e.Reason, int(e.Reason), e.Debug)
}

// Is makes a ConnError match ResultNoConnection.
func (e *ConnError) Is(target error) bool { return target == ResultNoConnection }

// sendErr maps an engine or connection error of hc onto the error a send
// returns: a ConnError when the connection ended. hc's lock is held.
func (h *Host) sendErr(hc *hostConn, err error) error {
	if errors.Is(err, conn.ErrNotConnected) {
		return h.connErr(hc)
	}
	return sendResult(err)
}

// connErr is hc's ConnError; hc's lock is held.
func (h *Host) connErr(hc *hostConn) *ConnError {
	st := ConnectionState(hc.c.State())
	if hc.state == StateClosedByPeer || hc.state == StateProblemDetectedLocally {
		st = hc.state
	}
	return &ConnError{Conn: hc.handle, Peer: hc.identity, State: st, Reason: EndReason(hc.c.EndReason()), Debug: hc.c.EndDebug()}
}
