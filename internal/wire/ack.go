package wire

// Ack: 1001wnnn latest delay [count] blocks.
//
// latest holds the low 32 (w=0) or 16 (w=1) bits of the newest packet
// number acked, expanded to the nearest value to the receiving side's own
// next packet number (Decoder.NextSendPktNum). Peers below protocol version
// 13 ignore w and always use 16 bits. delay is 16 bits in units of 32 µs
// (AckDelayNone: no timing). nnn is the block count, or 111 and a count
// byte. Each block is aaaannnn: 0aaa is an ack count of 0-7; 1aaa means
// those are the low three bits and the upper bits follow as a varint; nnnn
// likewise for the nack count. The ack varint comes before the nack varint.
//
// Blocks run backwards from latest: block 0 acks [latest+1-NumAck,
// latest+1) and nacks the NumNack packets below that, block 1 continues
// below, and so on. Below the last block the frame says nothing explicitly:
// packets from the sender's own latest stop-waiting point up to there are
// acked implicitly (see ImplicitAckBelow).

// parseAck decodes the ack frame whose lead is b[0] into f. *blocks holds
// the decoded blocks (f.AckBlocks aliases it); it is grown when an ack has
// more blocks than it can hold. nextSend is the receiving
// side's next packet number; wide enables the w bit (peer version >= 13).
func parseAck(b []byte, nextSend int64, wide bool, bs *[]AckBlock, f *Frame) (n int, err error) {
	lead := b[0]
	i := 1
	var latest int64
	if wide && lead&ackBitNarrow == 0 {
		if len(b) < i+4 {
			return 0, ErrTruncated
		}
		latest = nearest32(le32(b[i:]), nextSend)
		i += 4
	} else {
		if len(b) < i+2 {
			return 0, ErrTruncated
		}
		latest = nearest16(le16(b[i:]), nextSend)
		i += 2
	}
	if latest < 0 {
		return 0, errAckLatestRange
	}
	if latest >= nextSend {
		return 0, ErrAckNotSent
	}
	if len(b) < i+2 {
		return 0, ErrTruncated
	}
	delay := le16(b[i:])
	i += 2
	count := int(lead & ackCountMask)
	if count == ackCountByte {
		if i >= len(b) {
			return 0, ErrTruncated
		}
		count = int(b[i])
		i++
	}
	if cap(*bs) < count {
		*bs = make([]AckBlock, max(8, min(MaxAckBlocks, 2*count)))
	}
	blocks := (*bs)[:cap(*bs)]
	end := latest + 1 // exclusive end of the next block's acked range
	for k := 0; k < count; k++ {
		if i >= len(b) {
			return 0, ErrTruncated
		}
		hdr := b[i]
		i++
		numAck := uint64(hdr >> 4 & 7)
		if hdr&blockAckExt != 0 {
			upper, m, err := ParseVarint(b[i:])
			if err != nil {
				return 0, err
			}
			if upper > maxAckCountUpper {
				return 0, errAckCountRange
			}
			numAck |= upper << 3
			i += m
		}
		end -= int64(numAck)
		if end < 0 {
			return 0, errAckUnderflow
		}
		numNack := uint64(hdr & 7)
		if hdr&blockNackExt != 0 {
			upper, m, err := ParseVarint(b[i:])
			if err != nil {
				return 0, err
			}
			if upper > maxAckCountUpper {
				return 0, errAckCountRange
			}
			numNack |= upper << 3
			i += m
		}
		end -= int64(numNack)
		if end < 0 {
			return 0, errAckUnderflow
		}
		blocks[k] = AckBlock{NumAck: numAck, NumNack: numNack}
	}
	*f = Frame{
		Kind:      KindAck,
		Lead:      lead,
		AckLatest: latest,
		AckDelay:  delay,
		AckBlocks: blocks[:count:count],
	}
	return i, nil
}

// appendAck appends an ack frame with a 16-bit (GNS's only choice) or, when
// wide, a 32-bit latest field.
func appendAck(b []byte, latest int64, delay uint16, blocks []AckBlock, wide bool) []byte {
	if len(blocks) > MaxAckBlocks {
		panic("wire: more than 255 ack blocks")
	}
	lead := byte(leadAck)
	if !wide {
		lead |= ackBitNarrow
	}
	if len(blocks) > ackInlineMax {
		lead |= ackCountByte
	} else {
		lead |= byte(len(blocks))
	}
	b = append(b, lead)
	if wide {
		b = appendLE32(b, uint32(latest))
	} else {
		b = appendLE16(b, uint16(latest))
	}
	b = appendLE16(b, delay)
	if len(blocks) > ackInlineMax {
		b = append(b, byte(len(blocks)))
	}
	for _, blk := range blocks {
		var hdr byte
		if blk.NumAck < 8 {
			hdr = byte(blk.NumAck) << 4
		} else {
			hdr = blockAckExt | byte(blk.NumAck&7)<<4
		}
		if blk.NumNack < 8 {
			hdr |= byte(blk.NumNack)
		} else {
			hdr |= blockNackExt | byte(blk.NumNack&7)
		}
		b = append(b, hdr)
		if blk.NumAck >= 8 {
			b = AppendVarint(b, blk.NumAck>>3)
		}
		if blk.NumNack >= 8 {
			b = AppendVarint(b, blk.NumNack>>3)
		}
	}
	return b
}

// ackLen returns the length appendAck appends.
func ackLen(blocks []AckBlock, wide bool) int {
	n := 1 + 2 + 2
	if wide {
		n += 2
	}
	if len(blocks) > ackInlineMax {
		n++
	}
	for _, blk := range blocks {
		n++
		if blk.NumAck >= 8 {
			n += VarintLen(blk.NumAck >> 3)
		}
		if blk.NumNack >= 8 {
			n += VarintLen(blk.NumNack >> 3)
		}
	}
	return n
}

// Ranges returns the packet ranges of a block whose acked range ends at
// end (exclusive; AckLatest+1 for block 0): it acks [ackBegin, end) and
// nacks [nackBegin, ackBegin). The next block's end is nackBegin.
func (blk AckBlock) Ranges(end int64) (ackBegin, nackBegin int64) {
	ackBegin = end - int64(blk.NumAck)
	return ackBegin, ackBegin - int64(blk.NumNack)
}

// ImplicitAckBelow returns, for an ack frame, the packet number below its
// last block (AckLatest+1 when it has none). The frame acks implicitly every
// packet from the sender's own latest stop-waiting point (its lowest packet
// still waiting for an ack) up to, but excluding, this number; GNS relies on
// this so that a loss-free ack needs no blocks at all.
func (f *Frame) ImplicitAckBelow() int64 {
	end := f.AckLatest + 1
	for _, blk := range f.AckBlocks {
		end -= int64(blk.NumAck + blk.NumNack)
	}
	return end
}
