package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/signaling/lan"
)

// The chat speaks to GNS's example_chat: the same roles, the same
// reliable text messages, the same /nick and /quit commands.
//
//	netmsg chat --listen :27020           serve
//	netmsg chat --connect 127.0.0.1:27020 connect

const chatDefaultPort = 27020 // example_chat's default port

var chatHelp = help{
	name:    "chat",
	summary: "a chat server or client compatible with GameNetworkingSockets' example_chat",
	desc: `With --listen, serves a chat room on a UDP port: every client's lines go
to all the others; /nick NAME renames a client. The server runs until
SIGINT or SIGTERM, or /quit on its standard input, which it does not need:
it keeps serving when standard input is closed, so it runs in the
background. With --connect, joins a server (netmsg's or GNS's example_chat)
and relays lines between the terminal and the room until /quit, the end of
standard input, or the connection's end; it exits 1 if the server could
not be reached or the connection was lost.

Connections are encrypted. Without --cert, each side presents an unsigned
certificate; with --ca, a side requires the other's certificate to be
signed by that CA (netmsg cert issue, or GNS's certificate tool).

With --lan, the server is found on the LAN by its identity instead of its
address (multicast discovery, no signaling server: see docs/lan.md), and
the connection is P2P: the server needs --identity (the room's name, e.g.
str:room) and --listen takes its UDP address as usual (0 for any port);
the client gives the server's identity to --connect and its own to
--identity. This works between netmsg peers only (GNS's example_chat
connects by address).
`,
	examples: []string{
		"netmsg chat --listen 27020",
		"netmsg chat --connect 127.0.0.1:27020",
		"netmsg chat --connect chat.example.net      (port 27020, example_chat's)",
		"netmsg chat --listen :27020 --cert server.cert --key server.key --ca ca.key.pub </dev/null &",
		"netmsg chat --lan --listen 0 --identity str:room </dev/null &",
		"netmsg chat --lan --connect str:room --identity str:carol",
	},
}

func runChat(args []string, in io.Reader, out io.Writer) error {
	fs := newFlags("chat")
	listen := fs.String("listen", "", "serve on this UDP `address`: PORT or :PORT for every interface, IP:PORT for one")
	connect := fs.String("connect", "", "connect to the server at `HOST:PORT` (a host name or IP; the port defaults to 27020)")
	var cf certFlags
	cf.register(fs)
	ident := fs.String("identity", "", "this side's `identity` (default: the certificate's, or none; required with --lan)")
	lanFlag := fs.Bool("lan", false, "find the server on the LAN by its identity (--connect IDENTITY), P2P, without a signaling server (docs/lan.md)")
	if err := parseFlags(fs, chatHelp, args, out); err != nil {
		return err
	}
	if (*listen == "") == (*connect == "") {
		if *lanFlag {
			return usagef("give exactly one of --listen PORT and --connect IDENTITY")
		}
		return usagef("give exactly one of --listen PORT and --connect HOST:PORT")
	}
	var server netmsg.Identity
	if *lanFlag && *connect != "" {
		var err error
		if server, err = netmsg.ParseIdentity(*connect); err != nil {
			return usagef("--connect: with --lan, give the server's identity (e.g. str:room): %v", err)
		}
		if err := server.CheckTarget(); err != nil {
			return usagef("--connect: %v", err)
		}
	}
	cert, key, cas, err := cf.load(time.Now())
	if err != nil {
		return err
	}
	cfg := netmsg.Config{PrivateKey: key, Certificate: cert, TrustedCAs: cas, AppID: uint32(cf.app)}
	if *ident != "" {
		if cfg.Identity, err = netmsg.ParseIdentity(*ident); err != nil {
			return usagef("--identity: %v", err)
		}
	}
	if *lanFlag && !cfg.Identity.IsValid() && cert != nil {
		cfg.Identity, _ = netmsg.CertificateIdentity(cert)
	}
	if *lanFlag && !cfg.Identity.IsValid() {
		return usagef("--lan needs --identity (e.g. str:room for the server), unless --cert names one")
	}
	if *listen != "" {
		if cfg.ListenAddr, err = parseListen("listen", *listen); err != nil {
			return err
		}
	}
	if *lanFlag {
		// Announcements and signals are signed when a certificate is in
		// use; peers' certificates must then be signed by --ca if given,
		// else may be unsigned.
		lc := lan.Config{Identity: cfg.Identity.String(), Logger: slog.New(slog.DiscardHandler)}
		if cert != nil {
			lc.Key, lc.Certificate, lc.TrustedCAs, lc.AllowUnsigned, lc.AppID = key, cert, cas, len(cas) == 0, uint32(cf.app)
		}
		sig, err := lan.New(lc)
		if err != nil {
			return fmt.Errorf("LAN discovery: %w", err)
		}
		defer sig.Close() // after the Host: it says goodbye on the LAN
		cfg.Signaling = sig
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *listen != "" {
		return chatServer(ctx, cfg, in, out, nil)
	}
	if *lanFlag {
		return chatClientTo(ctx, cfg, server.String(), func(h *netmsg.Host) (netmsg.ConnHandle, error) { return h.ConnectP2P(server, 0, nil) }, in, out)
	}
	addr, err := resolveAddr(ctx, "connect", *connect, chatDefaultPort)
	if err != nil {
		return err
	}
	return chatClient(ctx, cfg, addr, in, out)
}

// lines reads in line by line onto a channel, closed at EOF.
func lines(in io.Reader) <-chan string {
	ch := make(chan string)
	go func() {
		defer close(ch)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			ch <- strings.TrimSpace(sc.Text())
		}
	}()
	return ch
}

