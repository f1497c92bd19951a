package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"github.com/netmsg-go/netmsg/bench/machine"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netmsg-go/netmsg/signaling"
)

// config is what `sigbench run` measures.
type config struct {
	Clients   int           // connected clients
	AuthShare float64       // the share of them that authenticate (CA-signed certificates)
	Nodes     int           // nodes of the cluster (1: no cluster)
	Single    bool          // also measure one node with the same load
	Pairs     int           // sender-receiver pairs in the forwarding phases
	Window    int           // signals in flight per pair when saturating
	MaxRate   float64       // per sender, under the server's per-client limit (200/s)
	Warm, Dur time.Duration // each phase: warm-up, then measured
	Heartbeat time.Duration // cluster heartbeat (0: the default, 1 s)
	DeadAfter time.Duration // (0: the default, 3 heartbeats)
	Conc      int           // clients connecting at once
	NodeLog   bool          // the nodes log their events to standard error
	Step      time.Duration // each step of the search for the sustained rate (after Warm/2)
	Steps     int           // bisections of that search
	Binary    string        // this program, for the children
	Log       io.Writer     // progress
	// drops, when set, says what the nodes dropped since it was last
	// called (for the progress lines).
	drops func() string
}

// smallConfig is --small: a few seconds, for the test.
func smallConfig(c config) config {
	c.Clients, c.Pairs, c.Warm, c.Dur = 300, 30, 100*time.Millisecond, 500*time.Millisecond
	c.Heartbeat, c.DeadAfter = 100*time.Millisecond, 500*time.Millisecond
	c.Step, c.Steps = 300*time.Millisecond, 2
	return c
}

func runCmd(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	c := config{Log: os.Stderr}
	fs.IntVar(&c.Clients, "clients", 20000, "connected clients")
	fs.Float64Var(&c.AuthShare, "auth-share", 0.5, "share of the clients that authenticate with CA-signed certificates")
	fs.IntVar(&c.Nodes, "nodes", 3, "signaling nodes on NATS (1: one node, no NATS)")
	fs.BoolVar(&c.Single, "single", true, "also measure one node with the same load")
	fs.IntVar(&c.Pairs, "pairs", 1000, "sender-receiver pairs in the forwarding phases")
	fs.IntVar(&c.Window, "window", 16, "signals in flight per pair when saturating")
	fs.Float64Var(&c.MaxRate, "max-rate", 180, "signals per second per sender at most (the server allows 200)")
	fs.DurationVar(&c.Warm, "warm", time.Second, "warm-up of each phase")
	fs.DurationVar(&c.Dur, "dur", 5*time.Second, "measured part of each phase")
	fs.DurationVar(&c.Heartbeat, "heartbeat", 0, "cluster heartbeat (0: the default, 1 s)")
	fs.DurationVar(&c.DeadAfter, "dead-after", 0, "cluster DeadAfter (0: the default, 3 heartbeats)")
	fs.IntVar(&c.Conc, "conc", 64, "clients connecting at once")
	fs.BoolVar(&c.NodeLog, "node-log", false, "the nodes log their events (debug level) to standard error")
	fs.DurationVar(&c.Step, "step", 2*time.Second, "each step of the search for the sustained rate")
	fs.IntVar(&c.Steps, "steps", 5, "bisections in the search for the sustained rate")
	small := fs.Bool("small", false, "300 clients, 30 pairs, 0.5 s phases, 100 ms heartbeats (a few seconds in all)")
	out := fs.String("out", "", "also write the report to this file (.md)")
	runs := fs.Int("runs", 1, "runs of the whole measurement; the report gives the medians of the main figures")
	fs.Parse(args)
	if *small {
		c = smallConfig(c)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	c.Binary = self
	m := machine.This(append([]string{"sigbench"}, os.Args[1:]...))
	var rs []*results
	for i := range *runs {
		if *runs > 1 {
			c.logf("run %d of %d", i+1, *runs)
		}
		res, err := run(context.Background(), c)
		if err != nil {
			return err
		}
		rs = append(rs, res)
	}
	m.Finish()
	rep := formatReport(m, c, rs)
	fmt.Print(rep)
	if *out != "" {
		if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
			return err
		}
		return os.WriteFile(*out, []byte(rep), 0o644)
	}
	return nil
}

