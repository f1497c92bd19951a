package snp

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/wire"
)

func mustNew(t testing.TB, cfg Config) *Conn {
	t.Helper()
	c, err := New(cfg, t0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSendErrors(t *testing.T) {
	c := mustNew(t, Config{})
	if _, err := c.SendMessage(t0, 0, make([]byte, MaxMessageSize+1), Reliable); !errors.Is(err, ErrMessageTooBig) {
		t.Fatalf("too big: %v", err)
	}
	if _, err := c.SendMessage(t0, 1, []byte("x"), Reliable); !errors.Is(err, ErrBadLane) {
		t.Fatalf("bad lane: %v", err)
	}
	if _, err := c.SendMessage(t0, 0, make([]byte, MaxMessageSize-8), Reliable); err != nil {
		t.Fatalf("512 KiB: %v", err)
	}
	if _, err := c.SendMessage(t0, 0, make([]byte, 100), Reliable); !errors.Is(err, ErrSendBufferFull) {
		t.Fatalf("full: %v", err)
	}
	// The buffer frees as data goes out.
	if s := c.Stats(t0); s.PendingReliable < MaxMessageSize-8 {
		t.Fatalf("pending %d", s.PendingReliable)
	}
}

func TestMessageNumbers(t *testing.T) {
	c := mustNew(t, Config{Lanes: []Lane{{}, {}}})
	for i, want := range []int64{1, 2, 3} {
		fl := Reliable
		if i == 1 {
			fl = Unreliable
		}
		n, err := c.SendMessage(t0, 0, []byte("a"), fl)
		if err != nil || n != want {
			t.Fatalf("msg %d: %d %v", i, n, err)
		}
	}
	if n, _ := c.SendMessage(t0, 1, []byte("a"), Reliable); n != 1 {
		t.Fatalf("lane 1 starts at %d", n)
	}
}

func TestNagle(t *testing.T) {
	c := mustNew(t, Config{})
	buf := make([]byte, 0, 2048)
	c.SendMessage(t0, 0, []byte("hello"), Unreliable)
	if _, _, ok := c.Poll(t0, buf); ok {
		t.Fatal("sent before the Nagle time")
	}
	if w := c.NextWake(); !w.Equal(t0.Add(5 * time.Millisecond)) {
		t.Fatalf("wake %v", w.Sub(t0))
	}
	c.SendMessage(t0.Add(time.Millisecond), 0, []byte("world"), Reliable)
	if _, _, ok := c.Poll(t0.Add(4*time.Millisecond), buf); ok {
		t.Fatal("sent before the oldest message's Nagle time")
	}
	pkt, num, ok := c.Poll(t0.Add(5*time.Millisecond), buf)
	if !ok || num != 1 || !bytes.Contains(pkt, []byte("hello")) || !bytes.Contains(pkt, []byte("world")) {
		t.Fatalf("packet %v %d %x", ok, num, pkt)
	}
	if _, _, ok := c.Poll(t0.Add(5*time.Millisecond), buf); ok {
		t.Fatal("second packet")
	}

	// NoNagle flushes what is queued, now.
	now := t0.Add(10 * time.Millisecond)
	c.SendMessage(now, 0, []byte("one"), Unreliable)
	c.SendMessage(now, 0, []byte("two"), Unreliable|NoNagle)
	pkt, _, ok = c.Poll(now, buf)
	if !ok || !bytes.Contains(pkt, []byte("one")) || !bytes.Contains(pkt, []byte("two")) {
		t.Fatalf("NoNagle: %v %x", ok, pkt)
	}

	// Flush does the same.
	now = now.Add(time.Millisecond)
	c.SendMessage(now, 0, []byte("three"), Unreliable)
	c.Flush(now)
	if _, _, ok := c.Poll(now, buf); !ok {
		t.Fatal("Flush did not send")
	}

	// A full packet's worth goes without waiting.
	now = now.Add(time.Millisecond)
	c.SendMessage(now, 0, make([]byte, 3000), Reliable)
	if _, _, ok := c.Poll(now, buf); !ok {
		t.Fatal("full packet waited for Nagle")
	}
}

func TestNoDelay(t *testing.T) {
	c := mustNew(t, Config{SendRateMin: 10000, SendRateMax: 10000})
	if _, err := c.SendMessage(t0, 0, make([]byte, 500), Unreliable|NoDelay|NoNagle); err != nil {
		t.Fatalf("first NoDelay message: %v", err)
	}
	// 4000 bytes at 10 kB/s is 400 ms of queue: a NoDelay message is dropped.
	c.SendMessage(t0, 0, make([]byte, 4000), Reliable)
	if _, err := c.SendMessage(t0, 0, make([]byte, 100), Unreliable|NoDelay); !errors.Is(err, ErrIgnored) {
		t.Fatalf("NoDelay on a long queue: %v", err)
	}
	// Without NoDelay it is queued.
	if _, err := c.SendMessage(t0, 0, make([]byte, 100), Unreliable); err != nil {
		t.Fatal(err)
	}
	if s := c.Stats(t0); s.UnreliableDroppedSend != 1 || s.QueueTime < 200*time.Millisecond {
		t.Fatalf("stats %+v", s)
	}
}

// TestLanesIndependent: a lost packet on lane 0 does not hold back lane 1.
func TestLanesIndependent(t *testing.T) {
	p := newPipe(t, 1, Config{Lanes: []Lane{{}, {}}}, Config{})
	lost := int64(-1)
	p.drop = func(from *Conn, num int64) bool {
		if from == p.a && lost < 0 {
			lost = num
			return true
		}
		return false
	}
	p.a.SendMessage(p.now, 0, []byte("lane0"), Reliable|NoNagle)
	p.pump()
	p.a.SendMessage(p.now, 1, []byte("lane1"), Reliable|NoNagle)
	p.run(5*time.Millisecond, func() bool { return len(p.gotB) > 0 })
	if len(p.gotB) != 1 || p.gotB[0].Lane != 1 {
		t.Fatalf("lane 1 held back: %+v", p.gotB)
	}
	p.run(5*time.Second, func() bool { return len(p.gotB) == 2 })
	if len(p.gotB) != 2 || p.gotB[1].Lane != 0 || string(p.gotB[1].Data) != "lane0" {
		t.Fatalf("lane 0 not recovered: %+v", p.gotB)
	}
	if s := p.a.Stats(p.now); s.PacketsRetransmitted == 0 {
		t.Fatal("no retransmission counted")
	}
}

// TestLanePriority: a lane of lower priority value is served first; equal
// priorities share by weight.
func TestLanePriority(t *testing.T) {
	c := mustNew(t, Config{Lanes: []Lane{{Priority: 1}, {Priority: 0}, {Priority: 1, Weight: 3}}, SendRateMin: 1 << 30, SendRateMax: 1 << 30})
	for l := range 3 {
		c.SendMessage(t0, l, make([]byte, 20000), Reliable)
	}
	buf := make([]byte, 0, 2048)
	first, _, _ := c.Poll(t0, buf)
	var f wire.Frame
	d := wire.Decoder{PktNum: 1, NextSendPktNum: 1, PeerVersion: 13, Resolver: (*resolver)(mustNew(t, Config{}))}
	d.Reset(first)
	for {
		ok, err := d.Next(&f)
		if err != nil || !ok {
			t.Fatalf("no data frame: %v", err)
		}
		if f.Kind == wire.KindReliable {
			break
		}
	}
	if f.Lane != 1 {
		t.Fatalf("first data on lane %d, want the priority-0 lane 1", f.Lane)
	}
	// Drain lane 1, then count bytes per lane over the next packets.
	sent := map[int]int64{}
	now := t0.Add(time.Millisecond)
	for c.lanes[1].sentPos < c.lanes[1].endPos {
		c.Poll(now, buf)
	}
	if c.lanes[0].sentPos+c.lanes[2].sentPos-2 >= int64(c.cfg.MaxPayload) {
		t.Fatal("priority-1 lanes sent before the priority-0 lane was drained")
	}
	for range 12 {
		c.Poll(now, buf)
	}
	for i := range c.lanes {
		sent[i] = c.lanes[i].sentPos - 1
	}
	if c.lanes[1].sentPos < c.lanes[1].endPos {
		t.Fatalf("lane 1 not drained first: %v", sent)
	}
	r := float64(sent[2]) / float64(sent[0])
	if r < 2.5 || r > 3.5 {
		t.Fatalf("weights 1:3 gave %v", sent)
	}
}

func TestRetransmitTailLoss(t *testing.T) {
	p := newPipe(t, 1, Config{}, Config{})
	p.drop = func(from *Conn, num int64) bool { return from == p.a && num == 1 }
	p.a.SendMessage(p.now, 0, []byte("only"), Reliable|NoNagle)
	p.pump()
	w := p.a.NextWake()
	if w.Sub(t0) != time.Second {
		t.Fatalf("RTO before any RTT sample %v, want 1s", w.Sub(t0))
	}
	if !p.run(3*time.Second, func() bool { return len(p.gotB) == 1 }) {
		t.Fatal("tail loss not recovered")
	}
}

func TestStopWaitingAndAckBookkeeping(t *testing.T) {
	p := newPipe(t, 1, Config{}, Config{})
	p.drop = func(from *Conn, num int64) bool { return from == p.a && (num == 3 || num == 5 || num == 6) }
	for i := range 20 {
		p.a.SendMessage(p.now, 0, payload(i, 2000), Reliable)
	}
	if !p.run(5*time.Second, func() bool { return len(p.gotB) == 20 }) {
		t.Fatalf("got %d", len(p.gotB))
	}
	p.run(2*time.Second, func() bool { return p.a.inflight.n == 0 && len(p.b.rec.gaps) == 0 })
	if len(p.b.rec.gaps) != 0 || p.b.rec.minAck <= 6 {
		t.Fatalf("receiver record not trimmed by stop-waiting: min %d gaps %v", p.b.rec.minAck, p.b.rec.gaps)
	}
	if p.a.inflight.n != 0 || p.a.Stats(p.now).SentUnackedReliable != 0 {
		t.Fatalf("sender still has %d packets in flight", p.a.inflight.n)
	}
}

func TestAckBlocks(t *testing.T) {
	c := mustNew(t, Config{})
	c.nextPktNum = 100
	for _, n := range []int64{1, 2, 4, 7} {
		c.rec.add(n, 0, int64(nackFlush/time.Microsecond))
	}
	buf := make([]byte, 0, 256)
	c.enc.Reset(buf, 100)
	c.appendAck(10000, 1000)
	want := []wire.AckBlock{{NumAck: 1, NumNack: 2}, {NumAck: 1, NumNack: 1}}
	if len(c.blocks) != 2 || c.blocks[0] != want[0] || c.blocks[1] != want[1] {
		t.Fatalf("blocks %v", c.blocks)
	}
	// A fresh gap near the top is held back for nackFlush (reordering).
	c.rec.add(9, 10000, int64(nackFlush/time.Microsecond))
	c.enc.Reset(buf, 101)
	c.appendAck(10001, 1000)
	if len(c.blocks) != 2 || c.ackDue != 10000+nackFlush.Microseconds() {
		t.Fatalf("held gap: blocks %v due %d", c.blocks, c.ackDue)
	}
	// The record of gaps stays bounded.
	for n := int64(20); n < 1000; n += 2 {
		c.rec.add(n, 20000, int64(nackFlush/time.Microsecond))
	}
	if len(c.rec.gaps) > maxPacketGaps {
		t.Fatalf("%d gaps", len(c.rec.gaps))
	}
}

func TestRTTEstimate(t *testing.T) {
	p := newPipe(t, 1, Config{}, Config{})
	p.delay = 20 * time.Millisecond
	for i := range 50 {
		p.a.SendMessage(p.now, 0, payload(i, 100), Reliable|NoNagle)
		p.b.SendMessage(p.now, 0, payload(i, 100), Reliable|NoNagle)
		p.run(10*time.Millisecond, func() bool { return false })
	}
	s := p.a.Stats(p.now)
	if s.SmoothedRTT < 38*time.Millisecond || s.SmoothedRTT > 45*time.Millisecond || s.Ping < 38 || s.Ping > 45 {
		t.Fatalf("RTT %v min %v ping %d, want ~40ms", s.SmoothedRTT, s.MinRTT, s.Ping)
	}
}

func TestPacingRate(t *testing.T) {
	const rate = 100000
	c := mustNew(t, Config{SendRateMin: rate, SendRateMax: rate})
	for range 50 {
		c.SendMessage(t0, 0, make([]byte, 10000), Reliable|NoNagle)
	}
	buf := make([]byte, 0, 2048)
	var bytes int
	now := t0
	for now.Before(t0.Add(2 * time.Second)) {
		for {
			pkt, _, ok := c.Poll(now, buf)
			if !ok {
				break
			}
			bytes += len(pkt)
		}
		w := c.NextWake()
		if w.IsZero() || !w.After(now) {
			w = now.Add(time.Millisecond)
		}
		now = w
	}
	got := float64(bytes) / 2
	if got < rate*0.95 || got > rate*1.05 {
		t.Fatalf("rate %.0f B/s, want %d", got, rate)
	}
}

// TestCongestion: the rate drops under loss and grows back after.
func TestCongestion(t *testing.T) {
	p := newPipe(t, 3, Config{SendRateMin: 50000, SendRateMax: 20 << 20}, Config{})
	p.delay = 10 * time.Millisecond
	feed := func(d time.Duration) {
		end := p.now.Add(d)
		for p.now.Before(end) {
			for {
				if _, err := p.a.SendMessage(p.now, 0, make([]byte, 1000), Reliable); err != nil {
					break
				}
			}
			p.step()
			p.gotB = p.gotB[:0]
		}
	}
	feed(2 * time.Second)
	high := p.a.Stats(p.now).SendRateBytesPerSecond
	if high < 2<<20 {
		t.Fatalf("rate did not grow: %d", high)
	}
	p.loss = 0.4
	feed(2 * time.Second)
	low := p.a.Stats(p.now).SendRateBytesPerSecond
	if low > high/4 {
		t.Fatalf("rate under 40%% loss %d, was %d", low, high)
	}
	p.loss = 0
	feed(3 * time.Second)
	back := p.a.Stats(p.now).SendRateBytesPerSecond
	if back < high/2 {
		t.Fatalf("rate did not recover: %d (low %d, high %d)", back, low, high)
	}
	t.Logf("rate high %d, under loss %d, recovered %d", high, low, back)
}

func TestFixedRate(t *testing.T) {
	p := newPipe(t, 3, Config{SendRateMin: 300000, SendRateMax: 300000}, Config{})
	p.loss = 0.3
	for i := range 200 {
		p.a.SendMessage(p.now, 0, payload(i, 1000), Reliable)
	}
	p.run(5*time.Second, func() bool { return len(p.gotB) == 200 })
	if r := p.a.Stats(p.now).SendRateBytesPerSecond; r != 300000 {
		t.Fatalf("fixed rate moved to %d", r)
	}
}

// unrelPayload encodes one unreliable segment.
func unrelPayload(pkt, num, off int64, data []byte, last bool) []byte {
	var e wire.Encoder
	e.PeerVersion = 13
	e.Reset(make([]byte, 0, 2048), pkt)
	e.AppendUnreliable(num, off, data, last, false)
	return e.Bytes()
}

func TestReassembly(t *testing.T) {
	c := mustNew(t, Config{})
	pkt := int64(1)
	recv := func(now time.Time, num, off int64, data []byte, last bool) {
		t.Helper()
		if err := c.ReceivePacket(now, pkt, unrelPayload(pkt, num, off, data, last)); err != nil {
			t.Fatal(err)
		}
		pkt++
	}
	// Out of order segments complete a message.
	recv(t0, 1, 1000, bytes.Repeat([]byte{2}, 500), true)
	recv(t0, 1, 0, bytes.Repeat([]byte{1}, 1000), false)
	var ms [4]Message
	if n := c.Receive(ms[:]); n != 1 || len(ms[0].Data) != 1500 || ms[0].Data[999] != 1 || ms[0].Data[1000] != 2 {
		t.Fatalf("reassembly: %d", n)
	}
	// Partial messages are bounded: the oldest is dropped.
	for num := int64(2); num < 40; num++ {
		recv(t0, num, 0, make([]byte, 100), false)
	}
	s := c.Stats(t0)
	if s.BufferedUnrelSegs > maxBufferedUnreliableSegments || s.UnreliableDroppedRecv < 18 {
		t.Fatalf("limit: %+v", s)
	}
	// They expire.
	c.Poll(t0.Add(2*time.Second), nil)
	if s := c.Stats(t0); s.BufferedUnrelSegs != 0 {
		t.Fatalf("not expired: %d", s.BufferedUnrelSegs)
	}
	// A completed message of a dropped partial never appears.
	recv(t0.Add(2*time.Second), 2, 100, make([]byte, 10), true)
	if n := c.Receive(ms[:]); n != 0 {
		t.Fatal("delivered an incomplete message")
	}
}

// TestQueueAck: a queued ack forces a packet out when there is nothing else
// to send, at once or by the deadline, and only once.
func TestQueueAck(t *testing.T) {
	c := mustNew(t, Config{})
	buf := make([]byte, 0, 2048)
	if _, _, ok := c.Poll(t0, buf); ok {
		t.Fatal("an idle engine sent a packet")
	}
	c.QueueAck(t0, true)
	if w := c.NextWake(); !w.Equal(t0) {
		t.Fatalf("NextWake %v, want now", w)
	}
	if _, num, ok := c.Poll(t0, buf); !ok || num != 1 {
		t.Fatalf("no forced packet (ok %v num %d)", ok, num)
	}
	if _, _, ok := c.Poll(t0, buf); ok {
		t.Fatal("a second forced packet")
	}
	c.QueueAck(t0, false)
	if _, _, ok := c.Poll(t0.Add(100*time.Millisecond), buf); ok {
		t.Fatal("a delayed queued ack went out early")
	}
	if w := c.NextWake(); !w.Equal(t0.Add(queuedAckDelay)) {
		t.Fatalf("NextWake %v, want %v", w, t0.Add(queuedAckDelay))
	}
	if _, _, ok := c.Poll(t0.Add(queuedAckDelay), buf); !ok {
		t.Fatal("the delayed queued ack did not go out by its deadline")
	}
	// An empty forced payload is a valid packet for the peer's engine.
	d := mustNew(t, Config{})
	if err := d.ReceivePacket(t0, 1, nil); err != nil {
		t.Fatalf("empty payload rejected: %v", err)
	}
}

// TestUnreliableRunKeepsReliableDeltaSmall: after nearly MaxMsgNumDelta
// unreliable messages, one goes reliably, so the reliable header of the next
// reliable message never jumps by more than a receiver accepts (GNS and we
// close the connection on a larger jump).
func TestUnreliableRunKeepsReliableDeltaSmall(t *testing.T) {
	p := newPipe(t, 1, Config{}, Config{})
	if _, err := p.a.SendMessage(p.now, 0, []byte("first"), Reliable); err != nil {
		t.Fatal(err)
	}
	// As if a million unreliable messages had gone since.
	p.a.lanes[0].lastMsgNum = wire.MaxMsgNumDelta - 3
	for i := range 10 {
		if _, err := p.a.SendMessage(p.now, 0, payload(i, 20), Unreliable); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p.a.SendMessage(p.now, 0, []byte("last"), Reliable); err != nil {
		t.Fatal(err)
	}
	last := int64(wire.MaxMsgNumDelta - 3 + 11)
	if !p.run(10*time.Second, func() bool {
		return len(p.gotB) > 0 && p.gotB[len(p.gotB)-1].MsgNum == last
	}) {
		t.Fatalf("got %d messages", len(p.gotB))
	}
	rel := 0
	for _, m := range p.gotB {
		if m.Reliable {
			rel++
			if m.MsgNum != 1 && m.MsgNum != wire.MaxMsgNumDelta+1 && m.MsgNum != last {
				t.Errorf("message %d came reliably", m.MsgNum)
			}
		}
	}
	if rel != 3 || len(p.gotB) != 12 {
		t.Fatalf("%d messages, %d reliable; want 12, 3", len(p.gotB), rel)
	}
}

// TestNackFlush: on a path that has not reordered a packet for
// reorderMemory a hole is reported at once; after a late arrival it is held
// back as possible reordering for GNS's 3 ms, or half the smoothed RTT when
// that is shorter, never under 250 µs; before any RTT sample, 3 ms.
func TestNackFlush(t *testing.T) {
	c, err := New(Config{}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	const t0 = 1_000_000
	if got := c.nackFlush(t0); got != 0 {
		t.Errorf("no reordering seen: flush %d µs, want 0", got)
	}
	c.rec.add(2, t0, 0)
	c.rec.add(1, t0, 0) // late: the path reorders
	for _, tc := range []struct{ srtt, want int64 }{
		{-1, 3000}, {100, 250}, {1000, 500}, {5000, 2500}, {20000, 3000},
	} {
		c.rtt.srtt = tc.srtt
		if got := c.nackFlush(t0 + 1000); got != tc.want {
			t.Errorf("srtt %d µs: flush %d µs, want %d", tc.srtt, got, tc.want)
		}
	}
	if got := c.nackFlush(t0 + reorderMemory.Microseconds() + 1); got != 0 {
		t.Errorf("%v after the last reordering: flush %d µs, want 0", reorderMemory, got)
	}
}

// TestDiscardedPacketAcksSoon: a packet discarded because its data is
// beyond the receive limits (the application is not reading) is not acked,
// but an ack packet still goes out within discardAckDelay, so a peer whose
// every packet carries data keeps hearing from us; while discards go on,
// at most one such packet per delay.
func TestDiscardedPacketAcksSoon(t *testing.T) {
	s := mustNew(t, Config{})
	r := mustNew(t, Config{RecvBufferMessages: 2})
	buf := make([]byte, 0, 2048)
	now := t0
	deliver := func(i int) error {
		t.Helper()
		if _, err := s.SendMessage(now, 0, []byte{byte(i)}, Reliable|NoNagle); err != nil {
			t.Fatal(err)
		}
		pkt, num, ok := s.Poll(now, buf)
		if !ok {
			t.Fatal("the sender sent nothing")
		}
		return r.ReceivePacket(now, num, pkt)
	}
	for i := range 2 {
		if err := deliver(i); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	// The receiver acks what it took, then has nothing to send.
	now = now.Add(time.Second)
	for {
		if _, _, ok := r.Poll(now, buf); !ok {
			break
		}
	}
	if _, _, ok := r.Poll(now.Add(time.Minute), buf); ok {
		t.Fatal("an idle receiver sent a packet")
	}
	if err := deliver(2); !errors.Is(err, ErrDiscarded) {
		t.Fatalf("a message past RecvBufferMessages: %v, want ErrDiscarded", err)
	}
	d := time.Duration(r.discardAckDelay()) * time.Microsecond
	if d <= 0 || d > 210*time.Millisecond {
		t.Fatalf("discard ack delay %v", d)
	}
	if w := r.NextWake(); w.IsZero() || w.After(now.Add(d)) {
		t.Fatalf("NextWake %v, want by %v", w, now.Add(d))
	}
	if _, _, ok := r.Poll(now.Add(d/2), buf); ok {
		t.Fatal("the ack went out before its delay")
	}
	if err := deliver(3); !errors.Is(err, ErrDiscarded) {
		t.Fatalf("a second message past the limit: %v", err)
	}
	now = now.Add(d)
	pkt, _, ok := r.Poll(now, buf)
	if !ok {
		t.Fatal("no ack packet after a discarded packet")
	}
	if _, _, ok := r.Poll(now, buf); ok {
		t.Fatal("two ack packets for discards within one delay")
	}
	var f wire.Frame
	dec := wire.Decoder{PktNum: 100, NextSendPktNum: s.nextPktNum, PeerVersion: 13, Resolver: (*resolver)(s)}
	dec.Reset(pkt)
	acks := 0
	for {
		ok, err := dec.Next(&f)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		if f.Kind == wire.KindAck {
			acks++
		}
	}
	if acks != 1 {
		t.Fatalf("%d acks in the packet", acks)
	}
	if st := r.Stats(now); st.PacketsDiscarded != 2 || st.MessagesRecvReliable != 2 {
		t.Fatalf("discarded %d, received %d", st.PacketsDiscarded, st.MessagesRecvReliable)
	}
}

// TestNoStaleAck: while every packet is discarded (the application is not
// reading), the ack packets that follow report the last packet taken; once
// that is maxAckLag packets behind the newest one, they go without an ack,
// which a peer would read, 65,536 packets on, as an ack of a recent packet
// we discarded (its 16-bit latest field wraps).
func TestNoStaleAck(t *testing.T) {
	r := mustNew(t, Config{})
	buf := make([]byte, 0, 2048)
	now := t0
	if err := r.ReceivePacket(now, 1, encode(1, func(e *wire.Encoder) {
		e.AppendReliable(1, append(wire.AppendMsgHeader(nil, 1, 1), 1), false)
	})); err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 1000)
	pkt := int64(2)
	acksIn := func(b []byte) int {
		t.Helper()
		var f wire.Frame
		d := wire.Decoder{PktNum: 1, NextSendPktNum: pkt, PeerVersion: 13, Resolver: (*resolver)(mustNew(t, Config{}))}
		d.Reset(b)
		n := 0
		for {
			ok, err := d.Next(&f)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return n
			}
			if f.Kind == wire.KindAck {
				n++
			}
		}
	}
	discard := func(upTo int64) {
		t.Helper()
		for ; pkt <= upTo; pkt++ {
			if err := r.ReceivePacket(now, pkt, encode(pkt, func(e *wire.Encoder) { e.AppendReliable(1<<30, big, false) })); !errors.Is(err, ErrDiscarded) {
				t.Fatalf("packet %d: %v", pkt, err)
			}
		}
		now = now.Add(time.Second)
	}
	discard(maxAckLag)
	p, _, ok := r.Poll(now, buf)
	if !ok || acksIn(p) != 1 {
		t.Fatalf("no ack after %d discarded packets (sent %v)", maxAckLag-1, ok)
	}
	discard(maxAckLag + 1)
	p, _, ok = r.Poll(now, buf)
	if !ok {
		t.Fatal("no packet after a discarded packet")
	}
	if n := acksIn(p); n != 0 {
		t.Fatalf("an ack %d packets behind the newest", maxAckLag)
	}
	if _, _, ok := r.Poll(now.Add(time.Minute), buf); ok {
		t.Fatal("a packet with nothing to send")
	}
}

// TestWrappedStaleAckDropped: an ack of a packet sent a moment ago whose
// delay field says it was received over 2.09 s ago is a stale ack whose
// 16-bit latest field wrapped (a receiver that took none of our last 65,536
// packets): the packet is dropped and nothing is acked. The same ack with
// a possible delay acks.
func TestWrappedStaleAckDropped(t *testing.T) {
	for _, delay := range []uint16{wire.AckDelayNone, wire.AckDelayNone - 1} {
		s := mustNew(t, Config{})
		buf := make([]byte, 0, 2048)
		if _, err := s.SendMessage(t0, 0, []byte("x"), Reliable|NoNagle); err != nil {
			t.Fatal(err)
		}
		_, num, ok := s.Poll(t0, buf)
		if !ok {
			t.Fatal("nothing sent")
		}
		now := t0.Add(50 * time.Millisecond)
		if err := s.ReceivePacket(now, 1, encode(1, func(e *wire.Encoder) { e.AppendAck(num, delay, nil) })); !errors.Is(err, ErrDiscarded) {
			t.Fatalf("delay %#x: %v, want the packet discarded", delay, err)
		}
		if st := s.Stats(now); st.PacketsAcked != 0 || st.SentUnackedReliable == 0 {
			t.Fatalf("delay %#x: acked %d, unacked %d bytes", delay, st.PacketsAcked, st.SentUnackedReliable)
		}
		if err := s.ReceivePacket(now, 2, encode(2, func(e *wire.Encoder) { e.AppendAck(num, 100, nil) })); err != nil {
			t.Fatal(err)
		}
		if st := s.Stats(now); st.PacketsAcked != 1 || st.SentUnackedReliable != 0 {
			t.Fatalf("a fresh ack: acked %d, unacked %d bytes", st.PacketsAcked, st.SentUnackedReliable)
		}
	}
}
