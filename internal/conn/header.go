package conn

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// Errors of the data packet header.
var (
	// ErrBadHeader: a data packet's cleartext header is malformed.
	ErrBadHeader = errors.New("conn: bad data packet header")
)

// dataHeader is the cleartext header of a data packet (GNS UDPDataMsgHdr):
//
//	byte 0      0x80 | flags (0x01 inline stats, 0x02 time since previous)
//	bytes 1-4   recipient connection id, u32 LE
//	bytes 5-6   low 16 bits of the packet number, u16 LE
//	[0x01]      varint length, then a UDPStats protobuf, in the clear
//	[0x02]      u16 LE: time since the sender's previous packet, 16 us units
//	then        ciphertext || 16-byte GCM tag, to the end of the datagram
type dataHeader struct {
	ToConnID   uint32
	WirePktNum uint16
	// Stats is the raw inline stats protobuf (nil when the flag is clear;
	// a present but empty blob is non-nil and empty).
	Stats []byte
	// TimeSincePrev is the raw 16-bit field; HasTimeSincePrev says whether
	// it was present.
	TimeSincePrev    uint16
	HasTimeSincePrev bool
}

// parseDataHeader parses the header at the start of b and returns it and its
// length; b[n:] is the encrypted payload. The Stats slice aliases b. It never
// panics; a malformed header is an ErrBadHeader.
func parseDataHeader(b []byte) (h dataHeader, n int, err error) {
	if len(b) < dataHeaderSize {
		return h, 0, fmt.Errorf("%w: %d bytes", ErrBadHeader, len(b))
	}
	lead := b[0]
	if lead&^(flagInlineStats|flagTimeSincePrev) != dataLead {
		return h, 0, fmt.Errorf("%w: lead 0x%02x", ErrBadHeader, lead)
	}
	h.ToConnID = binary.LittleEndian.Uint32(b[1:5])
	h.WirePktNum = binary.LittleEndian.Uint16(b[5:7])
	n = dataHeaderSize
	if lead&flagInlineStats != 0 {
		size, l := protowire.ConsumeVarint(b[n:])
		if l < 0 || size > uint64(len(b)-n-l) {
			return h, 0, fmt.Errorf("%w: inline stats size", ErrBadHeader)
		}
		n += l
		h.Stats = b[n : n+int(size) : n+int(size)]
		n += int(size)
	}
	if lead&flagTimeSincePrev != 0 {
		if len(b)-n < 2 {
			return h, 0, fmt.Errorf("%w: no room for time since previous", ErrBadHeader)
		}
		h.TimeSincePrev = binary.LittleEndian.Uint16(b[n:])
		h.HasTimeSincePrev = true
		n += 2
	}
	return h, n, nil
}

// appendDataHeader appends h to dst.
func appendDataHeader(dst []byte, h *dataHeader) []byte {
	lead := byte(dataLead)
	if h.Stats != nil {
		lead |= flagInlineStats
	}
	if h.HasTimeSincePrev {
		lead |= flagTimeSincePrev
	}
	dst = append(dst, lead)
	dst = binary.LittleEndian.AppendUint32(dst, h.ToConnID)
	dst = binary.LittleEndian.AppendUint16(dst, h.WirePktNum)
	if h.Stats != nil {
		dst = protowire.AppendVarint(dst, uint64(len(h.Stats)))
		dst = append(dst, h.Stats...)
	}
	if h.HasTimeSincePrev {
		dst = binary.LittleEndian.AppendUint16(dst, h.TimeSincePrev)
	}
	return dst
}

// recvWindow expands 16-bit wire packet numbers and remembers which recent
// packets were received, so that a replayed packet is refused before it is
// decrypted and handed on (GNS ExpandWirePacketNumberAndCheck and
// TrackProcessSequencedPacket). Bit n of mask[1] is packet B+n and bit n of
// mask[0] is B-64+n, where B is max rounded down to a multiple of 64.
// The zero value expects packet 1 first.
type recvWindow struct {
	max  int64 // highest packet number accepted (0: none)
	mask [2]uint64
}

// Reasons a wire packet number is refused by recvWindow.expand.
const (
	pktOK = iota
	pktTooOld
	pktDuplicate
)

// init makes n the highest packet number seen: only later ones (and none
// at or below n) are accepted.
func (w *recvWindow) init(n int64) {
	w.max = n
	w.mask = [2]uint64{^uint64(0), 0}
	for i := int64(0); i <= n&63; i++ {
		w.mask[1] |= 1 << i
	}
}

// expand returns the full packet number nearest to the highest received
// that has the low 16 bits wire, and whether it may be processed: not more
// than 64-127 packets older than the highest (GNS keeps two 64-bit masks)
// and not already received. It does not record the packet; call mark once
// the packet has been authenticated.
func (w *recvWindow) expand(wire uint16) (int64, int) {
	gap := int16(wire - uint16(w.max))
	n := w.max + int64(gap)
	if n > w.max {
		return n, pktOK
	}
	if n <= 0 {
		return n, pktTooOld
	}
	b := w.max &^ 63
	idx := ((n - b) >> 6) + 1
	if idx < 0 {
		return n, pktTooOld
	}
	if w.mask[idx]&(1<<(n&63)) != 0 {
		return n, pktDuplicate
	}
	return n, pktOK
}

// mark records packet n as received (n came from expand with pktOK).
func (w *recvWindow) mark(n int64) {
	b := w.max &^ 63
	idx := ((n - b) >> 6) + 1
	if idx >= 2 {
		if idx == 2 {
			w.mask[0] = w.mask[1]
		} else {
			w.mask[0] = 0
		}
		w.mask[1] = 0
		idx = 1
	}
	if n > w.max {
		w.max = n
	}
	w.mask[idx] |= 1 << (n & 63)
}
