package netmsg

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netmsg-go/netmsg/internal/snp"
)

// GNS's facts for the Messages layer (csteamnetworkingmessages.cpp,
// steamnetworkingsockets_internal.h).
const (
	// messagesVirtualPort is k_nVirtualPort_Messages: the virtual port of
	// every Messages connection.
	messagesVirtualPort = 0x7fffffff

	// msgHeaderLen is the size of the header GNS puts before every
	// Messages payload: a flags byte, then the channel (int32 LE).
	msgHeaderLen = 5

	// msgHeaderFlags is the only flags value GNS writes.
	msgHeaderFlags = 1
)

// Our tuning of the Messages layer.
const (
	// sessionRequestRepeat is how often a session request is posted again
	// while the peer keeps trying and the application has not accepted.
	sessionRequestRepeat = time.Second

	// messagesLanes is how many SNP lanes a session between two netmsg
	// Hosts spreads its channels over (channel modulo lanes), so a lost
	// packet on one channel does not hold up another. The handshake agrees
	// on it (netmsg's lane extension); a GNS peer offers none and gets
	// every channel on lane 0, as GNS does.
	messagesLanes = 8
)

// Messages is the Networking Messages API of a Host
// (ISteamNetworkingMessages): messages to peers named by identity, on
// numbered channels, with sessions made on demand. Get it with
// Host.Messages. Its methods are safe for concurrent use.
//
// Locks: the session table is guarded by the Host's table lock (mu), a
// session's connection by that connection's lock; chMu, a leaf lock taken
// after those, guards the channel queues and each session's open channels,
// so that messages are queued from a connection's goroutine without the
// table lock.
type Messages struct {
	h        *Host
	enabled  bool                     // Host.Messages was called: take incoming sessions
	sessions map[Identity]*session    // by peer
	web      map[Identity]*webSession // sessions with browsers, by peer (host_webrtc.go)
	next     time.Time                // the soonest tick the sessions need

	chMu     sync.Mutex
	channels map[int]*recvQueue // received messages by channel
	// low holds the queues of channels 0 to len(low)-1 once made, for
	// receives to find without chMu.
	low [16]atomic.Pointer[recvQueue]

	last atomic.Pointer[sendCache] // the session SendMessageToUser used last
}

// sendCache is the connected direct session SendMessageToUser used last,
// and the channel, so that a run of sends to one peer on one channel
// skips the table lock and the session table (the identity's hash). It is
// good while its connection's lock, held, shows the session still on that
// connection and connected: every change to a session's connection or
// state is made under that lock too (freeLocked, connStateLocked, a
// symmetric connect), so a session closed, failed or replaced, or a Host
// closed, fails the check and the send takes the slow path.
// CloseChannelWithUser drops it, so that a send on a closed channel opens
// it again.
type sendCache struct {
	peer    Identity
	channel int
	s       *session // accepted: a session is never unaccepted
	hc      *hostConn
}

// session is one peer's Messages session. Its fields are guarded by the
// Host's mu, except open (Messages.chMu) and lastUsed (atomic).
type session struct {
	peer     Identity
	hc       *hostConn // the connection carrying it (nil once it failed and was freed)
	accepted bool      // we sent to the peer or accepted its request
	failed   bool      // broken: sends fail with ResultNoConnection until closed or restarted
	info     ConnectionInfo
	lastUsed atomic.Int64 // Unix nanoseconds of the last message sent or received
	// requestAt is when the session request is next posted again (zero:
	// not pending).
	requestAt time.Time
	open      map[int]bool // channels in use with this peer
	// early holds copies of the messages (header included) sent before
	// the connection was up, for a symmetric connect that switches to the
	// peer's connection; dropped once connected.
	early [][]byte
	alias Identity // a second key of the session in Messages.sessions, if any
}

// used notes that the session carried a message at now.
func (s *session) used(now time.Time) { s.lastUsed.Store(now.UnixNano()) }

// lastUse is when the session last carried a message.
func (s *session) lastUse() time.Time { return time.Unix(0, s.lastUsed.Load()) }

type channelQueue struct {
	recv  msgQueue
	ready chan struct{} // signalled (cap 1) when recv gains messages
}

