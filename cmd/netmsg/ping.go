package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
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
	"github.com/netmsg-go/netmsg/signaling/lan"
)

// runPing is `netmsg ping`: a Messages peer for checks by hand.
func runPing(args []string, out io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return runPingCtx(ctx, args, out)
}

var pingHelp = help{
	name:    "ping",
	summary: "a Messages peer over P2P, for checks by hand",
	desc: `Registers --identity with the signaling server (or, with --lan, announces
it on the LAN by multicast, with no server: see docs/lan.md), then sends
--count pings to --peer through the Messages API and prints each pong's
round trip and route (direct, or through the TURN relay). With --count 0
it only answers pings, until --timeout or SIGINT/SIGTERM. While the
session is being made it says what it waits for (signaling, ICE, relay).
It exits 1 if not every ping was answered.
`,
	examples: []string{
		"netmsg ping --identity str:bob --signaling 127.0.0.1:10000 --count 0 --timeout 1h",
		"netmsg ping --identity str:alice --peer str:bob --signaling 127.0.0.1:10000",
		"netmsg ping --identity str:alice --peer str:bob --signaling sig.example.net:10000 --turn relay.example.net:3478 --turn-user u --turn-pass p",
		"netmsg ping --cert alice.cert --key alice.key --ca ca.key.pub --auth --peer str:bob --signaling 127.0.0.1:10000",
		"netmsg ping --lan --identity str:bob --count 0 --timeout 1h      (on one machine of the LAN)",
		"netmsg ping --lan --identity str:alice --peer str:bob           (on another)",
	},
}

