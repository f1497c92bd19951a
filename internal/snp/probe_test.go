package snp

import (
	"bytes"
	"testing"
	"time"
)

// TestTailProbeTimeout: a lost reliable message that nothing follows is
// sent again by the tail-loss probe. On a path that has lost nothing the
// probe waits GNS's retransmission timeout (3 x RTT + 60 ms), so a timer
// is not re-armed a round trip ahead of every message of a healthy
// exchange; once a loss was seen it waits a probe timeout (RTT-scale, at
// least ptoMin), and the next loss is repaired within a few milliseconds.
func TestTailProbeTimeout(t *testing.T) {
	p := newPipe(t, 1, Config{}, Config{})
	p.delay = 100 * time.Microsecond
	var drop map[int64]bool
	p.drop = func(from *Conn, num int64) bool { return from == p.a && drop[num] }
	// A round of ping-pong: b answers each message at once, so its ack
	// rides on the answer (as W4's echo does).
	send := func(i int) time.Duration {
		t.Helper()
		start := p.now
		n := len(p.gotB)
		if _, err := p.a.SendMessage(p.now, 0, payload(i, 64), Reliable|NoNagle); err != nil {
			t.Fatal(err)
		}
		if !p.run(5*time.Second, func() bool { return len(p.gotB) > n }) {
			t.Fatalf("message %d not delivered", i)
		}
		d := p.now.Sub(start)
		if !bytes.Equal(p.gotB[n].Data, payload(i, 64)) {
			t.Fatalf("message %d: wrong data", i)
		}
		m := len(p.gotA)
		if _, err := p.b.SendMessage(p.now, 0, payload(i, 64), Reliable|NoNagle); err != nil {
			t.Fatal(err)
		}
		if !p.run(5*time.Second, func() bool { return len(p.gotA) > m && p.a.relInFlight == 0 }) {
			t.Fatalf("answer %d not delivered", i)
		}
		return d
	}
	for i := range 20 { // RTT samples
		send(i)
	}
	// A clean path: the lost message waits the retransmission timeout.
	drop = map[int64]bool{p.a.nextPktNum: true}
	if d := send(20); d < rtoSlack || d > rtoSlack+10*time.Millisecond {
		t.Fatalf("lost message on a clean path delivered after %v, want about %v", d, rtoSlack)
	}
	if s := p.a.Stats(p.now); s.TailProbes != 1 {
		t.Fatalf("%d tail-loss probes, want 1", s.TailProbes)
	}
	// Now the path has lost a packet: a tail goes twice (copyTail), and
	// the copy arrives.
	drop = map[int64]bool{p.a.nextPktNum: true}
	if d := send(21); d > 2*p.delay {
		t.Fatalf("lost message on a lossy path delivered after %v, want its copy after %v", d, p.delay)
	}
	// All three copies lost (the path losing over tailCopy2Loss): the
	// next loss is repaired at the probe timeout, the ping's data sent
	// again (and copied).
	p.a.lossRate = tailCopy2Loss
	drop = map[int64]bool{p.a.nextPktNum: true, p.a.nextPktNum + 1: true, p.a.nextPktNum + 2: true}
	if d := send(22); d < ptoMin || d > ptoMin+time.Millisecond {
		t.Fatalf("message lost three times on a lossy path delivered after %v, want within %v", d, ptoMin+time.Millisecond)
	}
	// Two probes and their copies lost too: the second probe comes one
	// probe timeout later (no backoff yet), the third after twice that.
	p.a.lossRate = max(p.a.lossRate, tailCopy2Loss)
	drop = map[int64]bool{}
	for i := range int64(9) {
		drop[p.a.nextPktNum+i] = true
	}
	if d := send(23); d < 4*ptoMin || d > 4*ptoMin+2*time.Millisecond {
		t.Fatalf("message lost nine times delivered after %v, want about %v", d, 4*ptoMin)
	}
	if s := p.a.Stats(p.now); s.TailCopies < 4 {
		t.Fatalf("%d tail copies, want one for each message and probe since the first loss", s.TailCopies)
	}
}

