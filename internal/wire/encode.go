package wire

import "math"

// encoderState is the per-payload state of an Encoder, mirroring the
// decoder's: the current lane and its two relative contexts.
type encoderState struct {
	b      []byte
	pktNum int64

	lane        uint32
	unrelMsgNum int64 // running unreliable message number; 0: none yet in this context
	relNext     int64 // end of the previous reliable segment; 0: none yet in this context
	closed      bool  // a size-to-end segment was appended
}

// Reset starts a new payload appended to dst[:0], for packet number pktNum.
// The Encoder appends to dst's backing array, so it does not allocate while
// the payload fits cap(dst).
func (e *Encoder) Reset(dst []byte, pktNum int64) {
	e.enc = encoderState{b: dst[:0], pktNum: pktNum}
}

// Bytes returns the payload so far.
func (e *Encoder) Bytes() []byte { return e.enc.b }

// Len returns len(Bytes()).
func (e *Encoder) Len() int { return len(e.enc.b) }

// SelectLane makes later segments belong to lane, appending a select-lane
// frame if the current lane differs (the current lane starts at 0). Lanes
// 1-7 take one byte, others (lane 0 included) 0x8f and a varint. lane must
// be at most MaxLane.
func (e *Encoder) SelectLane(lane uint32) {
	if lane == e.enc.lane {
		return
	}
	e.selectLane(lane)
}

// SelectLaneLen returns how many bytes SelectLane(lane) would append.
func (e *Encoder) SelectLaneLen(lane uint32) int {
	if lane == e.enc.lane {
		return 0
	}
	return selectLaneLen(lane)
}

// selectLane appends a select-lane frame, even for the current lane, which
// restarts the relative contexts.
func (e *Encoder) selectLane(lane uint32) {
	e.checkOpen()
	e.enc.b = appendSelectLane(e.enc.b, lane)
	e.enc.lane = lane
	e.enc.unrelMsgNum = 0
	e.enc.relNext = 0
}

func (e *Encoder) checkOpen() {
	if e.enc.closed {
		panic("wire: frame appended after a size-to-end segment")
	}
}

// unreliableNeedsRestart reports whether msgNum cannot follow the running
// message number (it is below it), so that the context must be restarted
// with a select-lane frame for the current lane and an absolute number.
// GNS's own sender never needs this.
func (e *Encoder) unreliableNeedsRestart(msgNum int64) bool {
	return e.enc.unrelMsgNum != 0 && msgNum < e.enc.unrelMsgNum
}

// UnreliableLen returns the encoded length of an unreliable segment frame
// with these values in the current context, data included.
func (e *Encoder) UnreliableLen(msgNum, offset int64, size int, toEnd bool) int {
	if e.unreliableNeedsRestart(msgNum) {
		return selectLaneLen(e.enc.lane) + unreliableLen(0, msgNum, offset, size, toEnd)
	}
	return unreliableLen(e.enc.unrelMsgNum, msgNum, offset, size, toEnd)
}

// AppendUnreliable appends an unreliable segment on the current lane. toEnd
// selects the size-to-end-of-packet form: nothing may be appended after it.
//
// The encoding is GNS's: the first unreliable segment of the payload or
// lane carries the low 32 bits of msgNum; later ones carry nothing when
// msgNum is one above the running number (the previous unreliable segment's,
// plus one per reliable segment since) and a varint delta otherwise. A
// msgNum below the running number is encoded by restarting the context
// (a select-lane frame for the current lane) and counts in UnreliableLen.
// msgNum must be > 0, offset in [0, 2^32), and len(data) at most
// MaxExplicitSegmentSize unless toEnd; the Encoder panics otherwise.
func (e *Encoder) AppendUnreliable(msgNum, offset int64, data []byte, last, toEnd bool) {
	e.checkOpen()
	if msgNum <= 0 || offset < 0 || offset > math.MaxUint32 {
		panic("wire: unreliable segment message number or offset out of range")
	}
	if e.unreliableNeedsRestart(msgNum) {
		e.selectLane(e.enc.lane)
	}
	e.enc.b = appendUnreliable(e.enc.b, e.enc.unrelMsgNum, msgNum, offset, data, last, toEnd)
	e.enc.unrelMsgNum = msgNum
	e.enc.closed = toEnd
}

