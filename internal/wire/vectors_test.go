package wire

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"

	"github.com/netmsg-go/netmsg/internal/vectors"
)

// The JSON shapes of testdata/vectors/snp_frames.json (and the data
// packets of direct_session.json, which use the same fields).

type vecFile struct {
	Vectors       []vecPayload `json:"vectors"`
	Rejected      []vecPayload `json:"rejected"`
	PacketVectors []vecPayload `json:"packet_vectors"`
}

type vecPayload struct {
	ID                string           `json:"id"`
	Status            string           `json:"status"`
	PktNum            int64            `json:"pkt_num"`
	Context           vecContext       `json:"decoder_context"`
	PlaintextHex      string           `json:"plaintext_hex"`
	Frames            []vecFrame       `json:"frames"`
	FramesAsParsed    []vecFrame       `json:"frames_as_parsed"`
	MessagesCompleted []vecMessage     `json:"messages_completed"`
	Data              *vecSessionData  `json:"data"` // direct_session.json
	Extra             map[string]int64 `json:"-"`
}

type vecSessionData struct {
	PktNum            int64        `json:"pkt_num"`
	PlaintextHex      string       `json:"plaintext_hex"`
	Context           vecContext   `json:"decoder_context"`
	Frames            []vecFrame   `json:"frames"`
	MessagesCompleted []vecMessage `json:"messages_completed"`
}

type vecContext struct {
	PktNum   int64                     `json:"pkt_num"`
	NextSend int64                     `json:"ack_reference_next_send_pkt_num"`
	Lanes    map[string]vecLaneContext `json:"lanes"`
}

type vecLaneContext struct {
	ExpectedNextPos int64 `json:"reliable_expected_next_pos"`
	DeliveredPos    int64 `json:"reliable_delivered_pos"`
	HighestMsgNum   int64 `json:"highest_msg_num"`
	LastReliableNum int64 `json:"last_reliable_msg_num"`
}

type vecFrame struct {
	Type     string `json:"type"`
	Lead     string `json:"lead"`
	BytesHex string `json:"bytes_hex"`
	Lane     uint32 `json:"lane"`

	// unreliable_segment
	Last          bool   `json:"last_segment_in_message"`
	MsgNumEnc     string `json:"msg_num_encoding"`
	MsgNumField   *int64 `json:"msg_num_field"`
	MsgNum        int64  `json:"msg_num"`
	OffsetPresent bool   `json:"offset_present"`
	Offset        int64  `json:"offset"`
	SizeEnc       string `json:"size_encoding"`
	Size          int    `json:"size"`
	DataHex       string `json:"data_hex"`

	// reliable_segment
	PosEnc    string `json:"stream_pos_encoding"`
	PosField  *int64 `json:"stream_pos_field"`
	StreamPos int64  `json:"stream_pos"`

	// stop_waiting
	OffsetWidth int    `json:"offset_width_bits"`
	OffsetField uint64 `json:"offset_field"`
	MinPkt      int64  `json:"min_pkt_num_to_ack"`

	// ack
	LatestWidth   int        `json:"latest_width_bits"`
	LatestField   int64      `json:"latest_field"`
	Latest        int64      `json:"latest_received_pkt_num"`
	DelayField    uint16     `json:"delay_field"`
	DelayUsec     *int64     `json:"delay_usec"`
	ExplicitCount bool       `json:"explicit_block_count"`
	NumBlocks     int        `json:"num_blocks"`
	Blocks        []vecBlock `json:"blocks"`
	ImplicitBelow int64      `json:"implicitly_acked_below"`

	// select_lane
	LaneEnc string `json:"lane_encoding"`

	// decode_error
	AtOffset int `json:"at_offset"`
}

