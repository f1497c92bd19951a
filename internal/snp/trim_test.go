package snp

import (
	"testing"
	"time"
)

// A lane's send buffers survive being emptied (a busy sender does not
// grow them again from nothing each time the queue drains) and are let go
// once the connection has queued nothing for idleTrimAfter.
func TestSendBuffersKeptWhileBusyTrimmedWhenIdle(t *testing.T) {
	p := newPipe(t, 1, Config{}, Config{})
	const n, size = 200, 1000 // 200 KB each way, well above the kept sizes
	for i := range n {
		if _, err := p.a.SendMessage(p.now, 0, payload(i, size), Reliable); err != nil {
			t.Fatal(err)
		}
		if _, err := p.a.SendMessage(p.now, 0, payload(i, 100), 0); err != nil {
			t.Fatal(err)
		}
	}
	l := &p.a.lanes[0]
	drained := func() bool { return l.ackedBelow == l.endPos && !l.hasUnrel() }
	if !p.run(5*time.Second, drained) {
		t.Fatalf("not drained: acked below %d of %d, unreliable queued %v", l.ackedBelow, l.endPos, l.hasUnrel())
	}
	if cap(l.buf) <= keepStreamBuf || cap(l.ubuf) <= keepUnrelBuf {
		t.Fatalf("emptied buffers let go at once: stream %d B, unreliable %d B", cap(l.buf), cap(l.ubuf))
	}

	// Busy again within idleTrimAfter: the same buffers take the messages.
	stream, unrel := &l.buf[:1][0], &l.ubuf[:1][0]
	p.now = p.now.Add(idleTrimAfter / 2)
	p.a.Poll(p.now, p.buf)
	if _, err := p.a.SendMessage(p.now, 0, payload(0, size), Reliable); err != nil {
		t.Fatal(err)
	}
	if _, err := p.a.SendMessage(p.now, 0, payload(0, 100), 0); err != nil {
		t.Fatal(err)
	}
	if &l.buf[0] != stream || &l.ubuf[0] != unrel {
		t.Fatal("a lane emptied less than idleTrimAfter ago took new buffers")
	}
	if !p.run(5*time.Second, drained) {
		t.Fatal("second round not drained")
	}

	// Quiet for idleTrimAfter: the next Poll with nothing to send trims.
	p.now = p.now.Add(idleTrimAfter + time.Millisecond)
	for range 10 {
		if _, _, ok := p.a.Poll(p.now, p.buf); !ok {
			break
		}
	}
	if cap(l.buf) > keepStreamBuf || cap(l.ubuf) > keepUnrelBuf || cap(l.uq) > keepUnrelBuf/16 {
		t.Fatalf("idle lane still holds stream %d B, unreliable %d B, %d queue entries", cap(l.buf), cap(l.ubuf), cap(l.uq))
	}
	if p.a.bigBufs {
		t.Fatal("bigBufs still set after trimming an idle connection")
	}

	// And it sends again afterwards.
	if _, err := p.a.SendMessage(p.now, 0, payload(1, size), Reliable); err != nil {
		t.Fatal(err)
	}
	got := len(p.gotB)
	if !p.run(5*time.Second, func() bool { return len(p.gotB) > got }) {
		t.Fatal("nothing delivered after the trim")
	}
}
