package wire

import "math"

// Unreliable segment: 00emosss [msg_num] [offset] [size] data.
//
// The message number is absolute (the low 16 bits when m=0, the low 32 bits
// when m=1) for the first unreliable segment of the packet or since the last
// select-lane frame; after that it is relative to the running message number
// of the context: m=0 means one more, m=1 means a varint delta follows. A
// reliable segment decoded while the running number is set also advances it
// by one (see reliable.go). The offset (o=1) is a varint read as 32 bits.

// parseUnreliable decodes the unreliable segment whose lead is b[0] into f.
// prev is the running message number of the context (0 at its start); only
// then is r asked for lane's reference.
func parseUnreliable(b []byte, prev int64, r Resolver, lane uint32, f *Frame) (n int, err error) {
	lead := b[0]
	i := 1
	if prev < 0 { // the running number overflowed
		return 0, errMsgNumRange
	}
	var msgNum int64
	switch {
	case prev == 0 && lead&bitMsgNum != 0:
		if len(b) < i+4 {
			return 0, ErrTruncated
		}
		msgNum = nearest32(le32(b[i:]), r.UnreliableRef(lane))
		i += 4
	case prev == 0:
		if len(b) < i+2 {
			return 0, ErrTruncated
		}
		msgNum = nearest16(le16(b[i:]), r.UnreliableRef(lane))
		i += 2
	case lead&bitMsgNum != 0:
		delta, m, err := ParseVarint(b[i:])
		if err != nil {
			return 0, err
		}
		i += m
		if delta > uint64(math.MaxInt64-prev) {
			return 0, errMsgNumRange
		}
		msgNum = prev + int64(delta)
	default:
		msgNum = prev + 1
	}
	if msgNum <= 0 {
		return 0, errMsgNumRange
	}
	var offset uint32
	if lead&bitOffset != 0 {
		v, m, err := parseVarint32(b[i:])
		if err != nil {
			return 0, err
		}
		offset = v
		i += m
	}
	data, end, err := parseSegmentData(b, lead, i)
	if err != nil {
		return 0, err
	}
	*f = Frame{
		Kind:   KindUnreliable,
		Lead:   lead,
		Lane:   lane,
		MsgNum: msgNum,
		Offset: int64(offset),
		Last:   lead&bitLast != 0,
		Data:   data,
	}
	return end, nil
}

// unreliableHeader returns the lead and the length of the fields between
// the lead and the size byte for GNS's canonical encoding of an unreliable
// segment in a context whose running message number is prev: the first one
// carries the low 32 bits, later ones nothing (one more) or a varint delta.
// delta < 0 cannot be encoded relative to prev; the caller handles that.
func unreliableHeader(prev, msgNum, offset int64, last bool) (lead byte, fieldsLen int) {
	if prev == 0 {
		lead, fieldsLen = bitMsgNum, 4
	} else if delta := msgNum - prev; delta != 1 {
		lead, fieldsLen = bitMsgNum, VarintLen(uint64(delta))
	}
	if offset != 0 {
		lead |= bitOffset
		fieldsLen += VarintLen(uint64(offset))
	}
	if last {
		lead |= bitLast
	}
	return lead, fieldsLen
}

// appendUnreliable appends an unreliable segment in GNS's canonical form
// (see unreliableHeader).
func appendUnreliable(b []byte, prev, msgNum, offset int64, data []byte, last, toEnd bool) []byte {
	lead, _ := unreliableHeader(prev, msgNum, offset, last)
	b = append(b, lead|segmentSizeBits(len(data), toEnd))
	if prev == 0 {
		b = appendLE32(b, uint32(msgNum))
	} else if delta := msgNum - prev; delta != 1 {
		b = AppendVarint(b, uint64(delta))
	}
	if offset != 0 {
		b = AppendVarint(b, uint64(offset))
	}
	return appendSegmentData(b, data, toEnd)
}

// unreliableLen returns the length appendUnreliable appends.
func unreliableLen(prev, msgNum, offset int64, size int, toEnd bool) int {
	_, fieldsLen := unreliableHeader(prev, msgNum, offset, false)
	return 1 + fieldsLen + segmentSizeLen(toEnd) + size
}
