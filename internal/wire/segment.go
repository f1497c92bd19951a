package wire

// The size field shared by unreliable and reliable segments: the lead's sss
// bits 000-100 are the upper three bits of an explicit size whose lower
// eight bits follow the other fields; 111 means the data runs to the end of
// the payload; 101 and 110 are reserved.

// parseSegmentData reads the size field of a segment with lead at b[0],
// whose size field starts at b[i], and returns the data and the offset just
// past it.
func parseSegmentData(b []byte, lead byte, i int) (data []byte, end int, err error) {
	switch code := int(lead & sizeMask); {
	case code <= MaxExplicitSegmentSize>>8:
		if i >= len(b) {
			return nil, 0, ErrTruncated
		}
		size := code<<8 | int(b[i])
		i++
		if size > len(b)-i {
			return nil, 0, errSegmentOverrun
		}
		return b[i : i+size : i+size], i + size, nil
	case code == sizeToEnd:
		return b[i:len(b):len(b)], len(b), nil
	default:
		return nil, 0, errReservedSize
	}
}

// segmentSizeLen returns the length of the size field for size bytes of
// data.
func segmentSizeLen(toEnd bool) int {
	if toEnd {
		return 0
	}
	return 1
}

// segmentSizeBits returns the lead's sss bits for size bytes of data; size
// must be at most MaxExplicitSegmentSize unless toEnd.
func segmentSizeBits(size int, toEnd bool) byte {
	if toEnd {
		return sizeToEnd
	}
	if size < 0 || size > MaxExplicitSegmentSize {
		panic("wire: segment size not encodable without the size-to-end form")
	}
	return byte(size >> 8)
}

// appendSegmentData appends the size byte (unless toEnd) and the data.
func appendSegmentData(b []byte, data []byte, toEnd bool) []byte {
	if !toEnd {
		b = append(b, byte(len(data)))
	}
	return append(b, data...)
}
