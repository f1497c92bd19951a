package snp

import "errors"

// Errors of SendMessage. The root package maps them onto GNS results.
var (
	// ErrMessageTooBig: the message exceeds Config.MaxMessageSize
	// (ResultInvalidParam).
	ErrMessageTooBig = errors.New("snp: message too big")
	// ErrSendBufferFull: queuing the message would exceed
	// Config.SendBufferSize (ResultLimitExceeded).
	ErrSendBufferFull = errors.New("snp: send buffer full")
	// ErrBadLane: the lane is not configured (ResultInvalidParam).
	ErrBadLane = errors.New("snp: lane out of range")
	// ErrIgnored: a NoDelay unreliable message was dropped because it could
	// not go out soon (ResultIgnored).
	ErrIgnored = errors.New("snp: message dropped (no delay)")
)

// Errors of ReceivePacket.
var (
	// ErrProtocol is wrapped by every *ProtocolError.
	ErrProtocol = errors.New("snp: protocol violation")
	// ErrDiscarded: the packet was dropped and will not be acked (a
	// duplicate, too old, or it carried data beyond the receive limits).
	// It is not an error of the peer; the connection goes on.
	ErrDiscarded = errors.New("snp: packet discarded")
)

// ProtocolError reports a payload that violates the protocol. The connection
// must be closed with EndReason (GNS k_ESteamNetConnectionEnd_Misc_InternalError).
// errors.Is(err, ErrProtocol) holds for every ProtocolError.
type ProtocolError struct {
	Reason string // what was wrong, lowercase
	Err    error  // the wire decoding error, if any
}

// EndReason is the connection end reason the connection layer closes with.
func (e *ProtocolError) EndReason() int { return EndReasonMiscInternal }

func (e *ProtocolError) Error() string {
	if e.Err != nil {
		return "snp: protocol violation: " + e.Reason + ": " + e.Err.Error()
	}
	return "snp: protocol violation: " + e.Reason
}

// Is reports whether target is ErrProtocol.
func (e *ProtocolError) Is(target error) bool { return target == ErrProtocol }

// Unwrap returns the wire error, if any.
func (e *ProtocolError) Unwrap() error { return e.Err }

func protoErr(reason string, err error) error { return &ProtocolError{Reason: reason, Err: err} }
