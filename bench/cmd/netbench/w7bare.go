package main

// The bare clients of W7 (netbench w7 --clients bare): a load generator
// that does far less per message than a Host, so that on one machine it
// can offer the whole load (10,000 sessions x 10 messages/s) while leaving
// the cores to the Host under test. The sessions are bare connection state
// machines (no Host, no timers of their own) spread over a few shared UDP
// sockets; each speaks the Messages layer's wire (virtual port 0x7fffffff,
// the 5-byte channel header). While idle they answer the server as any
// peer does; for the load, each session's datagrams are made ahead of time
// (conn.Prebuild: one datagram per message, as a message sent every 100 ms
// with no Nagle goes) and then only written, on schedule, with the
// server's acknowledgements left unread.

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netmsg-go/netmsg/internal/conn"
	"github.com/netmsg-go/netmsg/internal/snp"
	"github.com/netmsg-go/netmsg/internal/udp"
	"github.com/netmsg-go/netmsg/transport"
)

// bareSocket is one shared socket and the sessions on it; its worker
// goroutine owns the sessions until the load (Prebuild, write).
type bareSocket struct {
	u     *udp.Conn
	mu    sync.Mutex // guards conns' state machines while live
	conns map[uint32]*conn.Conn
	list  []*conn.Conn
	live  atomic.Bool // the reader hands datagrams to the sessions
	kick  chan struct{}
}

// bareClients are W7's bare sessions.
type bareClients struct {
	server    netip.AddrPort
	socks     []*bareSocket
	connected atomic.Int64
	failed    atomic.Int64
	inflight  int // handshakes under way at once, per socket
	stop      chan struct{}
	wg        sync.WaitGroup
}

func newBareClients(server netip.AddrPort, n, sockets, inflight int) (*bareClients, error) {
	b := &bareClients{server: server, stop: make(chan struct{}), inflight: max(inflight/sockets, 1)}
	_, key, _ := ed25519.GenerateKey(nil)
	now := time.Now()
	for s := range sockets {
		u, err := udp.Listen("udp4", netip.MustParseAddrPort("127.0.0.1:0"), udp.Options{})
		if err != nil {
			b.close()
			return nil, err
		}
		bs := &bareSocket{u: u, conns: map[uint32]*conn.Conn{}, kick: make(chan struct{}, 1)}
		bs.live.Store(true)
		b.socks = append(b.socks, bs)
		for i := s; i < n; i += sockets {
			cfg := conn.Config{Identity: fmt.Sprintf("str:w7-%d", i), Key: key, VirtualPort: 0x7fffffff}
			c, err := conn.Dial(cfg, now, uint32(i+1), server)
			if err != nil {
				b.close()
				return nil, err
			}
			bs.conns[c.LocalID()] = c
			bs.list = append(bs.list, c)
		}
	}
	for _, bs := range b.socks {
		b.wg.Add(2)
		go b.read(bs)
		go b.run(bs)
	}
	return b, nil
}

// read hands the socket's datagrams to their sessions while they are live,
// and drops them after.
func (b *bareClients) read(bs *bareSocket) {
	defer b.wg.Done()
	pkts := make([]transport.Packet, 64)
	for i := range pkts {
		pkts[i].Buf = make([]byte, transport.MaxDatagram)
	}
	for {
		n, err := bs.u.ReadBatch(pkts)
		if err != nil {
			return
		}
		if !bs.live.Load() {
			continue
		}
		bs.mu.Lock()
		now := time.Now()
		for i := range pkts[:n] {
			_, id := conn.Classify(pkts[i].Bytes())
			if c := bs.conns[id]; c != nil {
				c.HandleDatagram(now, pkts[i].Addr, pkts[i].Bytes())
			}
		}
		bs.mu.Unlock()
		select {
		case bs.kick <- struct{}{}:
		default:
		}
	}
}

