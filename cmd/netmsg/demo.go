package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/netmsg-go/netmsg/internal/snp"
	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/transport"
)

// The demo runs two reliability engines ("alice" and "bob") over the
// in-memory network with fake loss, lag, jitter, reordering and duplication,
// on three lanes: chat (small reliable messages), state (unreliable updates
// at 60 Hz) and bulk (large reliable blobs). It prints a live view of each
// side and ends with a summary that checks every reliable message arrived
// exactly once and in order, and every unreliable one intact or not at all.
//
// Until the connection layer exists, each datagram carries the engine's
// payload behind an 8-byte packet number: a stand-in for GNS's header and
// encryption.

const (
	laneChat = iota
	laneState
	laneBulk
	numLanes
)

var laneNames = [numLanes]string{"chat", "state", "bulk"}

type demoOptions struct {
	duration time.Duration
	loss     float64
	lag      time.Duration
	jitter   time.Duration
	seed     uint64
	every    time.Duration
}

func runDemo(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(out)
	var o demoOptions
	fs.DurationVar(&o.duration, "duration", 4*time.Second, "how long the scripted exchange runs")
	fs.Float64Var(&o.loss, "loss", 5, "fake loss in percent, each direction")
	fs.DurationVar(&o.lag, "lag", 40*time.Millisecond, "fake one-way lag")
	fs.DurationVar(&o.jitter, "jitter", 10*time.Millisecond, "fake jitter (extra lag up to this)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the fake network and the workload")
	fs.DurationVar(&o.every, "every", time.Second, "how often the live view prints")
	if err := fs.Parse(args); err != nil {
		return err
	}
	return demo(o, out)
}