// TestDuplicateDataAckedAtOnce: reliable data the receiver already has
// (the sender probed because it heard no ack) is acked at once, not after
// the data ack delay.
func TestDuplicateDataAckedAtOnce(t *testing.T) {
	s := mustNew(t, Config{})
	r := mustNew(t, Config{})
	buf := make([]byte, 0, 2048)
	if _, err := s.SendMessage(t0, 0, []byte("hello"), Reliable|NoNagle); err != nil {
		t.Fatal(err)
	}
	pkt, num, ok := s.Poll(t0, buf)
	if !ok {
		t.Fatal("nothing sent")
	}
	if err := r.ReceivePacket(t0, num, pkt); err != nil {
		t.Fatal(err)
	}
	if w := r.NextWake(); !w.After(t0) {
		t.Fatalf("new data acked at %v, want after a delay", w)
	}
	// The same bytes again right behind, in a new packet (as a tail's
	// copy comes): no sign of a lost ack.
	s.lanes[0].queueRetx(1, s.lanes[0].sentPos)
	pkt, num, ok = s.Poll(t0, buf)
	if !ok {
		t.Fatal("no retransmission")
	}
	if err := r.ReceivePacket(t0, num, pkt); err != nil {
		t.Fatal(err)
	}
	if w := r.NextWake(); !w.After(t0) {
		t.Fatalf("a copy right behind its data acked at %v, want after a delay", w)
	}
	// Again, a probe timeout later (as a probe sends them).
	t1 := t0.Add(ptoMin)
	s.lanes[0].queueRetx(1, s.lanes[0].sentPos)
	pkt, num, ok = s.Poll(t1, buf)
	if !ok {
		t.Fatal("no retransmission")
	}
	if err := r.ReceivePacket(t1, num, pkt); err != nil {
		t.Fatal(err)
	}
	if w := r.NextWake(); w.After(t1) {
		t.Fatalf("duplicate data acked at %v, want at once", w)
	}
	if _, _, ok := r.Poll(t1, buf); !ok {
		t.Fatal("no ack packet for the duplicate")
	}
}

// TestAcksLeaveNoPacingDebt: a receiver of a bulk transfer sends acks far
// above its own (minimum) rate; they must not leave its pacer in debt,
// which would hold its next message back for as long as the acks took
// over their share.
func TestAcksLeaveNoPacingDebt(t *testing.T) {
	s := mustNew(t, Config{SendRateMin: 1 << 30, SendRateMax: 1 << 30})
	r := mustNew(t, Config{SendRateMin: 1024, SendRateMax: 1024})
	buf := make([]byte, 0, 2048)
	msg := make([]byte, 1000)
	now := t0
	for i := range 2000 {
		if _, err := s.SendMessage(now, 0, msg, Reliable|NoNagle); err != nil {
			t.Fatal(err)
		}
		for {
			pkt, num, ok := s.Poll(now, buf)
			if !ok {
				break
			}
			if err := r.ReceivePacket(now, num, pkt); err != nil {
				t.Fatal(err)
			}
		}
		var ms [8]Message
		for k := r.Receive(ms[:]); k > 0; k = r.Receive(ms[:]) {
			for j := range ms[:k] {
				ms[j].Release()
			}
		}
		if i%4 == 0 {
			for {
				pkt, num, ok := r.Poll(now, buf)
				if !ok {
					break
				}
				if err := s.ReceivePacket(now, num, pkt); err != nil {
					t.Fatal(err)
				}
			}
		}
		now = now.Add(100 * time.Microsecond)
	}
	if r.st.acksSent < 200 {
		t.Fatalf("only %d acks sent", r.st.acksSent)
	}
	if _, err := r.SendMessage(now, 0, []byte("reply"), Reliable|NoNagle); err != nil {
		t.Fatal(err)
	}
	if q := r.Stats(now).QueueTime; q > 20*time.Millisecond {
		t.Fatalf("the receiver's reply waits %v for pacing after sending acks", q)
	}
	if _, _, ok := r.Poll(now, buf); !ok {
		t.Fatal("the receiver's reply did not go at once")
	}
}

// TestRecvBufferGrowConsume: the receive lane's buffer moves its live
// bytes to the front of its array only once as many were consumed, and
// keeps them intact across moves and new arrays.
func TestRecvBufferGrowConsume(t *testing.T) {
	var l recvLane
	var want []byte
	next := byte(0)
	peak := 0
	for round := range 2000 {
		add := 1 + (round*37)%3000
		n0 := len(l.buf)
		l.grow(n0+add, 0)
		peak = max(peak, n0+add)
		for i := n0; i < len(l.buf); i++ {
			l.buf[i] = next
			next++
		}
		want = append(want, l.buf[n0:]...)
		if !bytes.Equal(l.buf, want) {
			t.Fatalf("round %d: buffer lost its bytes", round)
		}
		if len(l.arr) > 2*max(peak, 2048) {
			t.Fatalf("round %d: array of %d, the buffer was never above %d", round, len(l.arr), peak)
		}
		take := (round * 53) % (len(l.buf) + 1)
		l.consume(take)
		want = want[take:]
		if !bytes.Equal(l.buf, want) {
			t.Fatalf("round %d: consume lost bytes", round)
		}
	}
}

