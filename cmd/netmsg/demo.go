package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

// The demo runs three Hosts (alice, bob and carol) in one process over the
// in-memory network with fake loss, lag, jitter, reordering and duplication,
// and has them talk through the Messages API on three channels:
//
//	0 chat   reliable: every host now and then says a few lines to both others
//	1 state  unreliable: every host sends each peer a state update at 60 Hz
//	2 bulk   reliable: a blob of 64-200 KiB from one host to another, three a second
//
// Each host's identity is its address ("ip:127.0.0.1:27015", ...). The hosts
// join one after another, and sessions are made on demand: the first message
// from a peer raises OnSessionRequest, which accepts it. While the script
// runs the demo prints every session as its Host sees it
// (GetSessionConnectionInfo); at the end it checks that every reliable
// message arrived exactly once and in order, and every unreliable one intact
// or not at all, and prints the network's counters.
//
// Every message starts with its sequence number on its flow (sender,
// receiver, channel); the rest is a pattern derived from the sequence number
// and the flow, which the receiver checks.

const (
	chChat = iota
	chState
	chBulk
	numChannels
)

var hostNames = []string{"alice", "bob", "carol"}

// demoNATs are the hosts' NATs in the P2P run: alice and carol behind
// symmetric NATs (their session goes through the relay), bob behind a full
// cone (his sessions go direct).
var demoNATs = []netsim.NATType{netsim.Symmetric, netsim.FullCone, netsim.Symmetric}

var demoRelay = netip.MustParseAddrPort(demoRelayAddr)

const (
	demoPort    = 27015
	demoJoinGap = 250 * time.Millisecond // between one host's first sends and the next's
	demoReorder = 2                      // percent of datagrams reordered
	demoDup     = 1                      // percent of datagrams duplicated
	demoDrain   = 20 * time.Second       // longest wait for the reliable data after the script
	demoStall   = 3 * time.Second        // or for the next reliable message while draining
	demoMaxLoss = 90                     // highest --loss, in percent

	demoSignalDelay = 25 * time.Millisecond // the embedded signaling service's latency
	demoRelayAddr   = "198.51.100.1:3478"   // the embedded STUN and TURN server
	demoSignalLoss  = 10                    // percent of signals lost
	demoSignalDup   = 10                    // percent of signals delivered twice
)

type demoOptions struct {
	duration time.Duration
	loss     float64
	lag      time.Duration
	jitter   time.Duration
	seed     uint64
	every    time.Duration
	direct   bool // ip: identities, sessions directly over UDP (no signaling)
}

var demoHelp = help{
	name:    "demo",
	summary: "three hosts talk through the Messages API over a lossy in-memory network",
	desc: `Runs alice, bob and carol in this process, over netmsg's in-memory network
with fake loss, lag, jitter, reordering and duplication. By default they
have str: identities behind simulated NATs and find each other through an
embedded signaling service and STUN/TURN relay (P2P); with --ip they use
ip: identities and direct UDP sessions. They chat reliably on channel 0,
send 60 Hz unreliable state on channel 1 and reliable 64-200 KiB blobs on
channel 2. A live view prints each session as its Host sees it; at the end
the demo checks that every reliable message arrived exactly once and in
order and every unreliable one intact or not at all, and exits 1 if not.
Nothing leaves the process.

With --web the demo serves a page instead (on --web-addr), from which a
person in a browser joins alice, bob and carol, here Go Hosts on real
sockets, over WebRTC: chat on channel 0, a moving dot sent unreliably at
30 Hz on channel 1, and each session's route and ping.
`,
	examples: []string{
		"netmsg demo",
		"netmsg demo --loss 20 --lag 80ms --duration 10s",
		"netmsg demo --ip --seed 7",
		"netmsg demo --web --web-addr 127.0.0.1:8080",
	},
}