func demo(o demoOptions, out io.Writer) error {
	link := netsim.LinkConfig{
		Delay:            o.lag,
		Jitter:           o.jitter,
		LossPercent:      o.loss,
		ReorderPercent:   2,
		DuplicatePercent: 1,
	}
	nw, err := netsim.New(netsim.Config{Seed: o.seed, Link: link})
	if err != nil {
		return err
	}
	defer nw.Close()

	addrA := netip.MustParseAddrPort("127.0.0.1:27015")
	addrB := netip.MustParseAddrPort("127.0.0.2:27015")
	alice, err := newDemoPeer("alice", nw, addrA, addrB)
	if err != nil {
		return err
	}
	bob, err := newDemoPeer("bob", nw, addrB, addrA)
	if err != nil {
		return err
	}
	peers := []*demoPeer{alice, bob}
	for _, p := range peers {
		p.start()
	}
	defer func() {
		for _, p := range peers {
			p.stop()
		}
	}()

	fmt.Fprintf(out, "netmsg demo: alice %v <-> bob %v over the in-memory network\n", addrA, addrB)
	fmt.Fprintf(out, "fake network each way: %.1f%% loss, %v lag + up to %v jitter, 2%% reordered, 1%% duplicated\n",
		o.loss, o.lag, o.jitter)
	fmt.Fprintf(out, "lanes: chat (reliable, small), state (unreliable, 60 Hz), bulk (reliable, 64-200 KiB)\n\n")

	rng := rand.New(rand.NewPCG(o.seed, 99))
	start := time.Now()
	tick := time.NewTicker(time.Second / 60)
	defer tick.Stop()
	nextView := start.Add(o.every)
	for frame := 0; time.Since(start) < o.duration; frame++ {
		<-tick.C
		for _, p := range peers {
			// State: one unreliable update per frame.
			p.send(laneState, 60+rng.IntN(200), snp.Unreliable)
			// Chat: now and then a burst of small reliable messages.
			if rng.IntN(6) == 0 {
				for range 1 + rng.IntN(4) {
					p.send(laneChat, 8+rng.IntN(120), snp.Reliable)
				}
			}
			// Bulk: a large blob every second or so.
			if frame%60 == 30 {
				p.send(laneBulk, 64*1024+rng.IntN(136*1024), snp.Reliable)
			}
		}
		if now := time.Now(); !now.Before(nextView) {
			nextView = now.Add(o.every)
			printView(out, time.Since(start), peers)
		}
	}

	// Let the reliable data drain: wait until both sides have everything.
	fmt.Fprintf(out, "\nsending stopped after %v; draining...\n", time.Since(start).Round(time.Millisecond))
	deadline := time.Now().Add(30 * time.Second)
	for !alice.caughtUp(bob) || !bob.caughtUp(alice) {
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	printView(out, time.Since(start), peers)
	return summary(out, peers, nw)
}

func printView(out io.Writer, elapsed time.Duration, peers []*demoPeer) {
	fmt.Fprintf(out, "t=%4.1fs\n", elapsed.Seconds())
	for _, p := range peers {
		s := p.stats()
		fmt.Fprintf(out, "  %-5s ping %3dms  quality local %.2f remote %.2f  out %4.0f pkt/s %7.1f KB/s  in %4.0f pkt/s %7.1f KB/s  rate %7.1f KB/s  pending rel %6d B unrel %4d B  unacked %6d B  queue %v\n",
			p.name, s.Ping, s.ConnectionQualityLocal, s.ConnectionQualityRemote,
			s.OutPacketsPerSec, s.OutBytesPerSec/1000, s.InPacketsPerSec, s.InBytesPerSec/1000,
			float64(s.SendRateBytesPerSecond)/1000, s.PendingReliable, s.PendingUnreliable,
			s.SentUnackedReliable, s.QueueTime.Round(time.Millisecond))
	}
}

func summary(out io.Writer, peers []*demoPeer, nw *netsim.Network) error {
	fmt.Fprintf(out, "\nsummary\n")
	ok := true
	for i, p := range peers {
		q := peers[1-i]
		p.mu.Lock()
		q.mu.Lock()
		for lane := range numLanes {
			sent := q.sent[lane]
			got := p.got[lane]
			if lane == laneState {
				lost := sent - got
				fmt.Fprintf(out, "  %s -> %s %-5s unreliable: sent %5d received %5d (%.1f%% lost), corrupt %d, duplicated %d\n",
					q.name, p.name, laneNames[lane], sent, got, 100*float64(lost)/float64(max(sent, 1)), p.corrupt[lane], p.dups[lane])
				if p.corrupt[lane] != 0 {
					ok = false
				}
				continue
			}
			fmt.Fprintf(out, "  %s -> %s %-5s reliable:   sent %5d delivered %5d, out of order or duplicated %d, corrupt %d\n",
				q.name, p.name, laneNames[lane], sent, got, p.misordered[lane], p.corrupt[lane])
			if got != sent || p.misordered[lane] != 0 || p.corrupt[lane] != 0 {
				ok = false
			}
		}
		q.mu.Unlock()
		p.mu.Unlock()
	}
	ns := nw.Stats()
	fmt.Fprintf(out, "  network: %d datagrams sent, %d delivered, %d dropped, %d duplicated, %d reordered\n",
		ns.Sent, ns.Delivered, ns.Dropped(), ns.Duplicated, ns.Reordered)
	for _, p := range peers {
		s := p.stats()
		fmt.Fprintf(out, "  %-5s engine: %d packets sent, %d retransmitted, %d lost, %d duplicates dropped\n",
			p.name, s.PacketsSent, s.PacketsRetransmitted, s.PacketsLost, s.PacketsDuplicate)
	}
	if !ok {
		fmt.Fprintf(out, "FAIL: reliable delivery was not exactly once and in order\n")
		return fmt.Errorf("demo: reliable delivery check failed")
	}
	fmt.Fprintf(out, "OK: every reliable message arrived exactly once and in order; unreliable ones intact or not at all\n")
	return nil
}

// demoPeer drives one engine over one endpoint. The engine is owned by mu:
// the reader goroutine feeds it packets, the runner goroutine polls it for
// packets to send when it is kicked or its wake-up time comes, and the
// demo's main loop queues messages.
type demoPeer struct {
	name   string
	ep     *netsim.Endpoint
	remote netip.AddrPort
	kick   chan struct{}
	done   chan struct{}
	wg     sync.WaitGroup

	mu         sync.Mutex // guards everything below
	conn       *snp.Conn
	sent       [numLanes]int // messages sent per lane
	got        [numLanes]int // messages received per lane
	nextSeq    [numLanes]uint64
	expect     [numLanes]uint64 // reliable lanes: next sequence expected
	seenUnrel  map[uint64]bool
	misordered [numLanes]int
	corrupt    [numLanes]int
	dups       [numLanes]int
	buf        []byte
	pkt        []byte
	msgs       []snp.Message
}

func newDemoPeer(name string, nw *netsim.Network, addr, remote netip.AddrPort) (*demoPeer, error) {
	ep, err := nw.Listen(addr)
	if err != nil {
		return nil, err
	}
	conn, err := snp.New(snp.Config{
		Lanes:       []snp.Lane{{Priority: 0}, {Priority: 0}, {Priority: 1}},
		SendRateMin: 64 * 1024,
		SendRateMax: 4 * 1024 * 1024,
	}, time.Now())
	if err != nil {
		ep.Close()
		return nil, err
	}
	return &demoPeer{
		name: name, ep: ep, remote: remote, conn: conn,
		kick: make(chan struct{}, 1), done: make(chan struct{}),
		seenUnrel: map[uint64]bool{},
		buf:       make([]byte, 0, transport.MaxDatagram),
		pkt:       make([]byte, transport.MaxDatagram),
		msgs:      make([]snp.Message, 64),
	}, nil
}

func (p *demoPeer) start() {
	p.wg.Add(2)
	go p.reader()
	go p.runner()
}

func (p *demoPeer) stop() {
	close(p.done)
	p.ep.Close()
	p.wg.Wait()
}

func (p *demoPeer) poke() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// send queues a message whose first 8 bytes are its sequence number on the
// lane and whose other bytes are a pattern the receiver checks.
func (p *demoPeer) send(lane, size int, flags snp.SendFlags) {
	p.mu.Lock()
	seq := p.nextSeq[lane]
	b := make([]byte, size)
	fillDemo(b, seq)
	if _, err := p.conn.SendMessage(time.Now(), lane, b, flags); err == nil {
		p.nextSeq[lane]++
		p.sent[lane]++
	}
	p.mu.Unlock()
	p.poke()
}

func fillDemo(b []byte, seq uint64) {
	binary.LittleEndian.PutUint64(b, seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq*7 + uint64(i))
	}
}

