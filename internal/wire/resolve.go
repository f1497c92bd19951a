package wire

// Expansion of truncated absolute fields. GNS uses two different rules, and
// the decoder must use the same one as GNS for each field or a peer near a
// boundary would be understood differently.

// nearest16 expands the low 16 bits of a number to the value nearest ref
// with those bits, ties going down: the result is in [ref-32768, ref+32767].
// GNS uses this (NearestWithSameLowerBits) for unreliable message numbers
// and for the latest packet number of acks.
func nearest16(low uint16, ref int64) int64 {
	return ref + int64(int16(low-uint16(ref)))
}

// nearest32 is nearest16 for 32 bits: the result is in
// [ref-2^31, ref+2^31-1].
func nearest32(low uint32, ref int64) int64 {
	return ref + int64(int32(low-uint32(ref)))
}

// expandStreamPos expands the low bits (24, 32 or 48) of a reliable stream
// position against expect, the receiver's expected next stream position,
// as GNS does. This is not "nearest": GNS puts the low bits into expect's
// upper bits and then only ever moves forward, by one period, when the
// result is more than half a period (minus one) behind expect. So the result
// is never below expect-(2^(bits-1)-1), and when expect's low bits are small
// a position far ahead of expect is kept rather than wrapped back.
func expandStreamPos(low uint64, bits uint, expect int64) int64 {
	mask := int64(1)<<bits - 1
	pos := expect&^mask + int64(low)
	if pos+mask>>1 < expect {
		pos += mask + 1
	}
	return pos
}
