package main

import (
	"context"
	"flag"
	"fmt"
	"io"
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
	maxAlloc := fs.Int("max-allocations", 1000, "allocations at once")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := relay.Config{ListenAddr: *listen, Realm: *realm, Users: map[string]string{}, MaxAllocations: *maxAlloc, AuthSecrets: secrets}
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
