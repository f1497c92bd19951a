package snp

import (
	"testing"
	"time"
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
