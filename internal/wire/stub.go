package wire

// This file holds placeholder bodies so the package builds while the codec is
// written. The codec's author replaces it with decode.go, encode.go,
// msgheader.go and varint.go, keeping every signature below.

import "errors"

// Errors. Decoding errors are wrapped in a *FrameError that says where.
var (
	ErrTruncated = errors.New("wire: truncated frame")
	ErrReserved  = errors.New("wire: reserved encoding")
	ErrInvalid   = errors.New("wire: invalid value")
	// ErrShort is returned by ParseMsgHeader when b ends inside the header:
	// more stream bytes are needed (not an error of the peer).
	ErrShort = errors.New("wire: need more bytes")
)

// FrameError is a decoding error at an offset of the payload.
type FrameError struct {
	Offset int   // offset of the frame's lead byte
	Lead   byte  // the frame's lead byte
	Err    error // ErrTruncated, ErrReserved or ErrInvalid, possibly wrapped
}

func (e *FrameError) Error() string { return "wire: bad frame: " + e.Err.Error() }
func (e *FrameError) Unwrap() error { return e.Err }

type decoderState struct {
	b   []byte
	off int
}
type encoderState struct{ b []byte }

// Reset starts decoding payload.
func (d *Decoder) Reset(payload []byte) { d.dec = decoderState{b: payload} }

// Next decodes the next frame into f. It returns ok=false and a nil error at
// the end of the payload, and a *FrameError on malformed input (after which
// the rest of the payload must be ignored).
func (d *Decoder) Next(f *Frame) (ok bool, err error) { return false, ErrInvalid }

// Offset returns the offset in the payload of the next frame to decode.
func (d *Decoder) Offset() int { return d.dec.off }

// Reset starts a new payload appended to dst[:0], for packet number pktNum.
func (e *Encoder) Reset(dst []byte, pktNum int64) { e.enc = encoderState{b: dst[:0]} }

// Bytes returns the payload so far.
func (e *Encoder) Bytes() []byte { return e.enc.b }

// Len returns len(Bytes()).
func (e *Encoder) Len() int { return len(e.enc.b) }

// SelectLane makes later segments belong to lane, appending a select-lane
// frame if the current lane differs (the current lane starts at 0).
func (e *Encoder) SelectLane(lane uint32) {}

// SelectLaneLen returns how many bytes SelectLane(lane) would append.
func (e *Encoder) SelectLaneLen(lane uint32) int { return 0 }

// UnreliableLen returns the encoded length of an unreliable segment frame
// with these values in the current context, data included.
func (e *Encoder) UnreliableLen(msgNum, offset int64, size int, toEnd bool) int { return 0 }

// AppendUnreliable appends an unreliable segment on the current lane. toEnd
// selects the size-to-end-of-packet form: nothing may be appended after it.
func (e *Encoder) AppendUnreliable(msgNum, offset int64, data []byte, last, toEnd bool) {}

// ReliableLen returns the encoded length of a reliable segment frame with
// these values in the current context, data included.
func (e *Encoder) ReliableLen(streamPos int64, size int, toEnd bool) int { return 0 }

// AppendReliable appends a segment of the current lane's reliable stream.
func (e *Encoder) AppendReliable(streamPos int64, data []byte, toEnd bool) {}

// StopWaitingLen returns the encoded length of a stop-waiting frame.
func (e *Encoder) StopWaitingLen(minPktNumToAck int64) int { return 0 }

// AppendStopWaiting appends a stop-waiting frame: "stop acking packets below
// minPktNumToAck" (offset = pktNum - minPktNumToAck - 1, must be >= 0).
func (e *Encoder) AppendStopWaiting(minPktNumToAck int64) {}

// AckLen returns the encoded length of an ack frame.
func (e *Encoder) AckLen(latest int64, blocks []AckBlock) int { return 0 }

// AppendAck appends an ack frame (16-bit latest field when the peer's
// version is below 13, as SNP_WIRE_FORMAT.md requires).
func (e *Encoder) AppendAck(latest int64, delay uint16, blocks []AckBlock) {}

// AppendMsgHeader appends the reliable-stream header of a message of size
// bytes whose number is msgNumDelta (>= 1) above the previous reliable
// message's on the lane.
func AppendMsgHeader(b []byte, msgNumDelta uint64, size int) []byte { return b }

// MsgHeaderLen returns the length AppendMsgHeader would append.
func MsgHeaderLen(msgNumDelta uint64, size int) int { return 0 }

// ParseMsgHeader parses a reliable-stream message header at the start of b.
// It returns ErrShort when b ends inside the header and ErrReserved/ErrInvalid
// on a bad header.
func ParseMsgHeader(b []byte) (msgNumDelta uint64, size int64, n int, err error) {
	return 0, 0, 0, ErrShort
}

// AppendVarint appends v as a varint (7 bits per byte, least significant
// first, high bit set on every byte but the last).
func AppendVarint(b []byte, v uint64) []byte { return b }

// VarintLen returns the length of v's varint.
func VarintLen(v uint64) int { return 1 }

// ParseVarint parses a varint at the start of b.
func ParseVarint(b []byte) (v uint64, n int, err error) { return 0, 0, ErrTruncated }