// chatServer runs the chat server on a Host made from cfg until /quit on
// in or ctx ends; the end of in only stops reading it. ready, if not nil,
// receives the server's address once it listens. With cfg.Signaling, it
// listens for P2P connections to cfg.Identity (virtual port 0) instead of
// connections to its address.
func chatServer(ctx context.Context, cfg netmsg.Config, in io.Reader, out io.Writer, ready chan<- netip.AddrPort) error {
	s := &chatSrv{out: out, nicks: map[netmsg.ConnHandle]string{}}
	cfg.OnConnectionStatusChanged = s.statusChanged
	h, err := netmsg.NewHost(cfg)
	if err != nil {
		return err
	}
	s.h = h
	s.group = h.CreatePollGroup()
	if cfg.Signaling != nil {
		_, err = h.ListenP2P(0, nil)
	} else {
		_, err = h.Listen()
	}
	if err != nil {
		h.Close()
		return err
	}
	if cfg.Signaling != nil {
		fmt.Fprintf(out, "Server listening on %v as %v (P2P)\n", h.LocalAddr(), cfg.Identity)
	} else {
		fmt.Fprintf(out, "Server listening on %v\n", h.LocalAddr())
	}
	if ready != nil {
		ready <- h.LocalAddr()
	}
	input := lines(in)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.shutdown()
			return nil
		case cmd, ok := <-input:
			if !ok {
				// No terminal (or it closed): serve until a signal.
				input = nil
				continue
			}
			if cmd == "/quit" {
				fmt.Fprintln(out, "Shutting down server")
				s.shutdown()
				return nil
			}
			fmt.Fprintln(out, "The server only knows one command: '/quit'")
		case <-tick.C:
			s.receive()
		}
	}
}

type chatSrv struct {
	h     *netmsg.Host
	group netmsg.PollGroup
	out   io.Writer

	mu     sync.Mutex // guards nicks and next
	nicks  map[netmsg.ConnHandle]string
	nextID int
}

func (s *chatSrv) send(c netmsg.ConnHandle, text string) {
	s.h.SendMessageToConnection(c, []byte(text), netmsg.SendReliable)
}

// sendAllLocked sends text to every client but except.
func (s *chatSrv) sendAllLocked(text string, except netmsg.ConnHandle) {
	for c := range s.nicks {
		if c != except {
			s.send(c, text)
		}
	}
}

