package snp

import (
	"fmt"
	"time"
)

// SendFlags select how a message is sent. The bits have GNS's values
// (k_nSteamNetworkingSend_*), so the root package converts by a plain cast.
type SendFlags int

// Send flags (GNS steamnetworkingtypes.h).
const (
	// Unreliable is the zero value: the message may be lost, and is
	// delivered as soon as all of it arrives.
	Unreliable SendFlags = 0
	// NoNagle sends the message, and every message already waiting on the
	// Nagle timer, as soon as pacing allows.
	NoNagle SendFlags = 1
	// NoDelay drops an unreliable message (SendMessage returns ErrIgnored)
	// rather than queue it when it could not go out within about 200 ms.
	// GNS ignores it on reliable messages; so do we.
	NoDelay SendFlags = 4
	// Reliable messages arrive exactly once and in order within their lane.
	Reliable SendFlags = 8
	// Accepted (ours, not GNS's) marks a message its owner accepted
	// already, before the engine ran (a connection queues what is sent
	// before its handshake): the send buffer's limit does not apply, as
	// refusing it now would lose it.
	Accepted SendFlags = 1 << 16
)

// MaxServiceHeader is the room a service above the connection (the Messages
// layer's 5-byte header) may add to a message of MaxMessageSize bytes of
// payload: MaxMessageSize may be set up to MaxMessageSize+MaxServiceHeader.
const MaxServiceHeader = 16

