package wire

// Protocol constants of GNS (ValveSoftware/GameNetworkingSockets,
// src/steamnetworkingsockets/clientlib/SNP_WIRE_FORMAT.md and
// steamnetworkingsockets_snp.cpp at e707b3a). These are facts of the wire
// format or limits GNS enforces when decoding; they are not tuning knobs.
const (
	// MaxLane is the highest lane a select-lane frame may name
	// (STEAMNETWORKINGSOCKETS_MAX_LANES = 255). GNS closes the connection on
	// a higher one.
	MaxLane = 255

	// MaxExplicitSegmentSize is the largest segment size the explicit size
	// form can carry: three bits in the lead byte over one size byte, with
	// the codes 101 and 110 reserved, so 0x4ff.
	MaxExplicitSegmentSize = 0x4ff

	// MaxAckBlocks is the largest number of blocks an ack frame can carry
	// (an explicit count byte).
	MaxAckBlocks = 255

	// maxAckCountUpper is the largest varint upper part (count >> 3) GNS
	// accepts in an ack block's ack or nack count; above it GNS closes the
	// connection ("Ack count ... is crazy").
	maxAckCountUpper = 100000

	// MaxMsgNumDelta is the largest explicit message-number delta GNS accepts
	// in a reliable message header ("Reliable message number lurch").
	MaxMsgNumDelta = 1000000

	// maxMsgSizeUpper is the largest varint upper part (size >> 5) GNS
	// accepts in a reliable message header: the size must fit 32 bits.
	maxMsgSizeUpper = 0xffffffff >> 5
)

// Lead byte layouts (SNP_WIRE_FORMAT.md).
const (
	leadUnreliableMask = 0xc0 // 00emosss
	leadUnreliable     = 0x00
	leadReliableMask   = 0xe0 // 010mmsss
	leadReliable       = 0x40
	leadStopMask       = 0xfc // 100000ww
	leadStopWaiting    = 0x80
	leadAckMask        = 0xf0 // 1001wnnn
	leadAck            = 0x90
	leadLaneMask       = 0xf8 // 10001nnn
	leadSelectLane     = 0x88

	bitLast       = 0x20 // unreliable e: last segment of the message
	bitMsgNum     = 0x10 // unreliable m
	bitOffset     = 0x08 // unreliable o
	sizeMask      = 0x07 // sss
	sizeToEnd     = 0x07 // sss = 111: data runs to the end of the payload
	posMask       = 0x18 // reliable mm
	ackBitNarrow  = 0x08 // ack w: 1 = 16-bit latest, 0 = 32-bit
	ackCountMask  = 0x07 // ack nnn
	ackCountByte  = 0x07 // nnn = 111: an explicit count byte follows
	ackInlineMax  = 6    // ack nnn 000-110 are the block count
	laneInlineMax = 6    // select-lane nnn 000-110 mean lane nnn+1
	laneVarint    = 0x07 // nnn = 111: the lane follows as a varint

	blockAckExt  = 0x80 // ack block aaaa high bit: upper ack bits follow
	blockNackExt = 0x08 // ack block nnnn high bit: upper nack bits follow

	hdrReserved = 0x80 // reliable message header: reserved high bit
	hdrMsgNum   = 0x40 // reliable message header m: delta varint follows
	hdrSizeExt  = 0x20 // reliable message header: size upper bits follow
	hdrSizeLow  = 0x1f
)
