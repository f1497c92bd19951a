//go:build soak

package netmsg

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The soak runner (go test -tags soak -run TestSoak): N client Hosts keep
// Messages sessions with one hub Host over real UDP on 127.0.0.1, under
// fake loss (10-30% each way, per client), reordering, duplication and
// jitter, both directions, messages of 1 B to 512 KiB, reliable on
// channels 0 and 1 and unreliable on channel 2, while clients close and
// reopen their sessions at random. It checks that reliable messages of one
// session come at most once and in order, and all of them in each
// session's last epoch (no closes in the quiet phase; the senders stop a
// few seconds before the end, and the receivers wait up to soakLate after
// it for messages late on a loaded machine), that unreliable ones are
// intact or absent,
// and that
// resident memory, goroutines and open files stay flat after warm-up.
//
// NETMSG_SOAK_DURATION (default 60s) and NETMSG_SOAK_SESSIONS (default
// 10) set the run; the last tenth of the duration (at least 10 s) is the
// quiet phase, without closes.

const (
	soakLate       = 30 * time.Second // how long after the run the last messages may still come
	soakChannels   = 3                // 0 and 1 reliable, 2 unreliable
	soakHeader     = 20
	soakMaxPayload = 512 * 1024
)

func soakEnv(name string, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// soakMsg is a message: epoch (of the sender's session), sequence number
// on its channel, CRC of the payload, then the payload.
func soakMsg(r *rand.Rand, ch int, epoch, seq uint32) []byte {
	var n int
	switch x := r.IntN(1000); {
	case x < 2:
		n = 1 + r.IntN(soakMaxPayload-soakHeader) // up to 512 KiB with the header
	case x < 30:
		n = 1 + r.IntN(64*1024)
	default:
		n = 1 + r.IntN(1200)
	}
	b := make([]byte, soakHeader+n)
	binary.LittleEndian.PutUint32(b[0:], uint32(ch))
	binary.LittleEndian.PutUint32(b[4:], epoch)
	binary.LittleEndian.PutUint32(b[8:], seq)
	i := soakHeader
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], r.Uint64())
	}
	for ; i < len(b); i++ {
		b[i] = byte(r.Uint32())
	}
	binary.LittleEndian.PutUint32(b[12:], crc32.ChecksumIEEE(b[soakHeader:]))
	binary.LittleEndian.PutUint32(b[16:], uint32(n))
	return b
}

// soakCheck follows what one side received from one peer.
type soakCheck struct {
	mu   sync.Mutex
	last map[[2]uint32]uint32 // (channel, epoch) -> last seq + 1
	errs []string
	got  atomic.Int64
}

func (c *soakCheck) take(from Identity, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(p) < soakHeader {
		c.errs = append(c.errs, fmt.Sprintf("%v: %d-byte message", from, len(p)))
		return
	}
	ch, epoch, seq := binary.LittleEndian.Uint32(p), binary.LittleEndian.Uint32(p[4:]), binary.LittleEndian.Uint32(p[8:])
	n := int(binary.LittleEndian.Uint32(p[16:]))
	if n != len(p)-soakHeader || crc32.ChecksumIEEE(p[soakHeader:]) != binary.LittleEndian.Uint32(p[12:]) {
		c.errs = append(c.errs, fmt.Sprintf("%v: channel %d message %d/%d damaged", from, ch, epoch, seq))
		return
	}
	c.got.Add(1)
	if ch == 2 {
		return // unreliable: intact is all
	}
	k := [2]uint32{ch, epoch}
	if next, ok := c.last[k]; ok && seq < next {
		c.errs = append(c.errs, fmt.Sprintf("%v: channel %d epoch %d: message %d after %d (duplicate or out of order)", from, ch, epoch, seq, next-1))
	}
	c.last[k] = seq + 1
}

// soakSide is one end's sending state towards one peer.
type soakSide struct {
	mu    sync.Mutex
	epoch uint32
	seq   [soakChannels]uint32
}