// run polls the socket's sessions (handshakes, answers, keepalives) every
// millisecond or when datagrams came, while they are live.
func (b *bareClients) run(bs *bareSocket) {
	defer b.wg.Done()
	out := make([]transport.Packet, 0, 64)
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, transport.MaxDatagram)
	}
	state := make(map[uint32]conn.State, len(bs.list))
	hello := []byte{1, 0, 0, 0, 0, 'h', 'i'} // the Messages header (flags, channel 0), then the text
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	started, pending := 0, 0 // sessions polled so far; of those, not yet connected
	for bs.live.Load() {
		bs.mu.Lock()
		now := time.Now()
		for ; started < len(bs.list) && pending < b.inflight; started++ {
			pending++
		}
		for _, c := range bs.list[:started] {
			if w := c.NextWake(); w.IsZero() || w.After(now) {
				continue
			}
			for {
				if len(out) == cap(out) {
					bs.u.WriteBatch(out)
					out = out[:0]
				}
				d, ok := c.Poll(now, bufs[len(out)][:0])
				if !ok {
					break
				}
				out = append(out, transport.Packet{Buf: d, N: len(d), Addr: b.server})
			}
		}
		for _, c := range bs.list[:started] {
			st := c.State()
			if st == state[c.LocalID()] {
				continue
			}
			state[c.LocalID()] = st
			switch st {
			case conn.StateConnected:
				// A first message, as a client Host's send opens a
				// session: it proves the session's keys to the server.
				c.Send(now, 0, hello, snp.Reliable|snp.NoNagle)
				b.connected.Add(1)
				pending--
			case conn.StateProblemDetectedLocally, conn.StateClosedByPeer:
				b.failed.Add(1)
				pending--
			}
		}
		bs.mu.Unlock()
		if len(out) > 0 {
			bs.u.WriteBatch(out)
			out = out[:0]
		}
		select {
		case <-b.stop:
			return
		case <-bs.kick:
		case <-t.C:
		}
	}
}

// prebuild stops the sessions and makes each one's datagrams for count
// messages, the k-th sent at start + k*period (their engines' clocks);
// blast writes them k-th datagram by k-th datagram.
func (b *bareClients) prebuild(count int, period time.Duration, size int) ([][][][]byte, error) {
	for _, bs := range b.socks {
		bs.live.Store(false)
	}
	close(b.stop)
	msg := make([]byte, 5+size)
	msg[0] = 1 // the Messages header: flags, then channel 0
	out := make([][][][]byte, len(b.socks))
	for s, bs := range b.socks {
		bs.mu.Lock()
		out[s] = make([][][]byte, len(bs.list))
		start := time.Now()
		for i, c := range bs.list {
			if c.State() != conn.StateConnected {
				continue
			}
			ds := make([][]byte, 0, count)
			for k := range count {
				binary.LittleEndian.PutUint64(msg[5:], uint64(k))
				d, err := c.Prebuild(start.Add(time.Duration(k)*period), 1, func(int) []byte { return msg }, snp.Reliable|snp.NoNagle)
				if err != nil {
					bs.mu.Unlock()
					return nil, err
				}
				ds = append(ds, d...) // one, unless the engine also owed acks
			}
			out[s][i] = ds
		}
		bs.mu.Unlock()
	}
	return out, nil
}

// blast writes the prebuilt datagrams on schedule: message k of session i
// at t0 + k*period + (i's offset within the period). It returns the
// datagrams written.
func (b *bareClients) blast(ds [][][][]byte, count int, period time.Duration) int64 {
	var written atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now().Add(10 * time.Millisecond)
	for s, bs := range b.socks {
		wg.Go(func() {
			sessions := ds[s]
			n := len(sessions)
			out := make([]transport.Packet, 0, 64)
			flush := func() {
				if len(out) > 0 {
					bs.u.WriteBatch(out)
					written.Add(int64(len(out)))
					out = out[:0]
				}
			}
			// Sessions are due one after another across the period.
			step := period / time.Duration(max(n, 1))
			for k := range count {
				for i, sd := range sessions {
					due := t0.Add(time.Duration(k)*period + time.Duration(i)*step)
					if d := time.Until(due); d > time.Millisecond {
						flush()
						time.Sleep(d)
					}
					if k < len(sd) {
						out = append(out, transport.Packet{Buf: sd[k], N: len(sd[k]), Addr: b.server})
						if len(out) == cap(out) {
							flush()
						}
					}
				}
			}
			flush()
		})
	}
	wg.Wait()
	return written.Load()
}

func (b *bareClients) close() {
	for _, bs := range b.socks {
		bs.live.Store(false)
		bs.u.Close()
	}
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	b.wg.Wait()
}

