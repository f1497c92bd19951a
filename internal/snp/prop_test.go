package snp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

// workload is a seeded random mix of messages sent from one side.
type workload struct {
	lanes int
	msgs  []sentMsg
}

type sentMsg struct {
	lane     int
	reliable bool
	seq      int
	size     int
	num      int64
}

func genWorkload(seed uint64, n, lanes int, big bool) *workload {
	r := rand.New(rand.NewPCG(seed, 7))
	w := &workload{lanes: lanes}
	for i := range n {
		var size int
		switch x := r.IntN(100); {
		case x < 60:
			size = 1 + r.IntN(100)
		case x < 90:
			size = 100 + r.IntN(3000)
		case x < 98 || !big:
			size = 3000 + r.IntN(20000)
		default:
			size = 100000 + r.IntN(MaxMessageSize-100000+1)
		}
		w.msgs = append(w.msgs, sentMsg{lane: r.IntN(lanes), reliable: r.IntN(3) != 0, seq: i, size: size})
	}
	if big && n > 10 {
		// The extremes: the largest message, a 1-byte one, and unreliable
		// messages at the reliable-conversion boundary.
		w.msgs[n/2] = sentMsg{lane: 0, reliable: true, seq: n / 2, size: MaxMessageSize}
		w.msgs[n/2+1] = sentMsg{lane: 1, reliable: false, seq: n/2 + 1, size: maxUnreliableMsgSizeSend}
		w.msgs[n/2+2] = sentMsg{lane: 1, reliable: false, seq: n/2 + 2, size: maxUnreliableMsgSizeSend + 1}
		w.msgs[n/2+3] = sentMsg{lane: 2, reliable: true, seq: n/2 + 3, size: 1}
	}
	return w
}

// msgBody: bytes 0-7 the sequence number, then a pattern of the sequence.
func msgBody(seq, size int) []byte {
	b := make([]byte, size)
	var s [8]byte
	binary.LittleEndian.PutUint64(s[:], uint64(seq))
	for i := range b {
		if i < 8 {
			b[i] = s[i]
		} else {
			b[i] = byte(seq + i*31)
		}
	}
	return b
}

// checker verifies deliveries against what was sent.
type checker struct {
	tb        testing.TB
	byNum     []map[int64]*sentMsg // per lane
	nextRel   []int                // per lane: index into relOrder
	relOrder  [][]int64            // per lane: reliable message numbers in order
	seenUnrel map[[2]int64]bool
	relGot    int
	relWant   int
	unrelGot  int
}

func newChecker(tb testing.TB, w *workload) *checker {
	c := &checker{tb: tb, seenUnrel: map[[2]int64]bool{}}
	c.byNum = make([]map[int64]*sentMsg, w.lanes)
	c.nextRel = make([]int, w.lanes)
	c.relOrder = make([][]int64, w.lanes)
	for i := range c.byNum {
		c.byNum[i] = map[int64]*sentMsg{}
	}
	return c
}

func (c *checker) sent(m *sentMsg) {
	c.byNum[m.lane][m.num] = m
	if m.reliable || m.size > maxUnreliableMsgSizeSend {
		c.relOrder[m.lane] = append(c.relOrder[m.lane], m.num)
		c.relWant++
	}
}

func (c *checker) got(m *Message) {
	c.tb.Helper()
	if int(m.Lane) >= len(c.byNum) {
		c.tb.Fatalf("message on lane %d", m.Lane)
	}
	s := c.byNum[m.Lane][m.MsgNum]
	if s == nil {
		c.tb.Fatalf("unknown message lane %d num %d", m.Lane, m.MsgNum)
	}
	if !bytes.Equal(m.Data, msgBody(s.seq, s.size)) {
		c.tb.Fatalf("lane %d num %d: content differs (len %d want %d)", m.Lane, m.MsgNum, len(m.Data), s.size)
	}
	if m.Reliable {
		i := c.nextRel[m.Lane]
		if i >= len(c.relOrder[m.Lane]) || c.relOrder[m.Lane][i] != m.MsgNum {
			c.tb.Fatalf("lane %d: reliable message %d out of order or duplicated", m.Lane, m.MsgNum)
		}
		c.nextRel[m.Lane]++
		c.relGot++
	} else {
		k := [2]int64{int64(m.Lane), m.MsgNum}
		if c.seenUnrel[k] {
			c.tb.Fatalf("unreliable message %v delivered twice", k)
		}
		c.seenUnrel[k] = true
		c.unrelGot++
	}
	m.Release()
}

