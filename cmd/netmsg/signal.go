package main

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/signaling"
)

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// runSignal runs the signaling server until SIGINT or SIGTERM.
func runSignal(args []string, out io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runSignalCtx(ctx, args, out)
}

func runSignalCtx(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("signal")
	listen := fs.String("listen", ":10000", "TCP `address` to listen on (GNS's trivial signaling server uses port 10000)")
	var cas stringList
	fs.Var(&cas, "ca", "a CA public key `file` (OpenSSH format, the .pub of netmsg cert ca) whose certificates authenticated clients may present; repeatable")
	unsigned := fs.Bool("allow-unsigned", false, "let authenticated clients present unsigned certificates (they still prove they hold the key, and the identity stays bound to it)")
	noTrivial := fs.Bool("no-trivial", false, "refuse GNS's trivial protocol (whose clients claim identities without proof)")
	isolate := fs.Bool("isolate-trivial", false, "drop signals between trivial and authenticated clients")
	idle := fs.Duration("idle-timeout", 0, "drop clients silent for this long (0: never; GNS's trivial clients are silent when idle)")
	verbose := fs.Bool("v", false, "log every client event")
	if err := parseFlags(fs, signalHelp, args, out); err != nil {
		return err
	}
	if *idle < 0 {
		return usagef("--idle-timeout must be 0 (never) or more (got %v)", *idle)
	}
	if *listen == "" {
		return usagef("--listen is empty (want HOST:PORT or :PORT)")
	}
	cfg := signaling.ServerConfig{AllowUnsigned: *unsigned, NoTrivial: *noTrivial, IsolateTrivial: *isolate, IdleTimeout: *idle}
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
	if *noTrivial && len(cfg.TrustedCAs) == 0 && !*unsigned {
		return usagef("--no-trivial needs --ca or --allow-unsigned, or nobody can register")
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(out, nil))
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
	fmt.Fprintf(out, "listening %s (trivial protocol %s, %d trusted CAs, unsigned certificates %s)\n",
		addr, onOff(!*noTrivial), len(cfg.TrustedCAs), onOff(*unsigned))
	<-ctx.Done()
	s.Close()
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

var signalHelp = help{
	name:    "signal",
	summary: "a signaling server for P2P",
	desc: `Serves the rendezvous that P2P peers (netmsg ping, Hosts with
Config.Signaling, GNS programs) use to find each other, over TCP: GNS's
trivial protocol (clients name themselves) and netmsg's authenticated one
(clients prove their identity with a certificate). It listens on every
interface, port 10000, unless --listen says otherwise, and runs until
SIGINT or SIGTERM, then prints its counters.
`,
	examples: []string{
		"netmsg signal",
		"netmsg signal --listen 127.0.0.1:10000 -v",
		"netmsg signal --listen :10000 --ca ca.key.pub --no-trivial",
	},
}
