package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/signaling"
	"github.com/netmsg-go/netmsg/web"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// shutdownGrace bounds how long a stopping server waits for the
// authenticated clients to be told.
const shutdownGrace = 5 * time.Second

// runSignal runs the signaling server until SIGINT or SIGTERM, then stops
// it cleanly (clients told) and returns nil, so the process exits 0.
func runSignal(args []string, out io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runSignalCtx(ctx, args, out)
}

func runSignalCtx(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("signal")
	listen := fs.String("listen", "127.0.0.1:10000", "TCP `address` to listen on (GNS's trivial signaling server uses port 10000; :10000 serves every interface)")
	var cas stringList
	fs.Var(&cas, "ca", "a CA public key `file` (OpenSSH format, the .pub of netmsg cert ca) whose certificates authenticated clients may present; repeatable")
	unsigned := fs.Bool("allow-unsigned", false, "let authenticated clients present unsigned certificates (they still prove they hold the key, and the identity stays bound to it)")
	noTrivial := fs.Bool("no-trivial", false, "refuse GNS's trivial protocol (whose clients claim identities without proof)")
	isolate := fs.Bool("isolate-trivial", false, "drop signals between trivial and authenticated clients")
	idle := fs.Duration("idle-timeout", 0, "drop clients when nothing went either way for this long (0: the default, 5m; GNS's trivial clients are silent when idle and reconnect when dropped)")
	maxClients := fs.Int("max-clients", 0, "connected clients at most (0: 10000)")
	perAddr := fs.Int("max-per-addr", 0, "connections from one IPv4 address or IPv6 /64 at most (0: 128)")
	wsAddr := fs.String("ws", "", "also serve both protocols over WebSocket on `ADDR[/path]` (clients dial ws://ADDR/path, or wss:// with --tls-cert)")
	tlsCert := fs.String("tls-cert", "", "PEM certificate `file` (chain) for --ws, which then serves wss://")
	tlsKey := fs.String("tls-key", "", "PEM private key `file` for --tls-cert")
	natsURLs := fs.String("nats", "", "join a cluster of signaling nodes through the NATS servers at `URL[,URL...]` (nats://host:port)")
	natsEmbed := fs.String("nats-embed", "", "run a NATS server in this process, for clients on `ADDR`, and join the cluster through it (with --nats-routes, embedded servers form one NATS cluster)")
	natsCluster := fs.String("nats-cluster", "", "with --nats-embed: the `ADDR` the embedded NATS server takes routes from other NATS servers on")
	natsRoutes := fs.String("nats-routes", "", "with --nats-embed: routes to the other NATS servers, `URL[,URL...]` (nats://host:port of their --nats-cluster)")
	turnSecret := fs.String("turn-secret", "", "hand authenticated clients TURN credentials made with this shared `secret` (TURN REST API, as coturn's static-auth-secret and netmsg relay --auth-secret)")
	var turnServers, stunServers stringList
	fs.Var(&turnServers, "turn-server", "a TURN server `host:port` the credentials are for; repeatable")
	fs.Var(&stunServers, "stun-server", "a STUN server `host:port` handed out with them (default: the TURN servers); repeatable")
	turnTTL := fs.Duration("turn-ttl", time.Hour, "how long handed-out TURN credentials stay valid")
	httpAddr := fs.String("http", "", "serve /metrics (Prometheus), /healthz, /readyz, a live status page (/) and the browser module (/netmsg.js) on `ADDR`")
	verbose := fs.Bool("v", false, "log every client event (debug level); without it, refusals and drops are logged, a few lines a second at most")
	if err := parseFlags(fs, signalHelp, args, out); err != nil {
		return err
	}
	if *listen == "" {
		return usagef("--listen is empty (want HOST:PORT or :PORT)")
	}
	if *idle < 0 {
		return usagef("--idle-timeout must be 0 (the default, 5m) or more (got %v)", *idle)
	}
	if *maxClients < 0 || *perAddr < 0 {
		return usagef("--max-clients and --max-per-addr must be 0 (the default) or more")
	}
	cfg := signaling.ServerConfig{AllowUnsigned: *unsigned, NoTrivial: *noTrivial, IsolateTrivial: *isolate, IdleTimeout: *idle,
		MaxClients: *maxClients, MaxClientsPerAddr: *perAddr}
	for _, f := range cas {
		b, err := os.ReadFile(f)
		if err != nil {
			return usagef("--ca: %v", err)
		}
		k, err := netmsg.ParseAuthorizedKey(b)
		if err != nil {
			return usagef("--ca %s: %v", f, err)
		}
		cfg.TrustedCAs = append(cfg.TrustedCAs, ed25519.PublicKey(k))
	}
	var tlsConfig *tls.Config
	if (*tlsCert == "") != (*tlsKey == "") || (*tlsCert != "" && *wsAddr == "") {
		return usagef("--tls-cert and --tls-key go together, with --ws")
	}
	if *tlsCert != "" {
		c, err := tls.LoadX509KeyPair(*tlsCert, *tlsKey)
		if err != nil {
			return usagef("--tls-cert/--tls-key: %v", err)
		}
		tlsConfig = &tls.Config{Certificates: []tls.Certificate{c}}
	}
	if *noTrivial && len(cfg.TrustedCAs) == 0 && !*unsigned {
		return usagef("--no-trivial needs --ca or --allow-unsigned, or nobody can register")
	}
	if (*turnSecret == "") != (len(turnServers) == 0) || (len(stunServers) > 0 && *turnSecret == "") {
		return usagef("--turn-secret and --turn-server go together (and --stun-server with them)")
	}
	if *turnTTL < 10*time.Second {
		return usagef("--turn-ttl must be 10s or more (got %v)", *turnTTL)
	}
	if *turnSecret != "" {
		cfg.TURN = &signaling.TURNConfig{Secret: *turnSecret, Servers: turnServers, STUN: stunServers, TTL: *turnTTL}
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: level}))
	var embedURL string
	if *natsEmbed != "" {
		ns, err := startEmbeddedNATS(*natsEmbed, *natsCluster, *natsRoutes)
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		embedURL = ns.ClientURL()
	} else if *natsCluster != "" || *natsRoutes != "" {
		return usagef("--nats-cluster and --nats-routes go with --nats-embed")
	}
	if *natsURLs != "" || embedURL != "" {
		cc := &signaling.ClusterConfig{}
		if embedURL != "" {
			cc.URLs = append(cc.URLs, embedURL)
		}
		if *natsURLs != "" {
			cc.URLs = append(cc.URLs, strings.Split(*natsURLs, ",")...)
		}
		cfg.Cluster = cc
	}
	s, err := signaling.NewServer(cfg)
	if err != nil {
		return err
	}
	addr, err := s.Listen(*listen)
	if err != nil {
		s.Close()
		return err
	}
	var wsURL string
	if *wsAddr != "" {
		hostPort, path, _ := strings.Cut(*wsAddr, "/")
		a, err := s.ListenWS(hostPort, "/"+path, tlsConfig)
		if err != nil {
			s.Close()
			return err
		}
		scheme := "ws"
		if tlsConfig != nil {
			scheme = "wss"
		}
		wsURL = fmt.Sprintf("%s://%s/%s", scheme, a, path)
	}
	fmt.Fprintf(out, "listening %s (trivial protocol %s, %d trusted CAs, unsigned certificates %s, TURN credentials %s)\n",
		addr, onOff(!*noTrivial), len(cfg.TrustedCAs), onOff(*unsigned), onOff(cfg.TURN != nil))
	if wsURL != "" {
		fmt.Fprintf(out, "websocket %s\n", wsURL)
	}
	if *httpAddr != "" {
		a, stopHTTP, err := serveSignalHTTP(*httpAddr, s)
		if err != nil {
			s.Close()
			return err
		}
		defer stopHTTP()
		fmt.Fprintf(out, "http http://%s\n", a)
	}
	if embedURL != "" {
		fmt.Fprintf(out, "nats %s\n", embedURL)
	}
	<-ctx.Done()
	// Authenticated clients are told ("ERR shutdown") and reconnect;
	// trivial ones see the connection close, as GNS's server gives them.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		fmt.Fprintf(out, "shutdown: %v (clients not told in %v were disconnected)\n", err, shutdownGrace)
	}
	st := s.Stats()
	fmt.Fprintf(out, "stopped: %d registrations, %d signals forwarded, %d to nobody, %d rate-limited, %d dropped for slow readers, "+
		"%d malformed, %d failed authentication, %d takeovers refused, %d refused\n",
		st.Registered, st.Forwarded, st.NoRecipient, st.RateLimited, st.QueueDropped,
		st.Malformed, st.AuthFailed, st.TakeoverRefused, st.Refused)
	return nil
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// serveSignalHTTP serves s's metrics (with the Go runtime's and the
// process's), /healthz (200 while the process serves), /readyz (200
// when s.Ready) and the status page (/ and /status.json) on addr, in the
// background; stop ends it.
func serveSignalHTTP(addr string, s *signaling.Server) (net.Addr, func(), error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(s, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux := http.NewServeMux()
	mux.Handle("/", s.StatusHandler())
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.Handle("/netmsg.js", web.Handler()) // the browser module (docs/browser.md)
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ready\n")
	})
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("signal: --http: %w", err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go hs.Serve(l)
	return l.Addr(), func() { hs.Close() }, nil
}