// setupResult is what one configuration (a cluster, or one node)
// measured.
type setupResult struct {
	Nodes          int
	Clients, Authd int
	Capped         bool // fewer clients than asked: one process may not open more files
	Connect        time.Duration
	Base, Loaded   []procReport // per node, after a GC
	LoadedNoGC     []procReport
	NATSBase       procReport
	NATSLoaded     procReport
	Cross, Same    forwardResult // clients on different nodes, on the same node
	Drops          map[string]uint64
	Death          *deathResult
}

type deathResult struct {
	Identities    int             // held on the killed node
	RefusedBefore bool            // the probe's takeover was refused before the kill
	SeenDead      []time.Duration // per surviving node: until NodesLost grew
	Taken         time.Duration   // until another key took the probe identity on another node
}

type results struct {
	Cluster *setupResult
	Single  *setupResult
	Nofile  uint64
}

func run(ctx context.Context, c config) (*results, error) {
	raiseNofile()
	r := &results{Nofile: nofile()}
	if c.Nodes > 1 {
		s, err := runSetup(ctx, c, c.Nodes)
		if err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		r.Cluster = s
	}
	if c.Nodes <= 1 || c.Single {
		s, err := runSetup(ctx, c, 1)
		if err != nil {
			return nil, fmt.Errorf("one node: %w", err)
		}
		r.Single = s
	}
	return r, nil
}

func (c config) dropped() string {
	if c.drops == nil {
		return "?"
	}
	return c.drops()
}

func (c config) logf(format string, args ...any) {
	if c.Log != nil {
		fmt.Fprintf(c.Log, "sigbench: "+format+"\n", args...)
	}
}

