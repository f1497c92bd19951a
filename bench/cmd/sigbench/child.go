package main

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/netmsg-go/netmsg/signaling"
)

// The child processes (`sigbench node`, `sigbench nats`) print one line
// with their address, then answer commands read from standard input, one
// JSON line each:
//
//	stats   the process's report (procReport)
//	gc      runs the garbage collector, returns memory to the OS, then stats
//
// and exit when standard input ends (so they never outlive the driver) or
// when --timeout passes.

// procReport is what a child answers to "stats".
type procReport struct {
	RSS        int64                  `json:"rss"` // VmRSS, bytes
	HeapInuse  uint64                 `json:"heap_inuse"`
	StackInuse uint64                 `json:"stack_inuse"`
	Goroutines int                    `json:"goroutines"`
	Server     *signaling.ServerStats `json:"server,omitempty"`
}

func report(s *signaling.Server) procReport {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	r := procReport{RSS: rss(), HeapInuse: ms.HeapInuse, StackInuse: ms.StackInuse, Goroutines: runtime.NumGoroutine()}
	if s != nil {
		st := s.Stats()
		r.Server = &st
	}
	return r
}

// rss is this process's resident set size (VmRSS in /proc/self/status),
// or -1 where it cannot be read.
func rss() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

// serveCommands answers commands on standard input until it ends or
// timeout passes.
func serveCommands(s *signaling.Server, timeout time.Duration) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(os.Stdin)
		enc := json.NewEncoder(os.Stdout)
		for sc.Scan() {
			switch sc.Text() {
			case "gc":
				runtime.GC()
				debug.FreeOSMemory()
				enc.Encode(report(s))
			case "stats":
				enc.Encode(report(s))
			default:
				fmt.Println(`{"error":"unknown command"}`)
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(timeout):
		fmt.Fprintln(os.Stderr, "sigbench: child timeout")
	}
}

// nodeCmd runs one signaling node: `sigbench node [--nats URL]`.
func nodeCmd(args []string) error {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	natsURL := fs.String("nats", "", "NATS URL: join a cluster (none: one node alone)")
	listen := fs.String("listen", "127.0.0.1:0", "TCP address")
	caHex := fs.String("ca", "", "hex of the CA public key the authenticated clients' certificates are signed by")
	maxClients := fs.Int("max-clients", 0, "ServerConfig.MaxClients (0: the default, 10,000)")
	hb := fs.Duration("heartbeat", 0, "ClusterConfig.Heartbeat (0: the default, 1 s)")
	dead := fs.Duration("dead-after", 0, "ClusterConfig.DeadAfter (0: the default, 3 heartbeats)")
	timeout := fs.Duration("timeout", 30*time.Minute, "exit after this long")
	verbose := fs.Bool("v", false, "log the server's events (debug level) to standard error")
	fs.Parse(args)
	raiseNofile()
	cfg := signaling.ServerConfig{MaxClients: *maxClients, AllowUnsigned: true}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if *caHex != "" {
		k, err := hex.DecodeString(*caHex)
		if err != nil || len(k) != ed25519.PublicKeySize {
			return errors.New("--ca: want the hex of an Ed25519 public key")
		}
		cfg.TrustedCAs = []ed25519.PublicKey{k}
	}
	if *natsURL != "" {
		cfg.Cluster = &signaling.ClusterConfig{URLs: []string{*natsURL}, Heartbeat: *hb, DeadAfter: *dead}
	}
	s, err := signaling.NewServer(cfg)
	if err != nil {
		return err
	}
	a, err := s.Listen(*listen)
	if err != nil {
		return err
	}
	fmt.Println("listening", a)
	serveCommands(s, *timeout)
	s.Close()
	return nil
}

