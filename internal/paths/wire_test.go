package paths

import (
	"bytes"
	"errors"
	"testing"

	"github.com/netmsg-go/netmsg/internal/ice"
)

func TestClassify(t *testing.T) {
	stun := ice.BindingRequest([12]byte{1, 2, 3})
	cd := ChannelData{Channel: 0x4001, Data: []byte{0x80, 1, 2}}.Append(nil)
	cases := []struct {
		b    []byte
		want Kind
	}{
		{nil, KindUnknown},
		{[]byte{}, KindUnknown},
		{stun, KindSTUN},
		{stun[:19], KindUnknown},                      // shorter than a STUN header
		{append([]byte{0}, stun[1:]...), KindSTUN},    // type bits do not matter
		{append([]byte{4}, stun[1:]...), KindUnknown}, // the first two bits must be zero
		{func() []byte { b := bytes.Clone(stun); b[4] ^= 1; return b }(), KindUnknown}, // no magic cookie
		{cd, KindChannelData},
		{cd[:3], KindUnknown},
		{[]byte{0x4f, 0xff, 0, 0}, KindChannelData},
		{[]byte{0x50, 0, 0, 0}, KindUnknown},
		{[]byte{32}, KindGNSControl},
		{[]byte{37, 1, 2}, KindGNSControl},
		{[]byte{38}, KindUnknown},
		{[]byte{31}, KindUnknown},
		{[]byte{0x80}, KindGNSData},
		{[]byte{0xff, 0}, KindGNSData},
	}
	for i, c := range cases {
		if got := Classify(c.b); got != c.want {
			t.Errorf("case %d (% x): %v, want %v", i, c.b, got, c.want)
		}
	}
}

func TestChannelDataRoundTrip(t *testing.T) {
	for _, cd := range []ChannelData{
		{Channel: ChannelMin, Data: []byte{}},
		{Channel: 0x4abc, Data: []byte("hello")},
		{Channel: ChannelMax, Data: bytes.Repeat([]byte{0x80}, 1200)},
	} {
		b := cd.Append([]byte{9}) // after something already in the buffer
		if len(b) != 1+cd.Len() {
			t.Fatalf("Append wrote %d bytes, Len says %d", len(b)-1, cd.Len())
		}
		got, n, err := ParseChannelData(b[1:])
		if err != nil || n != cd.Len() || got.Channel != cd.Channel || !bytes.Equal(got.Data, cd.Data) {
			t.Fatalf("parse: %+v %d %v, want %+v", got, n, err, cd)
		}
		// Padding (RFC 8656 12.5) after the data is ignored.
		padded := append(bytes.Clone(b[1:]), 0, 0, 0)
		if got, n, err := ParseChannelData(padded); err != nil || n != cd.Len() || !bytes.Equal(got.Data, cd.Data) {
			t.Fatalf("padded: %+v %d %v", got, n, err)
		}
		// Every truncated prefix is an error, never a panic.
		for i := range len(b) - 1 {
			if _, _, err := ParseChannelData(b[1 : 1+i]); !errors.Is(err, ErrChannelDataShort) {
				t.Fatalf("prefix of %d bytes: %v, want ErrChannelDataShort", i, err)
			}
		}
		// Data is capped: appending to it cannot overwrite what follows.
		if cap(got.Data) != len(got.Data) {
			t.Fatalf("Data has spare capacity %d", cap(got.Data)-len(got.Data))
		}
	}
	for _, ch := range []uint16{0, 0x3fff, 0x5000, 0xffff} {
		b := ChannelData{Channel: ch, Data: []byte{1}}.Append(nil)
		if _, _, err := ParseChannelData(b); !errors.Is(err, ErrChannelNumber) {
			t.Errorf("channel %#x: %v, want ErrChannelNumber", ch, err)
		}
	}
}

func FuzzChannelData(f *testing.F) {
	f.Add(ChannelData{Channel: 0x4000, Data: []byte{0x80, 1, 2, 3}}.Append(nil))
	f.Add(ChannelData{Channel: 0x4fff}.Append(nil))
	f.Add([]byte{0x40, 0x01, 0x00, 0x08, 1, 2})
	f.Add(ice.BindingRequest([12]byte{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		cd, n, err := ParseChannelData(b)
		if err != nil {
			return
		}
		if n > len(b) || n != cd.Len() {
			t.Fatalf("n %d of %d bytes, Len %d", n, len(b), cd.Len())
		}
		if Classify(b) != KindChannelData {
			t.Fatalf("parsed as ChannelData but classified %v", Classify(b))
		}
		out := cd.Append(nil)
		if !bytes.Equal(out, b[:n]) {
			t.Fatalf("round trip: % x, want % x", out, b[:n])
		}
	})
}

func FuzzClassify(f *testing.F) {
	f.Add(ice.BindingRequest([12]byte{1}))
	f.Add(ChannelData{Channel: 0x4000, Data: []byte{0x80}}.Append(nil))
	f.Add([]byte{32, 0, 0})
	f.Add([]byte{0x80, 1, 2, 3, 4})
	f.Fuzz(func(t *testing.T, b []byte) {
		k := Classify(b)
		switch k {
		case KindSTUN:
			if b[0] >= 4 || !ice.IsSTUN(b) {
				t.Fatalf("classified STUN, ice.IsSTUN says no")
			}
		case KindChannelData:
			if len(b) < 4 || b[0]&0xf0 != 0x40 {
				t.Fatalf("classified ChannelData: % x", b)
			}
		case KindGNSData:
			if b[0]&0x80 == 0 {
				t.Fatal("data without the top bit")
			}
		}
		// What the Host took as STUN (the first two bits zero, and
		// pion's check) is STUN here too.
		if len(b) > 0 && b[0] < 4 && ice.IsSTUN(b) && k != KindSTUN {
			t.Fatalf("STUN classified %v", k)
		}
	})
}