type vecBlock struct {
	Header    string   `json:"header"`
	NumAck    uint64   `json:"num_ack"`
	NumNack   uint64   `json:"num_nack"`
	AckUpper  *uint64  `json:"ack_count_varint_upper"`
	NackUpper *uint64  `json:"nack_count_varint_upper"`
	Acked     [2]int64 `json:"acked"`
	Nacked    [2]int64 `json:"nacked"`
}

type vecMessage struct {
	Lane        uint32   `json:"lane"`
	MsgNum      int64    `json:"msg_num"`
	Reliable    bool     `json:"reliable"`
	Size        int64    `json:"size"`
	DataHex     string   `json:"data_hex"`
	StreamRange [2]int64 `json:"stream_range"`
	HeaderHex   string   `json:"header_hex"`
}

// vecResolver is a receiver's state as far as the decoder needs it, built
// from decoder_context and advanced by the frames decoded, as an engine
// would between calls to Next.
type vecResolver struct {
	expect  map[uint32]int64
	highest map[uint32]int64
}

func newVecResolver(t *testing.T, ctx vecContext) *vecResolver {
	r := &vecResolver{expect: map[uint32]int64{}, highest: map[uint32]int64{}}
	for k, l := range ctx.Lanes {
		lane, err := strconv.ParseUint(k, 10, 32)
		if err != nil {
			t.Fatalf("lane key %q: %v", k, err)
		}
		r.expect[uint32(lane)] = l.ExpectedNextPos
		r.highest[uint32(lane)] = l.HighestMsgNum
	}
	return r
}

func (r *vecResolver) ReliableRef(lane uint32) int64 {
	if v, ok := r.expect[lane]; ok {
		return v
	}
	return 1
}

func (r *vecResolver) UnreliableRef(lane uint32) int64 { return r.highest[lane] }

func (r *vecResolver) apply(f *Frame) {
	switch f.Kind {
	case KindReliable:
		if end := f.StreamPos + int64(len(f.Data)); f.StreamPos <= r.ReliableRef(f.Lane) && end > r.ReliableRef(f.Lane) {
			r.expect[f.Lane] = end
		}
	case KindUnreliable:
		if f.MsgNum > r.highest[f.Lane] {
			r.highest[f.Lane] = f.MsgNum
		}
	}
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("hex %q: %v", s, err)
	}
	return b
}

// decodeAll decodes payload with a resolver built from ctx and returns the
// frames (with Data and AckBlocks copied), the byte span of each, and the
// error that stopped decoding.
func decodeAll(t *testing.T, ctx vecContext, pktNum int64, payload []byte) (frames []Frame, spans [][2]int, err error) {
	r := newVecResolver(t, ctx)
	d := Decoder{PktNum: pktNum, NextSendPktNum: ctx.NextSend, PeerVersion: 13, Resolver: r}
	d.Reset(payload)
	for {
		start := d.Offset()
		var f Frame
		ok, err := d.Next(&f)
		if err != nil || !ok {
			return frames, spans, err
		}
		f.AckBlocks = append([]AckBlock(nil), f.AckBlocks...)
		r.apply(&f)
		frames = append(frames, f)
		spans = append(spans, [2]int{start, d.Offset()})
	}
}

func TestVectorsDecode(t *testing.T) {
	var v vecFile
	vectors.Load(t, "snp_frames.json", &v)
	if len(v.Vectors) == 0 {
		t.Fatal("no vectors")
	}
	for _, vec := range v.Vectors {
		t.Run(vec.ID, func(t *testing.T) {
			checkVector(t, vec.Context, vec.PktNum, unhex(t, vec.PlaintextHex), vec.Frames, vec.MessagesCompleted)
		})
	}
	t.Logf("%d single-segment reliable messages checked", checkedMessages)
}