// natsCmd runs a cluster of embedded NATS servers in one process:
// `sigbench nats --servers 3`. It prints "nats URL,URL,...".
func natsCmd(args []string) error {
	fs := flag.NewFlagSet("nats", flag.ExitOnError)
	n := fs.Int("servers", 3, "NATS servers, routed to each other")
	timeout := fs.Duration("timeout", 30*time.Minute, "exit after this long")
	fs.Parse(args)
	raiseNofile()
	var servers []*natsserver.Server
	defer func() {
		for _, ns := range servers {
			ns.Shutdown()
		}
	}()
	for i := range *n {
		opts := &natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true, MaxPayload: 1 << 20}
		if *n > 1 {
			opts.Cluster = natsserver.ClusterOpts{Name: "sigbench", Host: "127.0.0.1", Port: -1}
			if i > 0 {
				opts.Routes = []*url.URL{{Scheme: "nats", Host: servers[0].ClusterAddr().String()}}
			}
		}
		ns, err := natsserver.NewServer(opts)
		if err != nil {
			return err
		}
		go ns.Start()
		if !ns.ReadyForConnections(10 * time.Second) {
			return errors.New("nats server not ready")
		}
		servers = append(servers, ns)
	}
	// Every server routed to every other (the routes form a full mesh).
	deadline := time.Now().Add(20 * time.Second)
	for _, ns := range servers {
		for ns.NumRoutes() < *n-1 {
			if time.Now().After(deadline) {
				return errors.New("nats cluster never formed")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	urls := make([]string, len(servers))
	for i, ns := range servers {
		urls[i] = ns.ClientURL()
	}
	fmt.Println("nats", strings.Join(urls, ","))
	serveCommands(nil, *timeout)
	return nil
}

// holdCmd connects clients and holds them (reading and discarding what
// they receive) until standard input ends: `sigbench hold --addrs A,B,C
// --from I --to J ...` (see connectRange). It prints "held N".
func holdCmd(args []string) error {
	fs := flag.NewFlagSet("hold", flag.ExitOnError)
	addrs := fs.String("addrs", "", "the nodes' addresses, comma-separated")
	caKey := fs.String("ca-key", "", "hex of the CA private key that signs the authenticated clients' certificates")
	from := fs.Int("from", 0, "first client")
	to := fs.Int("to", 0, "last client + 1")
	sources := fs.Int("sources", 1, "source addresses in use")
	share := fs.Float64("auth-share", 0.5, "share of the clients that authenticate")
	conc := fs.Int("conc", 64, "clients connecting at once")
	timeout := fs.Duration("timeout", 30*time.Minute, "exit after this long")
	fs.Parse(args)
	raiseNofile()
	ca, err := hex.DecodeString(*caKey)
	if err != nil || len(ca) != ed25519.PrivateKeySize {
		return errors.New("--ca-key: want the hex of an Ed25519 private key")
	}
	var mu sync.Mutex
	var conns []net.Conn
	err = connectRange(context.Background(), *from, *to, strings.Split(*addrs, ","), *sources, ca, *share, *conc, func(_ int, cl *client, rd *bufio.Reader) {
		mu.Lock()
		conns = append(conns, cl.conn)
		mu.Unlock()
		go cl.read(rd)
	})
	if err != nil {
		return err
	}
	fmt.Println("held", len(conns))
	stop := make(chan struct{})
	go keepalive(conns, keepaliveEvery, stop)
	serveCommands(nil, *timeout)
	close(stop)
	for _, c := range conns {
		c.Close()
	}
	return nil
}

// keepaliveEvery is how often an idle held client sends an empty line:
// more often than the server's TCP keepalive (30 s idle, then 3 probes
// 10 s apart) would probe it.
const keepaliveEvery = 20 * time.Second

// keepalive writes an empty line (the authenticated protocol's keepalive,
// which the server takes from any client) on each of conns once per
// every, spread evenly over the period, until stop. Without it, the
// server's keepalive probes to thousands of clients that connected within
// the same seconds go out together, and on loopback, while the
// forwarding phases keep both CPUs busy, they overflow the loopback's
// backlog (net.core.netdev_max_backlog): unanswered three times, the
// server drops the clients as dead (5,893 of them in one run).
func keepalive(conns []net.Conn, every time.Duration, stop chan struct{}) {
	if len(conns) == 0 {
		return
	}
	t := time.NewTicker(every / time.Duration(len(conns)))
	defer t.Stop()
	for i := 0; ; i = (i + 1) % len(conns) {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		conns[i].SetWriteDeadline(time.Now().Add(time.Second))
		conns[i].Write([]byte{'\n'})
	}
}

// raiseNofile raises this process's limit on open files (20,000 clients
// are as many sockets): to 1<<20 where the process may (root), else to
// its hard limit.
func raiseNofile() {
	var l syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l) != nil {
		return
	}
	want := syscall.Rlimit{Cur: 1 << 20, Max: 1 << 20}
	if want.Max < l.Max {
		want = syscall.Rlimit{Cur: l.Max, Max: l.Max}
	}
	if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want) != nil {
		l.Cur = l.Max
		syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func nofile() uint64 {
	var l syscall.Rlimit
	syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l)
	return l.Cur
}

// child is the driver's handle on a child process.
type child struct {
	name  string
	cmd   *exec.Cmd
	first string // the line it printed first, without its keyword

	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Reader
}

// startChild starts `self args...` and reads its first line, which must
// start with keyword.
func startChild(ctx context.Context, self, name, keyword string, wait time.Duration, args ...string) (*child, error) {
	cmd := exec.Command(self, args...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{name: name, cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<16)}
	type res struct {
		line string
		err  error
	}
	ch := make(chan res, 1)
	go func() {
		l, err := c.out.ReadString('\n')
		ch <- res{strings.TrimSpace(l), err}
	}()
	select {
	case r := <-ch:
		v, ok := strings.CutPrefix(r.line, keyword+" ")
		if r.err != nil || !ok {
			c.kill()
			return nil, fmt.Errorf("%s: first line %q: %v", name, r.line, r.err)
		}
		c.first = v
		return c, nil
	case <-time.After(wait):
		c.kill()
		return nil, fmt.Errorf("%s: no first line within %v", name, wait)
	case <-ctx.Done():
		c.kill()
		return nil, ctx.Err()
	}
}

// ask sends a command and decodes the answer.
func (c *child) ask(cmd string) (procReport, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var r procReport
	if _, err := io.WriteString(c.in, cmd+"\n"); err != nil {
		return r, fmt.Errorf("%s: %w", c.name, err)
	}
	l, err := c.out.ReadBytes('\n')
	if err != nil {
		return r, fmt.Errorf("%s: %w", c.name, err)
	}
	if err := json.Unmarshal(l, &r); err != nil {
		return r, fmt.Errorf("%s: %q: %w", c.name, l, err)
	}
	return r, nil
}

// stop closes the child's standard input and waits for it to exit, for
// 10 s at most; then it kills it.
func (c *child) stop() {
	c.in.Close()
	done := make(chan struct{})
	go func() { c.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-done
	}
}

// kill ends the child at once (SIGKILL), as a crashed node.
func (c *child) kill() {
	c.cmd.Process.Kill()
	c.cmd.Wait()
}