func runDemo(args []string, out io.Writer) error {
	fs := newFlags("demo")
	var o demoOptions
	fs.DurationVar(&o.duration, "duration", 4*time.Second, "how long the scripted exchange runs (more than 0)")
	fs.Float64Var(&o.loss, "loss", 5, "fake loss in `percent`, each direction (0 to 90)")
	fs.DurationVar(&o.lag, "lag", 40*time.Millisecond, "fake one-way lag (0 or more)")
	fs.DurationVar(&o.jitter, "jitter", 10*time.Millisecond, "fake jitter: extra lag up to this (0 or more)")
	fs.Uint64Var(&o.seed, "seed", 1, "seed of the fake network and the workload")
	fs.DurationVar(&o.every, "every", time.Second, "how often the live view prints (more than 0)")
	fs.BoolVar(&o.direct, "ip", false, "use ip: identities and direct-UDP sessions instead of str: identities over P2P")
	webDemo := fs.Bool("web", false, "serve a page from which a person in a browser joins alice, bob and carol over WebRTC (real sockets; runs until Ctrl-C)")
	webAddr := fs.String("web-addr", "127.0.0.1:8080", "with --web: the HTTP `address` of the page")
	if err := parseFlags(fs, demoHelp, args, out); err != nil {
		return err
	}
	if *webDemo {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return runDemoWeb(ctx, *webAddr, out, nil)
	}
	if err := positive("duration", o.duration); err != nil {
		return err
	}
	if err := positive("every", o.every); err != nil {
		return err
	}
	switch {
	case math.IsNaN(o.loss) || o.loss < 0 || o.loss > demoMaxLoss:
		return usagef("--loss must be 0 to %d percent (got %v): above that, sessions cannot even be set up", demoMaxLoss, o.loss)
	case o.lag < 0:
		return usagef("--lag must be 0 or more (got %v)", o.lag)
	case o.jitter < 0:
		return usagef("--jitter must be 0 or more (got %v)", o.jitter)
	}
	return demo(o, out)
}

// flow counts the messages of one sender to one receiver on one channel.
// The sender's fields are written by the script, the receiver's by the
// receiving goroutine; demo.mu guards them all.
type flow struct {
	sent    int // accepted by SendMessageToUser
	refused int // refused by SendMessageToUser (send buffer full)

	got      int    // received, intact or not
	intact   int    // received intact (unreliable: duplicates not counted)
	expect   uint64 // reliable: the next sequence number expected
	disorder int    // reliable: out of order or duplicated
	dups     int    // unreliable: duplicated
	corrupt  int
	seen     map[uint64]bool // unreliable: sequence numbers received
}

type demoHost struct {
	name string
	addr netip.AddrPort
	id   netmsg.Identity
	h    *netmsg.Host
	ms   *netmsg.Messages
}

type demoRun struct {
	o     demoOptions
	out   io.Writer
	start time.Time
	hosts []*demoHost

	hub *signaling.Hub // the embedded signaling service (nil with --ip)

	outMu sync.Mutex // serializes writes to out

	mu    sync.Mutex // guards flows and failures
	flows [3][3][numChannels]flow
	fails int // sessions failed (OnSessionFailed)
}

func (d *demoRun) printf(format string, args ...any) {
	d.outMu.Lock()
	fmt.Fprintf(d.out, format, args...)
	d.outMu.Unlock()
}

func (d *demoRun) elapsed() time.Duration { return time.Since(d.start) }

// hostIndex returns the index of the host with identity id, or -1.
func (d *demoRun) hostIndex(id netmsg.Identity) int {
	for i, h := range d.hosts {
		if h.id == id {
			return i
		}
	}
	return -1
}