func TestDirectSessionDecode(t *testing.T) {
	var s struct {
		Datagrams []vecPayload `json:"datagrams"`
	}
	vectors.Load(t, "direct_session.json", &s)
	n := 0
	for i, dg := range s.Datagrams {
		if dg.Data == nil {
			continue
		}
		n++
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			dd := dg.Data
			checkVector(t, dd.Context, dd.PktNum, unhex(t, dd.PlaintextHex), dd.Frames, dd.MessagesCompleted)
		})
	}
	if n == 0 {
		t.Fatal("no data datagrams")
	}
}

// checkVector decodes payload and compares every frame with want, ending in
// a failure where want ends in a decode_error, then checks the reliable
// messages it can (single-segment ones) and the unreliable single-segment
// ones of messages_completed.
func checkVector(t *testing.T, ctx vecContext, pktNum int64, payload []byte, want []vecFrame, msgs []vecMessage) {
	frames, spans, err := decodeAll(t, ctx, pktNum, payload)
	wantErr := len(want) > 0 && want[len(want)-1].Type == "decode_error"
	if wantErr {
		want = want[:len(want)-1]
		if err == nil {
			t.Fatalf("decoded without error; want a failure after %d frames", len(want))
		}
	} else if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(frames) != len(want) {
		t.Fatalf("decoded %d frames, want %d (err %v)", len(frames), len(want), err)
	}
	// The relative contexts, tracked independently of the decoder.
	var unrelRun, relNext int64
	for i := range want {
		g, w := &frames[i], &want[i]
		name := "frame " + strconv.Itoa(i) + " (" + w.Type + ")"
		if got := "0x" + hex.EncodeToString([]byte{g.Lead}); got != w.Lead {
			t.Errorf("%s: lead %s, want %s", name, got, w.Lead)
		}
		if got := hex.EncodeToString(payload[spans[i][0]:spans[i][1]]); got != w.BytesHex {
			t.Errorf("%s: bytes %s, want %s", name, got, w.BytesHex)
		}
		switch w.Type {
		case "unreliable_segment":
			checkUnreliable(t, name, g, w, unrelRun)
			unrelRun = g.MsgNum
		case "reliable_segment":
			checkReliable(t, name, g, w, relNext)
			relNext = g.StreamPos + int64(len(g.Data))
			if unrelRun > 0 {
				unrelRun++
			}
		case "stop_waiting":
			widths := [4]int{8, 16, 24, 64}
			if g.Kind != KindStopWaiting || g.MinPktNumToAck != w.MinPkt ||
				widths[g.Lead&3] != w.OffsetWidth || uint64(pktNum-g.MinPktNumToAck-1) != w.OffsetField {
				t.Errorf("%s: got %+v, want %+v", name, *g, *w)
			}
		case "ack":
			checkAck(t, name, g, w)
		case "select_lane":
			enc := "inline"
			if g.Lead&7 == 7 {
				enc = "varint"
			}
			if g.Kind != KindSelectLane || g.Lane != w.Lane || enc != w.LaneEnc {
				t.Errorf("%s: got lane %d (%s), want %d (%s)", name, g.Lane, enc, w.Lane, w.LaneEnc)
			}
			unrelRun, relNext = 0, 0
		default:
			t.Fatalf("%s: unknown frame type", name)
		}
	}
	checkMessages(t, ctx, frames, msgs)
}

func sizeEncoding(lead byte) string {
	if lead&7 == 7 {
		return "to_end_of_packet"
	}
	return "explicit"
}

func checkUnreliable(t *testing.T, name string, g *Frame, w *vecFrame, run int64) {
	var enc string
	var field int64
	switch {
	case run == 0 && g.Lead&0x10 != 0:
		enc, field = "absolute_low32", g.MsgNum&0xffffffff
	case run == 0:
		enc, field = "absolute_low16", g.MsgNum&0xffff
	case g.Lead&0x10 != 0:
		enc, field = "varint_delta", g.MsgNum-run
	default:
		enc = "implicit_plus_1"
	}
	if g.Kind != KindUnreliable || g.Lane != w.Lane || g.MsgNum != w.MsgNum || g.Offset != w.Offset ||
		g.Last != w.Last || (g.Lead&0x08 != 0) != w.OffsetPresent || len(g.Data) != w.Size ||
		hex.EncodeToString(g.Data) != w.DataHex || enc != w.MsgNumEnc || sizeEncoding(g.Lead) != w.SizeEnc ||
		(w.MsgNumField != nil && *w.MsgNumField != field) {
		t.Errorf("%s: got %+v (%s, field %d), want %+v", name, *g, enc, field, *w)
	}
}