// startEmbeddedNATS runs a NATS server in the process for clients on
// addr ("host:port"; port 0: any), taking routes on cluster if set and
// routing to the servers in routes (comma-separated nats:// URLs).
func startEmbeddedNATS(addr, cluster, routes string) (*natsserver.Server, error) {
	host, port, err := splitPort(addr)
	if err != nil {
		return nil, fmt.Errorf("signal: --nats-embed: %w", err)
	}
	opts := &natsserver.Options{Host: host, Port: port, NoLog: true, NoSigs: true}
	if cluster != "" {
		ch, cp, err := splitPort(cluster)
		if err != nil {
			return nil, fmt.Errorf("signal: --nats-cluster: %w", err)
		}
		opts.Cluster = natsserver.ClusterOpts{Name: "netmsg-signal", Host: ch, Port: cp}
	}
	if routes != "" {
		if cluster == "" {
			return nil, fmt.Errorf("signal: --nats-routes needs --nats-cluster")
		}
		opts.Routes = natsserver.RoutesFromStr(routes)
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("signal: nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("signal: the embedded NATS server did not start on %s", addr)
	}
	return ns, nil
}

// splitPort splits "host:port"; port 0 becomes NATS's "any port" (-1).
func splitPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	if port == 0 {
		port = natsserver.RANDOM_PORT
	}
	return host, port, nil
}