func (ms *Messages) init(h *Host) {
	ms.h = h
	ms.sessions = make(map[Identity]*session)
	ms.channels = make(map[int]*recvQueue)
}

// Messages returns the Host's Networking Messages interface. From the
// first call on, the Host accepts incoming Messages sessions (peers that
// send first get a session request).
func (h *Host) Messages() *Messages {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.messagesLocked()
}

// messagesLocked returns the Messages service, registering it on its
// virtual port first if need be, and makes it take incoming sessions (as
// GNS makes its Messages interface on demand). mu is held.
func (h *Host) messagesLocked() *Messages {
	ms, _ := h.services[messagesVirtualPort].(*Messages)
	if ms == nil {
		ms = &Messages{}
		ms.init(h)
		h.services[messagesVirtualPort] = ms
	}
	ms.enabled = true
	return ms
}

// The Messages layer is a service on virtual port 0x7fffffff (host_service.go).

func (ms *Messages) acceptingLocked() bool { return ms.enabled }

func (ms *Messages) stateLocked(hc *hostConn, old ConnectionState) { ms.connStateLocked(hc, old) }

func (ms *Messages) connInfoLocked(hc *hostConn) ConnectionInfo { return ms.infoLocked(hc.sess) }

func (ms *Messages) sessionStatesLocked(count func(ConnectionState, bool)) {
	ms.webStatesLocked(count)
	for id, s := range ms.sessions {
		if s.alias == id {
			continue // counted under its first key
		}
		if s.failed || s.hc == nil {
			count(StateNone, true)
			continue
		}
		count(s.hc.state, false)
	}
}

func (ms *Messages) p2pClientLocked(peer Identity) *hostConn {
	s := ms.sessions[peer]
	if s == nil || s.failed || s.hc == nil || s.hc.p2p == nil || s.hc.c.IsServer() {
		return nil
	}
	return s.hc
}

// clientLocked returns the service's live client connection (direct or
// P2P) to peer, if any.
func (ms *Messages) clientLocked(peer Identity) *hostConn {
	s := ms.sessions[peer]
	if s == nil || s.failed || s.hc == nil || s.hc.c.IsServer() {
		return nil
	}
	return s.hc
}

// channelLocked returns channel ch's queue, made on first use; chMu is
// held.
func (ms *Messages) channelLocked(ch int) *recvQueue {
	q := ms.channels[ch]
	if q == nil {
		q = newRecvQueue()
		ms.channels[ch] = q
		if ch >= 0 && ch < len(ms.low) {
			ms.low[ch].Store(q)
		}
	}
	return q
}

// maxChannels bounds the channel queues a peer's messages make: a message
// on yet another channel is dropped and counted (HostStats.Dropped).
var maxChannels = 1 << 16 // a variable for tests

// channel returns channel ch's queue, made on first use.
func (ms *Messages) channel(ch int) *recvQueue {
	if ch >= 0 && ch < len(ms.low) {
		if q := ms.low[ch].Load(); q != nil {
			return q
		}
	}
	ms.chMu.Lock()
	q := ms.channelLocked(ch)
	ms.chMu.Unlock()
	return q
}