func checkReliable(t *testing.T, name string, g *Frame, w *vecFrame, next int64) {
	mm := g.Lead >> 3 & 3
	var enc string
	var field int64
	if next == 0 {
		bits := [3]int{24, 32, 48}[mm]
		enc, field = "absolute_low"+strconv.Itoa(bits), g.StreamPos&(1<<bits-1)
	} else {
		enc = [4]string{"relative_implicit_0", "relative_delta8", "relative_delta16", "relative_delta32"}[mm]
		field = g.StreamPos - next
	}
	if g.Kind != KindReliable || g.Lane != w.Lane || g.StreamPos != w.StreamPos || len(g.Data) != w.Size ||
		hex.EncodeToString(g.Data) != w.DataHex || enc != w.PosEnc || sizeEncoding(g.Lead) != w.SizeEnc ||
		(w.PosField != nil && *w.PosField != field) {
		t.Errorf("%s: got %+v (%s, field %d), want %+v", name, *g, enc, field, *w)
	}
}

func checkAck(t *testing.T, name string, g *Frame, w *vecFrame) {
	width, mask := 16, int64(0xffff)
	if g.Lead&0x08 == 0 {
		width, mask = 32, 0xffffffff
	}
	if g.Kind != KindAck || g.AckLatest != w.Latest || g.AckLatest&mask != w.LatestField || width != w.LatestWidth ||
		g.AckDelay != w.DelayField || (g.Lead&7 == 7) != w.ExplicitCount || len(g.AckBlocks) != w.NumBlocks ||
		len(w.Blocks) != w.NumBlocks || g.ImplicitAckBelow() != w.ImplicitBelow {
		t.Errorf("%s: got %+v, want %+v", name, *g, *w)
		return
	}
	if w.DelayUsec != nil && int64(g.AckDelay)<<AckDelayShift != *w.DelayUsec || w.DelayUsec == nil && g.AckDelay != AckDelayNone {
		t.Errorf("%s: delay %d, want %v µs", name, g.AckDelay, w.DelayUsec)
	}
	end := g.AckLatest + 1
	for k, blk := range g.AckBlocks {
		wb := w.Blocks[k]
		ackBegin, nackBegin := blk.Ranges(end)
		if blk.NumAck != wb.NumAck || blk.NumNack != wb.NumNack ||
			wb.Acked != [2]int64{ackBegin, end - 1} && blk.NumAck > 0 ||
			wb.Nacked != [2]int64{nackBegin, ackBegin - 1} && blk.NumNack > 0 ||
			wb.AckUpper != nil && *wb.AckUpper != blk.NumAck>>3 || wb.NackUpper != nil && *wb.NackUpper != blk.NumNack>>3 {
			t.Errorf("%s: block %d: got %+v ack [%d,%d) nack [%d,%d), want %+v", name, k, blk, ackBegin, end, nackBegin, ackBegin, wb)
		}
		end = nackBegin
	}
}

