// Package driver runs the benchmark matrix: for every run, workload and
// peer, a server and a client as two OS processes of the netbench binary,
// and then the table of medians and of ratios within a run.
package driver

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/netmsg-go/netmsg/bench/peer"
	"github.com/netmsg-go/netmsg/bench/workload"
)

// Config is one benchmark session. The zero value is not useful: Peers,
// Workloads and Binary are required.
type Config struct {
	// Binary is the netbench executable to start for the server and the
	// client (normally os.Executable()).
	Binary    string
	Peers     []string
	Workloads []string
	// Runs is how many times the whole matrix is run (default 3).
	Runs int
	// Baseline is the peer the ratios divide by (default Peers[0]).
	Baseline string
	// Timeout bounds one server+client pair (default 60 s); both are
	// killed by PID when it passes.
	Timeout time.Duration
	// Loss, when above 0, overrides every workload's fake loss each way
	// (passed on as --loss).
	Loss float64
	// Log receives progress lines and the children's stderr; nil discards.
	Log io.Writer
}

// Record is one client run.
type Record struct {
	Run    int             `json:"run"`
	Result workload.Result `json:"result"`
	// Stderr holds what the server and client wrote to stderr, if
	// anything (quic-go's socket buffer warning, a failure).
	Stderr string `json:"stderr,omitempty"`
	// ServerCPU and ClientCPU are the user+system CPU seconds each
	// process used, start to exit (handshake and control included).
	ServerCPU float64 `json:"server_cpu_s"`
	ClientCPU float64 `json:"client_cpu_s"`
}

// Run runs the matrix. The order of the peers rotates from run to run, so
// that no peer always runs first (or right after the same one).
func Run(ctx context.Context, cfg Config) ([]Record, error) {
	if cfg.Runs <= 0 {
		cfg.Runs = 3
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	var specs []workload.Spec
	for _, w := range cfg.Workloads {
		s, err := workload.Lookup(w)
		if err != nil {
			return nil, err
		}
		specs = append(specs, s)
	}
	var peers []peer.Peer
	for _, n := range cfg.Peers {
		p, err := peer.Lookup(n)
		if err != nil {
			return nil, err
		}
		peers = append(peers, p)
	}
	var recs []Record
	for run := 1; run <= cfg.Runs; run++ {
		for _, s := range specs {
			for i := range peers {
				p := peers[(i+run-1)%len(peers)]
				if err := ctx.Err(); err != nil {
					return recs, err
				}
				s := s
				if cfg.Loss > 0 {
					s.Loss = cfg.Loss
				}
				if why := workload.Unsupported(p.Caps(), s); why != "" {
					recs = append(recs, Record{Run: run, Result: workload.Result{Peer: p.Name(), Workload: s.ID, Size: s.Size, Unsupported: why}})
					continue
				}
				start := time.Now()
				rec := pair(ctx, cfg, run, p.Name(), s)
				fmt.Fprintf(logw, "run %d %s %-5s %s (%.1f s; CPU s: server %.2f, client %.2f)\n", run, s.ID, p.Name(), brief(rec.Result), time.Since(start).Seconds(), rec.ServerCPU, rec.ClientCPU)
				if rec.Stderr != "" {
					fmt.Fprintf(logw, "  stderr: %s\n", strings.ReplaceAll(strings.TrimSpace(rec.Stderr), "\n", "\n  stderr: "))
				}
				recs = append(recs, rec)
			}
		}
	}
	return recs, nil
}

func brief(r workload.Result) string {
	switch {
	case r.Error != "":
		return "FAILED: " + r.Error
	case r.Unsupported != "":
		return r.Unsupported
	case r.Rounds > 0:
		return fmt.Sprintf("p50 %.1f µs, p99 %.1f µs", r.RTTP50us, r.RTTP99us)
	default:
		return fmt.Sprintf("%.0f msg/s, %.1f MB/s, %.2f%% lost", r.MsgsPerSec, r.MBPerSec, r.LostPct)
	}
}

// pair runs one server and one client process and returns the client's
// result (with Error set when anything failed).
func pair(parent context.Context, cfg Config, run int, peerName string, s workload.Spec) (rec Record) {
	rec = Record{Run: run, Result: workload.Result{Peer: peerName, Workload: s.ID, Size: s.Size}}
	timeout := max(cfg.Timeout, s.MinTimeout)
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	common := []string{"--peer", peerName, "--workload", s.ID, "--timeout", timeout.String()}
	if cfg.Loss > 0 {
		common = append(common, "--loss", strconv.FormatFloat(cfg.Loss, 'g', -1, 64))
	}
	var srvErr, cliErr bytes.Buffer
	var cli *exec.Cmd // started once the server has printed its address
	srv := exec.CommandContext(ctx, cfg.Binary, append([]string{"server"}, common...)...)
	srv.Stderr = &srvErr
	srv.WaitDelay = time.Second
	out, err := srv.StdoutPipe()
	if err != nil {
		rec.Result.Error = err.Error()
		return rec
	}
	if err := srv.Start(); err != nil {
		rec.Result.Error = err.Error()
		return rec
	}
	defer func() {
		// The server ends by itself once the client is done; Kill (by
		// PID) only if it has not within the timeout.
		if err := srv.Wait(); err != nil {
			if rec.Result.Error == "" {
				rec.Result.Error = "server: " + err.Error()
			}
		}
		rec.ServerCPU = cpuSeconds(srv.ProcessState)
		if cli != nil {
			rec.ClientCPU = cpuSeconds(cli.ProcessState)
		}
		rec.Stderr = strings.TrimSpace(srvErr.String() + "\n" + cliErr.String())
	}()
	sc := bufio.NewScanner(out)
	if !sc.Scan() {
		rec.Result.Error = "server printed no address"
		cancel()
		return rec
	}
	addr, ok := strings.CutPrefix(sc.Text(), "listening ")
	if !ok {
		rec.Result.Error = fmt.Sprintf("server printed %q, want \"listening ADDR\"", sc.Text())
		cancel()
		return rec
	}
	go io.Copy(io.Discard, out)

	cli = exec.CommandContext(ctx, cfg.Binary, append([]string{"client", "--addr", addr}, common...)...)
	cli.Stderr = &cliErr
	cli.WaitDelay = time.Second
	cout, cerr := cli.Output()
	lines := strings.Split(strings.TrimSpace(string(cout)), "\n")
	last := lines[len(lines)-1]
	if err := json.Unmarshal([]byte(last), &rec.Result); err != nil {
		rec.Result.Error = fmt.Sprintf("client: %v; output %q", errors.Join(cerr, err), last)
		return rec
	}
	if cerr != nil && rec.Result.Error == "" {
		rec.Result.Error = "client: " + cerr.Error()
	}
	return rec
}

func cpuSeconds(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	return (ps.UserTime() + ps.SystemTime()).Seconds()
}
