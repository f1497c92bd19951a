package wire

// decoderState is the per-payload state of a Decoder: the payload, the
// position, and the two relative contexts of the current lane, which start
// over at the start of the payload and at every select-lane frame.
type decoderState struct {
	b   []byte
	off int

	lane        uint32
	unrelMsgNum int64 // running unreliable message number; 0: none yet in this context
	relNext     int64 // end of the previous reliable segment; 0: none yet in this context

	err    FrameError // the error returned, kept here so that failing does not allocate
	failed bool

	// blocks is the backing store of Frame.AckBlocks. It grows to the
	// largest ack seen (at most MaxAckBlocks) instead of being a fixed
	// array: one Decoder lives in every connection, and most acks carry
	// few blocks or none (4 KiB per idle connection saved).
	blocks []AckBlock
}

// Reset starts decoding payload.
func (d *Decoder) Reset(payload []byte) {
	s := &d.dec
	s.b = payload
	s.off = 0
	s.lane = 0
	s.unrelMsgNum = 0
	s.relNext = 0
	s.failed = false
}

// Offset returns the offset in the payload of the next frame to decode.
func (d *Decoder) Offset() int { return d.dec.off }

// Next decodes the next frame into f. It returns ok=false and a nil error at
// the end of the payload, and a *FrameError on malformed input (after which
// the rest of the payload must be ignored).
//
// Resolver is consulted while Next decodes the first segment of each
// context, so the caller should apply each frame to its state before asking
// for the next one, as GNS does (a lane selected twice in one payload is
// resolved against what the first visit delivered). The returned
// *FrameError belongs to the Decoder and is valid until its next Reset.
// Next never allocates.
func (d *Decoder) Next(f *Frame) (ok bool, err error) {
	s := &d.dec
	if s.failed {
		return false, &s.err
	}
	if s.off >= len(s.b) {
		return false, nil
	}
	b := s.b[s.off:]
	lead := b[0]
	var n int
	switch {
	case lead&leadUnreliableMask == leadUnreliable:
		n, err = parseUnreliable(b, s.unrelMsgNum, d.Resolver, s.lane, f)
		if err == nil {
			s.unrelMsgNum = f.MsgNum
		}
	case lead&leadReliableMask == leadReliable:
		n, err = parseReliable(b, s.relNext, d.Resolver, s.lane, f)
		if err == nil {
			s.relNext = f.StreamPos + int64(len(f.Data))
			// A reliable segment also advances a running unreliable
			// message number (SNP_WIRE_FORMAT.md).
			if s.unrelMsgNum > 0 {
				s.unrelMsgNum++
			}
		}
	case lead&leadStopMask == leadStopWaiting:
		var minPkt int64
		minPkt, n, err = parseStopWaiting(b, d.PktNum)
		if err == nil {
			*f = Frame{Kind: KindStopWaiting, Lead: lead, Lane: s.lane, MinPktNumToAck: minPkt}
		}
	case lead&leadAckMask == leadAck:
		n, err = parseAck(b, d.NextSendPktNum, d.PeerVersion >= 13, &s.blocks, f)
		f.Lane = s.lane
	case lead&leadLaneMask == leadSelectLane:
		var lane uint32
		lane, n, err = parseSelectLane(b)
		if err == nil {
			s.lane = lane
			s.unrelMsgNum = 0
			s.relNext = 0
			*f = Frame{Kind: KindSelectLane, Lead: lead, Lane: lane}
		}
	default:
		err = errReservedLead
	}
	if err != nil {
		s.failed = true
		s.err = FrameError{Offset: s.off, Lead: lead, Err: err}
		return false, &s.err
	}
	s.off += n
	return true, nil
}