// SendMessageToUser sends data to peer on channel (GNS's
// SendMessageToUser). A session is created if there is none (directly over
// UDP for an ip: identity; other identities need an existing session until
// P2P lands), and a pending request from the peer is accepted. Messages sent
// before the session is connected are queued and sent reliably, as GNS
// does. The data is copied.
//
// It returns nil or a Result: ResultInvalidParam for an invalid peer or a
// message over 512 KiB, ResultLimitExceeded when the send buffer is full,
// ResultNoConnection when the session failed or was closed (until
// CloseSessionWithUser, or a send with SendAutoRestartBrokenSession, which
// starts a fresh session).
func (ms *Messages) SendMessageToUser(peer Identity, data []byte, flags SendFlags, channel int) error {
	h := ms.h
	if c := ms.last.Load(); c != nil && c.peer == peer && c.channel == channel {
		// The fast path: the session of the last send (its peer passed
		// CheckTarget then).
		if len(data) > h.cfg.MaxMessageSize {
			return fmt.Errorf("netmsg: message of %d bytes over the %d limit: %w", len(data), h.cfg.MaxMessageSize, ResultInvalidParam)
		}
		hc := c.hc
		hc.mu.Lock()
		if hc.sess == c.s && hc.state == StateConnected && !hc.removed {
			now := h.cfg.Now()
			c.s.used(now) // a later idle deadline: the session tick needs no reschedule
			return ms.sendConnected(now, peer, hc, channel, data, flags)
		}
		hc.mu.Unlock()
	}
	if err := peer.CheckTarget(); err != nil {
		return fmt.Errorf("netmsg: send to %v: %w", peer, err)
	}
	if len(data) > h.cfg.MaxMessageSize {
		return fmt.Errorf("netmsg: message of %d bytes over the %d limit: %w", len(data), h.cfg.MaxMessageSize, ResultInvalidParam)
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return ErrHostClosed
	}
	now := h.cfg.Now()
	if ws, ok, err := ms.webTargetLocked(now, peer, flags); ok {
		h.mu.Unlock()
		if err != nil {
			return err
		}
		return ms.sendWeb(now, ws, channel, data, flags)
	}
	s := ms.sessions[peer]
	if s != nil && s.failed {
		if flags&SendAutoRestartBrokenSession == 0 {
			h.mu.Unlock()
			return &ConnError{Conn: InvalidConn, Peer: peer, State: s.info.State, Reason: s.info.EndReason, Debug: s.info.EndDebug}
		}
		ms.freeLocked(now, s, EndSessionClosed, "Session restarted")
		s = nil
	}
	if s == nil {
		var err error
		if s, err = ms.dialLocked(now, peer); err != nil {
			h.mu.Unlock()
			return err
		}
	}
	hc := s.hc
	lockConn(hc)
	if !s.accepted {
		if err := hc.c.Accept(now); err != nil {
			unlockConn(hc)
			h.mu.Unlock()
			return fmt.Errorf("netmsg: accept %v: %v: %w", peer, err, ResultNoConnection)
		}
		s.accepted, s.requestAt = true, time.Time{}
	}
	s.used(now)
	ms.chMu.Lock()
	if !s.open[channel] {
		s.open[channel] = true
	}
	ms.chMu.Unlock()
	ms.scheduleLocked(now, s)
	sf := snp.SendFlags(flags & (SendReliable | SendNoNagle | SendNoDelay))
	early := hc.state != StateConnected
	if early {
		sf |= snp.Reliable // GNS: nothing sent before the session is up may be lost
	}
	if hc.c.IsP2P() || early {
		// The session's bookkeeping goes with the send: under mu.
		defer h.unlockFlush()
		defer unlockConn(hc)
		hdr := msgHeader(channel)
		if _, err := hc.c.SendKeyed(now, uint32(int32(channel)), hdr[:], data, sf); err != nil {
			return h.sessionSendErr(peer, hc, err)
		}
		if early && !hc.c.IsServer() {
			s.early = append(s.early, append(hdr[:], data...))
		}
		if flags&SendNoNagle != 0 {
			h.awaitReplies()
			h.pollLocked(now, hc)
		} else {
			h.rescheduleLocked(hc)
		}
		return nil
	}
	// A connected direct session: the send runs under the connection's
	// lock only (its state cannot change without that lock), and the
	// next sends to this peer on this channel take the fast path.
	if c := ms.last.Load(); c == nil || c.s != s || c.hc != hc || c.peer != peer || c.channel != channel {
		ms.last.Store(&sendCache{peer: peer, channel: channel, s: s, hc: hc})
	}
	h.mu.Unlock()
	return ms.sendConnected(now, peer, hc, channel, data, flags)
}

