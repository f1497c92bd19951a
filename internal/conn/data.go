package conn

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/internal/snp"
)

// ackQueuer is the engine method the connection layer needs to answer a
// peer's ack request, and to send a keepalive, when the engine has nothing
// else to send (GNS QueueEndToEndAck / SNP_SendPacket for a stats message):
// after QueueAck the engine's Poll returns a packet (carrying an ack, or
// empty) at once when immediate, else within 250 ms. snp.Conn does not
// have it yet; until it does, ack requests are answered only by packets
// the engine sends anyway, and keepalives ride only on such packets.
type ackQueuer interface {
	QueueAck(now time.Time, immediate bool)
}

// connected sets up the data path after a successful handshake and enters
// Connected (GNS RecvCryptoHandshake's packet numbering, then
// ConnectionState_Connected).
func (c *Conn) connected(now time.Time, peer *crypto.Peer, keys *crypto.SessionKeys) error {
	if peer == nil || keys == nil {
		return errors.New("conn: no verified handshake")
	}
	var err error
	if c.sendC, err = keys.SendCipher(); err != nil {
		return err
	}
	if c.recvC, err = keys.RecvCipher(); err != nil {
		return err
	}
	c.peerVersion = peer.Crypt.GetProtocolVersion()
	c.peerKey = peer.Cert.GetKeyData()
	cfg := c.snpConfig()
	cfg.PeerVersion = int(c.peerVersion)
	cfg.FirstPktNum, cfg.PeerFirstPktNum = 1, 1
	if c.peerVersion >= protoVersionHandshakePkt1 {
		// The handshake is packet 1 both ways.
		cfg.FirstPktNum, cfg.PeerFirstPktNum = 2, 2
		c.win.init(1)
	}
	if cfg.MaxPayload == 0 {
		cfg.MaxPayload = 1200
	}
	if c.lanesNeg > 1 && (c.own == nil || len(c.own.SNP.Lanes) < c.lanesNeg) {
		cfg.Lanes = make([]snp.Lane, c.lanesNeg) // equal priority and weight
	}
	if c.eng, err = snp.New(cfg, now); err != nil {
		return err
	}
	c.lastRecv = now
	c.pendingPeer, c.pendingKeys = nil, nil
	c.setState(now, StateConnected)
	for _, m := range c.pre {
		lane := m.lane
		if lane < 0 {
			lane = int(m.key % uint32(c.eng.NumLanes()))
		}
		// Accepted: the send buffer's limit was applied when the message
		// was queued (the engine's framing counts a few bytes more).
		if _, err := c.eng.SendMessage(now, lane, m.data, m.flags|snp.Accepted); err != nil {
			c.st.Discarded++
		}
	}
	c.dropPre()
	return nil
}

func (c *Conn) dropPre() {
	c.pre, c.preBytes = nil, 0
}

// UseArena makes the connection's engine, once it has one, copy small
// received messages into s's arena (s nil: its own) until the next
// UseArena; see snp.ArenaSlot.
func (c *Conn) UseArena(s *snp.ArenaSlot) {
	if c.eng != nil {
		c.eng.UseArena(s)
	}
}

// HandleDatagram processes a datagram the host routed to this connection.
// It returns an error for a datagram that was dropped (counted); the
// connection goes on unless an Event says otherwise. A data packet is
// decrypted in place: b's contents are unspecified after the call.
func (c *Conn) HandleDatagram(now time.Time, from netip.AddrPort, b []byte) error {
	c.st.DatagramsRecv++
	err := c.handle(now, from, b)
	if c.state == StateLinger && c.lingerDone(now) {
		c.setState(now, StateFinWait) // the last reliable data was acked
	}
	if err != nil {
		switch {
		case errors.Is(err, ErrMalformed):
			c.st.Malformed++
		case errors.Is(err, ErrWrongConnID):
			c.st.WrongConnID++
		case errors.Is(err, ErrReplay):
			c.st.Replayed++
		case errors.Is(err, ErrAuth):
			c.st.AuthFailed++
		case errors.Is(err, snp.ErrDiscarded):
			c.st.Discarded++
		case errors.Is(err, ErrHandshake), errors.Is(err, ErrWrongAddr):
		default:
			c.st.Unexpected++
		}
	}
	return err
}

