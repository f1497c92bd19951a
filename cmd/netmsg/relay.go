package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/netmsg-go/netmsg/relay"
)

// runRelay runs the STUN and TURN server until SIGINT or SIGTERM, then
// stops it and returns nil (exit status 0).
func runRelay(args []string, out io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runRelayCtx(ctx, args, out)
}

func runRelayCtx(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("relay")
	listen := fs.String("listen", "127.0.0.1:3478", "UDP address to serve STUN and TURN on")
	var users stringList
	fs.Var(&users, "user", "a static long-term credential USER:PASSWORD; repeatable")
	var secrets stringList
	fs.Var(&secrets, "auth-secret", "a shared secret of TURN REST API credentials (as coturn's static-auth-secret); repeatable, for rotation. At least one --user or --auth-secret")
	secretFile := fs.String("auth-secret-file", "", "a file of auth secrets, one a line (kept out of the process list)")
	relayPorts := fs.String("relay-ports", "", "MIN-MAX: the UDP ports of relayed addresses, for the firewall (default: the system's ephemeral range)")
	realm := fs.String("realm", "netmsg", "realm of the credentials")
	relayIP := fs.String("relay-ip", "", "address put in allocations (default: the listening address; required with 0.0.0.0)")
	maxAlloc := fs.Int("max-allocations", relay.DefaultMaxAllocations, "allocations at once")
	maxPerUser := fs.Int("max-allocations-per-user", relay.DefaultMaxAllocationsPerUser, "allocations of one user at once (-1: no bound)")
	maxPerAddr := fs.Int("max-allocations-per-addr", relay.DefaultMaxAllocationsPerAddr, "allocations from one client IP address at once (-1: no bound)")
	maxPerms := fs.Int("max-permissions-per-allocation", relay.DefaultMaxPermissionsPerAllocation, "peer addresses one allocation may relay to at once (-1: no bound)")
	lifetime := fs.Duration("allocation-lifetime", relay.DefaultAllocationLifetime, "lifetime of an allocation whose client asks for none")
	sockBuf := fs.Int("socket-buffer", relay.DefaultSocketBuffer, "receive and send buffer in bytes of the server's socket and every relayed socket (-1: the system default; above net.core.rmem_max only with CAP_NET_ADMIN)")
	var allow stringList
	fs.Var(&allow, "allow-peer", "a peer prefix relayed to although special (loopback, private...), e.g. 127.0.0.0/8; repeatable")
	httpAddr := fs.String("http", "", "TCP address to serve a status page, /metrics (Prometheus), /healthz and /readyz on (default: none)")
	verbose := fs.Bool("v", false, "debug logs")
	if err := parseFlags(fs, relayHelp, args, out); err != nil {
		return err
	}
	switch {
	case *maxAlloc <= 0:
		return usagef("--max-allocations must be positive (got %d)", *maxAlloc)
	case *maxPerUser == 0 || *maxPerUser < -1:
		return usagef("--max-allocations-per-user must be positive or -1 (got %d)", *maxPerUser)
	case *maxPerAddr == 0 || *maxPerAddr < -1:
		return usagef("--max-allocations-per-addr must be positive or -1 (got %d)", *maxPerAddr)
	case *maxPerms == 0 || *maxPerms < -1:
		return usagef("--max-permissions-per-allocation must be positive or -1 (got %d)", *maxPerms)
	case *lifetime <= 0:
		return usagef("--allocation-lifetime must be positive (got %v)", *lifetime)
	case *sockBuf == 0 || *sockBuf < -1:
		return usagef("--socket-buffer must be positive or -1 (got %d)", *sockBuf)
	case len(users) == 0 && len(secrets) == 0 && *secretFile == "":
		return usagef("give at least one --user USER:PASSWORD or --auth-secret (TURN clients must authenticate)")
	case *listen == "":
		return usagef("--listen is empty (want IP:PORT)")
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))
	cfg := relay.Config{ListenAddr: *listen, Realm: *realm, Users: map[string]string{}, AuthSecrets: secrets,
		MaxAllocations: *maxAlloc, MaxAllocationsPerUser: *maxPerUser, MaxAllocationsPerAddr: *maxPerAddr, MaxPermissionsPerAllocation: *maxPerms,
		AllocationLifetime: *lifetime, SocketBuffer: *sockBuf, Logger: logger}
	for _, u := range users {
		name, pass, ok := strings.Cut(u, ":")
		if !ok || name == "" {
			return usagef("--user %q: want USER:PASSWORD", u)
		}
		cfg.Users[name] = pass
	}
	if *secretFile != "" {
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("relay: --auth-secret-file: %w", err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line = strings.TrimSpace(line); line != "" {
				cfg.AuthSecrets = append(cfg.AuthSecrets, line)
			}
		}
	}
	if *relayPorts != "" {
		lo, hi, ok := strings.Cut(*relayPorts, "-")
		min, err1 := strconv.ParseUint(lo, 10, 16)
		max, err2 := strconv.ParseUint(hi, 10, 16)
		if !ok || err1 != nil || err2 != nil {
			return fmt.Errorf("relay: --relay-ports %q: want MIN-MAX", *relayPorts)
		}
		cfg.RelayPortMin, cfg.RelayPortMax = uint16(min), uint16(max)
	}
	for _, a := range allow {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return fmt.Errorf("relay: --allow-peer: %w", err)
		}
		cfg.AllowPeers = append(cfg.AllowPeers, p)
	}
	if *relayIP != "" {
		ip, err := netip.ParseAddr(*relayIP)
		if err != nil {
			return usagef("--relay-ip %q: want an IP address", *relayIP)
		}
		cfg.RelayIP = ip
	} else if ap, err := netip.ParseAddrPort(*listen); err == nil && ap.Addr().IsUnspecified() {
		return usagef("--listen %s is every interface: give --relay-ip, the address peers reach this relay at", *listen)
	}
	var ln net.Listener
	if *httpAddr != "" {
		var err error
		if ln, err = net.Listen("tcp", *httpAddr); err != nil {
			return fmt.Errorf("relay: --http: %w", err)
		}
		defer ln.Close()
	}
	s, err := relay.NewServer(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(out, "listening %v (STUN and TURN over UDP, realm %q, %d users, %d auth secrets)\n", s.Addr(), *realm, len(cfg.Users), len(cfg.AuthSecrets))
	var ready atomic.Bool
	ready.Store(true)
	if ln != nil {
		hs := &http.Server{Handler: relayHTTP(s, &ready), ReadHeaderTimeout: 5 * time.Second}
		served := make(chan error, 1)
		go func() { served <- hs.Serve(ln) }()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			hs.Shutdown(sctx)
			if err := <-served; !errors.Is(err, http.ErrServerClosed) {
				logger.Warn("relay: http server", "err", err)
			}
		}()
		fmt.Fprintf(out, "http %v (/ status page, /metrics, /healthz, /readyz)\n", ln.Addr())
	}
	<-ctx.Done()
	ready.Store(false)
	st := s.Stats()
	fmt.Fprintf(out, "stopped: %d allocations live, %d refused, %d failed authentication\n", st.Allocations, st.Refused, st.AuthFailed)
	return nil
}

