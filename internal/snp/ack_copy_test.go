package snp

import (
	"testing"
	"time"
)

// send moves everything from's Poll gives at now to to, arriving at now,
// and returns how many packets went and how many of them carried data.
func sendAll(t *testing.T, from, to *Conn, now time.Time) (pkts int) {
	t.Helper()
	buf := make([]byte, 0, 2048)
	for {
		pkt, num, ok := from.Poll(now, buf)
		if !ok {
			return pkts
		}
		pkts++
		if err := to.ReceivePacket(now, num, pkt); err != nil {
			t.Fatalf("packet %d: %v", num, err)
		}
	}
}

// TestQuickAck: a receiver of sparse reliable messages whose acks go alone
// after their whole delay acks at once from the third; data it sends
// within the delay after a quick ack (which could have carried it) returns
// it to delayed acks; a burst (packets closer than quickAckGap) is not
// acked per packet.
func TestQuickAck(t *testing.T) {
	a, b := mustNew(t, Config{}), mustNew(t, Config{})
	now := t0
	msg := make([]byte, 64)
	// oneMsg sends a message from a to b at now and returns b's wake-up
	// after it, relative to now.
	oneMsg := func() time.Duration {
		t.Helper()
		if _, err := a.SendMessage(now, 0, msg, Reliable|NoNagle); err != nil {
			t.Fatal(err)
		}
		if sendAll(t, a, b, now) == 0 {
			t.Fatal("a sent nothing")
		}
		w := b.NextWake()
		if w.IsZero() {
			t.Fatal("b owes no ack")
		}
		return w.Sub(now)
	}
	// ackAt polls b at now+d and checks that one ack-only packet goes.
	ackAt := func(d time.Duration) {
		t.Helper()
		if n := sendAll(t, b, a, now.Add(d)); n != 1 {
			t.Fatalf("b sent %d packets at +%v, want one ack", n, d)
		}
	}
	for i := range 2 {
		if d := oneMsg(); d != maxDataAckDelay {
			t.Fatalf("message %d: ack due in %v, want %v", i, d, maxDataAckDelay)
		}
		ackAt(maxDataAckDelay)
		now = now.Add(100 * time.Millisecond)
	}
	if d := oneMsg(); d != 0 {
		t.Fatalf("third sparse message: ack due in %v, want at once", d)
	}
	ackAt(0)
	now = now.Add(100 * time.Millisecond)

	// A burst: only its first packet is acked at once.
	if d := oneMsg(); d != 0 {
		t.Fatalf("burst's first message: ack due in %v, want at once", d)
	}
	ackAt(0)
	for i := range 3 {
		now = now.Add(time.Millisecond)
		if d := oneMsg(); d == 0 {
			t.Fatalf("burst message %d acked at once", i+1)
		}
	}
	ackAt(maxDataAckDelay)
	now = now.Add(100 * time.Millisecond)

	// b answers within the delay after a quick ack: acks wait again.
	if d := oneMsg(); d != 0 {
		t.Fatalf("ack due in %v, want at once", d)
	}
	ackAt(0)
	now = now.Add(time.Millisecond)
	if _, err := b.SendMessage(now, 0, msg, Reliable|NoNagle); err != nil {
		t.Fatal(err)
	}
	sendAll(t, b, a, now)
	sendAll(t, a, b, now.Add(maxDataAckDelay)) // a acks b's message
	now = now.Add(100 * time.Millisecond)
	if d := oneMsg(); d != maxDataAckDelay {
		t.Fatalf("after b's reply: ack due in %v, want %v", d, maxDataAckDelay)
	}
}

// TestSettledPacketsNoWake: a connection that sent only an ack has nothing
// to wake up for: the ack's record leaves at the next poll.
func TestSettledPacketsNoWake(t *testing.T) {
	a, b := mustNew(t, Config{}), mustNew(t, Config{})
	if _, err := a.SendMessage(t0, 0, []byte("x"), Reliable|NoNagle); err != nil {
		t.Fatal(err)
	}
	sendAll(t, a, b, t0)
	at := t0.Add(maxDataAckDelay)
	if n := sendAll(t, b, a, at); n != 1 {
		t.Fatalf("b sent %d packets, want one ack", n)
	}
	if b.inflight.n != 1 {
		t.Fatalf("b's record holds %d packets, want its ack", b.inflight.n)
	}
	if w := b.NextWake(); !w.IsZero() {
		t.Fatalf("b wakes at +%v for its ack's record", w.Sub(at))
	}
	b.Poll(at.Add(10*time.Second), make([]byte, 0, 2048))
	if b.inflight.n != 0 {
		t.Fatalf("b's record holds %d packets after a poll past the timeout", b.inflight.n)
	}
}

// TestTailCopies: a small tail goes once on a clean path, twice from
// tailCopyLoss and three times from tailCopy2Loss; a copy acked before
// it went does not leave the next message uncopied.
func TestTailCopies(t *testing.T) {
	for _, c := range []struct {
		loss float64
		pkts int
	}{{0, 1}, {tailCopyLoss, 2}, {tailCopy2Loss, 3}} {
		a, b := mustNew(t, Config{}), mustNew(t, Config{})
		now := t0
		for i := range 3 {
			a.lossRate = c.loss
			if _, err := a.SendMessage(now, 0, make([]byte, 64), Reliable|NoNagle); err != nil {
				t.Fatal(err)
			}
			if n := sendAll(t, a, b, now); n != c.pkts {
				t.Fatalf("loss rate %.2f, message %d: %d packets, want %d", c.loss, i, n, c.pkts)
			}
			now = now.Add(time.Millisecond)
			sendAll(t, b, a, now.Add(maxDataAckDelay))
		}
	}

	// The copies of a tail are acked before they go: the next message
	// is copied all the same.
	a, b := mustNew(t, Config{}), mustNew(t, Config{})
	a.lossRate = tailCopy2Loss
	buf := make([]byte, 0, 2048)
	if _, err := a.SendMessage(t0, 0, make([]byte, 64), Reliable|NoNagle); err != nil {
		t.Fatal(err)
	}
	pkt, num, ok := a.Poll(t0, buf) // the message; its copies wait
	if !ok {
		t.Fatal("nothing sent")
	}
	if err := b.ReceivePacket(t0, num, pkt); err != nil {
		t.Fatal(err)
	}
	sendAll(t, b, a, t0.Add(maxDataAckDelay)) // its ack: the copies are moot
	now := t0.Add(maxDataAckDelay + time.Millisecond)
	sendAll(t, a, b, now) // whatever is left of the copies
	a.lossRate = tailCopy2Loss
	if _, err := a.SendMessage(now, 0, make([]byte, 64), Reliable|NoNagle); err != nil {
		t.Fatal(err)
	}
	if n := sendAll(t, a, b, now); n != 3 {
		t.Fatalf("the message after acked copies went in %d packets, want 3", n)
	}
}