// runSetup measures n nodes (n > 1: on NATS).
func runSetup(ctx context.Context, c config, n int) (*setupResult, error) {
	res := &setupResult{Nodes: n, Drops: map[string]uint64{}}
	caPub, ca, err := ed25519.GenerateKey(nil)
	if err != nil {
		return nil, err
	}
	var children []*child
	defer func() {
		for _, ch := range children {
			ch.stop()
		}
	}()
	var natsURLs []string
	var nats *child
	if n > 1 {
		nats, err = startChild(ctx, c.Binary, "nats", "nats", 30*time.Second, "nats", "--servers", strconv.Itoa(n))
		if err != nil {
			return nil, err
		}
		children = append(children, nats)
		natsURLs = strings.Split(nats.first, ",")
	}
	var nodes []*child
	var addrs []string
	for i := range n {
		args := []string{"node", "--ca", hex.EncodeToString(caPub), "--max-clients", strconv.Itoa(c.Clients + 1000)}
		if c.NodeLog {
			args = append(args, "-v")
		}
		if n > 1 {
			args = append(args, "--nats", natsURLs[i%len(natsURLs)], "--heartbeat", c.Heartbeat.String(), "--dead-after", c.DeadAfter.String())
		}
		nd, err := startChild(ctx, c.Binary, fmt.Sprintf("node %d", i), "listening", 30*time.Second, args...)
		if err != nil {
			return nil, err
		}
		children = append(children, nd)
		nodes = append(nodes, nd)
		addrs = append(addrs, nd.first)
	}
	if n > 1 {
		if err := waitNodes(nodes, 30*time.Second, func(st signaling.ServerStats) bool { return st.Peers == n-1 }); err != nil {
			return nil, fmt.Errorf("nodes never saw each other: %w", err)
		}
	}
	c.logf("%d node(s) up: %s", n, strings.Join(addrs, " "))
	if res.Base, err = askAll(nodes, "gc"); err != nil {
		return nil, err
	}
	if nats != nil {
		if res.NATSBase, err = nats.ask("gc"); err != nil {
			return nil, err
		}
	}

	// Clients 0..active-1 (the pairs of the forwarding phases) are held
	// here; the others by holder processes (`sigbench hold`), as one
	// process may not open more than RLIMIT_NOFILE files.
	total := c.Clients
	if lim := (int(nofile()) - 100) * n; total > lim { // each node's clients, within its files
		total = lim
		res.Capped = true
	}
	sources := numSources(total, c.Conc)
	active := min(total, 2*c.Pairs+2*n)
	clients := make([]*client, active)
	var conns sync.WaitGroup // the readers
	defer func() {
		for _, cl := range clients {
			if cl != nil {
				cl.conn.Close()
			}
		}
		conns.Wait()
	}()
	start := time.Now()
	err = connectRange(ctx, 0, active, addrs, sources, ca, c.AuthShare, c.Conc, func(i int, cl *client, rd *bufio.Reader) {
		clients[i] = cl
		conns.Add(1)
		go func() { defer conns.Done(); cl.read(rd) }()
	})
	if err != nil {
		return nil, err
	}
	for from := active; from < total; from += holdChunk {
		to := min(total, from+holdChunk)
		h, err := startChild(ctx, c.Binary, fmt.Sprintf("holder %d-%d", from, to), "held", 10*time.Minute, "hold",
			"--addrs", strings.Join(addrs, ","), "--ca-key", hex.EncodeToString(ca), "--from", strconv.Itoa(from), "--to", strconv.Itoa(to),
			"--sources", strconv.Itoa(sources), "--auth-share", strconv.FormatFloat(c.AuthShare, 'g', -1, 64), "--conc", strconv.Itoa(c.Conc))
		if err != nil {
			return nil, err
		}
		children = append(children, h)
	}
	// The probe of the death phase: an identity held on the last node
	// with an unsigned certificate, so bound to its key while held.
	var probeCred, takerCred cred
	var probe *client
	if n > 1 {
		if probeCred, err = unsigned("str:sb-probe"); err != nil {
			return nil, err
		}
		if takerCred, err = unsigned("str:sb-probe"); err != nil {
			return nil, err
		}
		p, _, err := dialClient(ctx, sourceAddr(sources), addrs[n-1], "str:sb-probe", &probeCred)
		if err != nil {
			return nil, fmt.Errorf("probe: %w", err)
		}
		probe = p
		defer probe.conn.Close()
	}
	want := total
	if probe != nil {
		want++
	}
	if err := waitTotal(nodes, want, 60*time.Second); err != nil {
		return nil, err
	}
	res.Connect = time.Since(start)
	for i := range total {
		if authed(i, c.AuthShare) {
			res.Authd++
		}
	}
	res.Clients = total
	c.logf("%d clients (%d authenticated) registered in %v", total, res.Authd, res.Connect.Round(time.Millisecond))
	time.Sleep(max(c.Warm, 300*time.Millisecond) * 2) // directory messages settle
	if res.LoadedNoGC, err = askAll(nodes, "stats"); err != nil {
		return nil, err
	}
	if res.Loaded, err = askAll(nodes, "gc"); err != nil {
		return nil, err
	}
	if nats != nil {
		if res.NATSLoaded, err = nats.ask("gc"); err != nil {
			return nil, err
		}
	}

	// Forwarding: pairs of clients, on different nodes (cross) and on the
	// same node (same).
	byNode := make([][]*client, n)
	for _, cl := range clients {
		byNode[cl.node] = append(byNode[cl.node], cl)
	}
	mkPairs := func(cross bool) ([]*pair, error) {
		var ps []*pair
		for j := range c.Pairs {
			k, m := j%n, j/n
			to := k
			if cross {
				to = (k + 1) % n
			}
			if 2*m+1 >= len(byNode[k]) || 2*m+1 >= len(byNode[to]) {
				return nil, fmt.Errorf("%d pairs need more clients per node", c.Pairs)
			}
			ps = append(ps, &pair{from: byNode[k][2*m], to: byNode[to][2*m+1], wake: make(chan struct{}, 1)})
		}
		return ps, nil
	}
	before, err := askAll(nodes, "stats")
	if err != nil {
		return nil, err
	}
	last := before
	c.drops = func() string {
		now, err := askAll(nodes, "stats")
		if err != nil {
			return err.Error()
		}
		d := map[string]uint64{}
		addDrops(d, last, now)
		last = now
		return drops(d)
	}
	if n > 1 {
		ps, err := mkPairs(true)
		if err != nil {
			return nil, err
		}
		res.Cross = measureForward(c, "different nodes", ps)
	}
	ps, err := mkPairs(false)
	if err != nil {
		return nil, err
	}
	res.Same = measureForward(c, "same node", ps)
	after, err := askAll(nodes, "stats")
	if err != nil {
		return nil, err
	}
	addDrops(res.Drops, before, after)

	if n > 1 {
		held := 1 // the probe
		for i := range total {
			if i%n == n-1 {
				held++
			}
		}
		d, err := death(ctx, c, nodes, addrs, sources, takerCred, held)
		if err != nil {
			return nil, err
		}
		res.Death = d
		children = slices.DeleteFunc(children, func(ch *child) bool { return ch == nodes[n-1] }) // killed
	}
	return res, nil
}

