package snp

import (
	"bytes"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/wire"
)

// TestBurstsMakeNoGarbage: a connection whose queues fill with a burst
// and empty again, over and over (the received-message ring, the send
// lane's reliable stream and unreliable queue), takes their arrays back
// from the pools instead of allocating new ones each time; before the
// pools, the ring alone made a W1 receiver allocate 85 bytes a message.
func TestBurstsMakeNoGarbage(t *testing.T) {
	h := newHandoff(t)
	msg := make([]byte, 64)
	burst := func() {
		for _, flags := range []SendFlags{Reliable, 0} {
			for range 450 {
				h.now = h.now.Add(100 * time.Nanosecond)
				if _, err := h.a.SendMessage(h.now, 0, msg, flags|NoNagle); err != nil {
					t.Fatal(err)
				}
			}
		}
		for {
			pkt, num, ok := h.a.Poll(h.now, h.buf)
			if !ok {
				break
			}
			if err := h.b.ReceivePacket(h.now, num, pkt); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(h.b.inbox.a); n <= 1<<poolMinShift {
			t.Fatalf("the inbox's ring is %d long: the burst does not grow it", n)
		}
		h.pump()
		if n := h.b.inbox.n; n != 0 {
			t.Fatalf("%d messages left in the inbox", n)
		}
	}
	// The inbox must grow past the size it keeps when empty.
	burst()
	if h.got != 900 {
		t.Fatalf("received %d of 900", h.got)
	}
	for range 3 {
		burst() // warm the pools
	}
	if raceEnabled {
		return // the race detector's sync.Pool drops some of what it is given
	}
	if a := testing.AllocsPerRun(20, burst); a >= 1 {
		t.Errorf("%.1f allocations per burst of 900 messages, want none", a)
	}
}

func TestSlicePool(t *testing.T) {
	var p slicePool[*int]
	s := p.get(100)
	if len(s) != 0 || cap(s) != 128 {
		t.Fatalf("get(100): len %d cap %d, want 0 and 128", len(s), cap(s))
	}
	x := 1
	for range 128 {
		s = append(s, &x)
	}
	p.put(s)
	s2 := p.get(65)
	if cap(s2) != 128 {
		t.Fatalf("get(65): cap %d, want 128", cap(s2))
	}
	for i, v := range s2[:cap(s2)] {
		if v != nil {
			t.Fatalf("a pooled array keeps pointer %d", i)
		}
	}
	g := p.grow(s2[:10], 200)
	if len(g) != 10 || cap(g) != 256 {
		t.Fatalf("grow: len %d cap %d, want 10 and 256", len(g), cap(g))
	}
	p.put(make([]*int, 100)) // not a power of two: ignored
	var bp slicePool[byte]
	if huge := bp.get(3 << 21); cap(huge) != 3<<21 {
		t.Fatalf("get beyond the classes: cap %d", cap(huge))
	}
}

// TestSendRing: the reliable stream's ring keeps every byte at its
// position while acks free its front, messages wrap past its end and the
// ring grows, and stream and contig read any span back in pieces.
func TestSendRing(t *testing.T) {
	var l sendLane
	l.init(Lane{})
	var want []byte // the stream from position 1
	rng := uint64(7)
	next := func(n uint64) uint64 { rng = rng*6364136223846793005 + 1442695040888963407; return (rng >> 33) % n }
	num := int64(0)
	wraps := 0
	for round := range 3000 {
		data := make([]byte, 1+next(700))
		for i := range data {
			data[i] = byte(round + i)
		}
		num++
		before := l.endPos
		l.queueReliable(num, nil, data)
		var hb [16]byte
		want = append(want, wire.AppendMsgHeader(hb[:0], 1, len(data))...)
		want = append(want, data...)
		if l.endPos-1 != int64(len(want)) || l.endPos-before != int64(len(wire.AppendMsgHeader(hb[:0], 1, len(data)))+len(data)) {
			t.Fatalf("round %d: stream ends at %d, want %d", round, l.endPos, len(want)+1)
		}
		// Read a random live span back, piece by piece.
		b := l.bufBase + int64(next(uint64(l.endPos-l.bufBase)))
		e := b + int64(next(uint64(l.endPos-b)+1))
		var got []byte
		for p := b; p < e; {
			k := min(e-p, l.contig(p))
			if k <= 0 {
				t.Fatalf("round %d: contig(%d) = %d", round, p, k)
			}
			got = append(got, l.stream(p, p+k)...)
			p += k
		}
		if !bytes.Equal(got, want[b-1:e-1]) {
			t.Fatalf("round %d: [%d, %d) reads back wrong", round, b, e)
		}
		// Acks free a random part of the front, now and then all of it.
		if next(10) < 7 {
			upTo := l.ackedBelow + int64(next(uint64(l.endPos-l.ackedBelow)+1))
			if next(50) == 0 {
				upTo = l.endPos
			}
			l.markAcked(l.ackedBelow, upTo)
		}
		if live := l.endPos - l.bufBase; live > int64(len(l.buf)) || (len(l.buf) > 4096 && live == 0) {
			t.Fatalf("round %d: %d live bytes in a ring of %d", round, live, len(l.buf))
		}
		if l.head+int(l.endPos-l.bufBase) > len(l.buf) {
			wraps++
		}
	}
	if wraps < 100 {
		t.Fatalf("the stream wrapped past the ring's end in only %d rounds", wraps)
	}
}
