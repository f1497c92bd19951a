package wire

// Reliable segment: 010mmsss [stream_pos] [size] data.
//
// For the first reliable segment of the packet or since the last
// select-lane frame, stream_pos holds the low 24 (mm=00), 32 (01) or 48 (10)
// bits of the absolute position, expanded by expandStreamPos against
// Resolver.ReliableRef; mm=11 is reserved. Later segments of the context are
// placed relative to the END of the previous reliable segment: mm=00 means
// right after it, 01/10/11 a forward gap of 8/16/32 bits.

// parseReliable decodes the reliable segment whose lead is b[0] into f.
// next is the end of the previous reliable segment of the context (0 at its
// start); only then is r asked for lane's reference.
func parseReliable(b []byte, next int64, r Resolver, lane uint32, f *Frame) (n int, err error) {
	lead := b[0]
	i := 1
	mm := lead & posMask >> 3
	var pos int64
	if next == 0 {
		var low uint64
		var bits uint
		switch mm {
		case 0:
			if len(b) < i+3 {
				return 0, ErrTruncated
			}
			low, bits = uint64(le24(b[i:])), 24
			i += 3
		case 1:
			if len(b) < i+4 {
				return 0, ErrTruncated
			}
			low, bits = uint64(le32(b[i:])), 32
			i += 4
		case 2:
			if len(b) < i+6 {
				return 0, ErrTruncated
			}
			low, bits = le48(b[i:]), 48
			i += 6
		default:
			return 0, errReservedPosSize
		}
		pos = expandStreamPos(low, bits, r.ReliableRef(lane))
		if pos <= 0 {
			return 0, errStreamPosRange
		}
	} else {
		var gap uint32
		switch mm {
		case 0:
		case 1:
			if len(b) < i+1 {
				return 0, ErrTruncated
			}
			gap = uint32(b[i])
			i++
		case 2:
			if len(b) < i+2 {
				return 0, ErrTruncated
			}
			gap = uint32(le16(b[i:]))
			i += 2
		default:
			if len(b) < i+4 {
				return 0, ErrTruncated
			}
			gap = le32(b[i:])
			i += 4
		}
		pos = next + int64(gap)
	}
	data, end, err := parseSegmentData(b, lead, i)
	if err != nil {
		return 0, err
	}
	*f = Frame{
		Kind:      KindReliable,
		Lead:      lead,
		Lane:      lane,
		StreamPos: pos,
		Data:      data,
	}
	return end, nil
}

// reliableHeader returns the lead and the length of the position field for
// GNS's canonical encoding of a reliable segment at pos in a context whose
// previous reliable segment ended at next: the first one carries the low 48
// bits, later ones the smallest gap field. A gap below 0 or of 2^32 or more
// cannot be encoded relative to next; the caller handles that.
func reliableHeader(next, pos int64) (lead byte, fieldLen int) {
	if next == 0 {
		return leadReliable | 2<<3, 6
	}
	switch gap := pos - next; {
	case gap == 0:
		return leadReliable, 0
	case gap < 0x100:
		return leadReliable | 1<<3, 1
	case gap < 0x10000:
		return leadReliable | 2<<3, 2
	default:
		return leadReliable | 3<<3, 4
	}
}

// reliableRelative reports whether pos can be encoded relative to next.
func reliableRelative(next, pos int64) bool {
	return next != 0 && pos >= next && pos-next <= 0xffffffff
}

// appendReliable appends a reliable segment in GNS's canonical form.
func appendReliable(b []byte, next, pos int64, data []byte, toEnd bool) []byte {
	lead, fieldLen := reliableHeader(next, pos)
	b = append(b, lead|segmentSizeBits(len(data), toEnd))
	switch fieldLen {
	case 6:
		b = appendLE48(b, uint64(pos))
	case 1:
		b = append(b, byte(pos-next))
	case 2:
		b = appendLE16(b, uint16(pos-next))
	case 4:
		b = appendLE32(b, uint32(pos-next))
	}
	return appendSegmentData(b, data, toEnd)
}

// reliableLen returns the length appendReliable appends.
func reliableLen(next, pos int64, size int, toEnd bool) int {
	_, fieldLen := reliableHeader(next, pos)
	return 1 + fieldLen + segmentSizeLen(toEnd) + size
}
