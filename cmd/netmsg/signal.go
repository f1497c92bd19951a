package main

import (
	"context"
	"crypto/ed25519"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
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
	fs := flag.NewFlagSet("signal", flag.ContinueOnError)
	fs.SetOutput(out)
	listen := fs.String("listen", ":10000", "TCP address to listen on (GNS's trivial signaling uses port 10000)")
	var cas stringList
	fs.Var(&cas, "ca", "a CA public key file (OpenSSH format, from netmsg cert ca) whose certificates authenticated clients may present; repeatable")
	unsigned := fs.Bool("allow-unsigned", false, "let authenticated clients present unsigned certificates (they still prove they hold the key)")
	noTrivial := fs.Bool("no-trivial", false, "refuse GNS's trivial protocol (whose clients claim identities without proof)")
	verbose := fs.Bool("v", false, "log every client event")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg := signaling.ServerConfig{AllowUnsigned: *unsigned, NoTrivial: *noTrivial}
	for _, f := range cas {
		b, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		k, err := netmsg.ParseAuthorizedKey(b)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		cfg.TrustedCAs = append(cfg.TrustedCAs, ed25519.PublicKey(k))
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(out, nil))
	}
	s, err := signaling.NewServer(cfg)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "listening %s (trivial protocol %s, %d trusted CAs, unsigned certificates %s)\n",
		l.Addr(), onOff(!*noTrivial), len(cfg.TrustedCAs), onOff(*unsigned))
	done := make(chan error, 1)
	go func() { done <- s.Serve(l) }()
	select {
	case <-ctx.Done():
		s.Close()
		<-done
		st := s.Stats()
		fmt.Fprintf(out, "stopped: %d registrations, %d signals forwarded, %d to nobody, %d rate-limited, %d refused, %d failed authentication\n",
			st.Registered, st.Forwarded, st.NoRecipient, st.RateLimited, st.Refused, st.AuthFailed)
		return nil
	case err := <-done:
		s.Close()
		return err
	}
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