// Send is SendMessageToUser that waits while the session's send buffer is
// full, rather than failing with ResultLimitExceeded: until the Host has
// sent half of what waits, ctx ends (ctx's error), the session fails
// (its error), or the Host closes (ErrHostClosed). It is the form a Go
// program that produces as fast as the peer takes wants: no retry loop,
// no sleep.
func (ms *Messages) Send(ctx context.Context, peer Identity, data []byte, flags SendFlags, channel int) error {
	err := ms.SendMessageToUser(peer, data, flags, channel)
	if !errors.Is(err, ResultLimitExceeded) {
		return err
	}
	h := ms.h
	h.mu.Lock()
	var hc *hostConn
	if s := ms.sessions[peer]; s != nil {
		hc = s.hc
	}
	h.mu.Unlock()
	if hc == nil {
		// A browser session (its data channel's buffer is full): try
		// again shortly.
		for errors.Is(err, ResultLimitExceeded) {
			t := time.NewTimer(time.Millisecond)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-h.done:
				t.Stop()
				return ErrHostClosed
			}
			err = ms.SendMessageToUser(peer, data, flags, channel)
		}
		return err
	}
	if werr := h.awaitRoom(ctx, hc, func() bool {
		err = ms.SendMessageToUser(peer, data, flags, channel)
		return !errors.Is(err, ResultLimitExceeded)
	}); werr != nil {
		return werr
	}
	return err
}

// msgHeader is GNS's Messages header for channel.
func msgHeader(channel int) [msgHeaderLen]byte {
	var hdr [msgHeaderLen]byte
	hdr[0] = msgHeaderFlags
	binary.LittleEndian.PutUint32(hdr[1:], uint32(int32(channel)))
	return hdr
}

// sendConnected sends on hc, the connection of a connected direct
// session, whose lock the caller holds and which it releases.
func (ms *Messages) sendConnected(now time.Time, peer Identity, hc *hostConn, channel int, data []byte, flags SendFlags) error {
	h := ms.h
	hdr := msgHeader(channel)
	sf := snp.SendFlags(flags & (SendReliable | SendNoNagle | SendNoDelay))
	if _, err := hc.c.SendKeyed(now, uint32(int32(channel)), hdr[:], data, sf); err != nil {
		err = h.sessionSendErr(peer, hc, err)
		hc.mu.Unlock()
		return err
	}
	if flags&SendNoNagle != 0 {
		h.afterSend(now, hc, flags)
		return nil
	}
	h.rescheduleSendLocked(now, hc)
	hc.mu.Unlock()
	return nil
}

// sessionSendErr is sendErr for a Messages session's connection hc (whose
// lock is held): a ConnError names the peer, not the connection.
func (h *Host) sessionSendErr(peer Identity, hc *hostConn, err error) error {
	err = h.sendErr(hc, err)
	if ce, ok := err.(*ConnError); ok {
		ce.Conn, ce.Peer = InvalidConn, peer
	}
	return err
}

// dialLocked starts a session to peer.
func (ms *Messages) dialLocked(now time.Time, peer Identity) (*session, error) {
	var hc *hostConn
	var err error
	if addr, ok := peer.Addr(); ok {
		hc, err = ms.h.connectLocked(now, addr, messagesVirtualPort)
	} else {
		hc, err = ms.h.connectP2PLocked(now, peer, messagesVirtualPort)
	}
	if err != nil {
		return nil, err
	}
	s := ms.newSessionLocked(now, peer, hc)
	s.accepted = true
	return s, nil
}

func (ms *Messages) newSessionLocked(now time.Time, peer Identity, hc *hostConn) *session {
	s := &session{peer: peer, hc: hc, open: map[int]bool{}}
	s.used(now)
	hc.sess, hc.svc = s, ms
	ms.sessions[peer] = s
	return s
}