// ReliableLen returns the encoded length of a reliable segment frame with
// these values in the current context, data included.
func (e *Encoder) ReliableLen(streamPos int64, size int, toEnd bool) int {
	if e.enc.relNext != 0 && !reliableRelative(e.enc.relNext, streamPos) {
		return selectLaneLen(e.enc.lane) + reliableLen(0, streamPos, size, toEnd)
	}
	return reliableLen(e.enc.relNext, streamPos, size, toEnd)
}

// AppendReliable appends a segment of the current lane's reliable stream.
//
// The encoding is GNS's: the first reliable segment of the payload or lane
// carries the low 48 bits of streamPos; later ones the gap from the end of
// the previous reliable segment in the smallest of 0, 8, 16 and 32 bits. A
// position before that end (or 2^32 or more after it) is encoded by
// restarting the context (a select-lane frame for the current lane) and
// counts in ReliableLen. streamPos must be > 0 and len(data) at most
// MaxExplicitSegmentSize unless toEnd; the Encoder panics otherwise.
func (e *Encoder) AppendReliable(streamPos int64, data []byte, toEnd bool) {
	e.checkOpen()
	if streamPos <= 0 {
		panic("wire: reliable stream position not above 0")
	}
	if e.enc.relNext != 0 && !reliableRelative(e.enc.relNext, streamPos) {
		e.selectLane(e.enc.lane)
	}
	e.enc.b = appendReliable(e.enc.b, e.enc.relNext, streamPos, data, toEnd)
	e.enc.relNext = streamPos + int64(len(data))
	if e.enc.unrelMsgNum > 0 {
		e.enc.unrelMsgNum++
	}
	e.enc.closed = toEnd
}

// StopWaitingLen returns the encoded length of a stop-waiting frame.
func (e *Encoder) StopWaitingLen(minPktNumToAck int64) int {
	return stopWaitingLen(stopWaitingOffset(e.enc.pktNum, minPktNumToAck))
}

// AppendStopWaiting appends a stop-waiting frame: "stop acking packets below
// minPktNumToAck" (offset = pktNum - minPktNumToAck - 1, must be >= 0). The
// offset takes the narrowest of 8, 16, 24 and 64 bits, as GNS writes it.
func (e *Encoder) AppendStopWaiting(minPktNumToAck int64) {
	e.checkOpen()
	e.enc.b = appendStopWaiting(e.enc.b, stopWaitingOffset(e.enc.pktNum, minPktNumToAck))
}

// AckLen returns the encoded length of an ack frame.
func (e *Encoder) AckLen(latest int64, blocks []AckBlock) int {
	return ackLen(blocks, false)
}

// AppendAck appends an ack frame (16-bit latest field when the peer's
// version is below 13, as SNP_WIRE_FORMAT.md requires). GNS always writes
// the 16-bit form, so this does too; the receiver expands it against its
// own next packet number, which must be within 32768 of latest (see
// AppendAckWide otherwise). Blocks are newest first; more than six take an
// explicit count byte; at most MaxAckBlocks.
func (e *Encoder) AppendAck(latest int64, delay uint16, blocks []AckBlock) {
	e.checkOpen()
	e.enc.b = appendAck(e.enc.b, latest, delay, blocks, false)
}

// AckWideLen returns the encoded length of AppendAckWide's frame.
func (e *Encoder) AckWideLen(latest int64, blocks []AckBlock) int {
	return ackLen(blocks, e.PeerVersion >= 13)
}

// AppendAckWide appends an ack frame with a 32-bit latest field (w=0), which
// peers of protocol version 13 and later accept; for older peers it appends
// the 16-bit form, as AppendAck. GNS never sends this form; use it when the
// peer may have sent 32768 or more packets beyond latest.
func (e *Encoder) AppendAckWide(latest int64, delay uint16, blocks []AckBlock) {
	e.checkOpen()
	e.enc.b = appendAck(e.enc.b, latest, delay, blocks, e.PeerVersion >= 13)
}
