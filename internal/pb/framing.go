package pb

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Framing constants of GNS control datagrams (steamnetworkingsockets_udp.h
// and steamnetworkingsockets_internal.h).
const (
	// PaddedPacketSize is the size padded control datagrams are zero-filled
	// to, and the least a receiver accepts for them
	// (k_cbSteamNetworkingMinPaddedPacketSize).
	PaddedPacketSize = 512
	// MaxUDPPacketSize is the largest datagram GNS sends
	// (k_cbSteamNetworkingSocketsMaxUDPMsgLen). Larger control datagrams are
	// rejected as oversized.
	MaxUDPPacketSize = 1300
	// paddedHeaderSize is the message ID byte plus the u16 LE body length.
	paddedHeaderSize = 3
)

// Framing errors. Every error returned by the parse functions wraps one of
// these, so errors.Is works; the message adds the detail.
var (
	ErrTruncated  = errors.New("pb: truncated control packet")
	ErrOversized  = errors.New("pb: oversized control packet")
	ErrUnknownMsg = errors.New("pb: not a control message ID")
	ErrBadBody    = errors.New("pb: protobuf body does not parse")
)

// IsPadded reports whether control messages of this ID travel in the padded
// form: ID byte, u16 LE body length, body, zeros up to PaddedPacketSize.
// GNS pads the two messages a host answers without holding state
// (ChallengeRequest, ConnectionClosed), so that the answer is never larger
// than the request and cannot be used for amplification.
func (id UDPMsgID) IsPadded() bool {
	return id == UDPMsgID_UDP_MSG_CHALLENGE_REQUEST || id == UDPMsgID_UDP_MSG_CONNECTION_CLOSED
}

// IsControl reports whether id is one of the six control message IDs
// (0x20..0x25).
func (id UDPMsgID) IsControl() bool {
	return id >= UDPMsgID_UDP_MSG_CHALLENGE_REQUEST && id <= UDPMsgID_UDP_MSG_NO_CONNECTION
}

// NewControlMessage returns an empty message of the type carried by id, or
// nil if id is not a control message ID.
func NewControlMessage(id UDPMsgID) proto.Message {
	switch id {
	case UDPMsgID_UDP_MSG_CHALLENGE_REQUEST:
		return new(UDPChallengeRequest)
	case UDPMsgID_UDP_MSG_CHALLENGE_REPLY:
		return new(UDPChallengeReply)
	case UDPMsgID_UDP_MSG_CONNECT_REQUEST:
		return new(UDPConnectRequest)
	case UDPMsgID_UDP_MSG_CONNECT_OK:
		return new(UDPConnectOK)
	case UDPMsgID_UDP_MSG_CONNECTION_CLOSED:
		return new(UDPConnectionClosed)
	case UDPMsgID_UDP_MSG_NO_CONNECTION:
		return new(UDPNoConnection)
	}
	return nil
}

// SplitControl checks the framing of the control datagram b and returns its
// message ID and protobuf body (a subslice of b). For the padded form it
// requires len(b) >= PaddedPacketSize and a nonzero body length that fits;
// the padding is not inspected (GNS does not inspect it either). Datagrams
// longer than MaxUDPPacketSize are rejected. It never panics.
func SplitControl(b []byte) (UDPMsgID, []byte, error) {
	if len(b) == 0 {
		return 0, nil, fmt.Errorf("%w: empty", ErrTruncated)
	}
	if len(b) > MaxUDPPacketSize {
		return 0, nil, fmt.Errorf("%w: %d bytes", ErrOversized, len(b))
	}
	id := UDPMsgID(b[0])
	if !id.IsControl() {
		return 0, nil, fmt.Errorf("%w: lead byte 0x%02x", ErrUnknownMsg, b[0])
	}
	if !id.IsPadded() {
		return id, b[1:], nil
	}
	if len(b) < PaddedPacketSize {
		return 0, nil, fmt.Errorf("%w: padded message 0x%02x is %d bytes, want at least %d", ErrTruncated, b[0], len(b), PaddedPacketSize)
	}
	n := int(binary.LittleEndian.Uint16(b[1:3]))
	if n == 0 {
		return 0, nil, fmt.Errorf("%w: padded message 0x%02x has body length 0", ErrBadBody, b[0])
	}
	if paddedHeaderSize+n > len(b) {
		return 0, nil, fmt.Errorf("%w: body length %d exceeds the %d-byte packet", ErrTruncated, n, len(b))
	}
	return id, b[paddedHeaderSize : paddedHeaderSize+n], nil
}

// ParseControl parses the control datagram b into a new message of the type
// its ID names (see NewControlMessage). Unknown protobuf fields are kept, so
// a re-encoding carries them. It never panics.
func ParseControl(b []byte) (UDPMsgID, proto.Message, error) {
	id, body, err := SplitControl(b)
	if err != nil {
		return 0, nil, err
	}
	m := NewControlMessage(id)
	if err := proto.Unmarshal(body, m); err != nil {
		return 0, nil, fmt.Errorf("%w: message 0x%02x: %v", ErrBadBody, byte(id), err)
	}
	return id, m, nil
}

// Marshal encodes m as GNS does: fields in field-number order, then any
// unknown fields. It is proto.MarshalOptions{Deterministic: true}.
func Marshal(m proto.Message) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(m)
}

// AppendControl appends the control datagram for message m with ID id to
// dst, in the padded form when id.IsPadded() and the plain form otherwise.
// It fails if id is not a control ID, if m is not the type id carries, or if
// the datagram would exceed MaxUDPPacketSize (GNS refuses to send those).
func AppendControl(dst []byte, id UDPMsgID, m proto.Message) ([]byte, error) {
	want := NewControlMessage(id)
	if want == nil {
		return dst, fmt.Errorf("%w: 0x%02x", ErrUnknownMsg, byte(id))
	}
	if want.ProtoReflect().Descriptor() != m.ProtoReflect().Descriptor() {
		return dst, fmt.Errorf("pb: message %s cannot be sent as ID 0x%02x", m.ProtoReflect().Descriptor().FullName(), byte(id))
	}
	opts := proto.MarshalOptions{Deterministic: true}
	size := opts.Size(m)
	start := len(dst)
	if !id.IsPadded() {
		if 1+size > MaxUDPPacketSize {
			return dst, fmt.Errorf("%w: message 0x%02x needs %d bytes", ErrOversized, byte(id), 1+size)
		}
		dst = append(dst, byte(id))
		out, err := opts.MarshalAppend(dst, m)
		if err != nil {
			return dst[:start], err
		}
		return out, nil
	}
	if paddedHeaderSize+size > MaxUDPPacketSize {
		return dst, fmt.Errorf("%w: message 0x%02x needs %d bytes", ErrOversized, byte(id), paddedHeaderSize+size)
	}
	dst = append(dst, byte(id), byte(size), byte(size>>8))
	out, err := opts.MarshalAppend(dst, m)
	if err != nil {
		return dst[:start], err
	}
	for len(out)-start < PaddedPacketSize {
		out = append(out, 0)
	}
	return out, nil
}