// incomingLocked takes a new incoming Messages connection: a session
// request, or, when both sides dialled at once, the one connection of the
// two that survives (the one whose client picked the lower connection id;
// both sides apply the same rule). It returns false for a request it
// leaves unanswered: the Host then drops it without a trace, and the
// peer's next attempt (its connect retries) is judged afresh, as GNS does.
func (ms *Messages) incomingLocked(now time.Time, hc *hostConn) bool {
	peer := hc.identity
	s := ms.sessions[peer]
	if s == nil {
		// A session we dialled by address, to a peer whose certificate
		// names another identity: the peer's socket is the same.
		if id, err := IdentityFromAddr(hc.c.RemoteAddr()); err == nil {
			if s = ms.sessions[id]; s != nil {
				peer = id
			}
		}
	}
	ours := s != nil && s.hc != nil && !s.failed && !s.hc.c.IsServer()
	if ours && s.hc.state != StateConnected {
		// Symmetric connect.
		if s.hc.c.LocalID() < hc.c.RemoteID() {
			// Ours survives; the peer drops its own once ours reaches
			// it. Theirs is left unanswered (a close could reach the
			// peer before our connect request and read as a failed
			// session); should ours fail, the peer's next attempt is
			// taken.
			return false
		}
		// Theirs survives: move what we queued on ours over to it.
		old := s.hc
		for _, b := range s.early {
			hc.c.SendKeyed(now, binary.LittleEndian.Uint32(b[1:]), nil, b, snp.Reliable)
		}
		s.early = nil
		lockConn(old)
		old.sess, old.svc = nil, nil
		old.handle = InvalidConn
		old.c.Close(now, int(EndAppMin), "symmetric connect: the other connection wins", false)
		ms.h.pollLocked(now, old)
		unlockConn(old)
		s.hc, hc.sess, hc.svc = hc, s, ms
		if err := hc.c.Accept(now); err == nil {
			s.accepted = true
		}
		return true
	}
	if ours && s.hc.c.LocalID() < hc.c.RemoteID() {
		// A late copy of the losing request of a symmetric connect that
		// ours won: left unanswered, as above. (A peer that restarted, or
		// whose connection ours has outlived by the connect timeout, is
		// told apart before: supersedesLocked ends ours first.)
		return false
	}
	if s != nil {
		// A new connection from a peer we had a session with: it replaces
		// the old one (the peer restarted its session).
		ms.freeLocked(now, s, EndSessionClosed, "Session replaced")
	}
	s = ms.newSessionLocked(now, peer, hc)
	s.requestAt = now
	ms.postRequestLocked(now, s)
	return true
}

// postRequestLocked posts OnSessionRequest for s and schedules the repeat.
func (ms *Messages) postRequestLocked(now time.Time, s *session) {
	s.requestAt = now.Add(sessionRequestRepeat)
	ms.scheduleLocked(now, s)
	if cb := ms.h.cfg.OnSessionRequest; cb != nil {
		peer := s.peer
		ms.h.postLocked(func() { cb(peer) })
	}
}

// deliverAll takes the messages that arrived on a session's connection
// (hc.sess), made from the engine's sms (which it clears): strips GNS's
// header and queues each on its channel, a run of messages on one channel
// under one hold of that channel's producer lock, and wakes the channel's
// waiters once per run. The connection's lock is held (not necessarily
// mu).
func (ms *Messages) deliverAll(now time.Time, hc *hostConn, sms []snp.Message) {
	s := hc.sess
	s.used(now)
	var (
		ch  int
		q   *recvQueue // channel ch's queue, its inMu held
		bad int32
	)
	// Counted once for the lot, before any is queued, so the count is
	// never below what the queues hold.
	hc.queued.Add(int32(len(sms)))
	for i := range sms {
		sm := &sms[i]
		if len(sm.Data) < msgHeaderLen {
			sm.Release()
			*sm = snp.Message{}
			bad++
			continue
		}
		m := hc.newMessage(sm)
		*sm = snp.Message{}
		m.conn = hc
		m.Connection = hc.handle
		m.Identity = hc.identity
		m.ReceiverUserData = hc.userData
		m.TimeReceived = now
		c := int(int32(binary.LittleEndian.Uint32(m.Payload[1:])))
		m.Payload = m.Payload[msgHeaderLen:]
		m.Size = len(m.Payload)
		m.Channel = c
		if q == nil || c != ch {
			if q != nil {
				q.inMu.Unlock()
				q.pushed()
			}
			ch = c
			ms.chMu.Lock()
			if ms.channels[ch] == nil && len(ms.channels) >= maxChannels {
				// A peer that names channels without end: what it sends
				// on one beyond the bound is dropped (counted).
				ms.chMu.Unlock()
				q = nil
				m.Release()
				bad++
				continue
			}
			if !s.open[ch] {
				s.open[ch] = true // a read first: a write costs more, per batch
			}
			q = ms.channelLocked(ch)
			ms.chMu.Unlock()
			q.inMu.Lock()
		}
		q.in.push(m)
	}
	if q != nil {
		q.inMu.Unlock()
		q.pushed()
	}
	if bad > 0 {
		hc.queued.Add(-bad)
		ms.h.fast.dropped.Add(int64(bad))
	}
}

