package snp

import (
	"bytes"
	"math/rand/v2"
	"runtime"
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
	// A collection empties the pools: the ones the tests before left
	// due happen now, and the bursts then fill the pools again.
	runtime.GC()
	runtime.GC()
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
		l.grow(need, 0)
		if len(old) == 0 || &old[:1][0] != &l.arr[:1][0] {
			arrays++
		}
	}
	if arrays > 16 {
		t.Errorf("growing to 6 MiB by 1200 bytes took %d arrays, want one per doubling", arrays)
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

// TestLargeMessagesHandedOver: large reliable messages, mixed with small
// ones, over a link that loses, reorders and duplicates, arrive whole and
// in order; those of handOverMin and more are delivered in their lane's
// array itself, and the connection's count of lane array bytes stays
// true.
func TestLargeMessagesHandedOver(t *testing.T) {
	p := newPipe(t, 3, Config{}, Config{})
	p.loss, p.dup, p.jitter = 0.05, 0.02, 2*time.Millisecond
	sizes := []int{100, 20 << 10, 3, 300 << 10, 70 << 10, 1200, 16 << 10, 500 << 10, 9}
	const n = 60
	for i := range n {
		size := sizes[i%len(sizes)]
		for {
			if _, err := p.a.SendMessage(p.now, 0, payload(i, size), Reliable); err == nil {
				break
			}
			p.run(10*time.Millisecond, func() bool { return false }) // send buffer full: let it drain
		}
	}
	if !p.run(60*time.Second, func() bool { return len(p.gotB) == n }) {
		t.Fatalf("got %d of %d messages", len(p.gotB), n)
	}
	handed := 0
	for i, m := range p.gotB {
		size := sizes[i%len(sizes)]
		if m.MsgNum != int64(i+1) || !bytes.Equal(m.Data, payload(i, size)) {
			t.Fatalf("message %d: number %d, %d bytes, want %d", i, m.MsgNum, len(m.Data), size)
		}
		if cap(m.Data) != len(m.Data) {
			t.Fatalf("message %d: Data has room past its end (%d > %d)", i, cap(m.Data), len(m.Data))
		}
		if size >= handOverMin && m.buf != nil && cap(m.buf) >= 2*size-64 && cap(m.buf) <= 4*size {
			handed++
		}
	}
	if handed == 0 {
		t.Fatal("no large message was delivered in its lane's array")
	}
	sum := 0
	for i := range p.b.rlanes {
		sum += cap(p.b.rlanes[i].arr)
	}
	if sum != p.b.laneArr {
		t.Fatalf("laneArr is %d, the lanes' arrays hold %d", p.b.laneArr, sum)
	}
	for i := range p.gotB {
		p.gotB[i].Release()
	}
}

// TestLargeMessagesNoGarbage: a stream of 256 KiB messages, each released
// after it is taken, makes no garbage: every lane array comes back from
// the application through Release.
func TestLargeMessagesNoGarbage(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's sync.Pool drops some of what it is given")
	}
	h := newHandoff(t)
	msg := make([]byte, 256<<10)
	one := func() {
		for {
			if _, err := h.a.SendMessage(h.now, 0, msg, Reliable|NoNagle); err == nil {
				break
			}
			h.now = h.now.Add(time.Millisecond)
			h.pump()
		}
		h.now = h.now.Add(time.Millisecond)
		h.pump()
	}
	runtime.GC() // see TestBurstsMakeNoGarbage
	runtime.GC()
	for range 8 {
		one()
	}
	got := h.got
	if a := testing.AllocsPerRun(200, one); a >= 1 {
		t.Errorf("%.1f allocations per 256 KiB message, want none", a)
	}
	if h.got-got < 20 {
		t.Fatalf("%d messages arrived", h.got-got)
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
