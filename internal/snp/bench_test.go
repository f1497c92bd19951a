package snp

import (
	"testing"
	"time"
)

// handoff joins two engines directly, without a network: every packet one
// side polls is given to the other at once. The clock advances by tick per
// message.
type handoff struct {
	a, b   *Conn
	now    time.Time
	buf    []byte
	ms     [64]Message
	got    int
	gotLen int64
}

func newHandoff(b testing.TB) *handoff {
	cfg := Config{SendRateMin: 1 << 40, SendRateMax: 1 << 40}
	h := &handoff{now: t0, buf: make([]byte, 0, 2048)}
	var err error
	if h.a, err = New(cfg, t0); err != nil {
		b.Fatal(err)
	}
	if h.b, err = New(cfg, t0); err != nil {
		b.Fatal(err)
	}
	return h
}

func (h *handoff) pump() {
	for {
		moved := false
		for {
			pkt, num, ok := h.a.Poll(h.now, h.buf)
			if !ok {
				break
			}
			moved = true
			if err := h.b.ReceivePacket(h.now, num, pkt); err != nil {
				panic(err)
			}
		}
		for {
			n := h.b.Receive(h.ms[:])
			for i := range h.ms[:n] {
				h.gotLen += int64(len(h.ms[i].Data))
				h.ms[i].Release()
			}
			h.got += n
			if n < len(h.ms) {
				break
			}
		}
		for {
			pkt, num, ok := h.b.Poll(h.now, h.buf)
			if !ok {
				break
			}
			moved = true
			if err := h.a.ReceivePacket(h.now, num, pkt); err != nil {
				panic(err)
			}
		}
		if !moved {
			return
		}
	}
}

func benchHandoff(b *testing.B, size int, tick time.Duration) {
	h := newHandoff(b)
	msg := make([]byte, size)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	sent := 0
	for b.Loop() {
		h.now = h.now.Add(tick)
		for {
			if _, err := h.a.SendMessage(h.now, 0, msg, Reliable); err == nil {
				break
			}
			h.now = h.now.Add(time.Millisecond)
			h.pump()
		}
		sent++
		if sent%32 == 0 {
			h.pump()
		}
	}
	h.a.Flush(h.now)
	h.pump()
	for h.got < sent {
		h.now = h.now.Add(time.Millisecond)
		h.pump()
	}
	b.ReportMetric(float64(sent)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64(h.gotLen)/1e6/b.Elapsed().Seconds(), "MB/s")
}

// BenchmarkHandoff64 is W1 through the pure engine: 64-byte reliable
// messages, one direction, acks flowing back, no network.
func BenchmarkHandoff64(b *testing.B) { benchHandoff(b, 64, 100*time.Nanosecond) }

// BenchmarkHandoff1200 is W2 through the pure engine.
func BenchmarkHandoff1200(b *testing.B) { benchHandoff(b, 1200, time.Microsecond) }
