package snp

import (
	"math"
	"time"

	"github.com/netmsg-go/netmsg/internal/wire"
)

const never = math.MaxInt64 // a time (µs) that never comes

// Conn is the SNP engine of one connection: both the sending and the
// receiving half. It is a pure state machine: every method takes the current
// time, none blocks, starts goroutines, reads a clock or does I/O.
//
// A Conn is not safe for concurrent use; its owner (the connection layer)
// calls it from one goroutine or under one lock.
//
// The owner's loop is:
//
//	SendMessage / Flush       when the application sends
//	ReceivePacket             for each decrypted data payload from the peer
//	Receive                   to take the messages that completed
//	Poll (until !ok)          to get packets to send, then encrypt and send them
//	NextWake                  to learn when to call Poll again
type Conn struct {
	cfg  Config
	base time.Time // time origin; internal times are µs since base

	// Sender.
	lanes        []sendLane
	prioClasses  []int // distinct lane priorities, ascending
	nextPktNum   int64
	inflight     pktRing
	minWait      int64 // stop-waiting value: the peer need not ack packets below it
	swSent       int64 // the last stop-waiting value sent
	swAge        int   // packets since the last stop-waiting frame
	pendingNew   int   // queued bytes not yet sent once (unreliable + reliable stream)
	nagleAt      int64 // time the queued data may go even if it does not fill a packet
	probes       uint  // tail-loss probes sent since an ack last advanced
	relInFlight  int   // packets in flight that carry reliable data
	lastRelSent  int64 // when the last packet carrying reliable data went
	peerAckDelay int64 // see notePeerAckDelay (µs)
	lossAt       int64 // when a packet was last nacked or probed for
	// lossRate is a moving average (gain 1/lossRateGain) of the fraction
	// of data packets lost, over those whose fate is known.
	lossRate float64
	// tailCopies: the retransmissions queued are a tail's copy (see
	// Conn.copyTail), and this many copies are still to go, counting it.
	tailCopies int
	tailSeg    relSeg // the first segment of the tail being copied
	// ackDelaySample is the ack delay the packet being received reported
	// for a packet of ours with reliable data (-1: none).
	ackDelaySample int64
	pace           pacer
	rtt            rttEstimator
	cc             congestion
	curSegs        []relSeg // segments of the packet being built

	// Receiver.
	rlanes         []recvLane
	rec            pktRecord
	ackDue         int64 // time an ack must be sent by
	ackDirty       bool  // packets were received since the last ack we sent
	ackElicit      int   // reliable-carrying packets since the last ack we sent
	ackElicitUnrel int   // packets of unreliable data only since the last ack we sent
	relFresh       bool  // the packet being received brought reliable data we lacked
	relFreshAt     int64 // when a packet last brought reliable data we lacked
	lastAckAt      int64 // when the last ack frame went
	// Quick acks (see quickAckAfter): relOwedSince is when the oldest
	// reliable-carrying packet not yet acked arrived, relRecvAt when the
	// last reliable-carrying packet did, aloneAcks how many acks of
	// reliable data in a row waited their whole delay and went without
	// data, quickAckAt when the last quick ack went.
	relOwedSince int64
	relRecvAt    int64
	aloneAcks    int
	quickAckAt   int64
	forceAt      int64 // QueueAck: a packet must go out by then, even an empty one
	seenMax      int64 // highest packet number decoded, discarded ones included
	inbox        msgQueue
	bufferedRel  int // reliable bytes buffered in receive lanes
	laneArr      int // bytes of the receive lanes' arrays (growLane)
	useg         []unrelSeg
	arena        *arena     // current arena for small received messages
	arenaSlot    *ArenaSlot // the caller's arena, used instead of arena while set (UseArena)

	dec    wire.Decoder
	enc    wire.Encoder
	frame  wire.Frame
	blocks []wire.AckBlock

	st counters
	m  meter
}

// New returns an engine for a connection that starts at now. It returns an
// error only for an invalid configuration.
func New(cfg Config, now time.Time) (*Conn, error) {
	cfg.Lanes = append([]Lane(nil), cfg.Lanes...)
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	c := &Conn{
		cfg:        cfg,
		base:       now,
		nextPktNum: cfg.FirstPktNum,
		minWait:    cfg.FirstPktNum,
		swSent:     cfg.FirstPktNum,
		nagleAt:    never,
		ackDue:     never,
		forceAt:    never,
		lossAt:     -never / 2,
		relFreshAt: -never / 2,
		lastAckAt:  -never / 2,
		relRecvAt:  -never / 2,
		quickAckAt: -never / 2,
	}
	c.lanes = make([]sendLane, len(cfg.Lanes))
	for i, l := range cfg.Lanes {
		c.lanes[i].init(l)
		c.addPrio(l.Priority)
	}
	c.rec.init(cfg.PeerFirstPktNum)
	c.rtt.init()
	c.pace.init(cfg, 0)
	c.dec.PeerVersion = cfg.PeerVersion
	c.dec.Resolver = (*resolver)(c)
	c.enc.PeerVersion = cfg.PeerVersion
	return c, nil
}

