package main

import (
	"context"
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
	fs := newFlags("relay")
	listen := fs.String("listen", "127.0.0.1:3478", "UDP address to serve STUN and TURN on")
	var users stringList
	fs.Var(&users, "user", "a long-term credential USER:PASSWORD; repeatable (at least one)")
	realm := fs.String("realm", "netmsg", "realm of the credentials")
	relayIP := fs.String("relay-ip", "", "address put in allocations (default: the listening address; required with 0.0.0.0)")
	maxAlloc := fs.Int("max-allocations", 1000, "allocations at once")
	if err := parseFlags(fs, relayHelp, args, out); err != nil {
		return err
	}
	switch {
	case *maxAlloc <= 0:
		return usagef("--max-allocations must be positive (got %d)", *maxAlloc)
	case len(users) == 0:
		return usagef("give at least one --user USER:PASSWORD (TURN clients must authenticate)")
	case *listen == "":
		return usagef("--listen is empty (want IP:PORT)")
	}
	cfg := relay.Config{ListenAddr: *listen, Realm: *realm, Users: map[string]string{}, MaxAllocations: *maxAlloc}
	for _, u := range users {
		name, pass, ok := strings.Cut(u, ":")
		if !ok || name == "" {
			return usagef("--user %q: want USER:PASSWORD", u)
		}
		cfg.Users[name] = pass
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
	s, err := relay.NewServer(cfg)
	if err != nil {
		return err
	}
	defer s.Close()
	fmt.Fprintf(out, "listening %v (STUN and TURN over UDP, realm %q, %d users)\n", s.Addr(), *realm, len(cfg.Users))
	<-ctx.Done()
	st := s.Stats()
	fmt.Fprintf(out, "stopped: %d allocations live, %d refused, %d failed authentication\n", st.Allocations, st.Refused, st.AuthFailed)
	return nil
}

var relayHelp = help{
	name:    "relay",
	summary: "a STUN and TURN server",
	desc: `Serves STUN (peers learn their public address) and TURN (peers relay
through it when no direct path works) over UDP, for netmsg ping --stun and
--turn, Config.STUNServers and TURNServers, and GNS programs. TURN clients
authenticate with one of the --user credentials. It listens on
127.0.0.1:3478 unless --listen says otherwise; to serve other machines,
listen on their side's address, or on 0.0.0.0:3478 with --relay-ip. It
runs until SIGINT or SIGTERM.
`,
	examples: []string{
		"netmsg relay --user alice:secret",
		"netmsg relay --listen 0.0.0.0:3478 --relay-ip 203.0.113.7 --user alice:secret --user bob:hunter2",
	},
}
