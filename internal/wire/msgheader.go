package wire

// Reliable-stream message header: 0mssssss [msg_num_delta] [size_upper].
// m=1: a varint delta from the lane's previous reliable message number
// follows (m=0: the delta is 1). ssssss 0xxxxx is a size of 0-31; 1xxxxx
// holds the low five bits and the upper bits follow as a varint (after the
// delta). A header byte with the high bit set is reserved. A header can
// span reliable segments, so a short buffer is not a peer error.

// ParseMsgHeader parses a reliable-stream message header at the start of b.
// It returns ErrShort when b ends inside the header and ErrReserved/ErrInvalid
// on a bad header.
//
// As GNS it rejects (ErrInvalid) an explicit delta above MaxMsgNumDelta and
// a size that does not fit 32 bits; a varint that continues past 10 bytes
// is also ErrInvalid (GNS would wait for more bytes forever). A delta of 0
// is accepted, as GNS does. Size limits of the receiver (buffer and message
// size) are the engine's to check, as is GNS's second lurch test (the new
// message number more than 10000 above the highest seen on the lane).
func ParseMsgHeader(b []byte) (msgNumDelta uint64, size int64, n int, err error) {
	if len(b) == 0 {
		return 0, 0, 0, ErrShort
	}
	hdr := b[0]
	if hdr&hdrReserved != 0 {
		return 0, 0, 0, errReservedHeader
	}
	n = 1
	msgNumDelta = 1
	if hdr&hdrMsgNum != 0 {
		v, m, err := ParseVarint(b[n:])
		if err != nil {
			return 0, 0, 0, msgHeaderErr(err)
		}
		if v > MaxMsgNumDelta {
			return 0, 0, 0, errMsgNumLurch
		}
		msgNumDelta = v
		n += m
	}
	size = int64(hdr & hdrSizeLow)
	if hdr&hdrSizeExt != 0 {
		v, m, err := ParseVarint(b[n:])
		if err != nil {
			return 0, 0, 0, msgHeaderErr(err)
		}
		if v > maxMsgSizeUpper {
			return 0, 0, 0, errMsgSizeRange
		}
		size |= int64(v) << 5
		n += m
	}
	return msgNumDelta, size, n, nil
}

// msgHeaderErr maps a varint error inside a header to ParseMsgHeader's.
func msgHeaderErr(err error) error {
	if err == ErrTruncated {
		return ErrShort
	}
	return err
}

// AppendMsgHeader appends the reliable-stream header of a message of size
// bytes whose number is msgNumDelta (>= 1) above the previous reliable
// message's on the lane. Like GNS it omits the delta when it is 1 and the
// size extension when size < 32.
func AppendMsgHeader(b []byte, msgNumDelta uint64, size int) []byte {
	hdr := byte(0)
	if msgNumDelta != 1 {
		hdr |= hdrMsgNum
	}
	if size < 0x20 {
		hdr |= byte(size)
	} else {
		hdr |= hdrSizeExt | byte(size)&hdrSizeLow
	}
	b = append(b, hdr)
	if msgNumDelta != 1 {
		b = AppendVarint(b, msgNumDelta)
	}
	if size >= 0x20 {
		b = AppendVarint(b, uint64(size)>>5)
	}
	return b
}

// MsgHeaderLen returns the length AppendMsgHeader would append.
func MsgHeaderLen(msgNumDelta uint64, size int) int {
	n := 1
	if msgNumDelta != 1 {
		n += VarintLen(msgNumDelta)
	}
	if size >= 0x20 {
		n += VarintLen(uint64(size) >> 5)
	}
	return n
}