func (s *chatSrv) receive() {
	for {
		ms := s.h.ReceiveMessagesOnPollGroup(s.group, 16)
		if len(ms) == 0 {
			return
		}
		for _, m := range ms {
			s.handle(m.Connection, strings.TrimSpace(string(m.Payload)))
			m.Release()
		}
	}
}

func (s *chatSrv) handle(c netmsg.ConnHandle, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	nick, ok := s.nicks[c]
	if !ok {
		return
	}
	if rest, isNick := strings.CutPrefix(text, "/nick"); isNick {
		newNick := strings.TrimSpace(rest)
		if newNick == "" {
			s.send(c, "Usage: /nick NAME")
			return
		}
		s.sendAllLocked(fmt.Sprintf("%s is now called %s", nick, newNick), c)
		s.send(c, fmt.Sprintf("You are now called %s", newNick))
		s.nicks[c] = newNick
		return
	}
	s.sendAllLocked(fmt.Sprintf("%s: %s", nick, text), c)
}

func (s *chatSrv) statusChanged(ev netmsg.ConnStatusChanged) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch ev.Info.State {
	case netmsg.StateConnecting:
		if ev.Info.ListenSocket == netmsg.InvalidListen {
			return
		}
		fmt.Fprintf(s.out, "Connection request from %s\n", ev.Info.Description)
		if err := s.h.AcceptConnection(ev.Conn); err != nil {
			s.h.CloseConnection(ev.Conn, 0, "", false)
			fmt.Fprintf(s.out, "Cannot accept the connection: %v\n", err)
			return
		}
		s.h.SetConnectionPollGroup(ev.Conn, s.group)
		s.nextID++
		nick := fmt.Sprintf("Guest%d", s.nextID)
		s.send(ev.Conn, fmt.Sprintf("Welcome! You are %s for now; type /nick NAME to change it.", nick))
		if len(s.nicks) == 0 {
			s.send(ev.Conn, "Nobody else is here.")
		} else {
			s.send(ev.Conn, fmt.Sprintf("%d others are here:", len(s.nicks)))
			for _, n := range s.nicks {
				s.send(ev.Conn, n)
			}
		}
		s.sendAllLocked(fmt.Sprintf("%s has joined.", nick), ev.Conn)
		s.nicks[ev.Conn] = nick
	case netmsg.StateClosedByPeer, netmsg.StateProblemDetectedLocally:
		nick, ok := s.nicks[ev.Conn]
		if ok {
			delete(s.nicks, ev.Conn)
			if ev.Info.State == netmsg.StateProblemDetectedLocally {
				s.sendAllLocked(fmt.Sprintf("%s was lost (%s).", nick, ev.Info.EndDebug), 0)
			} else {
				s.sendAllLocked(fmt.Sprintf("%s has left.", nick), 0)
			}
		}
		fmt.Fprintf(s.out, "Connection %s ended, reason %d: %s\n", ev.Info.Description, ev.Info.EndReason, ev.Info.EndDebug)
		s.h.CloseConnection(ev.Conn, 0, "", false)
	}
}

func (s *chatSrv) shutdown() {
	s.mu.Lock()
	for c := range s.nicks {
		s.send(c, "The server is shutting down. Goodbye.")
		s.h.CloseConnection(c, 0, "Server Shutdown", true)
	}
	s.nicks = map[netmsg.ConnHandle]string{}
	s.mu.Unlock()
	// Give lingering connections a moment to deliver and close.
	time.Sleep(500 * time.Millisecond)
	s.h.Close()
}

// chatEnd is how a client's connection ended: what to print, and whether
// the command failed.
type chatEnd struct {
	msg    string
	failed bool
}