var signalHelp = help{
	name:    "signal",
	summary: "a signaling server for P2P",
	desc: `Serves the rendezvous that P2P peers (netmsg ping, Hosts with
Config.Signaling, GNS programs) use to find each other, over TCP and, with
--ws, WebSocket: GNS's trivial protocol (clients name themselves) and
netmsg's authenticated one (clients prove their identity with a
certificate). Like netmsg relay, it listens on 127.0.0.1 (port 10000)
unless --listen says otherwise: give --listen :10000 to serve other
machines. Its defaults hold on a public address (registration within
5 s, idle clients dropped after 5 min, 128 connections per source address,
refusals told and counted). With --nats or --nats-embed it is one node of a
cluster sharing one identity space through NATS; with --turn-secret it
hands authenticated clients short-lived TURN credentials; --http serves /metrics,
/healthz and /readyz. It runs until SIGINT or SIGTERM, tells its
authenticated clients ("ERR shutdown"), prints its counters and exits 0.
`,
	examples: []string{
		"netmsg signal",
		"netmsg signal --listen 127.0.0.1:10000 -v",
		"netmsg signal --listen :10000 --ca ca.key.pub --no-trivial",
		"netmsg signal --listen :10000 --ws :443/signal --tls-cert tls.crt --tls-key tls.key --http :9100",
		"netmsg signal --listen :10000 --nats nats://10.0.0.1:4222,nats://10.0.0.2:4222 --http :9100",
		"netmsg signal --listen :10000 --ca ca.key.pub --turn-secret S --turn-server turn.example.net:3478",
	},
}
