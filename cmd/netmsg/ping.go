package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/signaling"
)

// runPing is `netmsg ping`: a Messages peer for checks by hand.
func runPing(args []string, out io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runPingCtx(ctx, args, out)
}

func runPingCtx(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("ping", flag.ContinueOnError)
	fs.SetOutput(out)
	idFlag := fs.String("identity", "", "this peer's identity, e.g. str:alice (required)")
	peerFlag := fs.String("peer", "", "the peer to ping, e.g. str:bob (required unless --count 0)")
	sigAddr := fs.String("signaling", "", "signaling server HOST:PORT (netmsg signal, or GNS's trivial server) (required)")
	auth := fs.Bool("auth", false, "use netmsg's authenticated signaling (with an unsigned certificate unless --cert is given)")
	certFile := fs.String("cert", "", "certificate file (netmsg cert issue); needs --key")
	keyFile := fs.String("key", "", "Ed25519 key file (OpenSSH format)")
	listen := fs.String("listen", "0.0.0.0:0", "UDP address of this peer's socket")
	count := fs.Int("count", 5, "pings to send; 0 only answers")
	channel := fs.Int("channel", 0, "Messages channel")
	interval := fs.Duration("interval", 200*time.Millisecond, "time between pings")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long (with --count 0: stop answering)")
	stunFlag := fs.String("stun", "", "STUN server HOST:PORT for a server-reflexive candidate (netmsg relay serves STUN too)")
	turnFlag := fs.String("turn", "", "TURN server HOST:PORT to relay through when no direct path works")
	turnUser := fs.String("turn-user", "", "TURN user name")
	turnPass := fs.String("turn-pass", "", "TURN password")
	relayOnly := fs.Bool("relay-only", false, "use only paths through the TURN server")
	iceEnable := fs.Int("ice-enable", 0, "GNS's P2P_Transport_ICE_Enable bitmask: 1 relay, 2 private host addresses, 4 public and STUN ones (0: all)")
	verbose := fs.Bool("v", false, "log the Host's debug events (paths, relay errors) to standard error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	id, err := netmsg.ParseIdentity(*idFlag)
	if err != nil || *sigAddr == "" {
		return fmt.Errorf("ping: --identity and --signaling are required (identity: %v)", err)
	}
	var peer netmsg.Identity
	if *count > 0 {
		if peer, err = netmsg.ParseIdentity(*peerFlag); err != nil {
			return fmt.Errorf("ping: --peer: %w", err)
		}
	}
	la, err := netip.ParseAddrPort(*listen)
	if err != nil {
		return fmt.Errorf("ping: --listen: %w", err)
	}
	var key ed25519.PrivateKey
	var cert []byte
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return err
		}
		if key, err = netmsg.ParsePrivateKey(b); err != nil {
			return err
		}
	} else {
		_, key, _ = ed25519.GenerateKey(rand.Reader)
	}
	if *certFile != "" {
		b, err := os.ReadFile(*certFile)
		if err != nil {
			return err
		}
		if cert, err = netmsg.ParseCertificatePEM(b); err != nil {
			return err
		}
	}
	var stunServers []netip.AddrPort
	if *stunFlag != "" {
		a, err := netip.ParseAddrPort(*stunFlag)
		if err != nil {
			return fmt.Errorf("ping: --stun: %w", err)
		}
		stunServers = append(stunServers, a)
	}
	var turnServers []netmsg.TURNServer
	if *turnFlag != "" {
		a, err := netip.ParseAddrPort(*turnFlag)
		if err != nil {
			return fmt.Errorf("ping: --turn: %w", err)
		}
		turnServers = append(turnServers, netmsg.TURNServer{Addr: a, Username: *turnUser, Password: *turnPass})
	} else if *relayOnly {
		return errors.New("ping: --relay-only needs --turn")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var sig signaling.Conn
	if *auth || cert != nil {
		if cert == nil {
			if cert, err = netmsg.UnsignedCertificate(id, key, 0); err != nil {
				return err
			}
		}
		sig, err = signaling.Dial(ctx, *sigAddr, signaling.ClientConfig{Identity: id.String(), Key: key, Certificate: cert})
	} else {
		sig, err = signaling.DialTrivial(ctx, *sigAddr, id.String())
	}
	if err != nil {
		return fmt.Errorf("ping: signaling: %w", err)
	}
	defer sig.Close()
	var ms *netmsg.Messages
	h, err := netmsg.NewHost(netmsg.Config{
		Identity: id, PrivateKey: key, Certificate: cert, ListenAddr: la, Signaling: sig,
		STUNServers: stunServers, TURNServers: turnServers, P2PRelayOnly: *relayOnly, P2PICEEnable: netmsg.ICEEnable(*iceEnable),
		Logger:           pingLogger(*verbose),
		OnSessionRequest: func(p netmsg.Identity) { ms.AcceptSessionWithUser(p) },
		OnSessionFailed: func(info netmsg.ConnectionInfo) {
			fmt.Fprintf(out, "session with %v failed: %v %s\n", info.Identity, info.EndReason, info.EndDebug)
		},
	})
	if err != nil {
		return err
	}
	defer h.Close()
	ms = h.Messages()
	fmt.Fprintf(out, "%v on %v, signaling %s\n", id, h.LocalAddr(), *sigAddr)

	sent := map[int]time.Time{}
	pongs := 0
	var tick <-chan time.Time
	if *count > 0 {
		t := time.NewTicker(*interval)
		defer t.Stop()
		tick = t.C
	}
	next := 0
	msgs := make(chan *netmsg.Message, 64)
	go func() {
		for {
			m, err := ms.Receive(ctx, *channel)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- m
		}
	}()
	for {
		select {
		case <-ctx.Done():
			if *count == 0 {
				return nil
			}
			return fmt.Errorf("ping: %d of %d pongs before the timeout", pongs, *count)
		case <-tick:
			if next < *count {
				sent[next] = time.Now()
				if err := ms.SendMessageToUser(peer, fmt.Appendf(nil, "ping %d", next), netmsg.SendReliable|netmsg.SendNoNagle, *channel); err != nil {
					fmt.Fprintf(out, "send ping %d: %v\n", next, err)
				}
				next++
			}
		case m, ok := <-msgs:
			if !ok {
				if ctx.Err() != nil {
					// The receiver stopped because ctx ended: the same as
					// the ctx.Done case above, whichever select picked.
					if *count == 0 {
						return nil
					}
					return fmt.Errorf("ping: %d of %d pongs before the timeout", pongs, *count)
				}
				return errors.New("ping: the Host closed")
			}
			text := string(m.Payload)
			from := m.Identity
			m.Release()
			switch {
			case strings.HasPrefix(text, "ping "):
				ms.SendMessageToUser(from, []byte("pong "+strings.TrimPrefix(text, "ping ")), netmsg.SendReliable|netmsg.SendNoNagle, *channel)
				if *count == 0 {
					fmt.Fprintf(out, "answered %q from %v\n", text, from)
				}
			case strings.HasPrefix(text, "pong "):
				var i int
				if _, err := fmt.Sscanf(text, "pong %d", &i); err != nil {
					continue
				}
				if t, ok := sent[i]; ok {
					delete(sent, i)
					pongs++
					_, info, _ := ms.GetSessionConnectionInfo(from)
					via := info.RemoteAddress.String()
					if info.Flags&netmsg.ConnInfoRelayed != 0 {
						via = "TURN relay: " + info.Description
					}
					fmt.Fprintf(out, "pong %d from %v: %.2f ms (via %v)\n", i, from, float64(time.Since(t).Microseconds())/1000, via)
				}
				if pongs == *count {
					return nil
				}
			}
		}
	}
}

func pingLogger(verbose bool) *slog.Logger {
	if !verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