func (c *Conn) handle(now time.Time, from netip.AddrPort, b []byte) error {
	if len(b) < minDatagram || len(b) > pb.MaxUDPPacketSize {
		return fmt.Errorf("%w: %d-byte datagram", ErrMalformed, len(b))
	}
	if err := c.fromPeer(from, b[0]&0x80 != 0); err != nil {
		return err
	}
	if c.state == StateDead || c.state == StateNone {
		return fmt.Errorf("%w: connection is dead", ErrUnexpected)
	}
	if b[0]&0x80 != 0 {
		return c.recvData(now, b)
	}
	id, m, err := pb.ParseControl(b)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	// Any well-formed datagram from the peer shows it is alive (GNS
	// TrackRecvPacket for non-data packets).
	c.heard(now)
	switch id {
	case pb.UDPMsgID_UDP_MSG_CHALLENGE_REPLY:
		return c.recvChallengeReply(now, m.(*pb.UDPChallengeReply))
	case pb.UDPMsgID_UDP_MSG_CONNECT_OK:
		return c.recvConnectOK(now, m.(*pb.UDPConnectOK))
	case pb.UDPMsgID_UDP_MSG_CONNECTION_CLOSED:
		return c.recvConnectionClosed(now, m.(*pb.UDPConnectionClosed))
	case pb.UDPMsgID_UDP_MSG_NO_CONNECTION:
		return c.recvNoConnection(now, m.(*pb.UDPNoConnection))
	case pb.UDPMsgID_UDP_MSG_CHALLENGE_REQUEST:
		return c.recvChallengeOrConnectRequest(now, m.(*pb.UDPChallengeRequest).GetConnectionId())
	case pb.UDPMsgID_UDP_MSG_CONNECT_REQUEST:
		return c.recvChallengeOrConnectRequest(now, m.(*pb.UDPConnectRequest).GetClientConnectionId())
	}
	return fmt.Errorf("%w: message 0x%02x", ErrUnexpected, b[0])
}

// recvData is GNS Received_Data, DecryptDataChunk and the hand-off to SNP.
func (c *Conn) recvData(now time.Time, b []byte) error {
	h, n, err := parseDataHeader(b)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if h.ToConnID != c.localID {
		return fmt.Errorf("%w: data for %d", ErrWrongConnID, h.ToConnID)
	}
	switch c.state {
	case StateClosedByPeer, StateFinWait, StateProblemDetectedLocally:
		c.queueClosedOrNoConnection(now)
		return nil
	case StateConnected, StateLinger:
	default:
		// Connecting: most likely our connect OK was lost, or the
		// application has not accepted yet. Ignore, as GNS does.
		return fmt.Errorf("%w: data before connected", ErrUnexpected)
	}
	var stats *pb.UDPStats
	if h.Stats != nil {
		stats = new(pb.UDPStats)
		if err := proto.Unmarshal(h.Stats, stats); err != nil {
			return fmt.Errorf("%w: inline stats: %v", ErrMalformed, err)
		}
	}
	pktNum, verdict := c.win.expand(h.WirePktNum)
	if verdict != pktOK {
		return fmt.Errorf("%w: packet %d", ErrReplay, pktNum)
	}
	plain, err := c.recvC.Open(b[n:], uint64(pktNum))
	if err != nil {
		return fmt.Errorf("%w: packet %d", ErrAuth, pktNum)
	}
	if gap := pktNum - c.win.max; gap > maxPktNumLurch {
		c.problem(now, EndMiscGeneric, fmt.Sprintf("Pkt number lurch by %d; %04x->%04x", gap, uint16(c.win.max), h.WirePktNum))
		return fmt.Errorf("%w: packet number lurch", ErrUnexpected)
	}
	c.win.mark(pktNum)
	c.proven = true
	c.heard(now)
	err = c.eng.ReceivePacket(now, pktNum, plain)
	if err != nil && !errors.Is(err, snp.ErrDiscarded) {
		var pe *snp.ProtocolError
		if errors.As(err, &pe) {
			c.problem(now, pe.EndReason(), pe.Reason)
		}
		return err
	}
	// A packet discarded by the engine (its data beyond the receive
	// limits while the application does not read) still has its ack
	// request answered, as GNS does: the peer must keep hearing from us.
	if stats != nil {
		// GNS RecvStats: an ack request (or stats, which imply one) is
		// answered with an ack, without delay when asked.
		if stats.GetFlags()&uint32(pb.UDPStats_ACK_REQUEST_E2E) != 0 || stats.Stats != nil {
			c.st.AckRequestsRecv++
			imm := stats.GetFlags()&uint32(pb.UDPStats_ACK_REQUEST_IMMEDIATE) != 0
			if q, ok := any(c.eng).(ackQueuer); ok {
				q.QueueAck(now, imm)
			}
		}
	}
	return err
}