// w7Bare runs W7 with bare clients against the server at server (ask
// talks to it) and prints the figures as w7 does.
func w7Bare(server netip.AddrPort, n, rate int, window time.Duration, sockets, inflight int, base w7Stats, ask func(string) (w7Stats, error), prof string) error {
	cpu0 := cpuSeconds()
	t0 := time.Now()
	b, err := newBareClients(server, n, sockets, inflight)
	if err != nil {
		return err
	}
	defer b.close()
	for b.connected.Load() < int64(n) {
		if time.Since(t0) > 2*time.Minute {
			return fmt.Errorf("w7: only %d of %d sessions connected in two minutes (%d failed)", b.connected.Load(), n, b.failed.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	clientSide := time.Since(t0)
	fmt.Fprintf(os.Stderr, "w7: %d bare sessions connected in %.2f s, %.1f s of client CPU\n", n, clientSide.Seconds(), cpuSeconds()-cpu0)
	for {
		s, err := ask("stats")
		if err != nil {
			return err
		}
		if s.Sessions >= int64(n) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Idle: the sessions answer keepalives as live peers.
	time.Sleep(2 * time.Second)
	idle0, err := ask("gc")
	if err != nil {
		return err
	}
	if prof != "" {
		if _, err := ask("heap " + prof + ".heap"); err != nil {
			return err
		}
	}
	time.Sleep(window)
	idle1, err := ask("gc")
	if err != nil {
		return err
	}

	// Load: made ahead of time, then written on schedule.
	period := time.Second / time.Duration(rate)
	count := int((window + 2*time.Second) / period)
	p0 := time.Now()
	ds, err := b.prebuild(count, period, 64)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "w7: %d messages per session made in %.1f s\n", count, time.Since(p0).Seconds())
	var written int64
	done := make(chan struct{})
	wstart := time.Now()
	go func() { written = b.blast(ds, count, period); close(done) }()
	time.Sleep(time.Second) // settle
	load0, err := ask("stats")
	if err != nil {
		return err
	}
	if prof != "" {
		ask("cpu " + prof + ".cpu")
	}
	time.Sleep(window)
	load1, err := ask("stats")
	if prof != "" {
		ask("cpustop")
	}
	if err != nil {
		return err
	}
	<-done
	offered := float64(written) / time.Since(wstart).Seconds()

	secs := window.Seconds()
	serverSpan := (idle0.LastMs - idle0.FirstMs) / 1e3
	fmt.Printf("W7: %d sessions to one Host, %d msg/s each under load (server in its own process; bare clients on %d sockets, load made ahead of time; %d CPUs)\n", n, rate, sockets, runtime.NumCPU())
	fmt.Printf("handshakes: %d in %.2f s from the first send (%.0f/s); server saw first..last connected over %.2f s (%.0f/s)\n",
		n, clientSide.Seconds(), float64(n)/clientSide.Seconds(), serverSpan, float64(n)/serverSpan)
	fmt.Printf("memory per idle session: %.2f KiB resident (RSS %d -> %d KiB), %.2f KiB Go heap in use; %d goroutines\n",
		float64(idle0.RSSKiB-base.RSSKiB)/float64(n), base.RSSKiB, idle0.RSSKiB, float64(idle0.HeapInuseKiB-base.HeapInuseKiB)/float64(n), idle0.Goroutines)
	fmt.Printf("CPU idle: %.3f cores (keepalives of %d sessions over %.0f s)\n", (idle1.CPUSeconds-idle0.CPUSeconds)/secs, n, secs)
	got := float64(load1.Messages-load0.Messages) / secs
	cores := (load1.CPUSeconds - load0.CPUSeconds) / secs
	fmt.Printf("CPU under load: %.3f cores, receiving %.0f msg/s (offered %.0f datagrams/s of %d), %.2f µs of server CPU per message\n",
		cores, got, offered, n*rate, cores/got*1e6)
	fmt.Printf("server datagrams under load: %.0f/s in, %.0f/s out, %.0f/s dropped\n",
		float64(load1.DatagramsIn-load0.DatagramsIn)/secs, float64(load1.DatagramsOut-load0.DatagramsOut)/secs, float64(load1.Dropped-load0.Dropped)/secs)
	return nil
}
