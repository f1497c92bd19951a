package wire

// Select lane: 10001nnn [lane]. nnn 000-110 select lane nnn+1; 111 means
// the lane follows as a varint (read as 32 bits, as GNS does). Lanes above
// MaxLane are rejected. Every select-lane frame, even one naming the current
// lane, restarts the relative contexts of both segment kinds, so the next
// segments carry absolute numbers again. Decoding starts on lane 0.
//
// GNS's own encoder is broken for lanes 8 and up: it writes 0x8f without
// the varint (the vector s2c_cmd_lane8_1), which GNS receivers then reject.
// This encoder writes the varint; GNS decodes that correctly.

// parseSelectLane decodes the select-lane frame whose lead is b[0].
func parseSelectLane(b []byte) (lane uint32, n int, err error) {
	if nnn := b[0] & 7; nnn != laneVarint {
		return uint32(nnn) + 1, 1, nil
	}
	v, m, err := parseVarint32(b[1:])
	if err != nil {
		return 0, 0, err
	}
	if v > MaxLane {
		return 0, 0, errLaneRange
	}
	return v, 1 + m, nil
}

// appendSelectLane appends a select-lane frame for lane in GNS's form:
// inline for lanes 1-7, 0x8f and a varint otherwise (lane 0 included).
func appendSelectLane(b []byte, lane uint32) []byte {
	if lane > MaxLane {
		panic("wire: lane above 255")
	}
	if lane >= 1 && lane <= laneInlineMax+1 {
		return append(b, leadSelectLane|byte(lane-1))
	}
	return AppendVarint(append(b, leadSelectLane|laneVarint), uint64(lane))
}

// selectLaneLen returns the length appendSelectLane appends.
func selectLaneLen(lane uint32) int {
	if lane >= 1 && lane <= laneInlineMax+1 {
		return 1
	}
	return 1 + VarintLen(uint64(lane))
}