// checkMessages checks the completed messages that a codec can check
// alone: reliable messages lying in one segment of this payload, walked in
// stream order from the lane's delivered position, and unreliable messages
// sent whole in one segment.
func checkMessages(t *testing.T, ctx vecContext, frames []Frame, msgs []vecMessage) {
	type laneWalk struct{ pos, num int64 }
	walk := map[uint32]*laneWalk{}
	for k, l := range ctx.Lanes {
		lane, _ := strconv.ParseUint(k, 10, 32)
		walk[uint32(lane)] = &laneWalk{l.DeliveredPos, l.LastReliableNum}
	}
	for _, m := range msgs {
		if !m.Reliable {
			for _, f := range frames {
				if f.Kind == KindUnreliable && f.Lane == m.Lane && f.MsgNum == m.MsgNum && f.Offset == 0 && f.Last {
					if hex.EncodeToString(f.Data) != m.DataHex {
						t.Errorf("unreliable message %d: data %x, want %s", m.MsgNum, f.Data, m.DataHex)
					}
				}
			}
			continue
		}
		w := walk[m.Lane]
		if w == nil {
			w = &laneWalk{1, 0}
			walk[m.Lane] = w
		}
		if m.StreamRange[0] != w.pos {
			w.pos, w.num = m.StreamRange[1], m.MsgNum
			continue
		}
		for _, f := range frames {
			if f.Kind != KindReliable || f.Lane != m.Lane || f.StreamPos > m.StreamRange[0] ||
				f.StreamPos+int64(len(f.Data)) < m.StreamRange[1] {
				continue
			}
			b := f.Data[m.StreamRange[0]-f.StreamPos : m.StreamRange[1]-f.StreamPos]
			delta, size, n, err := ParseMsgHeader(b)
			if err != nil {
				t.Errorf("message %d: header: %v", m.MsgNum, err)
				break
			}
			checkedMessages++
			if hex.EncodeToString(b[:n]) != m.HeaderHex || int64(delta)+w.num != m.MsgNum || size != m.Size ||
				int64(n)+size != int64(len(b)) || hex.EncodeToString(b[n:]) != m.DataHex {
				t.Errorf("message %d: header %x delta %d size %d, want %+v", m.MsgNum, b[:n], delta, size, m)
			}
			// The canonical header must be GNS's when GNS wrote it, and
			// parse back in every case.
			re := AppendMsgHeader(nil, delta, int(size))
			if d2, s2, n2, err := ParseMsgHeader(re); err != nil || d2 != delta || s2 != size || n2 != len(re) ||
				MsgHeaderLen(delta, int(size)) != len(re) {
				t.Errorf("message %d: header %x does not round-trip", m.MsgNum, re)
			}
			break
		}
		w.pos, w.num = m.StreamRange[1], m.MsgNum
	}
}

// checkedMessages counts the reliable messages checkMessages checked.
var checkedMessages int

func TestVectorsRejected(t *testing.T) {
	var v vecFile
	vectors.Load(t, "snp_frames.json", &v)
	if len(v.Rejected) == 0 {
		t.Fatal("no rejected vectors")
	}
	for _, vec := range v.Rejected {
		t.Run(vec.ID, func(t *testing.T) {
			if err := rejectReason(t, vec); err == nil {
				t.Fatal("accepted")
			} else {
				t.Logf("rejected: %v", err)
			}
		})
	}
}

// rejectReason returns why a receiver built on this package rejects the
// payload: a decoding error, or a bad header of the first reliable message
// the payload delivers.
func rejectReason(t *testing.T, vec vecPayload) error {
	frames, _, err := decodeAll(t, vec.Context, vec.PktNum, unhex(t, vec.PlaintextHex))
	if err != nil {
		var fe *FrameError
		if !errors.As(err, &fe) {
			t.Fatalf("error %v is not a *FrameError", err)
		}
		return err
	}
	for k, l := range vec.Context.Lanes {
		lane, _ := strconv.ParseUint(k, 10, 32)
		for _, f := range frames {
			if f.Kind == KindReliable && f.Lane == uint32(lane) && f.StreamPos <= l.DeliveredPos &&
				f.StreamPos+int64(len(f.Data)) > l.DeliveredPos {
				if _, _, _, err := ParseMsgHeader(f.Data[l.DeliveredPos-f.StreamPos:]); err != nil && err != ErrShort {
					return err
				}
			}
		}
	}
	return nil
}

