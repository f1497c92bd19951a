package wire

// Varints are those of GNS (SerializeVarInt/DeserializeVarInt in
// steamnetworkingsockets_internal.h), which are protobuf base-128 varints:
// 7 bits per byte, least significant group first, the high bit set on every
// byte but the last. GNS reads a varint into a field of a fixed width and
// stops after as many bytes as that width needs (10 for 64 bits, 5 for 32):
// a varint still continuing after that is an error, and bits above the
// width are silently dropped. The decoder follows that exactly for each
// field, so it accepts and rejects the same bytes as GNS.

// AppendVarint appends v as a varint (7 bits per byte, least significant
// first, high bit set on every byte but the last).
func AppendVarint(b []byte, v uint64) []byte {
	for v >= 0x80 {
		b = append(b, byte(v)|0x80)
		v >>= 7
	}
	return append(b, byte(v))
}

// VarintLen returns the length of v's varint.
func VarintLen(v uint64) int {
	n := 1
	for v >= 0x80 {
		v >>= 7
		n++
	}
	return n
}

// ParseVarint parses a varint at the start of b, as GNS reads a 64-bit
// field: at most 10 bytes, bits beyond 64 dropped. It returns ErrTruncated
// when b ends inside the varint and ErrInvalid (wrapped) when the varint
// continues past 10 bytes.
func ParseVarint(b []byte) (v uint64, n int, err error) {
	return parseVarintN(b, 10)
}

// parseVarint32 parses a varint into a 32-bit field as GNS does: at most 5
// bytes, bits beyond 32 dropped.
func parseVarint32(b []byte) (v uint32, n int, err error) {
	v64, n, err := parseVarintN(b, 5)
	return uint32(v64), n, err
}

// parseVarintN parses a varint of at most maxLen bytes.
func parseVarintN(b []byte, maxLen int) (v uint64, n int, err error) {
	var shift uint
	for i := 0; i < len(b); i++ {
		c := b[i]
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		if c < 0x80 {
			return v, i + 1, nil
		}
		if i+1 == maxLen {
			return 0, 0, errVarintTooLong
		}
		shift += 7
	}
	return 0, 0, ErrTruncated
}