// Protocol constants, from GNS (steamnetworkingsockets_snp.h,
// steamnetworkingsockets_internal.h, steamnetworkingtypes.h).
const (
	// MaxMessageSize is k_cbMaxSteamNetworkingSocketsMessageSizeSend.
	MaxMessageSize = 512 * 1024
	// MaxLanes is STEAMNETWORKINGSOCKETS_MAX_LANES. A peer may select lane
	// numbers 0 through MaxLanes (GNS rejects only larger ones); at most
	// MaxLanes send lanes may be configured.
	MaxLanes = 255
	// maxPacketGaps is k_nMaxPacketGaps: the receiver tracks at most this
	// many holes in the packet numbers it received.
	maxPacketGaps = 62
	// maxAckLag: no ack is sent whose latest packet number is this far
	// behind the newest packet number decoded, a quarter of the 16-bit
	// range the ack carries (where GNS warns that a peer comes close to
	// the boundary).
	maxAckLag = 1 << 14
	// maxReliableGapsExtend: reliable data that would open a new hole past
	// the end of a lane's stream is discarded when the lane already has
	// this many holes (GNS's k_nMaxReliableStreamGaps_Extend is 30, which
	// at 10% loss discarded data whenever a repair took more than about
	// 300 packets; the buffered bytes stay bounded by maxBufferedRel).
	// The sender's window (relWindowFactor x SendBufferSize, 2 MiB by
	// default: about 1,750 packets of 1200 bytes) holds about 175 holes
	// at 10% loss: a bound of 128 made a loopback receiver discard 1.2%
	// of the packets at W6a, each sent again.
	maxReliableGapsExtend = 512
	// maxReliableGapsFragment: data that would split a hole is discarded
	// when the lane has this many (GNS's k_nMaxReliableStreamGaps_Fragment
	// is 20).
	maxReliableGapsFragment = 400
	// maxBufferedUnreliableSegments is k_nMaxBufferedUnreliableSegments.
	maxBufferedUnreliableSegments = 20
	// maxUnreliableMsgSizeSend is k_cbMaxUnreliableMsgSizeSend: a larger
	// unreliable message is sent reliably instead.
	maxUnreliableMsgSizeSend = 15 * 1100
	// maxSegmentData is the largest size the explicit segment size field
	// can hold (0x4ff, SNP_WIRE_FORMAT.md).
	maxSegmentData = 0x4ff
	// maxDataAckDelay is k_usecMaxDataAckDelay: reliable data is acked
	// within this time.
	maxDataAckDelay = 50 * time.Millisecond
	// nackFlush is k_usecNackFlush: a hole that may be reordering is not
	// reported for this long.
	nackFlush = 3 * time.Millisecond
	// maxBufferedRel bounds the reliable data a receiver buffers ahead
	// of the stream's first hole, all lanes together. GNS bounds it
	// apart from RecvBufferSize (which bounds only the messages waiting
	// for the application), by k_cbMaxBufferedReceiveReliableData, twice
	// its largest message plus 64 KiB; ours covers the default sender's
	// whole window (relWindowFactor x defaultSendBufferSize) and a segment, so that
	// data sent behind a lost packet is kept rather than discarded and
	// sent again (at 10% loss a receiver bounded by RecvBufferSize's
	// 1 MiB discarded whatever a repair left beyond it).
	maxBufferedRel = relWindowFactor*defaultSendBufferSize + 64*1024
	// defaultSendBufferSize is Config.SendBufferSize's default (GNS
	// k_ESteamNetworkingConfig_SendBufferSize).
	defaultSendBufferSize = 512 * 1024
	// relWindowFactor: reliable data sent and not yet acked may span this
	// many times SendBufferSize (ours; see Conn.relWindowOpen).
	relWindowFactor = 4
	// nackFlushMin is the shortest hold of a hole (ours; see Conn.nackFlush).
	nackFlushMin = 250 * time.Microsecond
	// reorderMemory: holes are held back as possible reordering only
	// while a packet arrived out of order within this time (ours; see
	// Conn.nackFlush).
	reorderMemory = 10 * time.Second
	// noDelayLimit is the queue time above which a NoDelay message is
	// dropped ("the next ~200ms or so", steamnetworkingtypes.h).
	noDelayLimit = 200 * time.Millisecond
	// rtoSlack is added to 3 x smoothed RTT to form the retransmission
	// timeout (GNS CalcSenderRetryTimeout: k_usecMaxDataAckDelay + 10 ms).
	rtoSlack = maxDataAckDelay + 10*time.Millisecond
	// rtoNoRTT is the retransmission timeout before any RTT sample.
	rtoNoRTT = time.Second
	// ptoMin and ptoVarMin bound the tail-loss probe timeout and its
	// allowance for RTT variation from below (ours; see rttEstimator.pto):
	// the allowance covers the 32 µs steps of the ack delay field twice.
	// GNS has no such probe: it re-sends after CalcSenderRetryTimeout
	// (rtoSlack), 60 ms on loopback. The floor only matters where the
	// round trip is far below it (loopback, a LAN) and the path lost a
	// packet within lossMemory. 150 µs is above tailCopyAckGrace, so
	// that a probe is never taken for a tail's copy, and above most
	// loopback round trips between two processes (p99 60-110 µs on the
	// AMD VM, receivers spinning; 240 µs on the Intel one). It is below
	// nackFlushMin: a probe may overtake the nack of a merely reordered
	// packet, which costs one small duplicate. At 10% loss each way a
	// ping-pong's p99 is a round that lost both copies of a tail and
	// waited for the probe: with a 250 µs floor (nackFlushMin) W6b's p99
	// was 3.6-4.3x W4's, with 150 µs 2.6-4.0x; a 1 ms floor made a round
	// that lost two packets take 2 ms.
	ptoMin    = 150 * time.Microsecond
	ptoVarMin = 64 * time.Microsecond
	// lossMemory: the tail-loss probe waits only the probe timeout while
	// a packet was lost within this time, else the retransmission
	// timeout (ours; see Conn.probeTimeout).
	lossMemory = 10 * time.Second
	// tailCopyLoss and tailCopyMax: a tail of at most tailCopyMax
	// reliable bytes is sent twice while lossRate is at least
	// tailCopyLoss (ours; see Conn.copyTail). lossRateGain is the
	// moving average's gain, 1/32: about the last 32 data packets.
	tailCopyLoss = 0.02
	// tailCopy2Loss: from this loss rate a tail is sent three times.
	tailCopy2Loss = 0.05
	tailCopyMax   = 512
	lossRateGain  = 32
	// tailCopyAckGrace: reliable data received again within this time
	// of packets that brought new reliable data is taken for a tail's
	// copy, not a repair, and is not acked at once (ours; see
	// ReceivePacket). A probe comes at least ptoMin after the data it
	// repeats went.
	tailCopyAckGrace = 100 * time.Microsecond
	// maxProbeInterval caps the tail-loss probe's backoff.
	maxProbeInterval = time.Second
	// EndReasonMiscInternal is k_ESteamNetConnectionEnd_Misc_InternalError,
	// the end reason GNS closes with on a protocol violation.
	EndReasonMiscInternal = 5002
)