// connStateLocked follows a session connection's state changes.
func (ms *Messages) connStateLocked(hc *hostConn, old ConnectionState) {
	s := hc.sess
	now := ms.h.cfg.Now()
	switch hc.state {
	case StateConnected:
		s.used(now)
		s.early = nil
		// A session dialled by address is also known by the identity the
		// peer's certificate names, so a reply to Message.Identity finds
		// it.
		if id := hc.identity; id.IsValid() && id != s.peer && ms.sessions[id] == nil {
			ms.sessions[id] = s
			s.alias = id
		}
		if cb := ms.h.cfg.OnSessionConnected; cb != nil {
			info := ms.infoLocked(s)
			ms.h.postLocked(func() { cb(info) })
		}
	case StateClosedByPeer, StateProblemDetectedLocally:
		info := ms.infoLocked(s)
		hc.sess, hc.svc = nil, nil
		hc.handle = InvalidConn
		s.hc = nil
		// The connection is done with: it says goodbye (FinWait) and
		// leaves the table, as GNS's session unlinks and closes it.
		hc.c.Close(now, 0, "", false)
		if !s.accepted {
			// A request the application never took: it just goes.
			ms.forgetLocked(s)
			return
		}
		if hc.state == StateClosedByPeer && (info.EndReason == EndSessionClosed || info.EndReason == EndIdleTimeout) {
			// The peer closed the session ("closed by peer" is no
			// failure in UDP-style messaging): the next send makes a
			// new one.
			ms.forgetLocked(s)
			if cb := ms.h.cfg.OnSessionClosedByPeer; cb != nil {
				ms.h.postLocked(func() { cb(info) })
			}
			return
		}
		if ms.endedIdleLocked(now, s, hc, info) {
			return
		}
		s.failed = true
		s.info = info
		if cb := ms.h.cfg.OnSessionFailed; cb != nil {
			ms.h.postLocked(func() { cb(info) })
		}
	}
}

// freeLocked closes s's connection with reason and forgets s and its unread
// messages.
// mu is held and s's connection's lock is not.
func (ms *Messages) freeLocked(now time.Time, s *session, reason EndReason, debug string) {
	if hc := s.hc; hc != nil {
		lockConn(hc)
		hc.sess, hc.svc = nil, nil
		hc.handle = InvalidConn
		hc.c.Close(now, int(reason), debug, false)
		ms.h.pollLocked(now, hc)
		unlockConn(hc)
		s.hc = nil
	}
	if c := ms.last.Load(); c != nil && c.s == s {
		ms.last.Store(nil) // let the connection go
	}
	ms.chMu.Lock()
	for ch := range s.open {
		ms.dropChLocked(s, ch)
	}
	ms.chMu.Unlock()
	ms.forgetLocked(s)
}

// forgetLocked removes s from the session table.
func (ms *Messages) forgetLocked(s *session) {
	if ms.sessions[s.peer] == s {
		delete(ms.sessions, s.peer)
	}
	if s.alias.IsValid() && ms.sessions[s.alias] == s {
		delete(ms.sessions, s.alias)
	}
}

// dropChLocked releases the unread messages from s's peer on channel ch;
// chMu is held.
func (ms *Messages) dropChLocked(s *session, ch int) {
	q := ms.channels[ch]
	if q == nil {
		return
	}
	gone, counted := q.filter(func(m *Message) bool {
		return m.Identity != s.peer && (!s.alias.IsValid() || m.Identity != s.alias)
	})
	for i, m := range gone {
		if counted[i] && m.conn != nil {
			m.conn.queued.Add(-1)
		}
		m.Release()
	}
}

// scheduleLocked notes that s needs a tick by its next deadline.
func (ms *Messages) scheduleLocked(now time.Time, s *session) {
	w := ms.deadline(s)
	if ms.next.IsZero() || w.Before(ms.next) {
		ms.next = w
		signal(ms.h.timerKick)
	}
}