func (s *soakSide) next(ch int) (epoch, seq uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq = s.seq[ch]
	s.seq[ch]++
	return s.epoch, seq
}

// unnext gives back a number next returned for a message that was not
// queued, so the numbers of one epoch stay contiguous.
func (s *soakSide) unnext(ch int, epoch, seq uint32) {
	s.mu.Lock()
	if s.epoch == epoch && s.seq[ch] == seq+1 {
		s.seq[ch]--
	}
	s.mu.Unlock()
}

// final returns the epoch and the numbers used in it.
func (s *soakSide) final() (uint32, [soakChannels]uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.epoch, s.seq
}

// bump starts a new epoch (the session was closed): sequence numbers
// start over.
func (s *soakSide) bump() {
	s.mu.Lock()
	s.epoch++
	s.seq = [soakChannels]uint32{}
	s.mu.Unlock()
}

type soakUsage struct {
	rss        int64
	goroutines int
	fds        int
}

func soakMeasure(t *testing.T) soakUsage {
	runtime.GC()
	var u soakUsage
	u.goroutines = runtime.NumGoroutine()
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		f := strings.Fields(string(b))
		if len(f) > 1 {
			pages, _ := strconv.ParseInt(f[1], 10, 64)
			u.rss = pages * int64(os.Getpagesize())
		}
	}
	if ents, err := os.ReadDir("/proc/self/fd"); err == nil {
		u.fds = len(ents)
	}
	return u
}

