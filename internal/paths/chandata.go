package paths

import (
	"encoding/binary"
	"errors"
)

// ChannelData (RFC 8656 12.4): a 4-byte header, the channel number and the
// length of the application data, both big-endian, then the data. Over UDP
// the padding to a multiple of 4 bytes is optional (12.5): we write none
// and ignore any that follows the data.
const (
	channelDataHeader = 4
	// ChannelMin and ChannelMax bound the channel numbers a client may
	// bind (RFC 8656 12).
	ChannelMin = 0x4000
	ChannelMax = 0x4fff
)

// Errors of ChannelData parsing.
var (
	// ErrChannelDataShort is returned for a message shorter than its
	// header or than the length its header gives.
	ErrChannelDataShort = errors.New("paths: channeldata truncated")
	// ErrChannelNumber is returned for a channel number outside
	// ChannelMin-ChannelMax.
	ErrChannelNumber = errors.New("paths: channeldata channel number out of range")
)

// ChannelData is one ChannelData message.
type ChannelData struct {
	Channel uint16
	Data    []byte
}

// ParseChannelData parses the ChannelData message at the start of b. Data
// aliases b. n is the bytes the message takes without padding.
func ParseChannelData(b []byte) (cd ChannelData, n int, err error) {
	if len(b) < channelDataHeader {
		return ChannelData{}, 0, ErrChannelDataShort
	}
	cd.Channel = binary.BigEndian.Uint16(b)
	if cd.Channel < ChannelMin || cd.Channel > ChannelMax {
		return ChannelData{}, 0, ErrChannelNumber
	}
	l := int(binary.BigEndian.Uint16(b[2:]))
	if len(b) < channelDataHeader+l {
		return ChannelData{}, 0, ErrChannelDataShort
	}
	cd.Data = b[channelDataHeader : channelDataHeader+l : channelDataHeader+l]
	return cd, channelDataHeader + l, nil
}

// Append appends the message (without padding) to b.
func (cd ChannelData) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, cd.Channel)
	b = binary.BigEndian.AppendUint16(b, uint16(len(cd.Data)))
	return append(b, cd.Data...)
}

// Len is the length Append adds.
func (cd ChannelData) Len() int { return channelDataHeader + len(cd.Data) }

// channelHeader is the header of a ChannelData message carrying n bytes on
// channel ch.
func channelHeader(ch uint16, n int) [channelDataHeader]byte {
	var h [channelDataHeader]byte
	binary.BigEndian.PutUint16(h[:], ch)
	binary.BigEndian.PutUint16(h[2:], uint16(n))
	return h
}
