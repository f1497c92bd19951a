// Command netbench runs the workloads of ../shared/BENCH.md against netmsg's
// peers.
//
//	netbench server --peer P --workload W          # prints "listening ADDR", then serves one client
//	netbench client --peer P --workload W --addr A # prints one JSON result line
//	netbench run [--peers enet,raw,netmsg-msgs,...] [--workloads W1,W2,W3,W4,W5] [--runs 3] [--out results/PREFIX]
//	netbench w7 [--sessions 10000] [--rate 10] [--window 10s]  # 10,000 sessions to one Host (see w7.go)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"time"

	"github.com/netmsg-go/netmsg/bench/driver"
	"github.com/netmsg-go/netmsg/bench/peer"
	"github.com/netmsg-go/netmsg/bench/workload"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage:
  netbench server --peer P --workload W [--loss F] [--timeout D]
  netbench chart --from RUN.json --chart FILE.svg    # the chart again, from a run's JSON
  netbench client --peer P --workload W --addr HOST:PORT [--loss F] [--timeout D]
  netbench run [--peers %s] [--workloads W1,W2,W3,W4,W5] [--runs 3] [--baseline enet] [--out PREFIX] [--json FILE] [--chart FILE.svg]
peers: %s
`, defaultPeers, strings.Join(peer.Names(), ", "))
	os.Exit(2)
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "server":
		err = server(os.Args[2:])
	case "client":
		err = client(os.Args[2:])
	case "run":
		err = run(os.Args[2:])
	case "chart":
		err = chartCmd(os.Args[2:])
	case "w7":
		err = w7(os.Args[2:])
	case "w7-server":
		err = w7Server(os.Args[2:])
	case "-h", "-help", "--help", "help":
		usage()
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "netbench:", err)
		os.Exit(1)
	}
}

type common struct {
	peer      string
	workload  string
	loss      float64
	timeout   time.Duration
	cpuprof   string
	mutexprof string
	blockprof string
	memprof   string
	traceout  string
}

func (c *common) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.peer, "peer", "", "peer: "+strings.Join(peer.Names(), ", "))
	fs.StringVar(&c.workload, "workload", "", "workload: W1..W5, W6a, W6b")
	fs.Float64Var(&c.loss, "loss", 0, "fake random loss each way, 0..1 (overrides the workload's; W6 has 0.1)")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "give up (and exit) after this long")
	// Hidden (not in usage): profiles of this process, for work on a
	// peer's data path.
	fs.StringVar(&c.cpuprof, "cpuprofile", "", "write a CPU profile of this process to FILE")
	fs.StringVar(&c.mutexprof, "mutexprofile", "", "write a mutex contention profile (every event) of this process to FILE")
	fs.StringVar(&c.blockprof, "blockprofile", "", "write a blocking profile (every event of 10 µs or more) of this process to FILE")
	fs.StringVar(&c.memprof, "memprofile", "", "write an allocation profile (every allocation) of this process to FILE")
	fs.StringVar(&c.traceout, "trace", "", "write an execution trace of this process to FILE")
}

// startProfile starts the profiles asked for (--cpuprofile, --mutexprofile,
// --blockprofile, --memprofile) and returns the function that stops them and writes them.
func (c *common) startProfile() func() {
	if c.mutexprof != "" {
		runtime.SetMutexProfileFraction(1)
	}
	if c.blockprof != "" {
		runtime.SetBlockProfileRate(10_000) // ns
	}
	if c.memprof != "" {
		runtime.MemProfileRate = 1
	}
	stopCPU := c.startCPUProfile()
	stopTrace := c.startTrace()
	return func() {
		stopTrace()
		stopCPU()
		writeProfile("mutex", c.mutexprof)
		writeProfile("block", c.blockprof)
		writeProfile("allocs", c.memprof)
	}
}

// writeProfile writes the named runtime profile to path, if path is set.
func writeProfile(name, path string) {
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netbench:", name, "profile:", err)
		return
	}
	defer f.Close()
	if err := pprof.Lookup(name).WriteTo(f, 0); err != nil {
		fmt.Fprintln(os.Stderr, "netbench:", name, "profile:", err)
	}
}

// startTrace starts the execution trace if --trace was given and returns
// the function that stops it.
func (c *common) startTrace() func() {
	if c.traceout == "" {
		return func() {}
	}
	f, err := os.Create(c.traceout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netbench: trace:", err)
		return func() {}
	}
	if err := trace.Start(f); err != nil {
		fmt.Fprintln(os.Stderr, "netbench: trace:", err)
		f.Close()
		return func() {}
	}
	return func() { trace.Stop(); f.Close() }
}

// startCPUProfile starts the CPU profile if --cpuprofile was given and
// returns the function that stops it.
func (c *common) startCPUProfile() func() {
	if c.cpuprof == "" {
		return func() {}
	}
	f, err := os.Create(c.cpuprof)
	if err != nil {
		fmt.Fprintln(os.Stderr, "netbench: cpuprofile:", err)
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		fmt.Fprintln(os.Stderr, "netbench: cpuprofile:", err)
		f.Close()
		return func() {}
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

func (c *common) resolve() (peer.Peer, workload.Spec, context.Context, context.CancelFunc, error) {
	p, err := peer.Lookup(c.peer)
	if err != nil {
		return nil, workload.Spec{}, nil, nil, err
	}
	s, err := workload.Lookup(c.workload)
	if err != nil {
		return nil, workload.Spec{}, nil, nil, err
	}
	if c.loss < 0 || c.loss >= 1 {
		return nil, workload.Spec{}, nil, nil, fmt.Errorf("--loss %v: want 0 <= loss < 1", c.loss)
	}
	if c.loss > 0 {
		s.Loss = c.loss
	}
	c.timeout = max(c.timeout, s.MinTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	// A watchdog in case something ignores the context: the process
	// always ends by itself.
	time.AfterFunc(c.timeout+5*time.Second, func() {
		fmt.Fprintln(os.Stderr, "netbench: watchdog: still running after", c.timeout+5*time.Second)
		os.Exit(3)
	})
	return p, s, ctx, cancel, nil
}

func server(args []string) error {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	var c common
	c.flags(fs)
	fs.Parse(args)
	p, s, ctx, cancel, err := c.resolve()
	if err != nil {
		return err
	}
	defer cancel()
	defer c.startProfile()()
	if why := workload.Unsupported(p.Caps(), s); why != "" {
		return fmt.Errorf("%s %s: %s", p.Name(), s.ID, why)
	}
	l, err := p.Listen(ctx, "127.0.0.1:0", s.Options())
	if err != nil {
		return err
	}
	defer l.Close()
	fmt.Printf("listening %s\n", l.Addr())
	return workload.Serve(ctx, p, l, s)
}

func client(args []string) error {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	var c common
	c.flags(fs)
	addr := fs.String("addr", "", "server address HOST:PORT (as the server printed it)")
	fs.Parse(args)
	p, s, ctx, cancel, err := c.resolve()
	if err != nil {
		return err
	}
	defer cancel()
	if !strings.HasPrefix(*addr, "127.0.0.1:") && !strings.HasPrefix(*addr, "[::1]:") {
		return fmt.Errorf("--addr %q: only 127.0.0.1 and ::1 are allowed", *addr)
	}
	stop := c.startProfile()
	res, err := workload.Run(ctx, p, *addr, s)
	stop()
	if err != nil && res.Error == "" {
		res.Error = err.Error()
	}
	line, _ := json.Marshal(res)
	fmt.Println(string(line))
	if res.Error != "" {
		os.Exit(1)
	}
	return nil
}

// defaultPeers is the same-run set of issue 13: ENet (the baseline), raw
// UDP, netmsg's Messages API with both receivers, quic-go and kcp-go.
const defaultPeers = "enet,raw,netmsg-msgs,netmsg-msgs-batch,quic,kcp"

func run(args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	peers := fs.String("peers", defaultPeers, "comma-separated peers")
	wls := fs.String("workloads", "W1,W2,W3,W4,W5", "comma-separated workloads: W1..W5, W6 (= W6a,W6b)")
	runs := fs.Int("runs", 3, "runs of the whole matrix (figures are medians)")
	baseline := fs.String("baseline", "", "peer the ratios divide by (default: enet if it is in --peers, else the first)")
	jsonOut := fs.String("json", "", "also write every record and the summary to this file")
	out := fs.String("out", "", "also write PREFIX.md (machine, command, tables), PREFIX.svg (chart of the ratios) and PREFIX.json")
	chart := fs.String("chart", "", "also write the chart of the ratios to this file (.svg, .png or .pdf)")
	loss := fs.Float64("loss", 0, "fake random loss each way, 0..1, for every workload (W6 has 0.1 of its own)")
	timeout := fs.Duration("timeout", 60*time.Second, "limit for one server+client pair")
	fs.Parse(args)

	ids, err := workload.Expand(*wls)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	cfg := driver.Config{
		Binary:    self,
		Peers:     strings.Split(*peers, ","),
		Workloads: ids,
		Runs:      *runs,
		Baseline:  *baseline,
		Timeout:   *timeout,
		Loss:      *loss,
		Log:       os.Stderr,
	}
	if cfg.Baseline == "" {
		cfg.Baseline = cfg.Peers[0]
		if slices.Contains(cfg.Peers, "enet") {
			cfg.Baseline = "enet"
		}
	}
	for _, n := range cfg.Peers {
		p, e := peer.Lookup(n)
		if e != nil {
			return e
		}
		if why := p.Caps().Unavailable; why != "" {
			fmt.Fprintf(os.Stderr, "netbench: %s: %s\n", n, why)
		}
	}
	m := driver.ThisMachine(append([]string{"netbench"}, os.Args[1:]...))
	recs, err := driver.Run(context.Background(), cfg)
	m.Finish()
	cells := driver.Summarize(recs, cfg.Peers, cfg.Workloads, cfg.Baseline)
	notes := map[string]string{}
	for _, n := range cfg.Peers {
		if p, e := peer.Lookup(n); e == nil {
			notes[n] = p.Caps().Note
		}
	}
	md := driver.Markdown(cells, cfg.Peers, cfg.Workloads, cfg.Baseline, cfg.Runs, m, notes)
	fmt.Print(md)
	jsonPath, chartPath := *jsonOut, *chart
	if *out != "" {
		if jsonPath == "" {
			jsonPath = *out + ".json"
		}
		if chartPath == "" {
			chartPath = *out + ".svg"
		}
		if e := os.WriteFile(*out+".md", []byte(md), 0o644); e != nil {
			return e
		}
	}
	if chartPath != "" {
		if e := writeChart(chartPath, cells, cfg, m); e != nil {
			return e
		}
	}
	if jsonPath != "" {
		out := struct {
			Machine  driver.Machine  `json:"machine"`
			Baseline string          `json:"baseline"`
			Summary  []driver.Cell   `json:"summary"`
			Records  []driver.Record `json:"records"`
		}{m, cfg.Baseline, cells, recs}
		b, e := json.MarshalIndent(out, "", "  ")
		if e != nil {
			return e
		}
		if e := os.WriteFile(jsonPath, append(b, '\n'), 0o644); e != nil {
			return e
		}
	}
	return err
}

// writeChart writes the chart to path in the format its extension names.
func writeChart(path string, cells []driver.Cell, cfg driver.Config, m driver.Machine) error {
	format := strings.TrimPrefix(filepath.Ext(path), ".")
	switch format {
	case "svg", "png", "pdf":
	default:
		return fmt.Errorf("--chart %s: want .svg, .png or .pdf", path)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := driver.Chart(f, format, cells, cfg.Peers, cfg.Workloads, cfg.Baseline, m); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// chartCmd draws the chart of a run again from the JSON it wrote.
func chartCmd(args []string) error {
	fs := flag.NewFlagSet("chart", flag.ExitOnError)
	from := fs.String("from", "", "a run's JSON (--json or --out)")
	out := fs.String("chart", "", "the chart to write (.svg, .png or .pdf)")
	fs.Parse(args)
	if *from == "" || *out == "" {
		return errors.New("chart: --from and --chart are required")
	}
	b, err := os.ReadFile(*from)
	if err != nil {
		return err
	}
	var in struct {
		Machine  driver.Machine `json:"machine"`
		Baseline string         `json:"baseline"`
		Summary  []driver.Cell  `json:"summary"`
	}
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("chart: %s: %w", *from, err)
	}
	var cfg driver.Config
	cfg.Baseline = in.Baseline
	for _, c := range in.Summary {
		if !slices.Contains(cfg.Peers, c.Peer) {
			cfg.Peers = append(cfg.Peers, c.Peer)
		}
		if !slices.Contains(cfg.Workloads, c.Workload) {
			cfg.Workloads = append(cfg.Workloads, c.Workload)
		}
	}
	return writeChart(*out, in.Summary, cfg, in.Machine)
}