// deadline is when s next needs attention: its idle timeout, or the repeat
// of its pending request.
func (ms *Messages) deadline(s *session) time.Time {
	w := s.lastUse().Add(ms.h.cfg.SessionIdleTimeout)
	if !s.requestAt.IsZero() && s.requestAt.Before(w) {
		w = s.requestAt
	}
	return w
}

// tickLocked re-posts pending requests and closes idle sessions; it returns
// when it next needs to run (zero: no session).
func (ms *Messages) tickLocked(now time.Time) time.Time {
	if ms.next.IsZero() || now.Before(ms.next) {
		return ms.next
	}
	var next time.Time
	for _, s := range ms.sessions {
		if !s.requestAt.IsZero() && !now.Before(s.requestAt) && s.hc != nil && s.hc.state == StateConnecting {
			ms.postRequestLocked(now, s)
		}
		if !now.Before(s.lastUse().Add(ms.h.cfg.SessionIdleTimeout)) {
			idle := s.hc == nil
			if !idle {
				// Nothing in flight either way, and nothing received
				// waits for the application: a receiver that stops
				// reading keeps its session.
				lockConn(s.hc)
				st := s.hc.c.Stats(now)
				unlockConn(s.hc)
				idle = st.PendingReliable+st.SentUnackedReliable+st.ReceiveBufferedBytes+st.ReceiveQueue == 0 && s.hc.queued.Load() == 0
			}
			if idle {
				// Idle: closed silently, as GNS does.
				ms.freeLocked(now, s, EndIdleTimeout, "Session Idle Timeout")
				continue
			}
			s.used(now.Add(-ms.h.cfg.SessionIdleTimeout + time.Second))
		}
		if w := ms.deadline(s); next.IsZero() || w.Before(next) {
			next = w
		}
	}
	ms.next = next
	return next
}

// ReceiveMessagesOnChannel returns up to maxMessages received on channel,
// oldest first, without blocking (nil when there are none). Reliable
// messages from one peer on one channel come exactly once and in order.
// Release each Message when done with it.
func (ms *Messages) ReceiveMessagesOnChannel(channel, maxMessages int) []*Message {
	if maxMessages <= 0 {
		return nil
	}
	ms.chMu.Lock()
	q := ms.channels[channel]
	ms.chMu.Unlock()
	if q == nil {
		return nil
	}
	var runs tookRuns
	out, _ := q.take(maxMessages, &runs)
	ms.h.took(&runs)
	return out
}

// Receive waits for the next message on channel: the blocking form Go
// servers want. It returns ctx's error when ctx ends first, and
// ErrHostClosed when the Host closes.
func (ms *Messages) Receive(ctx context.Context, channel int) (*Message, error) {
	q := ms.channel(channel)
	var m *Message
	if err := ms.h.await(ctx, q, func() bool {
		var runs tookRuns
		m, _ = q.take1(&runs)
		ms.h.took(&runs)
		return m != nil
	}); err != nil {
		return nil, err
	}
	return m, nil
}

// ReceiveBatch waits until messages arrived on channel, then returns up to
// max of them (in arrival order), like ReceiveMessagesOnChannel but
// blocking: a server that wants to handle what arrived together takes it
// in one call. It returns ctx's error when ctx ends first and
// ErrHostClosed when the Host closes. The slice is the caller's to keep.
func (ms *Messages) ReceiveBatch(ctx context.Context, channel, max int) ([]*Message, error) {
	if max <= 0 {
		return nil, fmt.Errorf("netmsg: receive: max %d: %w", max, ResultInvalidParam)
	}
	q := ms.channel(channel)
	var out []*Message
	if err := ms.h.await(ctx, q, func() bool {
		var runs tookRuns
		out, _ = q.take(max, &runs)
		ms.h.took(&runs)
		return len(out) > 0
	}); err != nil {
		return nil, err
	}
	return out, nil
}

