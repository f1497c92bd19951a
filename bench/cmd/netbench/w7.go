package main

// W7 of BENCH.md: 10,000 Messages sessions to one Host, each sending 10
// small reliable messages a second. The Host under test runs alone in a
// child process (netbench w7-server), so its CPU time and resident memory
// are its own; the clients (one netmsg Host per session, each on its own
// loopback socket) run in this process.
//
//	netbench w7 [--sessions 10000] [--rate 10] [--window 10s] [--inflight 512]
//
// Figures:
//   - handshakes/s: sessions connected / time from the first send to the
//     last session connected (as the server saw it);
//   - resident memory per idle session: the server's RSS with every session
//     connected and idle, minus its RSS before the first, over the number
//     of sessions (after a GC and returning free memory to the OS, both
//     times; Go heap in use is shown too);
//   - CPU: the server's user+system CPU seconds over the window, divided by
//     the window, while idle (keepalives only) and under the load.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netmsg-go/netmsg"
)

// w7Stats is what the server reports on each "stats" or "gc" line.
type w7Stats struct {
	Sessions     int64   `json:"sessions"`       // sessions connected so far
	Messages     int64   `json:"messages"`       // messages received so far
	RSSKiB       int64   `json:"rss_kib"`        // VmRSS
	HeapInuseKiB int64   `json:"heap_inuse_kib"` // Go heap in use
	CPUSeconds   float64 `json:"cpu_s"`          // user+system since start
	FirstMs      float64 `json:"first_ms"`       // first session connected, ms since start
	LastMs       float64 `json:"last_ms"`        // latest session connected, ms since start
	Goroutines   int     `json:"goroutines"`
	DatagramsIn  int64   `json:"datagrams_in"`
	DatagramsOut int64   `json:"datagrams_out"`
	Dropped      int64   `json:"dropped"`
}

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

func rssKiB() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			var n int64
			fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(line, "VmRSS:")), "%d", &n)
			return n
		}
	}
	return 0
}

// w7Server is the Host under test: it accepts every session, drains
// channel 0 and answers "stats" and "gc" lines on stdin with a JSON line.
func w7Server(args []string) error {
	fs := flag.NewFlagSet("w7-server", flag.ExitOnError)
	timeout := fs.Duration("timeout", 10*time.Minute, "exit after this long")
	fs.Parse(args)
	start := time.Now()
	var sessions, msgs, firstNs, lastNs atomic.Int64
	var ms *netmsg.Messages
	h, err := netmsg.NewHost(netmsg.Config{
		ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"),
		OnSessionRequest: func(peer netmsg.Identity) {
			ms.AcceptSessionWithUser(peer)
		},
		OnSessionConnected: func(netmsg.ConnectionInfo) {
			t := int64(time.Since(start))
			firstNs.CompareAndSwap(0, t)
			lastNs.Store(t)
			sessions.Add(1)
		},
	})
	if err != nil {
		return err
	}
	defer h.Close()
	ms = h.Messages()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	go func() {
		for {
			b, err := ms.ReceiveBatch(ctx, 0, 256)
			if err != nil {
				return
			}
			msgs.Add(int64(len(b)))
			for _, m := range b {
				m.Release()
			}
		}
	}()
	go func() { <-ctx.Done(); os.Exit(3) }()
	fmt.Printf("listening %v\n", h.LocalAddr())
	in := bufio.NewScanner(os.Stdin)
	out := json.NewEncoder(os.Stdout)
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "gc":
			runtime.GC()
			debug.FreeOSMemory()
		case "heap": // heap FILE: a heap profile, for work on memory per session
			if f, err := os.Create(arg); err == nil {
				runtime.GC()
				pprof.WriteHeapProfile(f)
				f.Close()
			}
		case "cpu": // cpu FILE: start a CPU profile; "cpustop" ends it
			if f, err := os.Create(arg); err == nil {
				pprof.StartCPUProfile(f)
			}
		case "cpustop":
			pprof.StopCPUProfile()
		}
		var mem runtime.MemStats
		runtime.ReadMemStats(&mem)
		out.Encode(w7Stats{
			Sessions: sessions.Load(), Messages: msgs.Load(),
			RSSKiB: rssKiB(), HeapInuseKiB: int64(mem.HeapInuse >> 10),
			CPUSeconds: cpuSeconds(),
			FirstMs:    float64(firstNs.Load()) / 1e6, LastMs: float64(lastNs.Load()) / 1e6,
			Goroutines:  runtime.NumGoroutine(),
			DatagramsIn: h.Stats().DatagramsIn, DatagramsOut: h.Stats().DatagramsOut, Dropped: h.Stats().Dropped,
		})
	}
	return nil
}

