// Package wire encodes and decodes the SNP data payload of GameNetworkingSockets
// (GNS): the frames of SNP_WIRE_FORMAT.md (unreliable segment, reliable
// segment, stop waiting, ack, select lane) and the framing of messages inside
// the reliable stream.
//
// The package is pure: no I/O, no goroutines, no clock, standard library
// only. Truncated or malformed input is an error, never a panic. Decoding
// does not allocate: a decoded frame's Data aliases the payload it came from.
//
// THIS FILE IS THE CONTRACT between the codec and the engine (internal/snp).
// Signatures here are fixed; bodies and further helpers live in the other
// files of the package.
package wire

// FrameKind says which SNP frame a Frame holds.
type FrameKind uint8

// The frame kinds of SNP_WIRE_FORMAT.md.
const (
	KindUnreliable  FrameKind = iota + 1 // 00emosss: a segment of an unreliable message
	KindReliable                         // 010mmsss: a segment of a lane's reliable stream
	KindStopWaiting                      // 100000ww: stop acking packets below a number
	KindAck                              // 1001wnnn: acks and nacks, with a ping reply
	KindSelectLane                       // 10001nnn: later segments belong to another lane
)

// AckBlock is one run-length block of an ack frame. Blocks are ordered newest
// first: block 0 acks the NumAck packets ending at the frame's Latest
// (inclusive) and nacks the NumNack packets before those; block 1 continues
// below that, and so on.
type AckBlock struct {
	NumAck  uint64
	NumNack uint64
}

// AckDelayNone is the reserved ack delay field value meaning "no timing
// information" (SNP_WIRE_FORMAT.md).
const AckDelayNone = 0xffff

// AckDelayShift converts the ack delay field to microseconds: usec = field << 5
// (1 unit = 32 µs; GNS k_nAckDelayPrecisionShift).
const AckDelayShift = 5

// Frame is one decoded SNP frame. Only the fields of its Kind are set.
// Data and AckBlocks alias memory of the payload or of the Decoder and are
// valid until the Decoder's next call.
type Frame struct {
	Kind FrameKind
	Lead byte   // the first byte of the frame
	Lane uint32 // the lane segments belong to; for KindSelectLane the new lane

	// KindUnreliable.
	MsgNum int64 // resolved message number (> 0)
	Offset int64 // offset of Data within the message
	Last   bool  // this segment ends the message

	// KindReliable.
	StreamPos int64 // resolved absolute stream position of Data[0] (the first byte of a lane's stream is 1)

	// KindUnreliable and KindReliable.
	Data []byte

	// KindStopWaiting.
	MinPktNumToAck int64 // the sender will not need acks for packets below this

	// KindAck.
	AckLatest int64      // resolved latest received packet number
	AckDelay  uint16     // raw delay field, units of 32 µs; AckDelayNone for none
	AckBlocks []AckBlock // newest first
}

// Resolver supplies the receiver state the decoder needs to expand the
// truncated absolute fields of the first segment of a packet or lane context.
// An absolute field of N bits is expanded as GNS does: message numbers to the
// value nearest the reference with those low N bits (ties down); stream
// positions by GNS's forward-only rule, which is not quite "nearest" (see
// expandStreamPos in resolve.go).
type Resolver interface {
	// ReliableRef returns the reference stream position of lane: the end of
	// the highest reliable byte received so far (1 when nothing was).
	ReliableRef(lane uint32) int64
	// UnreliableRef returns the reference message number of lane: the
	// highest message number received so far (0 when none was).
	UnreliableRef(lane uint32) int64
}

// Decoder decodes one SNP payload at a time. Its zero value is ready after
// the exported fields are set and Reset is called. It is not safe for
// concurrent use.
type Decoder struct {
	// PktNum is the full packet number the payload arrived in; it resolves
	// stop-waiting offsets.
	PktNum int64
	// NextSendPktNum is the receiver's own next packet number; it resolves
	// the truncated latest-received field of acks.
	NextSendPktNum int64
	// PeerVersion is the sender's protocol version. Below 13 the ack w bit
	// is ignored and the latest field is always 16 bits (a GNS bug that the
	// format preserves).
	PeerVersion int
	// Resolver expands truncated absolute fields. Required.
	Resolver Resolver

	dec decoderState // per-payload state; see decode.go
}

// Encoder appends SNP frames to a payload, tracking the per-packet context
// (current lane, previous segment) that the relative encodings depend on.
// It produces GNS's canonical encodings, so a payload GNS would emit for the
// same frames comes out byte for byte. It is not safe for concurrent use.
type Encoder struct {
	// PeerVersion is the receiver's protocol version (see Decoder).
	PeerVersion int

	enc encoderState // see encode.go
}