func demo(o demoOptions, out io.Writer) error {
	link := netsim.LinkConfig{
		Delay:            o.lag,
		Jitter:           o.jitter,
		LossPercent:      o.loss,
		ReorderPercent:   demoReorder,
		DuplicatePercent: demoDup,
	}
	nw, err := netsim.New(netsim.Config{Seed: o.seed, Link: link})
	if err != nil {
		return err
	}
	defer nw.Close()

	d := &demoRun{o: o, out: out, start: time.Now()}
	if !o.direct {
		// The embedded signaling service: in memory, and a little lossy.
		d.hub, err = signaling.NewHub(signaling.HubConfig{Seed: o.seed, Delay: demoSignalDelay, LossPercent: demoSignalLoss, DuplicatePercent: demoSignalDup})
		if err != nil {
			return err
		}
		// Each host behind its own NAT (alice and carol behind symmetric
		// ones, which no hole punching gets through), and an embedded
		// STUN and TURN server on the "internet".
		for i, typ := range demoNATs {
			if _, err := nw.AddNAT(netsim.NATConfig{Inside: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i + 1), 0, 0}), 16),
				Public: netip.AddrFrom4([4]byte{203, 0, 113, byte(i + 1)}), Type: typ}); err != nil {
				return err
			}
		}
		rs, err := relay.NewServer(relay.Config{ListenPacket: nw.ListenPacket, ListenAddr: demoRelay.String(), RelayIP: demoRelay.Addr(), Users: map[string]string{"demo": "demo"}})
		if err != nil {
			return err
		}
		defer rs.Close()
	}
	for from := range d.flows {
		for to := range d.flows[from] {
			d.flows[from][to][chState].seen = map[uint64]bool{}
		}
	}
	defer func() {
		for _, h := range d.hosts {
			h.h.Close()
		}
	}()
	for i, name := range hostNames {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)}), demoPort)
		if !o.direct {
			addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i + 1), 0, 2}), demoPort) // behind NAT i
		}
		if err := d.addHost(nw, name, addr, demoRand(o.seed, i)); err != nil {
			return fmt.Errorf("demo: %s: %w", name, err)
		}
	}

	d.printf("netmsg demo: %d hosts talk through the Messages API over the in-memory network\n", len(d.hosts))
	var ids []string
	for _, h := range d.hosts {
		ids = append(ids, fmt.Sprintf("%s %v", h.name, h.id))
	}
	d.printf("  hosts:    %s\n", strings.Join(ids, ", "))
	d.printf("  network:  each way %.1f%% loss, %v lag + up to %v jitter, %d%% reordered, %d%% duplicated\n",
		o.loss, o.lag, o.jitter, demoReorder, demoDup)
	if o.direct {
		d.printf("  sessions: directly over UDP to ip: identities\n")
	} else {
		d.printf("  sessions: P2P, GNS's way: rendezvous through an embedded signaling service (%v, %d%% of signals lost, %d%% doubled), then ICE picks the path\n",
			demoSignalDelay, demoSignalLoss, demoSignalDup)
		d.printf("  NATs:     alice symmetric, bob full cone, carol symmetric; an embedded STUN and TURN server at %v (alice and carol can only meet through it)\n", demoRelay)
	}
	d.printf("  channels: 0 chat (reliable, all to all), 1 state (unreliable, 60 Hz), 2 bulk (reliable, 64-200 KiB)\n")
	d.printf("  script:   %v, hosts join %v apart; sessions are made on demand\n\n", o.duration, demoJoinGap)

	// One receiving goroutine per host and channel.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		for _, h := range d.hosts {
			h.h.Close()
		}
		wg.Wait()
	}()
	for to, h := range d.hosts {
		for ch := range numChannels {
			wg.Go(func() { d.receive(ctx, to, h, ch) })
		}
	}

	d.script()

	d.printf("%5.2fs  script over; draining the reliable data\n", d.elapsed().Seconds())
	// Wait until every reliable message sent has arrived, or nothing has
	// arrived for a while (a message lost for good: the check fails).
	deadline := time.Now().Add(demoDrain)
	last, progress := -1, time.Now()
	for {
		done, got := d.caughtUp()
		now := time.Now()
		if got != last {
			last, progress = got, now
		}
		if done || now.After(deadline) || now.Sub(progress) > demoStall {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Give the last unreliable messages time to land too.
	time.Sleep(o.lag + o.jitter + netsim.DefaultReorderDelay)
	d.view()
	d.paths()
	return d.summary(nw)
}

// demoRand returns host i's source of randomness (keys, nonces, connection
// IDs), derived from the seed so that a run can be repeated: the demo's
// network is make-believe, and so are its secrets.
func demoRand(seed uint64, i int) io.Reader {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	binary.LittleEndian.PutUint64(key[8:], uint64(i))
	copy(key[16:], "netmsg demo host")
	return rand.NewChaCha8(key)
}

func (d *demoRun) addHost(nw *netsim.Network, name string, addr netip.AddrPort, rnd io.Reader) error {
	ep, err := nw.Listen(addr)
	if err != nil {
		return err
	}
	id, err := netmsg.IdentityFromAddr(addr)
	var sig netmsg.Signaling
	if d.hub != nil {
		id, err = netmsg.ParseIdentity("str:" + name)
		if err == nil {
			var sc signaling.Conn
			if sc, err = d.hub.Connect(id.String()); err == nil {
				sig = sc
			}
		}
	}
	if err != nil {
		ep.Close()
		return err
	}
	dh := &demoHost{name: name, addr: addr, id: id}
	h, err := netmsg.NewHost(netmsg.Config{
		Identity:    id,
		PacketConn:  ep,
		Rand:        rnd,
		Signaling:   sig,
		STUNServers: stunFor(d.hub != nil),
		TURNServers: turnFor(d.hub != nil),
		OnSessionRequest: func(peer netmsg.Identity) {
			ok := dh.h.Messages().AcceptSessionWithUser(peer)
			verdict := "accepted"
			if !ok {
				verdict = "gone before it was accepted"
			}
			d.printf("%5.2fs  %-5s session request from %s (%v): %s\n",
				d.elapsed().Seconds(), name, d.nameOf(peer), peer, verdict)
		},
		OnSessionFailed: func(info netmsg.ConnectionInfo) {
			d.mu.Lock()
			d.fails++
			d.mu.Unlock()
			d.printf("%5.2fs  %-5s session with %s failed: %v (%s)\n",
				d.elapsed().Seconds(), name, d.nameOf(info.Identity), info.EndReason, info.EndDebug)
		},
	})
	if err != nil {
		ep.Close()
		return err
	}
	dh.h = h
	dh.ms = h.Messages()
	d.hosts = append(d.hosts, dh)
	return nil
}

func (d *demoRun) nameOf(id netmsg.Identity) string {
	if i := d.hostIndex(id); i >= 0 {
		return d.hosts[i].name
	}
	return "?"
}

// script runs the scripted exchange at 60 frames a second for the
// duration, and prints the live view every o.every.
func (d *demoRun) script() {
	o := d.o
	rng := rand.New(rand.NewPCG(o.seed, 99))
	tick := time.NewTicker(time.Second / 60)
	defer tick.Stop()
	nextView := d.start.Add(o.every)
	n := len(d.hosts)
	// blob[i] is host i's bulk blob waiting for room in the send buffer.
	type blob struct {
		to, size int
	}
	blobs := make([]*blob, n)
	nextBulk := 0 // the host whose turn it is to send a blob
	for frame := 0; d.elapsed() < o.duration; frame++ {
		<-tick.C
		for i := range d.hosts {
			joinFrame := i * int(demoJoinGap/(time.Second/60))
			if frame < joinFrame {
				continue
			}
			// State: one unreliable update to each peer per frame.
			for to := range n {
				if to != i {
					d.send(i, to, chState, 40+rng.IntN(200), netmsg.SendUnreliableNoNagle)
				}
			}
			// Chat: the first frame, then now and then, a few lines to
			// both others.
			if frame == joinFrame || rng.IntN(6) == 0 {
				for range 1 + rng.IntN(3) {
					size := 8 + rng.IntN(120)
					for to := range n {
						if to != i {
							d.send(i, to, chChat, size, netmsg.SendReliable)
						}
					}
				}
			}
			// Bulk: retry a blob that did not fit.
			if b := blobs[i]; b != nil && d.send(i, b.to, chBulk, b.size, netmsg.SendReliable) {
				blobs[i] = nil
			}
		}
		// Bulk: every 20 frames, a blob from the next host to one of its
		// peers, once everyone has joined.
		if frame >= n*int(demoJoinGap/(time.Second/60)) && frame%20 == 0 && blobs[nextBulk] == nil {
			i := nextBulk
			b := &blob{to: (i + 1 + (frame/20/n)%(n-1)) % n, size: 64<<10 + rng.IntN(136<<10)}
			if !d.send(i, b.to, chBulk, b.size, netmsg.SendReliable) {
				blobs[i] = b
			}
			nextBulk = (nextBulk + 1) % n
		}
		if now := time.Now(); !now.Before(nextView) {
			nextView = nextView.Add(o.every)
			d.view()
		} else if frame%6 == 0 {
			d.sample()
		}
	}
}

// send sends one message of size bytes from host i to host to on channel
// ch. It returns false if the send buffer was full; other errors are
// counted as refusals too (OnSessionFailed reports a failed session).
func (d *demoRun) send(i, to, ch, size int, flags netmsg.SendFlags) bool {
	d.mu.Lock()
	f := &d.flows[i][to][ch]
	seq := uint64(f.sent)
	d.mu.Unlock()
	b := make([]byte, size)
	fillDemo(b, seq, demoKey(i, to, ch))
	err := d.hosts[i].ms.SendMessageToUser(d.hosts[to].id, b, flags, ch)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err != nil {
		f.refused++
		return false
	}
	f.sent++
	return true
}

func demoKey(from, to, ch int) uint64 { return uint64(from*16 + to*4 + ch) }

// fillDemo writes seq in the first 8 bytes of b and a pattern of seq and
// key in the others.
func fillDemo(b []byte, seq, key uint64) {
	binary.LittleEndian.PutUint64(b, seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(seq*7 + key*31 + uint64(i))
	}
}

// checkDemo returns the sequence number of b and whether its pattern is
// intact.
func checkDemo(b []byte, key uint64) (seq uint64, ok bool) {
	if len(b) < 8 {
		return 0, false
	}
	seq = binary.LittleEndian.Uint64(b)
	for i := 8; i < len(b); i++ {
		if b[i] != byte(seq*7+key*31+uint64(i)) {
			return seq, false
		}
	}
	return seq, true
}

// receive takes the messages of host to on channel ch until ctx ends or
// the host closes, and checks them.
func (d *demoRun) receive(ctx context.Context, to int, h *demoHost, ch int) {
	for {
		m, err := h.ms.Receive(ctx, ch)
		if err != nil {
			return
		}
		from := d.hostIndex(m.Identity)
		d.mu.Lock()
		if from < 0 || from == to {
			// Only the demo's hosts talk; count a stranger as corrupt
			// data from the first other host.
			from = (to + 1) % len(d.hosts)
			d.flows[from][to][ch].corrupt++
			d.flows[from][to][ch].got++
			d.mu.Unlock()
			m.Release()
			continue
		}
		f := &d.flows[from][to][ch]
		f.got++
		seq, ok := checkDemo(m.Payload, demoKey(from, to, ch))
		switch {
		case !ok || m.Channel != ch:
			f.corrupt++
		case ch != chState:
			if !m.Flags.IsReliable() || seq != f.expect {
				f.disorder++
			}
			if seq >= f.expect {
				f.expect = seq + 1
			}
			f.intact++
		case f.seen[seq]:
			f.dups++
		default:
			f.seen[seq] = true
			f.intact++
		}
		d.mu.Unlock()
		m.Release()
	}
}

// caughtUp reports whether every reliable message sent has been received,
// and how many reliable messages have been received.
func (d *demoRun) caughtUp() (done bool, got int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	done = true
	for from := range d.hosts {
		for to := range d.hosts {
			for _, ch := range []int{chChat, chBulk} {
				f := &d.flows[from][to][ch]
				got += f.got
				if f.got < f.sent {
					done = false
				}
			}
		}
	}
	return done, got
}

// view prints every session as each host sees it.
func (d *demoRun) view() {
	var b strings.Builder
	fmt.Fprintf(&b, "%-7s  %-5s  %-10s  %5s  %9s  %8s %6s  %9s %6s  %9s  %11s  %5s  %6s\n",
		fmt.Sprintf("%5.2fs", d.elapsed().Seconds()), "peer", "state", "ping", "qual l/r",
		"in pkt/s", "KB/s", "out pkt/s", "KB/s", "rate KB/s", "pending rel", "unrel", "queue")
	for _, h := range d.hosts {
		name := h.name
		for _, p := range d.hosts {
			if p == h {
				continue
			}
			st, _, s := h.ms.GetSessionConnectionInfo(p.id)
			if st == netmsg.StateNone {
				fmt.Fprintf(&b, "  %-5s  %-5s  %s\n", name, p.name, "no session")
				name = ""
				continue
			}
			// The rates and qualities are measured over windows of a
			// second or more; until the first one ends they are unknown.
			in, out := "-      -", "-      -"
			if s.ConnectionQualityLocal >= 0 || s.ConnectionQualityRemote >= 0 {
				in = fmt.Sprintf("%8.0f %6.1f", s.InPacketsPerSec, s.InBytesPerSec/1000)
				out = fmt.Sprintf("%9.0f %6.1f", s.OutPacketsPerSec, s.OutBytesPerSec/1000)
			}
			fmt.Fprintf(&b, "  %-5s  %-5s  %-10s  %5s  %4s %4s  %15s  %16s  %9.1f  %11d  %5d  %6s\n",
				name, p.name, st, fmtPing(s.Ping),
				fmtQuality(s.ConnectionQualityLocal), fmtQuality(s.ConnectionQualityRemote),
				in, out, float64(s.SendRateBytesPerSecond)/1000, s.PendingReliable, s.PendingUnreliable,
				fmtQueue(s.QueueTime))
			name = ""
		}
	}
	d.printf("%s", b.String())
}

func stunFor(p2p bool) []netip.AddrPort {
	if !p2p {
		return nil
	}
	return []netip.AddrPort{demoRelay}
}

func turnFor(p2p bool) []netmsg.TURNServer {
	if !p2p {
		return nil
	}
	return []netmsg.TURNServer{{Addr: demoRelay, Username: "demo", Password: "demo"}}
}

// paths prints the path each session took: with P2P, the address ICE
// selected (a peer's host candidate: direct; a relay comes with the TURN
// work).
func (d *demoRun) paths() {
	var parts []string
	for i, h := range d.hosts {
		for _, p := range d.hosts[i+1:] {
			st, info, _ := h.ms.GetSessionConnectionInfo(p.id)
			if st != netmsg.StateConnected {
				continue
			}
			how := fmt.Sprintf("direct UDP to %v", info.RemoteAddress)
			switch {
			case info.Flags&netmsg.ConnInfoRelayed != 0:
				how = "relayed (TURN)"
				if info.POPRelay != 0 {
					how += fmt.Sprintf(" through its TURN server #%d", info.POPRelay)
				} else {
					how += " through the peer's TURN server"
				}
			case d.hub != nil:
				how = fmt.Sprintf("direct (ICE) to %v", info.RemoteAddress)
			}
			parts = append(parts, fmt.Sprintf("%s-%s %s", h.name, p.name, how))
		}
	}
	d.printf("paths:   %s\n", strings.Join(parts, "; "))
}

// sample reads every session's status without printing it: the engine
// measures rates and quality over windows that end when the status is read,
// so reading it often keeps the windows about a second long.
func (d *demoRun) sample() {
	for _, h := range d.hosts {
		for _, p := range d.hosts {
			if p != h {
				h.ms.GetSessionConnectionInfo(p.id)
			}
		}
	}
}

func fmtPing(p time.Duration) string {
	if p < 0 {
		return "-"
	}
	return fmt.Sprintf("%dms", p.Milliseconds())
}

func fmtQuality(q float32) string {
	if q < 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", q)
}

func fmtQueue(q time.Duration) string {
	if q < time.Millisecond {
		return fmt.Sprintf("%dus", q.Microseconds())
	}
	return fmt.Sprintf("%dms", q.Milliseconds())
}

// summary prints what each flow sent and received, the network's counters,
// and the verdict. It returns an error if a reliable message was lost,
// duplicated, reordered or corrupted, or an unreliable one corrupted.
func (d *demoRun) summary(nw *netsim.Network) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "\nsummary       chat: ch 0, reliable          bulk: ch 2, reliable          state: ch 1, unreliable\n")
	fmt.Fprintf(&b, "from   to      sent  deliv  order/dup  bad   sent  deliv  order/dup  bad    sent  recv   lost  bad\n")
	ok := true
	refused, udups := 0, 0
	var missing, disorder, corrupt, delivered int
	for from, hf := range d.hosts {
		for to, ht := range d.hosts {
			if from == to {
				continue
			}
			fl := &d.flows[from][to]
			fmt.Fprintf(&b, "%-5s  %-5s", hf.name, ht.name)
			for _, ch := range []int{chChat, chBulk} {
				f := &fl[ch]
				fmt.Fprintf(&b, "  %5d  %5d  %9d  %3d ", f.sent, f.intact, f.disorder, f.corrupt)
				if f.intact != f.sent || f.got != f.sent || f.disorder != 0 || f.corrupt != 0 {
					ok = false
				}
				missing += max(f.sent-f.intact, 0)
				disorder += f.disorder
				corrupt += f.corrupt
				delivered += f.intact
			}
			f := &fl[chState]
			lost := 100 * float64(f.sent-f.intact) / float64(max(f.sent, 1))
			fmt.Fprintf(&b, "  %5d  %4d  %4.1f%%  %3d\n", f.sent, f.intact, lost, f.corrupt)
			if f.corrupt != 0 {
				ok = false
			}
			corrupt += f.corrupt
			delivered += f.intact
			udups += f.dups
			for ch := range fl {
				refused += fl[ch].refused
			}
		}
	}
	if refused > 0 {
		fmt.Fprintf(&b, "%d sends refused (send buffer full or no session); not counted as sent\n", refused)
	}
	if udups > 0 {
		fmt.Fprintf(&b, "%d unreliable messages arrived twice (allowed; counted once)\n", udups)
	}
	if d.fails > 0 {
		fmt.Fprintf(&b, "%d sessions failed\n", d.fails)
		ok = false
	}
	ns := nw.Stats()
	fmt.Fprintf(&b, "network: %d datagrams sent (%.1f MB), %d delivered, %d lost, %d duplicated, %d reordered, %d other drops\n",
		ns.Sent, float64(ns.SentBytes)/1e6, ns.Delivered, ns.DroppedLoss, ns.Duplicated, ns.Reordered, ns.Dropped()-ns.DroppedLoss)
	var hs []string
	for _, h := range d.hosts {
		s := h.h.Stats()
		hs = append(hs, fmt.Sprintf("%s %d out, %d in, %d dropped", h.name, s.DatagramsOut, s.DatagramsIn, s.Dropped))
	}
	fmt.Fprintf(&b, "hosts:   %s\n", strings.Join(hs, "; "))
	var why []string
	switch {
	case delivered == 0:
		why = append(why, "nothing could be delivered")
	case missing > 0:
		why = append(why, fmt.Sprintf("%d reliable messages never arrived", missing))
	}
	if disorder > 0 {
		why = append(why, fmt.Sprintf("%d reliable messages out of order or duplicated", disorder))
	}
	if corrupt > 0 {
		why = append(why, fmt.Sprintf("%d messages corrupted", corrupt))
	}
	if d.fails > 0 {
		why = append(why, fmt.Sprintf("%d sessions failed", d.fails))
	}
	if !ok {
		fmt.Fprintf(&b, "FAIL: %s\n", strings.Join(why, "; "))
	} else {
		fmt.Fprintf(&b, "OK: every reliable message arrived exactly once and in order; unreliable ones intact or not at all (%v)\n",
			d.elapsed().Round(time.Millisecond))
	}
	d.printf("%s", b.String())
	if !ok {
		return fmt.Errorf("delivery check failed: %s", strings.Join(why, "; "))
	}
	return nil
}
