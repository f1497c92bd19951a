package wire

import (
	"errors"
	"strconv"
	"strings"
)

// Errors. Decoding errors are wrapped in a *FrameError that says where; the
// specific causes below wrap one of ErrTruncated, ErrReserved or ErrInvalid,
// so errors.Is works with either.
var (
	ErrTruncated = errors.New("wire: truncated frame")
	ErrReserved  = errors.New("wire: reserved encoding")
	ErrInvalid   = errors.New("wire: invalid value")
	// ErrShort is returned by ParseMsgHeader when b ends inside the header:
	// more stream bytes are needed (not an error of the peer).
	ErrShort = errors.New("wire: need more bytes")
	// ErrAckNotSent is returned (inside a *FrameError) for an ack whose
	// latest packet number is not below Decoder.NextSendPktNum: the peer acks
	// a packet we have not sent. GNS does not close the connection for this
	// (it happens when one side was stopped in a debugger); it ignores the
	// rest of the payload and does not record the packet as received.
	ErrAckNotSent = errors.New("wire: ack of a packet not yet sent")
)

// causeError is a specific decoding failure; it unwraps to one of the
// sentinels above. The causes are package variables so that decoding does
// not allocate even when it fails.
type causeError struct {
	msg  string
	kind error
}

func (e *causeError) Error() string { return "wire: " + e.msg }
func (e *causeError) Unwrap() error { return e.kind }

var (
	errReservedLead     = &causeError{"reserved lead byte", ErrReserved}
	errReservedSize     = &causeError{"reserved segment size bits 101/110", ErrReserved}
	errReservedPosSize  = &causeError{"reserved reliable stream position size 11", ErrReserved}
	errReservedHeader   = &causeError{"reliable message header byte with the high bit set", ErrReserved}
	errSegmentOverrun   = &causeError{"segment size beyond the end of the payload", ErrTruncated}
	errVarintTooLong    = &causeError{"varint longer than its type", ErrInvalid}
	errMsgNumRange      = &causeError{"unreliable message number not above 0", ErrInvalid}
	errStreamPosRange   = &causeError{"reliable stream position not above 0", ErrInvalid}
	errStopWaitingRange = &causeError{"stop_waiting at or beyond the packet's own number", ErrInvalid}
	errAckLatestRange   = &causeError{"ack latest packet number below 0", ErrInvalid}
	errAckCountRange    = &causeError{"ack block count upper bits above GNS's limit", ErrInvalid}
	errAckUnderflow     = &causeError{"ack block range below packet 0", ErrInvalid}
	errLaneRange        = &causeError{"lane above the maximum", ErrInvalid}
	errMsgNumLurch      = &causeError{"reliable message number delta above GNS's limit", ErrInvalid}
	errMsgSizeRange     = &causeError{"reliable message size above 32 bits", ErrInvalid}
)

// FrameError is a decoding error at an offset of the payload.
type FrameError struct {
	Offset int   // offset of the frame's lead byte
	Lead   byte  // the frame's lead byte
	Err    error // ErrTruncated, ErrReserved, ErrInvalid or ErrAckNotSent, possibly wrapped
}

func (e *FrameError) Error() string {
	return "wire: bad frame 0x" + strconv.FormatUint(uint64(e.Lead), 16) +
		" at offset " + strconv.Itoa(e.Offset) + ": " + strings.TrimPrefix(e.Err.Error(), "wire: ")
}

func (e *FrameError) Unwrap() error { return e.Err }