// checkBounds fails when a bounded record exceeds its limit.
func checkBounds(tb testing.TB, c *Conn, now time.Time) {
	tb.Helper()
	s := c.Stats(now)
	if s.PacketGaps > maxPacketGaps || s.ReliableStreamGaps > maxReliableGapsExtend || s.BufferedUnrelSegs > maxBufferedUnreliableSegments ||
		s.InFlightPackets > maxInFlightPackets || s.PendingReliable+s.PendingUnreliable+s.SentUnackedReliable > 2*c.cfg.SendBufferSize ||
		s.SentUnackedReliable > c.cfg.SendBufferSize+c.cfg.MaxPayload || s.ReceiveQueue > c.cfg.RecvBufferMessages+1300 ||
		s.ReceiveBufferedBytes > maxBufferedRel {
		tb.Fatalf("bounds exceeded: %+v", s)
	}
}

// runPipeWorkload sends w from a to b over the in-test pipe.
func runPipeWorkload(t *testing.T, seed uint64, w *workload, loss float64, limit time.Duration) {
	cfg := Config{Lanes: make([]Lane, w.lanes), SendRateMin: 8 << 20, SendRateMax: 8 << 20}
	p := newPipe(t, seed, cfg, Config{})
	p.loss, p.dup, p.delay, p.jitter = loss, 0.02, 5*time.Millisecond, 3*time.Millisecond
	ch := newChecker(t, w)
	next := 0
	deadline := p.now.Add(limit)
	var body []byte
	for {
		// Send as much as the buffer takes.
		for next < len(w.msgs) {
			m := &w.msgs[next]
			fl := Unreliable
			if m.reliable {
				fl = Reliable
			}
			if body == nil {
				body = msgBody(m.seq, m.size)
			}
			num, err := p.a.SendMessage(p.now, m.lane, body, fl)
			if err == ErrSendBufferFull {
				break
			}
			body = nil
			if err != nil {
				t.Fatal(err)
			}
			m.num = num
			ch.sent(m)
			next++
		}
		if !p.step() && next == len(w.msgs) {
			break
		}
		for i := range p.gotB {
			ch.got(&p.gotB[i])
		}
		p.gotB = p.gotB[:0]
		checkBounds(t, p.a, p.now)
		checkBounds(t, p.b, p.now)
		if next == len(w.msgs) && ch.relGot == ch.relWant {
			break
		}
		if p.now.After(deadline) {
			t.Fatalf("not done after %v: sent %d/%d, reliable %d/%d", limit, next, len(w.msgs), ch.relGot, ch.relWant)
		}
	}
	if ch.relGot != ch.relWant {
		t.Fatalf("reliable %d/%d", ch.relGot, ch.relWant)
	}
	if loss == 0 && ch.unrelGot+ch.relGot != len(w.msgs) && p.dup == 0 {
		t.Fatalf("lossless: got %d of %d", ch.unrelGot+ch.relGot, len(w.msgs))
	}
	t.Logf("loss %.0f%%: %d reliable, %d/%d unreliable in %v simulated", loss*100, ch.relGot, ch.unrelGot, len(w.msgs)-ch.relWant, p.now.Sub(t0))
}

func TestPropertyPipe(t *testing.T) {
	for _, loss := range []float64{0, 0.01, 0.10, 0.30} {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("loss%.0f/seed%d", loss*100, seed), func(t *testing.T) {
				w := genWorkload(seed, 300, 3, seed == 1)
				runPipeWorkload(t, seed, w, loss, 10*time.Minute)
			})
		}
	}
}
