package wire

// Stop waiting: 100000ww offset, with an 8 (ww=00), 16, 24 or 64-bit (11)
// offset. It means "stop acking packets below pkt_num - offset - 1", where
// pkt_num is the number of the packet carrying the frame.

// parseStopWaiting decodes the stop-waiting frame whose lead is b[0], in
// packet pktNum. Like GNS it rejects a result that is not in [0, pktNum).
func parseStopWaiting(b []byte, pktNum int64) (minPktNumToAck int64, n int, err error) {
	var offset uint64
	switch b[0] & 3 {
	case 0:
		if len(b) < 2 {
			return 0, 0, ErrTruncated
		}
		offset, n = uint64(b[1]), 2
	case 1:
		if len(b) < 3 {
			return 0, 0, ErrTruncated
		}
		offset, n = uint64(le16(b[1:])), 3
	case 2:
		if len(b) < 4 {
			return 0, 0, ErrTruncated
		}
		offset, n = uint64(le24(b[1:])), 4
	default:
		if len(b) < 9 {
			return 0, 0, ErrTruncated
		}
		offset, n = le64(b[1:]), 9
	}
	// Unsigned arithmetic, as GNS: valid exactly when offset < pktNum.
	if pktNum <= 0 || offset >= uint64(pktNum) {
		return 0, 0, errStopWaitingRange
	}
	return pktNum - int64(offset) - 1, n, nil
}

// stopWaitingOffset returns the offset field for minPktNumToAck in packet
// pktNum.
func stopWaitingOffset(pktNum, minPktNumToAck int64) uint64 {
	off := pktNum - minPktNumToAck - 1
	if off < 0 || minPktNumToAck < 0 {
		panic("wire: stop_waiting at or beyond the packet's own number")
	}
	return uint64(off)
}

// appendStopWaiting appends a stop-waiting frame with GNS's choice of
// width: the narrowest of 8, 16, 24 and 64 bits that holds the offset.
func appendStopWaiting(b []byte, offset uint64) []byte {
	switch {
	case offset < 1<<8:
		return append(b, leadStopWaiting, byte(offset))
	case offset < 1<<16:
		return appendLE16(append(b, leadStopWaiting|1), uint16(offset))
	case offset < 1<<24:
		return appendLE24(append(b, leadStopWaiting|2), uint32(offset))
	default:
		return appendLE64(append(b, leadStopWaiting|3), offset)
	}
}

// stopWaitingLen returns the length appendStopWaiting appends.
func stopWaitingLen(offset uint64) int {
	switch {
	case offset < 1<<8:
		return 2
	case offset < 1<<16:
		return 3
	case offset < 1<<24:
		return 4
	default:
		return 9
	}
}

// StopWaitingRegresses reports whether GNS would close the connection on a
// stop-waiting frame: the sender must never lower its stop-waiting point.
// cur is the receiver's current minimum packet number to ack and curPkt the
// packet that set it; newMin is the decoded MinPktNumToAck of packet pktNum,
// after the receiver has clamped it to the highest packet number it has
// received (GNS clamps first). A lower value from an older packet
// (reordering) is not an error; the receiver just ignores it.
func StopWaitingRegresses(cur, curPkt, newMin, pktNum int64) bool {
	return newMin < cur && pktNum >= curPkt
}