func (c *Conn) addPrio(p int) {
	for i, q := range c.prioClasses {
		if q == p {
			return
		}
		if q > p {
			c.prioClasses = append(c.prioClasses, 0)
			copy(c.prioClasses[i+1:], c.prioClasses[i:])
			c.prioClasses[i] = p
			return
		}
	}
	c.prioClasses = append(c.prioClasses, p)
}

// us converts now to µs since the engine's time origin.
func (c *Conn) us(now time.Time) int64 { return int64(now.Sub(c.base) / time.Microsecond) }

// at converts µs since the origin back to a time.
func (c *Conn) at(t int64) time.Time { return c.base.Add(time.Duration(t) * time.Microsecond) }

// NumLanes returns the number of send lanes.
func (c *Conn) NumLanes() int { return len(c.lanes) }

// SendMessage queues a copy of data on lane (the caller may reuse data at
// once) and returns the message number it was given. Message numbers count
// per lane from 1 over reliable and unreliable messages alike.
//
// It fails with ErrBadLane, ErrMessageTooBig (above Config.MaxMessageSize),
// ErrSendBufferFull (the queued-but-unsent bytes would exceed
// Config.SendBufferSize; a message always fits in an empty queue, so a
// message of MaxMessageSize can be sent whatever the buffer's size) or, for a NoDelay unreliable message that could not
// go out within about 200 ms, ErrIgnored. An unreliable message larger than
// 16500 bytes is sent reliably, as GNS does.
func (c *Conn) SendMessage(now time.Time, lane int, data []byte, flags SendFlags) (int64, error) {
	return c.SendMessagePrefixed(now, lane, nil, data, flags)
}

// SendMessagePrefixed is SendMessage for the message prefix followed by
// data, without the caller joining them first (the Messages layer puts
// GNS's 5-byte channel header before every payload this way, so each
// message is copied once, into the send queue).
func (c *Conn) SendMessagePrefixed(now time.Time, lane int, prefix, data []byte, flags SendFlags) (int64, error) {
	if lane < 0 || lane >= len(c.lanes) {
		return 0, ErrBadLane
	}
	size := len(prefix) + len(data)
	if size > c.cfg.MaxMessageSize {
		return 0, ErrMessageTooBig
	}
	if pending := c.pendingBytes(); pending > 0 && pending+size > c.cfg.SendBufferSize && flags&Accepted == 0 {
		return 0, ErrSendBufferFull
	}
	t := c.us(now)
	reliable := flags&Reliable != 0 || size > maxUnreliableMsgSizeSend
	if !reliable && flags&NoDelay != 0 {
		c.pace.accumulate(t)
		if c.queueTime(size) > int64(noDelayLimit/time.Microsecond) {
			c.st.unreliableDroppedSend++
			return 0, ErrIgnored
		}
	}
	l := &c.lanes[lane]
	if l.pendingNew() == 0 {
		l.activate(c)
	}
	l.lastMsgNum++
	num := l.lastMsgNum
	if !reliable && num-l.lastRelMsgNum >= wire.MaxMsgNumDelta {
		// Reliable and unreliable messages share the numbering, and a
		// receiver (GNS, and we) closes the connection on a reliable
		// header whose number jumps by more than wire.MaxMsgNumDelta. So
		// one message in a million of an unreliable stream goes
		// reliably, which keeps the next reliable message's jump small,
		// as GNS sends a large unreliable message reliably.
		reliable = true
	}
	var n int
	if reliable {
		n = l.queueReliable(num, prefix, data)
		c.st.msgsSentRel++
	} else {
		n = l.queueUnreliable(num, prefix, data)
		c.st.msgsSentUnrel++
	}
	if c.pendingNew == 0 {
		c.nagleAt = t + int64(c.cfg.NagleTime/time.Microsecond)
	}
	c.pendingNew += n
	if flags&NoNagle != 0 {
		c.nagleAt = t
	}
	return num, nil
}

// Flush makes every queued message go out as soon as pacing allows, as if
// its Nagle timer had expired (GNS FlushMessagesOnConnection).
func (c *Conn) Flush(now time.Time) {
	if c.pendingNew > 0 {
		c.nagleAt = min(c.nagleAt, c.us(now))
	}
}

// pendingBytes is what counts against SendBufferSize: bytes queued and not
// yet sent, including reliable data queued for retransmission.
// SendRoom reports whether the queued-but-unsent bytes fill less than
// half the send buffer: a sender that found it full may try again.
func (c *Conn) SendRoom() bool { return 2*c.pendingBytes() < c.cfg.SendBufferSize }

func (c *Conn) pendingBytes() int {
	n := c.pendingNew
	for i := range c.lanes {
		n += int(c.lanes[i].retxBytes)
	}
	return n
}

// queueTime estimates how long a message of n bytes queued now would wait
// before its last byte is sent, in µs.
func (c *Conn) queueTime(n int) int64 {
	rate := c.pace.rate
	if rate <= 0 {
		return 0
	}
	bytes := float64(c.pendingBytes()+n) - c.pace.tokens
	if bytes <= 0 {
		return 0
	}
	return int64(bytes / rate * 1e6)
}