// Poll appends the next datagram due now to dst[:0] and returns it, or
// ok=false when nothing is due. Call it until !ok.
func (c *Conn) Poll(now time.Time, dst []byte) (datagram []byte, ok bool) {
	c.think(now)
	if len(c.out) > 0 {
		d := append(dst[:0], c.out[0]...)
		c.out[0] = nil
		c.out = c.out[1:]
		c.st.DatagramsSent++
		return d, true
	}
	switch c.state {
	case StateConnected, StateLinger:
		return c.pollData(now, dst)
	}
	return nil, false
}

// pollData wraps the engine's next packet: header, inline stats when we
// want an ack, encryption.
func (c *Conn) pollData(now time.Time, dst []byte) ([]byte, bool) {
	flags, force := c.statsFlags(now)
	if force {
		if q, ok := any(c.eng).(ackQueuer); ok {
			q.QueueAck(now, true)
		}
	}
	h := dataHeader{ToConnID: c.remoteID}
	if flags != 0 {
		c.statsBuf, _ = proto.MarshalOptions{Deterministic: true}.MarshalAppend(c.statsBuf[:0], &pb.UDPStats{Flags: proto.Uint32(flags)})
		h.Stats = c.statsBuf
	}
	// The header's length does not depend on the packet number: the
	// engine writes the payload right after it, in dst, and the payload is
	// sealed in place (no payload buffer per connection).
	hd := appendDataHeader(dst[:0], &h)
	hdrLen := len(hd)
	payload, pktNum, ok := c.eng.Poll(now, hd[hdrLen:hdrLen])
	if !ok {
		return nil, false
	}
	if flags != 0 {
		c.sentAckRequest(now, flags)
	}
	h.WirePktNum = uint16(pktNum)
	d := appendDataHeader(hd[:0], &h)
	d = c.sendC.Seal(d, payload, uint64(pktNum))
	c.st.DatagramsSent++
	return d, true
}

// NextWake returns when Poll should next be called (zero: nothing
// scheduled; in the past: now).
func (c *Conn) NextWake() time.Time {
	if len(c.out) > 0 {
		return c.entered // in the past: call Poll now
	}
	var t time.Time
	at := func(x time.Time) {
		if !x.IsZero() && (t.IsZero() || x.Before(t)) {
			t = x
		}
	}
	switch c.state {
	case StateConnecting:
		at(c.entered.Add(c.timeoutInitial()))
		if !c.server && !c.p2p {
			at(c.lastAttempt.Add(connectRetryInterval))
		}
	case StateConnected, StateLinger:
		at(c.eng.NextWake())
		at(c.livenessWake())
	case StateFinWait:
		at(c.entered.Add(finWaitTimeout))
		if c.closedLeft > 0 {
			at(c.closedNext)
		}
	case StateProblemDetectedLocally:
		if c.closedLeft > 0 {
			at(c.closedNext)
		}
	}
	return t
}