// Tuning constants of our own.
const (
	// ackEveryPackets: the receiver acks at once after this many packets
	// carrying reliable data, rather than waiting up to maxDataAckDelay, so
	// a one-way bulk sender can release its buffer quickly.
	ackEveryPackets = 8
	// quickAckAfter: once this many acks of reliable data in a row
	// waited their whole delay (maxDataAckDelay) and went without data,
	// reliable data that arrives at least quickAckGap after the last is
	// acked at once: nothing would carry the ack, and acking later costs
	// the receiver a second visit to the connection (a timer wake-up, and
	// on a server with 10,000 sessions, its state fetched from memory
	// again). Data sent within the delay after a quick ack, which could
	// have carried it, ends this until acks again go alone.
	quickAckAfter = 2
	quickAckGap   = 5 * time.Millisecond
	// ackMinInterval: an ack owed for ackEveryPackets packets or a new
	// hole waits until this long after the last ack (ours; see
	// Conn.ackPaced).
	ackMinInterval = 100 * time.Microsecond
	// ackEveryUnreliable: the receiver acks at once after this many
	// packets carrying data, reliable or not. GNS acks packets of
	// unreliable data only within maxAckStatsDelay (250 ms), which leaves
	// an unreliable stream's congestion control without feedback: its
	// rate would double only every 250 ms from SendRateMin.
	ackEveryUnreliable = 32
	// maxInFlightPackets bounds the sender's record of unacked packets;
	// new data waits while it is full.
	maxInFlightPackets = 4096
	// unreliableExpiry: a partly received unreliable message is dropped
	// when its newest segment is older than this.
	unreliableExpiry = time.Second
	// replayWindow is how many packet numbers below the highest received
	// one are checked for duplicates; older packets are dropped.
	replayWindow = 256
	// stopWaitingRepeat: a stop-waiting frame is repeated at least every
	// this many packets even if its value did not change.
	stopWaitingRepeat = 16
)

// Lane configures one send lane (GNS ConfigureConnectionLanes).
type Lane struct {
	// Priority: lanes with a lower value are served first; a lane is only
	// served when every lane of a lower value has nothing to send.
	Priority int
	// Weight shares the rate between lanes of equal priority. 0 means 1.
	Weight uint16
}