// TestVectorsReencode checks that every payload GNS emitted comes out of
// the Encoder byte for byte from its decoded frames.
func TestVectorsReencode(t *testing.T) {
	var v vecFile
	vectors.Load(t, "snp_frames.json", &v)
	n := 0
	for _, vec := range v.Vectors {
		if vec.Status != "seen from GNS" || vec.ID == "s2c_cmd_lane8_1" { // malformed by GNS's lane >= 8 bug
			continue
		}
		n++
		t.Run(vec.ID, func(t *testing.T) {
			payload := unhex(t, vec.PlaintextHex)
			frames, _, err := decodeAll(t, vec.Context, vec.PktNum, payload)
			if err != nil {
				t.Fatal(err)
			}
			got := encodeFrames(t, make([]byte, 0, 1500), vec.PktNum, frames, false)
			if !bytes.Equal(got, payload) {
				t.Fatalf("re-encoded\n%x\nwant\n%x", got, payload)
			}
		})
	}
	if n != 25 {
		t.Errorf("%d GNS payloads re-encoded, want 25", n)
	}
}

// encodeFrames encodes frames with the Encoder, checking every Len method
// against what the Append method appended. A segment whose lead has the
// size-to-end code is encoded in that form. With wide, acks whose lead has
// w=0 use the 32-bit form.
func encodeFrames(t testing.TB, dst []byte, pktNum int64, frames []Frame, wide bool) []byte {
	e := Encoder{PeerVersion: 13}
	e.Reset(dst, pktNum)
	for i := range frames {
		f := &frames[i]
		before := e.Len()
		var want int
		switch f.Kind {
		case KindSelectLane:
			want = e.SelectLaneLen(f.Lane)
			e.SelectLane(f.Lane)
		case KindStopWaiting:
			want = e.StopWaitingLen(f.MinPktNumToAck)
			e.AppendStopWaiting(f.MinPktNumToAck)
		case KindAck:
			if wide && f.Lead&0x08 == 0 {
				want = e.AckWideLen(f.AckLatest, f.AckBlocks)
				e.AppendAckWide(f.AckLatest, f.AckDelay, f.AckBlocks)
			} else {
				want = e.AckLen(f.AckLatest, f.AckBlocks)
				e.AppendAck(f.AckLatest, f.AckDelay, f.AckBlocks)
			}
		case KindReliable:
			toEnd := f.Lead&7 == 7
			want = e.ReliableLen(f.StreamPos, len(f.Data), toEnd)
			e.AppendReliable(f.StreamPos, f.Data, toEnd)
		case KindUnreliable:
			toEnd := f.Lead&7 == 7
			want = e.UnreliableLen(f.MsgNum, f.Offset, len(f.Data), toEnd)
			e.AppendUnreliable(f.MsgNum, f.Offset, f.Data, f.Last, toEnd)
		}
		if got := e.Len() - before; got != want {
			t.Fatalf("frame %d (%+v): appended %d bytes, Len said %d", i, *f, got, want)
		}
	}
	return e.Bytes()
}

// TestPacketVectorPayloads decodes the plaintexts of the whole-packet
// vectors (the packet layer itself is tested elsewhere).
func TestPacketVectorPayloads(t *testing.T) {
	var v vecFile
	vectors.Load(t, "snp_frames.json", &v)
	for _, vec := range v.PacketVectors {
		t.Run(vec.ID, func(t *testing.T) {
			ctx := vecContext{NextSend: 1 << 40}
			frames, _, err := decodeAll(t, ctx, vec.PktNum, unhex(t, vec.PlaintextHex))
			if err != nil && !errors.Is(err, ErrAckNotSent) {
				t.Fatalf("decode: %v", err)
			}
			t.Logf("%d frames, err %v", len(frames), err)
		})
	}
}
