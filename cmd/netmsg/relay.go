package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/netmsg-go/netmsg/relay"
)

// runRelay runs the STUN and TURN server until SIGINT or SIGTERM.
func runRelay(args []string, out io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runRelayCtx(ctx, args, out)
}

func runRelayCtx(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	fs.SetOutput(out)
	listen := fs.String("listen", "127.0.0.1:3478", "UDP address to serve STUN and TURN on")
	var users stringList
	fs.Var(&users, "user", "a static long-term credential USER:PASSWORD; repeatable")
	var secrets stringList
	fs.Var(&secrets, "auth-secret", "a shared secret of TURN REST API credentials (as coturn's static-auth-secret); repeatable, for rotation. At least one --user or --auth-secret")
	realm := fs.String("realm", "netmsg", "realm of the credentials")
	relayIP := fs.String("relay-ip", "", "address put in allocations (default: the listening address; required with 0.0.0.0)")
	maxAlloc := fs.Int("max-allocations", relay.DefaultMaxAllocations, "allocations at once")
	maxPerUser := fs.Int("max-allocations-per-user", relay.DefaultMaxAllocationsPerUser, "allocations of one user at once (-1: no bound)")
	maxPerAddr := fs.Int("max-allocations-per-addr", relay.DefaultMaxAllocationsPerAddr, "allocations from one client IP address at once (-1: no bound)")
	lifetime := fs.Duration("allocation-lifetime", relay.DefaultAllocationLifetime, "lifetime of an allocation whose client asks for none")
	var allow stringList
	fs.Var(&allow, "allow-peer", "a peer prefix relayed to although special (loopback, private...), e.g. 127.0.0.0/8; repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := relay.Config{ListenAddr: *listen, Realm: *realm, Users: map[string]string{}, MaxAllocations: *maxAlloc, AuthSecrets: secrets,
		MaxAllocationsPerUser: *maxPerUser, MaxAllocationsPerAddr: *maxPerAddr, AllocationLifetime: *lifetime,
		Logger: slog.New(slog.NewTextHandler(out, nil))}
	for _, a := range allow {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			return fmt.Errorf("relay: --allow-peer: %w", err)
		}
		cfg.AllowPeers = append(cfg.AllowPeers, p)
	}
	for _, u := range users {
		name, pass, ok := strings.Cut(u, ":")
		if !ok || name == "" {
			return fmt.Errorf("relay: --user %q: want USER:PASSWORD", u)
		}
		cfg.Users[name] = pass
	}
	if *relayIP != "" {
		ip, err := netip.ParseAddr(*relayIP)
		if err != nil {
			return fmt.Errorf("relay: --relay-ip: %w", err)
		}
		cfg.RelayIP = ip
	}
	s, err := relay.NewServer(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(out, "listening %v (STUN and TURN over UDP, realm %q, %d users, %d auth secrets)\n", s.Addr(), *realm, len(cfg.Users), len(secrets))
	<-ctx.Done()
	st := s.Stats()
	fmt.Fprintf(out, "stopped: %d allocations live, %d refused, %d failed authentication\n", st.Allocations, st.Refused, st.AuthFailed)
	return nil
}
