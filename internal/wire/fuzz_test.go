package wire

import (
	"bytes"
	"errors"
	"testing"

	"github.com/netmsg-go/netmsg/internal/vectors"
)

// seedPayloads returns every SNP plaintext of the vectors.
func seedPayloads(f *testing.F) [][]byte {
	var v vecFile
	vectors.Load(f, "snp_frames.json", &v)
	var s struct {
		Datagrams []vecPayload `json:"datagrams"`
	}
	vectors.Load(f, "direct_session.json", &s)
	var seeds [][]byte
	for _, list := range [][]vecPayload{v.Vectors, v.Rejected, v.PacketVectors} {
		for _, vec := range list {
			seeds = append(seeds, unhex(f, vec.PlaintextHex))
		}
	}
	for _, dg := range s.Datagrams {
		if dg.Data != nil {
			seeds = append(seeds, unhex(f, dg.Data.PlaintextHex))
		}
	}
	return seeds
}

// fuzzDecode decodes payload with fixed receiver state and returns its
// frames, with the data copied.
func fuzzDecode(payload []byte) ([]Frame, error) {
	d := Decoder{PktNum: 1000, NextSendPktNum: 1000, PeerVersion: 13, Resolver: fixedResolver{rel: 5000, unrel: 100}}
	d.Reset(payload)
	var frames []Frame
	for {
		var f Frame
		ok, err := d.Next(&f)
		if err != nil || !ok {
			return frames, err
		}
		if d.Offset() > len(payload) {
			panic("offset past the payload")
		}
		f.Data = bytes.Clone(f.Data)
		f.AckBlocks = append([]AckBlock(nil), f.AckBlocks...)
		frames = append(frames, f)
	}
}

// significant drops select-lane frames that name the lane already current:
// the Encoder does not write them, and they change no decoded value.
func significant(frames []Frame) []Frame {
	var out []Frame
	var lane uint32
	for _, f := range frames {
		if f.Kind == KindSelectLane {
			if f.Lane == lane {
				continue
			}
			lane = f.Lane
		}
		f.Lead = 0
		out = append(out, f)
	}
	return out
}

// FuzzDecode checks that decoding never panics and that a decodable payload
// survives decode, encode (canonically), decode with the same frames.
func FuzzDecode(f *testing.F) {
	for _, s := range seedPayloads(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, payload []byte) {
		frames, err := fuzzDecode(payload)
		if err != nil {
			var fe *FrameError
			if !errors.As(err, &fe) || fe.Offset >= len(payload) {
				t.Fatalf("bad error %v", err)
			}
			return
		}
		enc := encodeFrames(t, nil, 1000, frames, true)
		again, err := fuzzDecode(enc)
		if err != nil {
			t.Fatalf("re-encoded %x does not decode: %v (from %x)", enc, err, payload)
		}
		a, b := significant(frames), significant(again)
		if len(a) != len(b) {
			t.Fatalf("%d frames, %d after the round trip\n%x\n%x", len(a), len(b), payload, enc)
		}
		for i := range a {
			if !frameEqual(a[i], b[i]) {
				t.Fatalf("frame %d: %+v, after the round trip %+v\n%x\n%x", i, a[i], b[i], payload, enc)
			}
		}
	})
}

// FuzzMsgHeader checks ParseMsgHeader against its canonical encoding.
func FuzzMsgHeader(f *testing.F) {
	for _, s := range seedPayloads(f) {
		for i := 0; i < len(s) && i < 16; i++ {
			f.Add(s[i:])
		}
	}
	f.Add([]byte{0x6b, 0x03, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		delta, size, n, err := ParseMsgHeader(b)
		if err != nil {
			// The longest header: the byte and two 10-byte varints.
			if err == ErrShort && len(b) >= 21 {
				t.Fatalf("ErrShort for %d bytes", len(b))
			}
			return
		}
		if n < 1 || n > len(b) || size < 0 || size > 0xffffffff || delta > MaxMsgNumDelta {
			t.Fatalf("%x: delta %d size %d n %d", b, delta, size, n)
		}
		re := AppendMsgHeader(nil, delta, int(size))
		d2, s2, n2, err := ParseMsgHeader(re)
		if err != nil || d2 != delta || s2 != size || n2 != len(re) || n2 > n || MsgHeaderLen(delta, int(size)) != n2 {
			t.Fatalf("%x: canonical %x parsed as %d %d %d %v", b[:n], re, d2, s2, n2, err)
		}
	})
}

// FuzzVarint checks ParseVarint against AppendVarint.
func FuzzVarint(f *testing.F) {
	for _, s := range seedPayloads(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n, err := ParseVarint(b)
		if err != nil {
			return
		}
		if n < 1 || n > 10 || n > len(b) {
			t.Fatalf("%x: n %d", b, n)
		}
		re := AppendVarint(nil, v)
		v2, n2, err := ParseVarint(re)
		if err != nil || v2 != v || n2 != len(re) || n2 > n || VarintLen(v) != n2 {
			t.Fatalf("%x: %d re-encoded as %x", b[:n], v, re)
		}
		if v32, n32, err := parseVarint32(b); err == nil && (n32 != n || v32 != uint32(v)) {
			t.Fatalf("%x: 32-bit parse %d/%d, 64-bit %d/%d", b, v32, n32, v, n)
		}
	})
}
