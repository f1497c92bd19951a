package snp

import (
	"math/rand/v2"
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
		// The bursts are apart: the receiver's ack, held while it acked
		// within ackMinInterval, goes, and the sender's record of
		// packets in flight empties as well.
		h.now = h.now.Add(ackMinInterval)
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
	if huge := bp.get(3 << 21); cap(huge) != 8<<20 {
		t.Fatalf("get beyond the classes: cap %d, want the next power of two, %d", cap(huge), 8<<20)
	}
}

// TestRecvLaneGrowPastPool: a receive lane's reassembly buffer that grows
// one segment at a time past the pool's largest class (2 MiB; data held
// behind a hole reaches maxBufferedRel, 2 MiB + 64 KiB) takes a new array
// only at each doubling. Arrays beyond the classes were of the exact size
// asked, so each segment there copied the whole buffer: a receiver at 10%
// loss holding 4 MiB spent its time in memmove and took 3 MB/s.
func TestRecvLaneGrowPastPool(t *testing.T) {
	var l recvLane
	arrays := 0
	for need := 1200; need <= 6<<20; need += 1200 {
		old := l.arr
		l.grow(need)
		if len(old) == 0 || &old[:1][0] != &l.arr[:1][0] {
			arrays++
		}
	}
	if arrays > 16 {
		t.Errorf("growing to 6 MiB by 1200 bytes took %d arrays, want one per doubling", arrays)
	}
}

// TestRangeSetModel checks rangeSet's add and remove against a bitmap.
func TestRangeSetModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		var r rangeSet
		var m [200]bool
		for range 100 {
			b := rng.Int64N(200)
			e := b + rng.Int64N(min(20, 200-b)+1)
			if rng.IntN(2) == 0 {
				for i := b; i < e; i++ {
					m[i] = true
				}
				r.add(b, e)
			} else {
				for i := b; i < e; i++ {
					m[i] = false
				}
				r.remove(b, e)
			}
			var got [200]bool
			last := int64(-1)
			for _, x := range r.s {
				if x.b >= x.e || x.b <= last {
					t.Fatalf("round %d: spans not sorted, disjoint and apart: %v", round, r.s)
				}
				for i := x.b; i < x.e; i++ {
					got[i] = true
				}
				last = x.e
			}
			if got != m {
				t.Fatalf("round %d: set %v differs from the model", round, r.s)
			}
		}
	}
}