// death kills the last node (SIGKILL) and measures until the others see
// it dead (their NodesLost grows) and until another key on node 0 takes
// the identity the probe held there with an unsigned certificate.
func death(ctx context.Context, c config, nodes []*child, addrs []string, sources int, taker cred, held int) (*deathResult, error) {
	d := &deathResult{Identities: held}
	_, _, err := dialClient(ctx, sourceAddr(sources+1), addrs[0], "str:sb-probe", &taker)
	d.RefusedBefore = err != nil
	before, err := askAll(nodes[:len(nodes)-1], "stats")
	if err != nil {
		return nil, err
	}
	dead := nodes[len(nodes)-1]
	t0 := time.Now()
	dead.kill()
	limit := 30 * time.Second
	var wg sync.WaitGroup
	d.SeenDead = make([]time.Duration, len(nodes)-1)
	for i, nd := range nodes[:len(nodes)-1] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(t0) < limit {
				r, err := nd.ask("stats")
				if err == nil && r.Server.NodesLost > before[i].Server.NodesLost {
					d.SeenDead[i] = time.Since(t0)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
			d.SeenDead[i] = -1
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for time.Since(t0) < limit {
			cl, _, err := dialClient(ctx, sourceAddr(sources+1), addrs[0], "str:sb-probe", &taker)
			if err == nil {
				d.Taken = time.Since(t0)
				cl.conn.Close()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		d.Taken = -1
	}()
	wg.Wait()
	c.logf("node killed: seen dead after %v, probe identity taken after %v", d.SeenDead, d.Taken)
	if d.Taken < 0 {
		return d, errors.New("the dead node's identity was never released")
	}
	return d, nil
}

func askAll(cs []*child, cmd string) ([]procReport, error) {
	out := make([]procReport, len(cs))
	for i, c := range cs {
		r, err := c.ask(cmd)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

func waitNodes(cs []*child, limit time.Duration, ok func(signaling.ServerStats) bool) error {
	deadline := time.Now().Add(limit)
	for {
		rs, err := askAll(cs, "stats")
		if err != nil {
			return err
		}
		all := true
		for _, r := range rs {
			all = all && r.Server != nil && ok(*r.Server)
		}
		if all {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("timeout")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitTotal waits until the nodes hold want registered clients in all.
func waitTotal(cs []*child, want int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		rs, err := askAll(cs, "stats")
		if err != nil {
			return err
		}
		got := 0
		for _, r := range rs {
			got += r.Server.Trivial + r.Server.Authenticated
		}
		if got == want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d clients registered, want %d", got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// holdChunk is the most clients one holder process connects.
const holdChunk = 10000

// numSources is how many source addresses total clients use: at most
// perSource clients per source, and enough sources that the conc
// connecting at once stay under the server's 16 registering per source.
func numSources(total, conc int) int {
	return max((total+perSource-1)/perSource, conc/8+1)
}

// authed reports whether client i authenticates, so that share of the
// clients do, evenly spread.
func authed(i int, share float64) bool {
	return int(float64(i+1)*share) > int(float64(i)*share)
}

// connectRange connects clients from..to-1, conc at a time: client i is
// "str:sb-<i>" on node i%len(addrs) from sourceAddr(i%sources),
// authenticated (a certificate signed by ca) when authed says so; keep
// gets each one, from several goroutines.
func connectRange(ctx context.Context, from, to int, addrs []string, sources int, ca ed25519.PrivateKey, share float64, conc int, keep func(int, *client, *bufio.Reader)) error {
	var next atomic.Int64
	next.Store(int64(from))
	var firstErr error
	var errMu sync.Mutex
	fail := func(err error) {
		errMu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		errMu.Unlock()
	}
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to {
					return
				}
				node := i % len(addrs)
				id := "str:sb-" + strconv.Itoa(i)
				var cr *cred
				if authed(i, share) {
					x, err := issue(ca, id)
					if err != nil {
						fail(err)
						return
					}
					cr = &x
				}
				cl, rd, err := dialClient(ctx, sourceAddr(i%sources), addrs[node], id, cr)
				if err != nil {
					fail(fmt.Errorf("client %d: %w", i, err))
					return
				}
				cl.node = node
				keep(i, cl, rd)
			}
		}()
	}
	wg.Wait()
	return firstErr
}

// sustainP99 is the forward latency the sustained rate keeps its p99
// under (with nothing lost): a queue that grows for the whole step goes
// past it.
const sustainP99 = 50 * time.Millisecond

// forwardResult is what the forwarding phases measured for one kind of
// pairs.
type forwardResult struct {
	Burst     phaseResult   // saturated: Window in flight per pair
	Sustained float64       // the highest evenly spaced rate found with p99 < sustainP99 and no loss
	Steps     []phaseResult // the search's steps, in order
	Lat       phaseResult   // at half the sustained rate
}

// measureForward measures ps: the burst rate (saturate), then, by
// bisection on a log scale between a sixteenth of it and all of it
// (excluded), the
// highest evenly spaced rate that keeps the forward latency's p99 under
// sustainP99 with nothing lost, then the latency at half that rate.
func measureForward(c config, what string, ps []*pair) forwardResult {
	var r forwardResult
	r.Burst = saturate(ps, c.Window, c.MaxRate, c.Warm, c.Dur)
	c.logf("%s: burst %.0f signals/s, lost %d (server drops: %s)", what, r.Burst.Rate, r.Burst.Sent-min(r.Burst.Sent, r.Burst.Received), c.dropped())
	// A rate passes if one of two tries does: other work on the machine
	// can spoil one.
	pass := func(rate float64) bool {
		for range 2 {
			p := steady(ps, rate, c.Warm/2, c.Step)
			r.Steps = append(r.Steps, p)
			ok := p.Samples > 0 && p.Received == p.Sent && p.P99 < sustainP99
			c.logf("%s: %.0f signals/s: p50 %v p99 %v, lost %d (server drops: %s): %v", what, rate, p.P50, p.P99, p.Sent-min(p.Sent, p.Received), c.dropped(), ok)
			if ok {
				return true
			}
		}
		return false
	}
	// The burst rate itself is not tried: evenly spaced signals cost the
	// nodes more (one read and one write each), and a step far over what
	// they sustain only builds queues for the next to wait behind.
	hi, lo := r.Burst.Rate, r.Burst.Rate/16
	for !pass(lo) && lo > 10 {
		hi, lo = lo, lo/4
	}
	for range c.Steps {
		mid := math.Sqrt(lo * hi)
		if pass(mid) {
			lo = mid
		} else {
			hi = mid
		}
	}
	r.Sustained = lo
	r.Lat = steady(ps, r.Sustained/2, c.Warm, c.Dur)
	c.logf("%s at %.0f/s: p50 %v p99 %v (server drops: %s)", what, r.Sustained/2, r.Lat.P50, r.Lat.P99, c.dropped())
	return r
}

// addDrops adds to d what the nodes dropped between before and after.
func addDrops(d map[string]uint64, before, after []procReport) {
	for i := range after {
		b, a := before[i].Server, after[i].Server
		d["queue"] += a.QueueDropped - b.QueueDropped
		d["rate-limited"] += a.RateLimited - b.RateLimited
		d["no-recipient"] += a.NoRecipient - b.NoRecipient
		d["nats-queue"] += a.ClusterDropped - b.ClusterDropped
		d["malformed"] += a.Malformed - b.Malformed
		d["idle-timeouts"] += a.IdleTimeouts - b.IdleTimeouts
		d["slow-readers"] += a.SlowReaders - b.SlowReaders
	}
}
