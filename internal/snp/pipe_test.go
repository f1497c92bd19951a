package snp

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// pipe joins two engines with a deterministic lossy link driven by a fake
// clock: every packet is delayed by delay+jitter, dropped with probability
// loss, duplicated with probability dup.
type pipe struct {
	tb     testing.TB
	now    time.Time
	a, b   *Conn
	rng    *rand.Rand
	loss   float64
	dup    float64
	delay  time.Duration
	jitter time.Duration
	q      []flight
	buf    []byte
	// received messages per side
	gotA, gotB []Message
	drop       func(from *Conn, pktNum int64) bool
}

type flight struct {
	at   time.Time
	to   *Conn
	num  int64
	data []byte
}

func newPipe(tb testing.TB, seed uint64, ca, cb Config) *pipe {
	a, err := New(ca, t0)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := New(cb, t0)
	if err != nil {
		tb.Fatal(err)
	}
	return &pipe{tb: tb, now: t0, a: a, b: b, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b9)), delay: time.Millisecond, buf: make([]byte, 0, 2048)}
}

func (p *pipe) other(c *Conn) *Conn {
	if c == p.a {
		return p.b
	}
	return p.a
}

// pump sends every due packet of both sides into the link.
func (p *pipe) pump() {
	for _, c := range []*Conn{p.a, p.b} {
		for i := 0; i < 100000; i++ {
			pkt, num, ok := c.Poll(p.now, p.buf)
			if !ok {
				break
			}
			if p.drop != nil && p.drop(c, num) {
				continue
			}
			if p.loss > 0 && p.rng.Float64() < p.loss {
				continue
			}
			n := 1
			if p.dup > 0 && p.rng.Float64() < p.dup {
				n = 2
			}
			for range n {
				d := p.delay
				if p.jitter > 0 {
					d += time.Duration(p.rng.Int64N(int64(p.jitter)))
				}
				p.q = append(p.q, flight{at: p.now.Add(d), to: p.other(c), num: num, data: slices.Clone(pkt)})
			}
		}
	}
}

// step advances the clock to the next event and processes it.
func (p *pipe) step() bool {
	p.pump()
	next := time.Time{}
	for _, f := range p.q {
		if next.IsZero() || f.at.Before(next) {
			next = f.at
		}
	}
	for _, c := range []*Conn{p.a, p.b} {
		if w := c.NextWake(); !w.IsZero() && (next.IsZero() || w.Before(next)) {
			next = w
		}
	}
	if next.IsZero() {
		return false
	}
	if next.After(p.now) {
		p.now = next
	}
	k := 0
	for _, f := range p.q {
		if !f.at.After(p.now) {
			err := f.to.ReceivePacket(p.now, f.num, f.data)
			if err != nil && err != ErrDiscarded {
				p.tb.Fatalf("receive: %v", err)
			}
			continue
		}
		p.q[k] = f
		k++
	}
	p.q = p.q[:k]
	p.drain()
	return true
}

func (p *pipe) drain() {
	var ms [64]Message
	for {
		n := p.a.Receive(ms[:])
		p.gotA = append(p.gotA, ms[:n]...)
		if n < len(ms) {
			break
		}
	}
	for {
		n := p.b.Receive(ms[:])
		p.gotB = append(p.gotB, ms[:n]...)
		if n < len(ms) {
			break
		}
	}
}

// run steps until cond holds or simulated time limit passes.
func (p *pipe) run(limit time.Duration, cond func() bool) bool {
	end := p.now.Add(limit)
	for p.now.Before(end) {
		if cond() {
			return true
		}
		if !p.step() {
			return cond()
		}
	}
	return cond()
}

func payload(seq, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(seq*7 + i)
	}
	if size >= 8 {
		binary.LittleEndian.PutUint64(b, uint64(seq))
	}
	return b
}

func TestReliableBasic(t *testing.T) {
	p := newPipe(t, 1, Config{}, Config{})
	for i := range 100 {
		if _, err := p.a.SendMessage(p.now, 0, payload(i, 10+i*37), Reliable); err != nil {
			t.Fatal(err)
		}
	}
	if !p.run(10*time.Second, func() bool { return len(p.gotB) == 100 }) {
		t.Fatalf("got %d messages", len(p.gotB))
	}
	for i, m := range p.gotB {
		if !m.Reliable || m.MsgNum != int64(i+1) || !bytes.Equal(m.Data, payload(i, 10+i*37)) {
			t.Fatalf("message %d: num %d len %d", i, m.MsgNum, len(m.Data))
		}
	}
	// Everything gets acked eventually.
	p.run(5*time.Second, func() bool { return p.a.Stats(p.now).SentUnackedReliable == 0 && p.a.inflight.n == 0 })
	if s := p.a.Stats(p.now); s.SentUnackedReliable != 0 || s.PendingReliable != 0 {
		t.Fatalf("unacked %d pending %d", s.SentUnackedReliable, s.PendingReliable)
	}
}