func TestSoak(t *testing.T) {
	dur, err := time.ParseDuration(soakEnv("NETMSG_SOAK_DURATION", "60s"))
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(soakEnv("NETMSG_SOAK_SESSIONS", "10"))
	if err != nil || n < 1 {
		t.Fatalf("NETMSG_SOAK_SESSIONS: %v", err)
	}
	quiet := max(dur/10, 10*time.Second)
	warm := max(dur/5, 10*time.Second)
	start := time.Now()
	r := rand.New(rand.NewPCG(uint64(start.UnixNano()), 12))
	seed := r.Uint64()
	t.Logf("soak: %v, %d sessions, seed %d", dur, n, seed)

	fake := func(loss float64) FakeNetwork {
		return FakeNetwork{LossPercent: loss, Jitter: 3 * time.Millisecond, ReorderPercent: 2, DuplicatePercent: 1}
	}
	// Every session failure, for the report: a failed session's queued
	// messages are lost by design (GNS's semantics), which the
	// completeness check must be read against.
	var failMu sync.Mutex
	var failures []string
	noteFail := func(who string, info ConnectionInfo) {
		failMu.Lock()
		defer failMu.Unlock()
		if len(failures) < 200 {
			failures = append(failures, fmt.Sprintf("%v %s: session with %v failed: %v (%d) %s", time.Since(start).Round(time.Millisecond), who, info.Identity, info.EndReason, int(info.EndReason), info.EndDebug))
		}
	}
	hubChecks := map[Identity]*soakCheck{}
	hubSides := map[Identity]*soakSide{}
	var hubMu sync.Mutex
	var hub *Host
	hub, err = NewHost(Config{
		ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"),
		ConnConfig: ConnConfig{FakeSend: fake(10), FakeRecv: fake(10)},
		OnSessionRequest: func(p Identity) {
			hub.Messages().AcceptSessionWithUser(p)
		},
		OnSessionFailed: func(info ConnectionInfo) { noteFail("hub", info) },
		OnSessionClosedByPeer: func(info ConnectionInfo) {
			hubMu.Lock()
			if s := hubSides[info.Identity]; s != nil {
				s.bump()
			}
			hubMu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer hub.Close()
	hubID, _ := IdentityFromAddr(hub.LocalAddr())
	hm := hub.Messages()

	type client struct {
		h     *Host
		m     *Messages
		id    Identity
		side  soakSide
		check soakCheck
		fails atomic.Int64
	}
	clients := make([]*client, n)
	for i := range clients {
		c := &client{}
		c.check.last = map[[2]uint32]uint32{}
		loss := 10 + r.Float64()*20
		c.h, err = NewHost(Config{
			ListenAddr:      netip.MustParseAddrPort("127.0.0.1:0"),
			ConnConfig:      ConnConfig{FakeSend: fake(loss), FakeRecv: fake(loss)},
			OnSessionFailed: func(info ConnectionInfo) { c.fails.Add(1); noteFail("client", info) },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer c.h.Close()
		c.m = c.h.Messages()
		c.id, _ = IdentityFromAddr(c.h.LocalAddr())
		hubMu.Lock()
		hubChecks[c.id] = &soakCheck{last: map[[2]uint32]uint32{}}
		hubSides[c.id] = &soakSide{}
		hubMu.Unlock()
		clients[i] = c
	}

	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	// The receivers go on after the run until the last epochs are
	// complete (or soakLate more): a message late on a loaded machine is
	// not a lost one.
	recvCtx, recvCancel := context.WithCancel(context.Background())
	defer recvCancel()
	// Senders stop drain before the end, so the last messages arrive.
	const drain = 8 * time.Second
	sendCtx, sendCancel := context.WithTimeout(ctx, dur-drain)
	defer sendCancel()
	closing := atomic.Bool{}
	closing.Store(true)
	var sent, refused atomic.Int64
	var wg sync.WaitGroup
	send := func(m *Messages, to Identity, side *soakSide, rr *rand.Rand) {
		ch := rr.IntN(soakChannels)
		flags := SendReliable
		if ch == 2 {
			flags = SendUnreliable
		}
		epoch, seq := side.next(ch)
		err := m.SendMessageToUser(to, soakMsg(rr, ch, epoch, seq), flags|SendAutoRestartBrokenSession, ch)
		switch {
		case err == nil:
			sent.Add(1)
		default:
			// Not queued (limit exceeded, session closing): the number
			// is used again.
			side.unnext(ch, epoch, seq)
			refused.Add(1)
		}
	}
	// Receivers: the hub's three channels, and each client's.
	for ch := range soakChannels {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				ms, err := hm.ReceiveBatch(recvCtx, ch, 64)
				if err != nil {
					return
				}
				for _, m := range ms {
					hubMu.Lock()
					c := hubChecks[m.Identity]
					hubMu.Unlock()
					if c != nil {
						c.take(m.Identity, m.Payload)
					}
					m.Release()
				}
			}
		}()
	}
	for i, c := range clients {
		for ch := range soakChannels {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					ms, err := c.m.ReceiveBatch(recvCtx, ch, 64)
					if err != nil {
						return
					}
					for _, m := range ms {
						c.check.take(m.Identity, m.Payload)
						m.Release()
					}
				}
			}()
		}
		// The client's sender, which also closes its session now and then.
		wg.Add(1)
		go func() {
			defer wg.Done()
			rr := rand.New(rand.NewPCG(seed, uint64(i)))
			tick := time.NewTicker(time.Duration(5+rr.IntN(10)) * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-sendCtx.Done():
					return
				case <-tick.C:
				}
				send(c.m, hubID, &c.side, rr)
				if closing.Load() && rr.IntN(2000) == 0 {
					c.m.CloseSessionWithUser(hubID)
					c.side.bump()
				}
			}
		}()
		// The hub's sender to this client.
		wg.Add(1)
		go func() {
			defer wg.Done()
			rr := rand.New(rand.NewPCG(seed, uint64(1000+i)))
			tick := time.NewTicker(time.Duration(5+rr.IntN(10)) * time.Millisecond)
			defer tick.Stop()
			hubMu.Lock()
			side := hubSides[c.id]
			hubMu.Unlock()
			for {
				select {
				case <-sendCtx.Done():
					return
				case <-tick.C:
				}
				send(hm, c.id, side, rr)
			}
		}()
	}

	var base soakUsage
	var peak soakUsage
	sample := time.NewTicker(2 * time.Second)
	defer sample.Stop()
	warmed, quieted := false, false
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-sample.C:
		}
		el := time.Since(start)
		if !quieted && el >= dur-quiet {
			closing.Store(false)
			quieted = true
		}
		if !warmed && el >= warm {
			base, peak, warmed = soakMeasure(t), soakMeasure(t), true
			continue
		}
		if warmed {
			u := soakMeasure(t)
			peak.rss, peak.goroutines, peak.fds = max(peak.rss, u.rss), max(peak.goroutines, u.goroutines), max(peak.fds, u.fds)
		}
	}
	// missing lists the last epochs' reliable messages not received yet.
	missing := func() []string {
		var out []string
		check := func(who string, side *soakSide, c *soakCheck) {
			epoch, seqs := side.final()
			c.mu.Lock()
			defer c.mu.Unlock()
			for ch := range 2 {
				if got := c.last[[2]uint32{uint32(ch), epoch}]; got != seqs[ch] {
					out = append(out, fmt.Sprintf("%s: channel %d epoch %d: received up to %d of %d reliable messages", who, ch, epoch, got, seqs[ch]))
				}
			}
		}
		for _, c := range clients {
			check("client "+c.id.String()+" to hub", &c.side, hubChecks[c.id])
			check("hub to client "+c.id.String(), hubSides[c.id], &c.check)
		}
		return out
	}
	late := time.Now()
	for time.Since(late) < soakLate && len(missing()) > 0 {
		time.Sleep(100 * time.Millisecond)
	}
	if len(missing()) == 0 && time.Since(late) > time.Second {
		t.Logf("the last messages arrived %v after the run", time.Since(late).Round(100*time.Millisecond))
	}
	recvCancel()
	wg.Wait()
	time.Sleep(2 * time.Second)
	end := soakMeasure(t)

	var got int64
	fail := 0
	report := func(who string, c *soakCheck) {
		c.mu.Lock()
		defer c.mu.Unlock()
		got += c.got.Load()
		for _, e := range c.errs {
			if fail < 20 {
				t.Errorf("%s: %s", who, e)
			}
			fail++
		}
	}
	for _, c := range clients {
		report("client "+c.id.String(), &c.check)
	}
	for id, c := range hubChecks {
		report("hub from "+id.String(), c)
	}
	// The last epoch of every session, in which nobody closed: every
	// reliable message queued arrived.
	for _, e := range missing() {
		if fail < 20 {
			t.Error(e)
		}
		fail++
	}
	if fail > 0 {
		t.Errorf("%d errors", fail)
		failMu.Lock()
		t.Logf("%d session failures:", len(failures))
		for _, f := range failures {
			t.Log(f)
		}
		failMu.Unlock()
	}
	if got == 0 {
		t.Fatal("nothing was received")
	}
	t.Logf("sent %d, not queued %d, received %d", sent.Load(), refused.Load(), got)
	t.Logf("after warm-up: RSS %d MiB, %d goroutines, %d files; peak RSS %d MiB, %d goroutines, %d files; end RSS %d MiB, %d goroutines, %d files",
		base.rss>>20, base.goroutines, base.fds, peak.rss>>20, peak.goroutines, peak.fds, end.rss>>20, end.goroutines, end.fds)
	if warmed {
		if peak.rss > 2*base.rss+256<<20 {
			t.Errorf("resident memory grew from %d to %d MiB after warm-up", base.rss>>20, peak.rss>>20)
		}
		if end.goroutines > base.goroutines+2*n {
			t.Errorf("goroutines grew from %d to %d", base.goroutines, end.goroutines)
		}
		if end.fds > base.fds+4 {
			t.Errorf("open files grew from %d to %d", base.fds, end.fds)
		}
	}
}
