package rtcframe

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func seeds() [][]byte {
	return [][]byte{
		AppendData(nil, Data{Flags: FlagReliable, Channel: 3, Num: 7, Index: 0, Count: 1, Payload: []byte("hello")}),
		AppendData(nil, Data{Channel: -1, Num: 1 << 31, Index: 2, Count: 4, Payload: bytes.Repeat([]byte{9}, 100)}),
		AppendClose(nil, 1001, "Session closed"),
		AppendPing(nil, KindPing, 123456789),
		AppendPing(nil, KindPong, 1),
	}
}

// TestRoundTrip parses what the append functions make, and refuses every
// truncated prefix of a frame with a fixed-size header.
func TestRoundTrip(t *testing.T) {
	for _, b := range seeds() {
		f, err := Parse(b)
		if err != nil {
			t.Fatalf("%x: %v", b, err)
		}
		if got := appendFrame(nil, f); !bytes.Equal(got, b) {
			t.Errorf("round trip %x -> %x", b, got)
		}
		hdr := map[byte]int{KindData: DataHeaderLen, KindClose: 5, KindPing: pingLen, KindPong: pingLen}[b[0]]
		for n := 0; n < hdr; n++ {
			if _, err := Parse(b[:n]); !errors.Is(err, ErrShort) {
				t.Errorf("%x cut to %d: %v, want ErrShort", b, n, err)
			}
		}
	}
	for _, bad := range [][]byte{
		{0}, {5, 0, 0, 0, 0, 0, 0, 0, 0},
		AppendData(nil, Data{Index: 0, Count: 0}),
		AppendData(nil, Data{Index: 2, Count: 2}),
		AppendData(nil, Data{Index: 0, Count: MaxFragments + 1}),
		AppendData(nil, Data{Count: 1, Payload: make([]byte, MaxFragment+1)}),
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%x parsed", bad[:min(len(bad), 16)])
		}
	}
	if f, _ := Parse(AppendClose(nil, 5, string(bytes.Repeat([]byte("x"), 300)))); len(f.Debug) != MaxDebug {
		t.Errorf("debug of %d bytes", len(f.Debug))
	}
}

func appendFrame(b []byte, f Frame) []byte {
	switch f.Kind {
	case KindData:
		return AppendData(b, f.Data)
	case KindClose:
		return AppendClose(b, f.Reason, f.Debug)
	default:
		return AppendPing(b, f.Kind, f.Ping)
	}
}

// TestSplitReassemble cuts messages of many sizes into frames that fit
// MaxFrame and puts them back together, in order (reliable) and shuffled
// with losses (unreliable: whole or nothing).
func TestSplitReassemble(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var rel Reliable
	var unrel Unreliable
	for _, n := range []int{0, 1, MaxFragment - 1, MaxFragment, MaxFragment + 1, 3*MaxFragment + 5, MaxMessage} {
		msg := make([]byte, n)
		for i := range msg {
			msg[i] = byte(rng.Uint32())
		}
		var frames [][]byte
		err := Split(nil, msg, FlagReliable, 4, uint32(n), func(f []byte) error {
			if len(f) > MaxFrame {
				t.Fatalf("frame of %d bytes", len(f))
			}
			frames = append(frames, append([]byte(nil), f...))
			return nil
		})
		if err != nil || len(frames) != Fragments(n) {
			t.Fatalf("%d bytes: %d frames, %v", n, len(frames), err)
		}
		var got []byte
		for i, f := range frames {
			fr, err := Parse(f)
			if err != nil {
				t.Fatal(err)
			}
			m, err := rel.Add(fr.Data)
			if err != nil {
				t.Fatal(err)
			}
			if (m != nil) != (i == len(frames)-1) {
				t.Fatalf("%d bytes: message after fragment %d of %d", n, i, len(frames))
			}
			got = m
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: reliable reassembly differs", n)
		}
		// Unreliable, shuffled.
		rng.Shuffle(len(frames), func(i, j int) { frames[i], frames[j] = frames[j], frames[i] })
		got = nil
		for _, f := range frames {
			fr, _ := Parse(f)
			if m := unrel.Add(fr.Data); m != nil {
				got = m
			}
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("%d bytes: unreliable reassembly differs", n)
		}
		// One fragment lost: nothing comes out.
		if len(frames) > 1 {
			for _, f := range frames[1:] {
				fr, _ := Parse(f)
				if m := unrel.Add(fr.Data); m != nil {
					t.Fatalf("%d bytes: a message with a fragment lost", n)
				}
			}
		}
	}
	if unrel.Pending() > MaxPartial {
		t.Errorf("%d partial messages", unrel.Pending())
	}
	if err := Split(nil, make([]byte, MaxMessage+1), 0, 0, 0, func([]byte) error { return nil }); !errors.Is(err, ErrTooLarge) {
		t.Errorf("oversized: %v", err)
	}
	// Out of order on the reliable channel is an error.
	var r Reliable
	if _, err := r.Add(Data{Index: 1, Count: 2}); !errors.Is(err, ErrOrder) {
		t.Errorf("index 1 first: %v", err)
	}
	r.Add(Data{Num: 1, Index: 0, Count: 2})
	if _, err := r.Add(Data{Num: 2, Index: 1, Count: 2}); !errors.Is(err, ErrOrder) {
		t.Errorf("another message's fragment: %v", err)
	}
}

// TestUnreliableBounded: partial messages never exceed MaxPartial.
func TestUnreliableBounded(t *testing.T) {
	var u Unreliable
	for i := range 1000 {
		u.Add(Data{Num: uint32(i), Index: 0, Count: 3, Payload: []byte{1}})
		if u.Pending() > MaxPartial {
			t.Fatalf("%d pending", u.Pending())
		}
	}
}

// FuzzFrame: no input panics Parse or the reassemblers, and a frame that
// parses comes back byte for byte from its append function.
func FuzzFrame(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var rel Reliable
		var unrel Unreliable
		fr, err := Parse(b)
		if err != nil {
			return
		}
		got := appendFrame(nil, fr)
		if fr.Kind == KindClose {
			if len(b) <= 5+MaxDebug && !bytes.Equal(got, b) {
				t.Fatalf("close %x -> %x", b, got)
			}
			return
		}
		if fr.Kind == KindPing || fr.Kind == KindPong {
			b = b[:pingLen]
		}
		if !bytes.Equal(got, b) {
			t.Fatalf("%x -> %x", b, got)
		}
		if fr.Kind == KindData {
			rel.Add(fr.Data)
			unrel.Add(fr.Data)
			unrel.Add(fr.Data)
		}
	})
}