// AcceptSessionWithUser accepts a pending session request from peer
// (GNS's AcceptSessionWithUser). It returns false if there is no session
// with peer, pending or not; true for a pending one it accepted and for an
// active one.
func (ms *Messages) AcceptSessionWithUser(peer Identity) bool {
	h := ms.h
	h.mu.Lock()
	if ws := ms.web[peer]; ws != nil {
		defer h.mu.Unlock()
		if ws.failed {
			return false
		}
		ms.acceptWebLocked(h.cfg.Now(), ws)
		return true
	}
	s := ms.sessions[peer]
	if s == nil || s.failed || s.hc == nil {
		h.mu.Unlock()
		return false
	}
	if !s.accepted {
		now := h.cfg.Now()
		lockConn(s.hc)
		if err := s.hc.c.Accept(now); err != nil {
			unlockConn(s.hc)
			h.mu.Unlock()
			return false
		}
		s.accepted, s.requestAt = true, time.Time{}
		s.used(now)
		h.pollLocked(now, s.hc)
		unlockConn(s.hc)
	}
	h.unlockFlush()
	return true
}

// CloseSessionWithUser closes the session with peer at once, freeing
// everything it holds, its unread messages included (GNS's
// CloseSessionWithUser; the peer sees end reason 1001). It returns false if
// there was no session.
func (ms *Messages) CloseSessionWithUser(peer Identity) bool {
	h := ms.h
	h.mu.Lock()
	if ws := ms.web[peer]; ws != nil {
		ms.freeWebLocked(h.cfg.Now(), ws, EndSessionClosed, "Session closed")
		h.mu.Unlock()
		return true
	}
	s := ms.sessions[peer]
	if s == nil {
		h.mu.Unlock()
		return false
	}
	ms.freeLocked(h.cfg.Now(), s, EndSessionClosed, "Session closed")
	h.unlockFlush()
	return true
}

// CloseChannelWithUser stops talking to peer on channel: its unread
// messages there are dropped, and when it was the last channel in use with
// peer the session closes (GNS's CloseChannelWithUser). It returns false
// if there is no session with peer.
func (ms *Messages) CloseChannelWithUser(peer Identity, channel int) bool {
	h := ms.h
	h.mu.Lock()
	if ws := ms.web[peer]; ws != nil {
		ms.closeWebChannelLocked(ws, channel)
		h.mu.Unlock()
		return true
	}
	s := ms.sessions[peer]
	if s == nil {
		h.mu.Unlock()
		return false
	}
	ms.last.Store(nil) // the next send on channel opens it again
	ms.chMu.Lock()
	ms.dropChLocked(s, channel)
	delete(s.open, channel)
	last := len(s.open) == 0
	ms.chMu.Unlock()
	if last {
		ms.freeLocked(h.cfg.Now(), s, EndSessionClosed, "Session closed")
	}
	h.unlockFlush()
	return true
}

// GetSessionConnectionInfo returns the state of the session with peer, its
// connection info and its real-time status (GNS's
// GetSessionConnectionInfo). The state is StateNone when there is no
// session. A failed session keeps reporting its end reason until it is
// closed or restarted.
func (ms *Messages) GetSessionConnectionInfo(peer Identity) (ConnectionState, ConnectionInfo, RealTimeStatus) {
	h := ms.h
	h.mu.Lock()
	defer h.mu.Unlock()
	if ws := ms.web[peer]; ws != nil {
		info := ws.infoLocked()
		return info.State, info, ws.statusLocked()
	}
	s := ms.sessions[peer]
	if s == nil {
		return StateNone, ConnectionInfo{}, RealTimeStatus{}
	}
	if s.hc == nil {
		return s.info.State, s.info, RealTimeStatus{State: s.info.State, Ping: -1}
	}
	lockConn(s.hc)
	defer unlockConn(s.hc)
	info := ms.infoLocked(s)
	st := h.statusLocked(s.hc)
	return info.State, info, st
}

// infoLocked is the connection info of s's connection, which names the
// session's peer even before the peer's certificate was seen.
func (ms *Messages) infoLocked(s *session) ConnectionInfo {
	info := ms.h.infoLocked(s.hc)
	if !info.Identity.IsValid() {
		info.Identity = s.peer
	}
	return info
}
