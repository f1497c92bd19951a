package snp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/transport"
)

// simPeer drives one engine over a netsim endpoint, as the connection layer
// will: a reader goroutine feeds packets in, a timer goroutine polls at
// NextWake. Datagrams are an 8-byte packet number and the SNP payload.
type simPeer struct {
	mu     sync.Mutex
	c      *Conn
	ep     *netsim.Endpoint
	peer   netip.AddrPort
	kick   chan struct{}
	onMsg  func(*Message)
	wbuf   []transport.Packet
	pktBuf []byte
	dgrams [][]byte // datagram buffers for wbuf, reused
	fail   error
}

func newSimPeer(c *Conn, ep *netsim.Endpoint, peer netip.AddrPort) *simPeer {
	return &simPeer{c: c, ep: ep, peer: peer, kick: make(chan struct{}, 1), pktBuf: make([]byte, 0, 2048)}
}

// flushLocked sends every packet due now.
func (p *simPeer) flushLocked() {
	now := time.Now()
	p.wbuf = p.wbuf[:0]
	for range 64 {
		pkt, num, ok := p.c.Poll(now, p.pktBuf)
		if !ok {
			break
		}
		// netsim copies datagrams in WriteBatch, so the buffers are reused.
		i := len(p.wbuf)
		if i == len(p.dgrams) {
			p.dgrams = append(p.dgrams, make([]byte, transport.MaxDatagram))
		}
		b := p.dgrams[i]
		binary.LittleEndian.PutUint64(b, uint64(num))
		n := 8 + copy(b[8:], pkt)
		p.wbuf = append(p.wbuf, transport.Packet{Buf: b, N: n, Addr: p.peer})
	}
	if len(p.wbuf) > 0 {
		p.ep.WriteBatch(p.wbuf)
	}
}

func (p *simPeer) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

func (p *simPeer) readLoop() {
	pkts := make([]transport.Packet, 16)
	for i := range pkts {
		pkts[i].Buf = make([]byte, transport.MaxDatagram)
	}
	var ms [32]Message
	for {
		n, err := p.ep.ReadBatch(pkts)
		if err != nil {
			return
		}
		p.mu.Lock()
		for _, pk := range pkts[:n] {
			b := pk.Bytes()
			if len(b) < 8 {
				continue
			}
			err := p.c.ReceivePacket(time.Now(), int64(binary.LittleEndian.Uint64(b)), b[8:])
			if err != nil && err != ErrDiscarded && p.fail == nil {
				p.fail = err
			}
		}
		for {
			k := p.c.Receive(ms[:])
			for i := range ms[:k] {
				if p.onMsg != nil {
					p.onMsg(&ms[i])
				} else {
					ms[i].Release()
				}
			}
			if k < len(ms) {
				break
			}
		}
		p.mu.Unlock()
		p.wake()
	}
}

func (p *simPeer) timerLoop(done chan struct{}) {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		p.mu.Lock()
		p.flushLocked()
		w := p.c.NextWake()
		p.mu.Unlock()
		d := time.Hour
		if !w.IsZero() {
			d = max(time.Until(w), 0)
			if d == 0 {
				d = time.Microsecond
			}
		}
		t.Reset(d)
		select {
		case <-done:
			return
		case <-p.kick:
		case <-t.C:
		}
	}
}

func runNetsimWorkload(t *testing.T, seed uint64, w *workload, link netsim.LinkConfig, limit time.Duration) {
	synctest.Test(t, func(t *testing.T) {
		nw := mustNetsim(t, netsim.Config{Seed: seed, Link: link})
		defer nw.Close()
		ea, err := nw.Listen(netip.MustParseAddrPort("10.0.0.1:1000"))
		if err != nil {
			t.Fatal(err)
		}
		eb, err := nw.Listen(netip.MustParseAddrPort("10.0.0.2:1000"))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		ca, _ := New(Config{Lanes: make([]Lane, w.lanes), SendRateMin: 1 << 20, SendRateMax: 16 << 20}, now)
		cb, _ := New(Config{}, now)
		pa := newSimPeer(ca, ea, eb.LocalAddr())
		pb := newSimPeer(cb, eb, ea.LocalAddr())
		ch := newChecker(t, w)
		pb.onMsg = ch.got
		done := make(chan struct{})
		var wg sync.WaitGroup
		for _, p := range []*simPeer{pa, pb} {
			wg.Go(p.readLoop)
			wg.Go(func() { p.timerLoop(done) })
		}
		start := time.Now()
		var body []byte
		for next := 0; next < len(w.msgs); {
			m := &w.msgs[next]
			fl := Unreliable
			if m.reliable {
				fl = Reliable
			}
			if body == nil {
				body = msgBody(m.seq, m.size)
			}
			pa.mu.Lock()
			pb.mu.Lock()
			num, err := ca.SendMessage(time.Now(), m.lane, body, fl)
			if err == nil {
				m.num = num
				ch.sent(m)
			}
			pb.mu.Unlock()
			pa.mu.Unlock()
			if err == ErrSendBufferFull {
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			body = nil
			next++
			pa.wake()
		}
		for {
			pa.mu.Lock()
			pb.mu.Lock()
			fin := ch.relGot == ch.relWant
			checkBounds(t, ca, time.Now())
			checkBounds(t, cb, time.Now())
			fa, fb := pa.fail, pb.fail
			pb.mu.Unlock()
			pa.mu.Unlock()
			if fa != nil || fb != nil {
				t.Fatalf("protocol error: %v %v", fa, fb)
			}
			if fin {
				break
			}
			if time.Since(start) > limit {
				t.Fatalf("not done after %v: reliable %d/%d", limit, ch.relGot, ch.relWant)
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("%d reliable, %d/%d unreliable in %v simulated; net %+v", ch.relGot, ch.unrelGot, len(w.msgs)-ch.relWant, time.Since(start), nw.Stats())
		close(done)
		ea.Close()
		eb.Close()
		wg.Wait()
	})
}

func TestPropertyNetsim(t *testing.T) {
	for _, loss := range []float64{0, 1, 10, 30} {
		for seed := uint64(1); seed <= 2; seed++ {
			t.Run(fmt.Sprintf("loss%.0f/seed%d", loss, seed), func(t *testing.T) {
				w := genWorkload(seed+100, 200, 3, seed == 1)
				link := netsim.LinkConfig{Delay: 10 * time.Millisecond, Jitter: 5 * time.Millisecond, LossPercent: loss, ReorderPercent: 5, DuplicatePercent: 2}
				runNetsimWorkload(t, seed, w, link, 10*time.Minute)
			})
		}
	}
}

// mustNetsim returns netsim.New(cfg) or fails the test.
func mustNetsim(tb testing.TB, cfg netsim.Config) *netsim.Network {
	tb.Helper()
	nw, err := netsim.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return nw
}