func runPingCtx(ctx context.Context, args []string, out io.Writer) error {
	fs := newFlags("ping")
	idFlag := fs.String("identity", "", "this peer's `identity`, e.g. str:alice (required unless --cert names one)")
	peerFlag := fs.String("peer", "", "the peer to ping, e.g. str:bob (required unless --count 0)")
	sigAddr := fs.String("signaling", "", "signaling server `HOST:PORT` (netmsg signal, or GNS's trivial server) (required unless --lan)")
	lanFlag := fs.Bool("lan", false, "find peers on the LAN by multicast instead of through a signaling server (docs/lan.md)")
	auth := fs.Bool("auth", false, "use netmsg's authenticated signaling (with an unsigned certificate unless --cert is given); with --lan, sign announcements and signals")
	var cf certFlags
	cf.register(fs)
	listen := fs.String("listen", "0.0.0.0:0", "local UDP `address` of this peer's socket (port 0: any)")
	count := fs.Int("count", 5, "pings to send; 0 only answers")
	channel := fs.Int("channel", 0, "Messages channel, 0 or more")
	interval := fs.Duration("interval", 200*time.Millisecond, "time between pings (more than 0)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long (with --count 0: stop answering) (more than 0)")
	stunFlag := fs.String("stun", "", "STUN server `HOST:PORT` for a server-reflexive candidate (netmsg relay serves STUN too)")
	turnFlag := fs.String("turn", "", "TURN server `HOST:PORT` to relay through when no direct path works (needs --turn-user and --turn-pass)")
	turnUser := fs.String("turn-user", "", "TURN user name")
	turnPass := fs.String("turn-pass", "", "TURN password")
	relayOnly := fs.Bool("relay-only", false, "use only paths through the TURN server (needs --turn)")
	iceEnable := fs.Int("ice-enable", 0, "GNS's P2P_Transport_ICE_Enable `bitmask`: 1 relay, 2 private host addresses, 4 public and STUN ones (0: all)")
	verbose := fs.Bool("v", false, "log the Host's debug events (paths, relay errors) to standard error")
	if err := parseFlags(fs, pingHelp, args, out); err != nil {
		return err
	}
	// Every flag is checked before anything starts.
	switch {
	case *count < 0:
		return usagef("--count must be 0 or more (got %d)", *count)
	case *channel < 0:
		return usagef("--channel must be 0 or more (got %d)", *channel)
	case *iceEnable < 0 || *iceEnable > 7:
		return usagef("--ice-enable must be 0 to 7 (got %d)", *iceEnable)
	case *lanFlag && *sigAddr != "":
		return usagef("--lan and --signaling exclude each other: give one")
	case !*lanFlag && *sigAddr == "":
		return usagef("--signaling is required (HOST:PORT of netmsg signal or GNS's trivial server), or --lan")
	case *turnFlag == "" && (*turnUser != "" || *turnPass != ""):
		return usagef("--turn-user and --turn-pass need --turn")
	case *turnFlag != "" && (*turnUser == "" || *turnPass == ""):
		return usagef("--turn needs --turn-user and --turn-pass")
	case *relayOnly && *turnFlag == "":
		return usagef("--relay-only needs --turn")
	case *count > 0 && *peerFlag == "":
		return usagef("--peer is required to send pings (or give --count 0 to only answer)")
	}
	if err := positive("interval", *interval); err != nil {
		return err
	}
	if err := positive("timeout", *timeout); err != nil {
		return err
	}
	cert, key, cas, err := cf.load(time.Now())
	if err != nil {
		return err
	}
	var id netmsg.Identity
	if *idFlag != "" {
		if id, err = netmsg.ParseIdentity(*idFlag); err != nil {
			return usagef("--identity: %v", err)
		}
	}
	if cert != nil {
		certID, err := netmsg.CertificateIdentity(cert)
		if err != nil {
			return usagef("--cert: %v", err)
		}
		switch {
		case !id.IsValid():
			id = certID
		case certID.IsValid() && certID != id:
			return usagef("--identity %v, but --cert %s is for %v", id, cf.cert, certID)
		}
	}
	if !id.IsValid() {
		return usagef("--identity is required (e.g. str:alice), unless --cert names one")
	}
	var peer netmsg.Identity
	if *count > 0 {
		if peer, err = netmsg.ParseIdentity(*peerFlag); err != nil {
			return usagef("--peer: %v", err)
		}
		if err := peer.CheckTarget(); err != nil {
			return usagef("--peer: %v", err)
		}
	}
	la, err := parseListen("listen", *listen)
	if err != nil {
		return err
	}
	if !*lanFlag {
		if _, err := resolveAddr(ctx, "signaling", *sigAddr, 0); err != nil {
			return err
		}
	}
	var stunServers []netip.AddrPort
	if *stunFlag != "" {
		a, err := resolveAddr(ctx, "stun", *stunFlag, 3478)
		if err != nil {
			return err
		}
		stunServers = append(stunServers, a)
	}
	var turnServers []netmsg.TURNServer
	if *turnFlag != "" {
		a, err := resolveAddr(ctx, "turn", *turnFlag, 3478)
		if err != nil {
			return err
		}
		turnServers = append(turnServers, netmsg.TURNServer{Addr: a, Username: *turnUser, Password: *turnPass})
	}
	if key == nil {
		_, key, _ = ed25519.GenerateKey(rand.Reader)
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if (*auth || cert != nil) && cert == nil {
		if cert, err = netmsg.UnsignedCertificate(id, key, 0); err != nil {
			return err
		}
	}
	var sig signaling.Conn
	via := "the signaling server"
	switch {
	case *lanFlag:
		// Announcements and signals are signed when a certificate is in
		// use; peers' certificates must then be signed by --ca if given,
		// else may be unsigned (bound to their keys while announced).
		lc := lan.Config{Identity: id.String(), Logger: pingLogger(*verbose)}
		if lc.Logger == nil {
			lc.Logger = slog.New(slog.DiscardHandler)
		}
		if cert != nil {
			lc.Key, lc.Certificate, lc.TrustedCAs, lc.AllowUnsigned, lc.AppID = key, cert, cas, len(cas) == 0, uint32(cf.app)
		}
		if sig, err = lan.New(lc); err != nil {
			return fmt.Errorf("LAN discovery: %w", err)
		}
		via = viaLAN
	case cert != nil:
		sig, err = signaling.Dial(ctx, *sigAddr, signaling.ClientConfig{Identity: id.String(), Key: key, Certificate: cert})
	default:
		sig, err = signaling.DialTrivial(ctx, *sigAddr, id.String())
	}
	if err != nil {
		return fmt.Errorf("signaling server %s: %w (is netmsg signal running there?)", *sigAddr, err)
	}
	defer sig.Close()
	var ms *netmsg.Messages
	msReady := make(chan struct{}) // closed once ms is set: a request may come before NewHost returns
	h, err := netmsg.NewHost(netmsg.Config{
		Identity: id, PrivateKey: key, Certificate: cert, TrustedCAs: cas, AppID: uint32(cf.app), ListenAddr: la, Signaling: sig,
		STUNServers: stunServers, TURNServers: turnServers, P2PRelayOnly: *relayOnly, P2PICEEnable: netmsg.ICEEnable(*iceEnable),
		Logger: pingLogger(*verbose),
		OnSessionRequest: func(p netmsg.Identity) {
			select {
			case <-msReady:
				ms.AcceptSessionWithUser(p)
			case <-ctx.Done():
			}
		},
		OnSessionFailed: func(info netmsg.ConnectionInfo) {
			fmt.Fprintf(out, "session with %v failed: %v (%d) %s\n", info.Identity, info.EndReason, int(info.EndReason), info.EndDebug)
		},
	})
	if err != nil {
		return err
	}
	defer h.Close()
	ms = h.Messages()
	close(msReady)
	// On the way out, close the sessions (before the Host): the peers
	// hear a session close, not a dead connection that may hold our
	// last acks, and report no failure.
	peers := map[netmsg.Identity]bool{}
	if *count > 0 {
		peers[peer] = true
	}
	defer func() {
		for p := range peers {
			ms.CloseSessionWithUser(p)
		}
	}()
	if *lanFlag {
		fmt.Fprintf(out, "%v on %v, LAN discovery on %v\n", id, h.LocalAddr(), lan.DefaultGroup)
	} else {
		fmt.Fprintf(out, "%v on %v, signaling %s\n", id, h.LocalAddr(), *sigAddr)
	}
	prog := progress{out: out, peer: peer, ms: ms, via: via}
	watch := time.NewTicker(250 * time.Millisecond)
	defer watch.Stop()

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
			return fmt.Errorf("%d of %d pongs before the timeout (%v); %s", pongs, *count, *timeout, prog.hint())
		case <-watch.C:
			if *count > 0 {
				prog.check()
			}
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
					return fmt.Errorf("%d of %d pongs before the timeout (%v); %s", pongs, *count, *timeout, prog.hint())
				}
				return errors.New("the Host closed")
			}
			text := string(m.Payload)
			from := m.Identity
			m.Release()
			switch {
			case strings.HasPrefix(text, "ping "):
				peers[from] = true
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

// viaLAN is progress.via for peers found by LAN discovery.
const viaLAN = "LAN discovery"

// progress prints the state of the session with peer when it changes, so
// that a long wait (signaling, ICE checks, a relay allocation) is not
// silent.
type progress struct {
	out  io.Writer
	peer netmsg.Identity
	ms   *netmsg.Messages
	via  string // what carries the signals: "the signaling server", "LAN discovery"

	last  netmsg.ConnectionState
	since time.Time
	said  bool
}

func (p *progress) check() {
	st, info, _ := p.ms.GetSessionConnectionInfo(p.peer)
	now := time.Now()
	if p.since.IsZero() {
		p.since = now
	}
	if p.said && st == p.last {
		if st != netmsg.StateConnected && now.Sub(p.since) >= 5*time.Second {
			fmt.Fprintf(p.out, "still %s after %v\n", p.describe(st, info), now.Sub(p.since).Truncate(time.Second))
			p.since = now
		}
		return
	}
	p.last, p.since, p.said = st, now, true
	fmt.Fprintf(p.out, "session with %v: %s\n", p.peer, p.describe(st, info))
}

func (p *progress) describe(st netmsg.ConnectionState, info netmsg.ConnectionInfo) string {
	switch st {
	case netmsg.StateNone:
		return "none yet"
	case netmsg.StateConnecting:
		return "connecting (waiting for the peer's answer through " + p.via + ")"
	case netmsg.StateFindingRoute:
		return "finding a route (ICE checks on the peer's candidates, and the TURN relay if given)"
	case netmsg.StateConnected:
		if info.Flags&netmsg.ConnInfoRelayed != 0 {
			return "connected through the TURN relay"
		}
		return fmt.Sprintf("connected directly (%v)", info.RemoteAddress)
	}
	return fmt.Sprintf("%v: %v %s", st, info.EndReason, info.EndDebug)
}

// hint says what to check when no pong came.
func (p *progress) hint() string {
	switch p.last {
	case netmsg.StateNone, netmsg.StateConnecting:
		if p.via == viaLAN {
			return fmt.Sprintf("the peer never answered on the LAN: is it running with --lan and that identity on this network, and do firewalls let in UDP to port %d?", lan.DefaultGroup.Port())
		}
		return "the peer never answered through the signaling server: is it registered there with that identity?"
	case netmsg.StateFindingRoute:
		return "no route to the peer was found: give --stun, or --turn with its credentials"
	}
	return "the session was " + p.last.String()
}