// w7 runs the clients against a w7-server child and prints the figures.
func w7(args []string) error {
	fs := flag.NewFlagSet("w7", flag.ExitOnError)
	n := fs.Int("sessions", 10000, "sessions (client Hosts)")
	rate := fs.Int("rate", 10, "reliable messages per second per session in the load window")
	window := fs.Duration("window", 10*time.Second, "length of the idle and the load measurement")
	inflight := fs.Int("inflight", 512, "at most this many handshakes under way at once")
	prof := fs.String("profile", "", "write the server's heap profile (idle) to PREFIX.heap and CPU profile (load) to PREFIX.cpu")
	clientsKind := fs.String("clients", "hosts", "hosts: a netmsg Host per session; bare: bare connections on shared sockets with the load made ahead of time (w7bare.go), which offer the whole load")
	sockets := fs.Int("sockets", 8, "with --clients bare: the shared client sockets")
	fs.Parse(args)
	if *clientsKind != "hosts" && *clientsKind != "bare" {
		return fmt.Errorf("w7: --clients %q: want hosts or bare", *clientsKind)
	}

	self, err := os.Executable()
	if err != nil {
		return err
	}
	cmd := exec.Command(self, "w7-server")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill() // our child, by its PID
			<-done
		}
	}()
	lines := bufio.NewScanner(stdout)
	if !lines.Scan() {
		return errors.New("w7: server printed nothing")
	}
	addr, ok := strings.CutPrefix(lines.Text(), "listening ")
	if !ok {
		return fmt.Errorf("w7: server said %q", lines.Text())
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	server, _ := netmsg.IdentityFromAddr(ap)
	ask := func(cmd string) (w7Stats, error) {
		var s w7Stats
		if _, err := fmt.Fprintln(stdin, cmd); err != nil {
			return s, err
		}
		if !lines.Scan() {
			return s, errors.New("w7: server gone")
		}
		return s, json.Unmarshal(lines.Bytes(), &s)
	}
	base, err := ask("gc")
	if err != nil {
		return err
	}
	if *clientsKind == "bare" {
		return w7Bare(ap, *n, *rate, *window, *sockets, *inflight, base, ask, *prof)
	}

	// The clients.
	type client struct {
		h  *netmsg.Host
		ms *netmsg.Messages
	}
	clients := make([]client, *n)
	connected := make(chan int, *n)
	cpu0 := cpuSeconds()
	for i := range clients {
		h, err := netmsg.NewHost(netmsg.Config{
			ListenAddr:         netip.MustParseAddrPort("127.0.0.1:0"),
			OnSessionConnected: func(netmsg.ConnectionInfo) { connected <- i },
			OnSessionFailed: func(info netmsg.ConnectionInfo) {
				fmt.Fprintf(os.Stderr, "w7: client %d: session failed: %v %s\n", i, info.EndReason, info.EndDebug)
			},
		})
		if err != nil {
			return fmt.Errorf("w7: client %d: %w", i, err)
		}
		clients[i] = client{h, h.Messages()}
	}
	defer func() {
		var wg sync.WaitGroup
		for _, c := range clients {
			if c.h != nil {
				wg.Go(func() { c.h.Close() })
			}
		}
		wg.Wait()
	}()
	fmt.Fprintf(os.Stderr, "w7: %d client Hosts made in %.1f s of CPU\n", *n, cpuSeconds()-cpu0)

	// Handshakes: a send opens each session; at most inflight at once.
	hello := make([]byte, 16)
	t0 := time.Now()
	next, done := 0, 0
	deadline := time.After(time.Minute)
	for done < *n {
		for next < *n && next-done < *inflight {
			if err := clients[next].ms.SendMessageToUser(server, hello, netmsg.SendReliable, 0); err != nil {
				return fmt.Errorf("w7: client %d: %w", next, err)
			}
			next++
		}
		select {
		case <-connected:
			done++
		case <-deadline:
			return fmt.Errorf("w7: only %d of %d sessions connected in a minute", done, *n)
		}
	}
	clientSide := time.Since(t0)
	for {
		s, err := ask("stats")
		if err != nil {
			return err
		}
		if s.Sessions >= int64(*n) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Idle.
	time.Sleep(2 * time.Second)
	idle0, err := ask("gc")
	if err != nil {
		return err
	}
	if *prof != "" {
		if _, err := ask("heap " + *prof + ".heap"); err != nil {
			return err
		}
	}
	time.Sleep(*window)
	idle1, err := ask("gc")
	if err != nil {
		return err
	}

	// Load: each session sends rate messages a second, spread evenly.
	ctx, cancel := context.WithTimeout(context.Background(), *window+2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var sendErrs atomic.Int64
	workers := 4
	period := time.Second / time.Duration(*rate)
	for w := range workers {
		wg.Go(func() {
			tick := time.NewTicker(period)
			defer tick.Stop()
			msg := make([]byte, 64)
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				for i := w; i < *n; i += workers {
					if clients[i].ms.SendMessageToUser(server, msg, netmsg.SendReliable|netmsg.SendNoNagle, 0) != nil {
						sendErrs.Add(1)
					}
				}
			}
		})
	}
	time.Sleep(time.Second) // settle
	load0, err := ask("stats")
	if err != nil {
		return err
	}
	if *prof != "" {
		ask("cpu " + *prof + ".cpu")
	}
	time.Sleep(*window)
	load1, err := ask("stats")
	if *prof != "" {
		ask("cpustop")
	}
	if err != nil {
		return err
	}
	cancel()
	wg.Wait()
	after, err := ask("gc")
	if err != nil {
		return err
	}

	secs := window.Seconds()
	serverSpan := (idle0.LastMs - idle0.FirstMs) / 1e3
	fmt.Printf("W7: %d sessions to one Host, %d msg/s each under load (server in its own process, %d CPUs)\n", *n, *rate, runtime.NumCPU())
	fmt.Printf("handshakes: %d in %.2f s from the first send (%.0f/s); server saw first..last connected over %.2f s (%.0f/s)\n",
		*n, clientSide.Seconds(), float64(*n)/clientSide.Seconds(), serverSpan, float64(*n)/serverSpan)
	perRSS := float64(idle0.RSSKiB-base.RSSKiB) / float64(*n)
	perHeap := float64(idle0.HeapInuseKiB-base.HeapInuseKiB) / float64(*n)
	fmt.Printf("memory per idle session: %.2f KiB resident (RSS %d -> %d KiB), %.2f KiB Go heap in use; %d goroutines\n",
		perRSS, base.RSSKiB, idle0.RSSKiB, perHeap, idle0.Goroutines)
	fmt.Printf("CPU idle: %.3f cores (keepalives of %d sessions over %.0f s)\n", (idle1.CPUSeconds-idle0.CPUSeconds)/secs, *n, secs)
	got := float64(load1.Messages-load0.Messages) / secs
	fmt.Printf("CPU under load: %.3f cores, receiving %.0f msg/s (offered %d), %d send errors\n",
		(load1.CPUSeconds-load0.CPUSeconds)/secs, got, *n**rate, sendErrs.Load())
	fmt.Printf("server datagrams under load: %.0f/s in, %.0f/s out, %.0f/s dropped\n",
		float64(load1.DatagramsIn-load0.DatagramsIn)/secs, float64(load1.DatagramsOut-load0.DatagramsOut)/secs, float64(load1.Dropped-load0.Dropped)/secs)
	fmt.Printf("after the load: RSS %d KiB, heap in use %d KiB\n", after.RSSKiB, after.HeapInuseKiB)
	return nil
}