// Send queues a message (see snp.Conn.SendMessage). Before the connection
// is connected, messages are queued and go out once it is.
func (c *Conn) Send(now time.Time, lane int, data []byte, flags snp.SendFlags) (int64, error) {
	switch c.state {
	case StateConnected:
		return c.eng.SendMessage(now, lane, data, flags)
	case StateConnecting, StateFindingRoute:
	default:
		return 0, ErrNotConnected
	}
	if lane < 0 || lane >= c.lanesConfigured() {
		return 0, snp.ErrBadLane
	}
	if len(data) > c.maxMsgSize() {
		return 0, snp.ErrMessageTooBig
	}
	if c.preBytes+len(data) > c.preLimit() {
		return 0, snp.ErrSendBufferFull
	}
	c.pre = append(c.pre, preMsg{lane: lane, data: append([]byte(nil), data...), flags: flags})
	c.preBytes += len(data)
	c.preNums[lane]++
	return c.preNums[lane], nil
}

// SendKeyed queues the message prefix+data (prefix may be nil; the two are
// not joined by the caller, so the message is copied once) on the lane
// that key maps to: key modulo the
// number of lanes the handshake agreed (see Config.OfferLanes), so every
// message of one key travels on one lane, in order, and keys on different
// lanes do not hold each other up. Before the connection is connected the
// lane is not known yet: the message waits, keyed, and is mapped when the
// connection is; it then returns message number 0.
// SendRoom reports whether a sender that found the send buffer full may
// try again: the unsent data fills less than half of it
// (snp.Conn.SendRoom; before the engine runs, the data queued until the
// connection is up), or the connection cannot send any more.
func (c *Conn) SendRoom() bool {
	switch {
	case c.eng != nil && c.state == StateConnected:
		return c.eng.SendRoom()
	case c.state == StateConnecting || c.state == StateFindingRoute:
		return 2*c.preBytes < c.preLimit()
	}
	return true
}

// preLimit bounds the bytes queued before the handshake: the send
// buffer's size (512 KiB when not set).
func (c *Conn) preLimit() int {
	if limit := c.snpConfig().SendBufferSize; limit > 0 {
		return limit
	}
	return 512 * 1024
}

func (c *Conn) SendKeyed(now time.Time, key uint32, prefix, data []byte, flags snp.SendFlags) (int64, error) {
	switch c.state {
	case StateConnected:
		return c.eng.SendMessagePrefixed(now, int(key%uint32(c.eng.NumLanes())), prefix, data, flags)
	case StateConnecting, StateFindingRoute:
	default:
		return 0, ErrNotConnected
	}
	size := len(prefix) + len(data)
	if size > c.maxMsgSize() {
		return 0, snp.ErrMessageTooBig
	}
	if c.preBytes+size > c.preLimit() {
		return 0, snp.ErrSendBufferFull
	}
	b := make([]byte, 0, size)
	b = append(append(b, prefix...), data...)
	c.pre = append(c.pre, preMsg{lane: -1, key: key, data: b, flags: flags})
	c.preBytes += size
	return 0, nil
}

// NumLanes returns the number of send lanes: those configured in
// Config.SNP, or those the lane extension agreed, once connected.
func (c *Conn) NumLanes() int {
	if c.eng != nil {
		return c.eng.NumLanes()
	}
	return c.lanesConfigured()
}

// Flush sends what is queued as soon as pacing allows.
func (c *Conn) Flush(now time.Time) {
	if c.eng != nil && (c.state == StateConnected || c.state == StateLinger) {
		c.eng.Flush(now)
	}
}

// RecvPending returns how many received messages wait in the engine to be
// taken with Receive, and the bytes that count against the engine's
// RecvBufferSize (see snp.Conn.PendingBytes).
func (c *Conn) RecvPending() (msgs, bytes int) {
	if c.eng == nil {
		return 0, 0
	}
	return c.eng.Pending(), c.eng.PendingBytes()
}

// Receive moves received messages into dst (see snp.Conn.Receive).
func (c *Conn) Receive(dst []snp.Message) int {
	if c.eng == nil {
		return 0
	}
	return c.eng.Receive(dst)
}