func checkDemo(b []byte) (seq uint64, ok bool) {
	if len(b) < 8 {
		return 0, false
	}
	seq = binary.LittleEndian.Uint64(b)
	for i := 8; i < len(b); i++ {
		if b[i] != byte(seq*7+uint64(i)) {
			return seq, false
		}
	}
	return seq, true
}

func (p *demoPeer) reader() {
	defer p.wg.Done()
	pkts := make([]transport.Packet, 16)
	for i := range pkts {
		pkts[i].Buf = make([]byte, transport.MaxDatagram)
	}
	for {
		n, err := p.ep.ReadBatch(pkts)
		if err != nil {
			return
		}
		p.mu.Lock()
		now := time.Now()
		for _, pk := range pkts[:n] {
			b := pk.Bytes()
			if len(b) < 8 {
				continue
			}
			// A protocol error would end a real connection; the demo
			// only counts it (the engine does too).
			_ = p.conn.ReceivePacket(now, int64(binary.LittleEndian.Uint64(b)), b[8:])
		}
		p.drainLocked()
		p.mu.Unlock()
		p.poke()
	}
}

// drainLocked takes the completed messages and checks them.
func (p *demoPeer) drainLocked() {
	for {
		n := p.conn.Receive(p.msgs)
		if n == 0 {
			return
		}
		for i := range p.msgs[:n] {
			m := &p.msgs[i]
			lane := int(m.Lane)
			seq, ok := checkDemo(m.Data)
			switch {
			case lane >= numLanes || !ok:
				p.corrupt[min(lane, numLanes-1)]++
			case m.Reliable:
				if seq != p.expect[lane] {
					p.misordered[lane]++
				}
				p.expect[lane] = seq + 1
				p.got[lane]++
			default:
				if p.seenUnrel[seq] {
					p.dups[lane]++
				} else {
					p.seenUnrel[seq] = true
					p.got[lane]++
				}
			}
			m.Release()
		}
	}
}

func (p *demoPeer) runner() {
	defer p.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	out := []transport.Packet{{Addr: p.remote}}
	for {
		p.mu.Lock()
		now := time.Now()
		for {
			payload, pktNum, ok := p.conn.Poll(now, p.buf)
			if !ok {
				break
			}
			binary.LittleEndian.PutUint64(p.pkt, uint64(pktNum))
			n := 8 + copy(p.pkt[8:], payload)
			out[0].Buf, out[0].N = p.pkt, n
			p.ep.WriteBatch(out)
		}
		wake := p.conn.NextWake()
		p.mu.Unlock()
		d := time.Hour
		if !wake.IsZero() {
			d = max(time.Until(wake), 0)
		}
		timer.Reset(d)
		select {
		case <-p.kick:
		case <-timer.C:
		case <-p.done:
			return
		}
	}
}

func (p *demoPeer) stats() snp.Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.conn.Stats(time.Now())
}

// caughtUp reports whether p has received every reliable message q sent.
func (p *demoPeer) caughtUp(q *demoPeer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	return p.got[laneChat] == q.sent[laneChat] && p.got[laneBulk] == q.sent[laneBulk]
}