// chatClient connects a Host made from cfg to addr and relays lines both
// ways until /quit, the end of in, ctx, or the connection ending. It
// returns an error when the server could not be reached or the connection
// was lost.
func chatClient(ctx context.Context, cfg netmsg.Config, addr netip.AddrPort, in io.Reader, out io.Writer) error {
	return chatClientTo(ctx, cfg, addr.String(), func(h *netmsg.Host) (netmsg.ConnHandle, error) { return h.Connect(addr) }, in, out)
}

// chatClientTo is chatClient for a server named by target (an address or
// an identity) and reached by connect.
func chatClientTo(ctx context.Context, cfg netmsg.Config, target string, connect func(*netmsg.Host) (netmsg.ConnHandle, error), in io.Reader, out io.Writer) error {
	ended := make(chan chatEnd, 1)
	connected := make(chan struct{}, 1)
	cfg.OnConnectionStatusChanged = func(ev netmsg.ConnStatusChanged) {
		var end chatEnd
		switch ev.Info.State {
		case netmsg.StateConnected:
			fmt.Fprintln(out, "Connected to server OK")
			select {
			case connected <- struct{}{}:
			default:
			}
			return
		case netmsg.StateClosedByPeer, netmsg.StateProblemDetectedLocally:
			reason := fmt.Sprintf("%s, end reason %d", ev.Info.EndDebug, int(ev.Info.EndReason))
			switch {
			case ev.OldState == netmsg.StateConnecting || ev.OldState == netmsg.StateFindingRoute:
				end = chatEnd{fmt.Sprintf("could not reach the server at %v (%s)", target, reason), true}
			case ev.Info.State == netmsg.StateProblemDetectedLocally:
				end = chatEnd{fmt.Sprintf("lost contact with the server (%s)", reason), true}
			default:
				end = chatEnd{fmt.Sprintf("The server closed the connection. (%s)", ev.Info.EndDebug), false}
			}
		default:
			return
		}
		select {
		case ended <- end:
		default:
		}
	}
	h, err := netmsg.NewHost(cfg)
	if err != nil {
		return err
	}
	defer h.Close()
	fmt.Fprintf(out, "Connecting to chat server at %v\n", target)
	c, err := connect(h)
	if err != nil {
		return err
	}
	// Standard input is read once connected, so that its end (a script,
	// or no terminal) does not end the attempt before it has succeeded or
	// failed.
	var input <-chan string
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	start := time.Now()
	nextNote := start.Add(2 * time.Second)
	for {
		if now := time.Now(); now.After(nextNote) {
			if info, err := h.ConnectionInfo(c); err == nil && (info.State == netmsg.StateConnecting || info.State == netmsg.StateFindingRoute) {
				fmt.Fprintf(out, "Still connecting to %v after %v (no answer yet)\n", target, now.Sub(start).Truncate(time.Second))
			}
			nextNote = now.Add(2 * time.Second)
		}
		select {
		case <-connected:
			input = lines(in)
		case <-ctx.Done():
			h.CloseConnection(c, 0, "Goodbye", true)
			return nil
		case end := <-ended:
			for _, m := range h.ReceiveMessagesOnConnection(c, 100) {
				fmt.Fprintln(out, string(m.Payload))
				m.Release()
			}
			h.CloseConnection(c, 0, "", false)
			if end.failed {
				return errors.New(end.msg)
			}
			fmt.Fprintln(out, end.msg)
			return nil
		case cmd, ok := <-input:
			if !ok || cmd == "/quit" {
				fmt.Fprintln(out, "Disconnecting from chat server")
				h.CloseConnection(c, 0, "Goodbye", true)
				time.Sleep(200 * time.Millisecond) // let the linger finish
				return nil
			}
			if cmd == "" {
				continue
			}
			if _, err := h.SendMessageToConnection(c, []byte(cmd), netmsg.SendReliable); err != nil {
				fmt.Fprintf(out, "send: %v\n", err)
			}
		case <-tick.C:
			for _, m := range h.ReceiveMessagesOnConnection(c, 100) {
				fmt.Fprintln(out, string(m.Payload))
				m.Release()
			}
		}
	}
}