// TestBufferAheadOfHole: reliable data that arrives behind a lost packet is
// kept up to maxBufferedRel, apart from RecvBufferSize (which bounds the
// messages waiting for the application, as GNS's does), so the sender's
// whole window (4 x SendBufferSize, 2 MiB) survives a loss rather than
// being discarded past 1 MiB and sent again.
func TestBufferAheadOfHole(t *testing.T) {
	fixed := Config{SendRateMin: 1 << 30, SendRateMax: 1 << 30}
	p := newPipe(t, 1, fixed, Config{})
	p.delay = 20 * time.Millisecond // the window fills long before the repair
	first := int64(-1)
	p.drop = func(from *Conn, num int64) bool {
		if from == p.a && first < 0 && from.relInFlight > 0 {
			first = num
		}
		return num == first && from == p.a
	}
	const total = 3000 // 3.6 MB, more than the window
	sent, peak := 0, 0
	done := func() bool {
		for sent < total {
			if _, err := p.a.SendMessage(p.now, 0, payload(sent, 1200), Reliable); err != nil {
				break
			}
			sent++
		}
		peak = max(peak, p.b.Stats(p.now).ReceiveBufferedBytes)
		return len(p.gotB) == total
	}
	if !p.run(10*time.Second, done) {
		t.Fatalf("%d of %d messages delivered", len(p.gotB), total)
	}
	for i, m := range p.gotB {
		if !bytes.Equal(m.Data, payload(i, 1200)) {
			t.Fatalf("message %d: wrong data", i)
		}
	}
	st := p.b.Stats(p.now)
	t.Logf("receiver buffered up to %d B behind the hole; discarded %d packets", peak, st.PacketsDiscarded)
	if st.PacketsDiscarded != 0 {
		t.Errorf("receiver discarded %d packets of the window", st.PacketsDiscarded)
	}
	if peak <= 1<<20 || peak > maxBufferedRel {
		t.Errorf("receiver buffered up to %d B behind the hole, want more than RecvBufferSize (1 MiB), at most %d", peak, maxBufferedRel)
	}
}

// TestAckPaced: the ack owed after ackEveryPackets packets of reliable
// data goes at once when the last ack is older than ackMinInterval (a
// slow stream is acked as before), else ackMinInterval after it (a fast
// stream is acked about every ackMinInterval).
func TestAckPaced(t *testing.T) {
	s := mustNew(t, Config{})
	r := mustNew(t, Config{})
	buf := make([]byte, 0, 2048)
	now := t0
	// deliver sends n reliable messages, a packet each, gap apart, and
	// returns when the receiver's owed ack is due.
	deliver := func(n int, gap time.Duration) time.Time {
		t.Helper()
		for range n {
			now = now.Add(gap)
			if _, err := s.SendMessage(now, 0, []byte("hello"), Reliable|NoNagle); err != nil {
				t.Fatal(err)
			}
			pkt, num, ok := s.Poll(now, buf)
			if !ok {
				t.Fatal("nothing sent")
			}
			if err := r.ReceivePacket(now, num, pkt); err != nil {
				t.Fatal(err)
			}
		}
		return r.NextWake()
	}
	drain := func() {
		t.Helper()
		for {
			pkt, num, ok := r.Poll(now, buf)
			if !ok {
				return
			}
			if err := s.ReceivePacket(now, num, pkt); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Slow: a packet a millisecond, acked at the 8th.
	if w := deliver(ackEveryPackets, time.Millisecond); w.After(now) {
		t.Fatalf("slow stream: ack due %v after its %dth packet", w.Sub(now), ackEveryPackets)
	}
	drain()
	// Fast: 8 packets within a few µs of that ack wait for the interval.
	acked := now
	if w := deliver(ackEveryPackets, time.Microsecond); !w.Equal(acked.Add(ackMinInterval)) {
		t.Fatalf("fast stream: ack due %v after the last, want %v", w.Sub(acked), ackMinInterval)
	}
	now = acked.Add(ackMinInterval)
	if _, _, ok := r.Poll(now, buf); !ok {
		t.Fatal("no ack at its time")
	}
}
