// Package rtcframe is the framing of netmsg's Messages over WebRTC data
// channels (sessions with browser peers): a message is cut into fragments
// that fit any browser's SCTP message size, each with a small header
// naming the Messages channel, and put back together on the other side;
// close and ping frames share the header's first byte. It is pure: no
// I/O, no clock, no goroutine. The JavaScript module (web/netmsg.js)
// speaks the same format.
//
// Every frame starts with its kind:
//
//	data:  kind=1 | flags (1) | channel (int32 LE) | message number (uint32 LE) | fragment index (1) | fragment count (1) | payload
//	close: kind=2 | end reason (int32 LE) | debug text (UTF-8, at most MaxDebug bytes)
//	ping:  kind=3 | 8 opaque bytes (the sender's timestamp)
//	pong:  kind=4 | the 8 bytes of the ping it answers
//
// Data frames of one message have the same message number, and indexes 0
// to count-1; on the reliable (ordered) data channel they arrive in
// order and back to back, on the unreliable one in any order or not at
// all. Flags bit 0 says the message was sent reliably.
package rtcframe

import (
	"encoding/binary"
	"errors"
)

// Frame kinds.
const (
	KindData  = 1
	KindClose = 2
	KindPing  = 3
	KindPong  = 4
)

// Sizes and limits.
const (
	// DataHeaderLen is the size of a data frame's header.
	DataHeaderLen = 12
	// MaxFrame is the largest frame sent: 16 KiB, the SCTP message size
	// every browser's data channels take.
	MaxFrame = 16 << 10
	// MaxFragment is the largest payload of one data frame.
	MaxFragment = MaxFrame - DataHeaderLen
	// MaxMessage is the largest message (GNS's 512 KiB).
	MaxMessage = 512 << 10
	// MaxFragments is the most fragments a message of MaxMessage bytes
	// takes.
	MaxFragments = (MaxMessage + MaxFragment - 1) / MaxFragment
	// MaxDebug bounds a close frame's debug text (GNS's 127 bytes).
	MaxDebug = 127
	// pingLen is the size of a ping or pong frame.
	pingLen = 9
	// MaxPartial is how many unreliable messages may wait for their
	// missing fragments (GNS's limit for unreliable reassembly); a newer
	// one pushes out the oldest.
	MaxPartial = 20
)

// FlagReliable marks a data frame of a message sent reliably.
const FlagReliable = 1

// Errors.
var (
	ErrShort    = errors.New("rtcframe: truncated frame")
	ErrKind     = errors.New("rtcframe: unknown frame kind")
	ErrFragment = errors.New("rtcframe: bad fragment index or count")
	ErrOrder    = errors.New("rtcframe: reliable fragment out of sequence")
	ErrTooLarge = errors.New("rtcframe: message over 512 KiB")
)

// Data is the header of a data frame and its payload.
type Data struct {
	Flags   byte
	Channel int32
	Num     uint32 // message number
	Index   byte   // fragment index
	Count   byte   // fragments in the message
	Payload []byte // aliases the parsed frame
}

// Frame is one parsed frame.
type Frame struct {
	Kind   byte
	Data   Data   // KindData
	Reason int32  // KindClose
	Debug  string // KindClose
	Ping   uint64 // KindPing, KindPong
}

// Parse parses one frame. A data frame's payload aliases b.
func Parse(b []byte) (Frame, error) {
	if len(b) == 0 {
		return Frame{}, ErrShort
	}
	f := Frame{Kind: b[0]}
	switch b[0] {
	case KindData:
		if len(b) < DataHeaderLen {
			return Frame{}, ErrShort
		}
		d := Data{
			Flags:   b[1],
			Channel: int32(binary.LittleEndian.Uint32(b[2:])),
			Num:     binary.LittleEndian.Uint32(b[6:]),
			Index:   b[10],
			Count:   b[11],
			Payload: b[DataHeaderLen:],
		}
		if d.Count == 0 || d.Count > MaxFragments || d.Index >= d.Count || len(d.Payload) > MaxFragment {
			return Frame{}, ErrFragment
		}
		f.Data = d
	case KindClose:
		if len(b) < 5 {
			return Frame{}, ErrShort
		}
		f.Reason = int32(binary.LittleEndian.Uint32(b[1:]))
		dbg := b[5:]
		if len(dbg) > MaxDebug {
			dbg = dbg[:MaxDebug]
		}
		f.Debug = string(dbg)
	case KindPing, KindPong:
		if len(b) < pingLen {
			return Frame{}, ErrShort
		}
		f.Ping = binary.LittleEndian.Uint64(b[1:])
	default:
		return Frame{}, ErrKind
	}
	return f, nil
}

// AppendData appends one data frame.
func AppendData(b []byte, d Data) []byte {
	b = append(b, KindData, d.Flags)
	b = binary.LittleEndian.AppendUint32(b, uint32(d.Channel))
	b = binary.LittleEndian.AppendUint32(b, d.Num)
	b = append(b, d.Index, d.Count)
	return append(b, d.Payload...)
}

// AppendClose appends a close frame; debug is cut to MaxDebug bytes.
func AppendClose(b []byte, reason int32, debug string) []byte {
	if len(debug) > MaxDebug {
		debug = debug[:MaxDebug]
	}
	b = append(b, KindClose)
	b = binary.LittleEndian.AppendUint32(b, uint32(reason))
	return append(b, debug...)
}

// AppendPing appends a ping (or, with kind KindPong, a pong) frame.
func AppendPing(b []byte, kind byte, v uint64) []byte {
	b = append(b, kind)
	return binary.LittleEndian.AppendUint64(b, v)
}

// Fragments returns how many data frames a message of n bytes takes.
func Fragments(n int) int {
	if n <= MaxFragment {
		return 1
	}
	return (n + MaxFragment - 1) / MaxFragment
}

// Split calls emit with each data frame of message msg (number num on
// channel), built in buf (reused between calls; emit must not keep it).
// It stops at emit's first error and returns it, or ErrTooLarge for a
// message over MaxMessage.
func Split(buf []byte, msg []byte, flags byte, channel int32, num uint32, emit func(frame []byte) error) error {
	if len(msg) > MaxMessage {
		return ErrTooLarge
	}
	n := Fragments(len(msg))
	for i := 0; i < n; i++ {
		part := msg[i*MaxFragment : min(len(msg), (i+1)*MaxFragment)]
		buf = AppendData(buf[:0], Data{Flags: flags, Channel: channel, Num: num, Index: byte(i), Count: byte(n), Payload: part})
		if err := emit(buf); err != nil {
			return err
		}
	}
	return nil
}