// Config configures a Conn. Its zero value works: New fills every zero
// field with the default written beside it.
type Config struct {
	// MaxPayload is the largest SNP payload of a packet, in bytes: the MTU
	// budget left after the packet header and the encryption tag. Default
	// 1200. At most 1279 + 64 (larger budgets are clamped).
	MaxPayload int
	// NagleTime is how long a message without NoNagle may wait for more
	// data to share its packet. Default 5 ms. Negative disables Nagle.
	NagleTime time.Duration
	// SendBufferSize bounds the bytes queued but not yet sent (GNS
	// SendBufferSize). Default 512 KiB.
	SendBufferSize int
	// SendRateMin and SendRateMax bound the send rate in bytes/s. Equal
	// values fix the rate, as GNS does; otherwise the congestion controller
	// moves it between them. Defaults 256 KiB/s and 64 MiB/s.
	SendRateMin int
	SendRateMax int
	// RecvBufferSize bounds the bytes of messages received but not yet
	// taken by Receive. Default 1 MiB. Reliable data buffered behind a
	// hole is bounded apart, by maxBufferedRel (2 MiB + 64 KiB), as GNS
	// bounds it apart from its RecvBufferSize.
	RecvBufferSize int
	// RecvBufferMessages bounds the messages received but not yet taken.
	// Default 1000.
	RecvBufferMessages int
	// RecvMaxMessageSize is the largest message accepted from the peer; a
	// larger reliable message header is a protocol error. Default 512 KiB.
	RecvMaxMessageSize int
	// MaxMessageSize is the largest message SendMessage accepts. Default
	// and maximum 512 KiB.
	MaxMessageSize int
	// Lanes configures the send lanes. Default: one lane.
	Lanes []Lane
	// PeerVersion is the peer's protocol version (for the ack encoding
	// rule of SNP_WIRE_FORMAT.md). Default 13.
	PeerVersion int
	// FirstPktNum is the number of the first packet this side sends.
	// Default 1. (GNS counts the handshake as packet 1 from protocol
	// version 10; the connection layer then passes 2.)
	FirstPktNum int64
	// PeerFirstPktNum is the number of the first packet the peer sends.
	// Default 1.
	PeerFirstPktNum int64
}

func (c *Config) fill() error {
	if c.MaxPayload == 0 {
		c.MaxPayload = 1200
	}
	if c.MaxPayload < 64 {
		return fmt.Errorf("snp: MaxPayload %d below 64", c.MaxPayload)
	}
	if c.MaxPayload > maxSegmentData+64 {
		c.MaxPayload = maxSegmentData + 64
	}
	if c.NagleTime == 0 {
		c.NagleTime = 5 * time.Millisecond
	} else if c.NagleTime < 0 {
		c.NagleTime = 0
	}
	if c.SendBufferSize == 0 {
		c.SendBufferSize = defaultSendBufferSize
	}
	if c.SendRateMin == 0 {
		c.SendRateMin = 256 * 1024
	}
	if c.SendRateMax == 0 {
		c.SendRateMax = 64 * 1024 * 1024
	}
	if c.SendRateMin < 1024 {
		c.SendRateMin = 1024
	}
	if c.SendRateMax < c.SendRateMin {
		c.SendRateMax = c.SendRateMin
	}
	if c.RecvBufferSize == 0 {
		c.RecvBufferSize = 1024 * 1024
	}
	if c.RecvBufferMessages == 0 {
		c.RecvBufferMessages = 1000
	}
	if c.RecvMaxMessageSize == 0 {
		c.RecvMaxMessageSize = MaxMessageSize
	}
	if c.MaxMessageSize == 0 || c.MaxMessageSize > MaxMessageSize+MaxServiceHeader {
		c.MaxMessageSize = MaxMessageSize
	}
	if len(c.Lanes) == 0 {
		c.Lanes = []Lane{{}}
	}
	if len(c.Lanes) > MaxLanes {
		return fmt.Errorf("snp: %d lanes, at most %d", len(c.Lanes), MaxLanes)
	}
	if c.PeerVersion == 0 {
		c.PeerVersion = 13
	}
	if c.FirstPktNum == 0 {
		c.FirstPktNum = 1
	}
	if c.PeerFirstPktNum == 0 {
		c.PeerFirstPktNum = 1
	}
	if c.SendBufferSize < 0 || c.RecvBufferSize < 0 || c.RecvBufferMessages < 0 || c.RecvMaxMessageSize < 0 || c.FirstPktNum < 0 || c.PeerFirstPktNum < 0 {
		return fmt.Errorf("snp: negative configuration value")
	}
	return nil
}

// maxAckStatsDelay is k_usecMaxAckStatsDelay: packets carrying only
// unreliable data are acked within this time.
const maxAckStatsDelay = 250 * time.Millisecond