// relayHTTP serves /metrics (the relay's collector, and the Go runtime's
// and the process's), the status page at / (and /status.json), /healthz (200 while the process serves HTTP) and
// /readyz (200 while the relay serves, 503 once it is stopping).
func relayHTTP(s *relay.Server, ready *atomic.Bool) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(s.Collector(), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("GET /", s.StatusHandler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !ready.Load() {
			http.Error(w, "stopping", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	return mux
}

var relayHelp = help{
	name:    "relay",
	summary: "a STUN and TURN server",
	desc: `Serves STUN (peers learn their public address) and TURN (peers relay
through it when no direct path works) over UDP, for netmsg ping --stun and
--turn, Config.STUNServers and TURNServers, and GNS programs. TURN clients
authenticate with one of the --user credentials, or with TURN REST API
credentials made from an --auth-secret (as coturn's static-auth-secret). It listens on
127.0.0.1:3478 unless --listen says otherwise; to serve other machines,
listen on their side's address, or on 0.0.0.0:3478 with --relay-ip. It
runs until SIGINT or SIGTERM.
`,
	examples: []string{
		"netmsg relay --user alice:secret",
		"netmsg relay --auth-secret s3cret --http 127.0.0.1:9100",
		"netmsg relay --listen 0.0.0.0:3478 --relay-ip 203.0.113.7 --user alice:secret --user bob:hunter2",
	},
}
