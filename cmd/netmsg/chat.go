package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/netmsg-go/netmsg"
)

// The chat speaks to GNS's example_chat: the same roles, the same
// reliable text messages, the same /nick and /quit commands.
//
//	netmsg chat --listen :27020           serve
//	netmsg chat --connect 127.0.0.1:27020 connect

const chatDefaultPort = 27020 // example_chat's default port

func runChat(args []string, in io.Reader, out io.Writer) error {
	fs := flag.NewFlagSet("chat", flag.ContinueOnError)
	fs.SetOutput(out)
	listen := fs.String("listen", "", "serve on this address (\":PORT\" for every address)")
	connect := fs.String("connect", "", "connect to the server at HOST:PORT")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch {
	case *listen != "" && *connect == "":
		addr, err := parseListenAddr(*listen)
		if err != nil {
			return err
		}
		return chatServer(ctx, addr, in, out, nil)
	case *connect != "" && *listen == "":
		addr, err := parseConnectAddr(*connect)
		if err != nil {
			return err
		}
		return chatClient(ctx, addr, in, out)
	}
	return errors.New("chat: give exactly one of --listen and --connect")
}

// parseListenAddr accepts ":PORT", "HOST:PORT" and "PORT".
func parseListenAddr(s string) (netip.AddrPort, error) {
	if !strings.Contains(s, ":") {
		s = ":" + s
	}
	if strings.HasPrefix(s, ":") {
		s = "[::]" + s
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("chat: listen address %q: %v", s, err)
	}
	return ap, nil
}

// parseConnectAddr accepts GNS's address forms ("1.2.3.4:5", "[::1]:5",
// "1.2.3.4" with the default port).
func parseConnectAddr(s string) (netip.AddrPort, error) {
	if ap, err := netmsg.ParseIPAddr(s); err == nil {
		if ap.Port() == 0 {
			ap = netip.AddrPortFrom(ap.Addr(), chatDefaultPort)
		}
		return ap, nil
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	return netip.AddrPort{}, fmt.Errorf("chat: bad server address %q", s)
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

// chatServer runs the chat server until /quit on in, ctx ends, or in ends.
// ready, if not nil, receives the server's address once it listens.
func chatServer(ctx context.Context, addr netip.AddrPort, in io.Reader, out io.Writer, ready chan<- netip.AddrPort) error {
	s := &chatSrv{out: out, nicks: map[netmsg.ConnHandle]string{}}
	h, err := netmsg.NewHost(netmsg.Config{
		ListenAddr:                addr,
		OnConnectionStatusChanged: s.statusChanged,
	})
	if err != nil {
		return err
	}
	s.h = h
	s.group = h.CreatePollGroup()
	if _, err := h.Listen(); err != nil {
		h.Close()
		return err
	}
	fmt.Fprintf(out, "Server listening on %v\n", h.LocalAddr())
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
			if !ok || cmd == "/quit" {
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

// chatClient connects to addr and relays lines both ways until /quit, the
// end of in, ctx, or the connection ending.
func chatClient(ctx context.Context, addr netip.AddrPort, in io.Reader, out io.Writer) error {
	ended := make(chan string, 1)
	var h *netmsg.Host
	h, err := netmsg.NewHost(netmsg.Config{
		OnConnectionStatusChanged: func(ev netmsg.ConnStatusChanged) {
			switch ev.Info.State {
			case netmsg.StateConnected:
				fmt.Fprintln(out, "Connected to server OK")
			case netmsg.StateClosedByPeer, netmsg.StateProblemDetectedLocally:
				var msg string
				switch {
				case ev.OldState == netmsg.StateConnecting:
					msg = fmt.Sprintf("Could not reach the server. (%s)", ev.Info.EndDebug)
				case ev.Info.State == netmsg.StateProblemDetectedLocally:
					msg = fmt.Sprintf("Lost contact with the server. (%s)", ev.Info.EndDebug)
				default:
					msg = fmt.Sprintf("The server closed the connection. (%s)", ev.Info.EndDebug)
				}
				select {
				case ended <- msg:
				default:
				}
			}
		},
	})
	if err != nil {
		return err
	}
	defer h.Close()
	fmt.Fprintf(out, "Connecting to chat server at %v\n", addr)
	c, err := h.Connect(addr)
	if err != nil {
		return err
	}
	input := lines(in)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			h.CloseConnection(c, 0, "Goodbye", true)
			return nil
		case msg := <-ended:
			for _, m := range h.ReceiveMessagesOnConnection(c, 100) {
				fmt.Fprintln(out, string(m.Payload))
				m.Release()
			}
			fmt.Fprintln(out, msg)
			h.CloseConnection(c, 0, "", false)
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
