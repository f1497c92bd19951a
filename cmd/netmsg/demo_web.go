package main

import (
	"context"
	_ "embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/signaling"
	"github.com/netmsg-go/netmsg/web"
)

// netmsg demo --web: alice, bob and carol as Go Hosts on real sockets, a
// signaling server, and an HTTP server with a page (demo_web.html) from
// which a person in a browser joins them: chat on channel 0 (reliable),
// a moving dot on channel 1 (unreliable, 30 Hz each way), and a table of
// the tab's sessions with their route and ping. alice also forwards each
// tab's chat lines and dot to the other tabs, so people see each other.

//go:embed demo_web.html
var demoWebPage []byte

const (
	demoDotHz    = 30
	demoWebEvery = 5 * time.Second // the terminal's live view
)

type webBot struct {
	name string
	h    *netmsg.Host
	m    *netmsg.Messages
	mu   sync.Mutex
	tabs map[netmsg.Identity]bool // browser peers in session
}

func (b *webBot) addTab(id netmsg.Identity) {
	b.mu.Lock()
	b.tabs[id] = true
	b.mu.Unlock()
}

func (b *webBot) tabList() []netmsg.Identity {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]netmsg.Identity, 0, len(b.tabs))
	for id := range b.tabs {
		out = append(out, id)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

// sendTab sends to a tab; a tab whose session failed (closed, gone) is
// forgotten.
func (b *webBot) sendTab(id netmsg.Identity, data []byte, flags netmsg.SendFlags, ch int) {
	err := b.m.SendMessageToUser(id, data, flags, ch)
	var ce *netmsg.ConnError
	if errors.As(err, &ce) || errors.Is(err, netmsg.ResultNoConnection) {
		b.m.CloseSessionWithUser(id)
		b.mu.Lock()
		delete(b.tabs, id)
		b.mu.Unlock()
	}
}

// runDemoWeb serves the web demo on addr until ctx ends; ready, if not
// nil, gets the page's URL once it serves.
func runDemoWeb(ctx context.Context, addr string, out io.Writer, ready func(url string)) error {
	quiet := slog.New(slog.DiscardHandler)
	ss, err := signaling.NewServer(signaling.ServerConfig{Logger: quiet})
	if err != nil {
		return err
	}
	defer ss.Close()
	tcp, err := ss.Listen("127.0.0.1:0")
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("demo: --web-addr: %w", err)
	}
	la, _ := netip.ParseAddrPort(l.Addr().String())
	// A page on this machine (a loopback address) reaches the Hosts on
	// loopback; otherwise ICE uses every interface.
	var hostAddrs []netip.Addr
	listen := netip.AddrPort{}
	if la.Addr().IsLoopback() {
		hostAddrs = []netip.Addr{la.Addr().Unmap()}
		listen = netip.AddrPortFrom(la.Addr().Unmap(), 0)
	}
	var bots []*webBot
	defer func() {
		for _, b := range bots {
			b.h.Close()
		}
	}()
	var peers []string
	for _, name := range hostNames {
		id := "str:" + name
		sc, err := signaling.DialTrivial(ctx, tcp.String(), id)
		if err != nil {
			return err
		}
		defer sc.Close()
		b := &webBot{name: name, tabs: map[netmsg.Identity]bool{}}
		h, err := netmsg.NewHost(netmsg.Config{
			Identity: mustParseIdentity(id), ListenAddr: listen, Signaling: sc, Logger: quiet,
			WebRTC:           netmsg.WebRTCConfig{HostAddrs: hostAddrs},
			OnSessionRequest: func(peer netmsg.Identity) { b.m.AcceptSessionWithUser(peer) },
			OnSessionConnected: func(info netmsg.ConnectionInfo) {
				b.addTab(info.Identity)
				fmt.Fprintf(out, "%s: session with %v: %s\n", name, info.Identity, info.Description)
			},
		})
		if err != nil {
			return err
		}
		b.h, b.m = h, h.Messages()
		bots = append(bots, b)
		peers = append(peers, id)
	}
	cfg, _ := json.Marshal(map[string]any{"peers": peers})
	mux := http.NewServeMux()
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(demoWebPage)
	})
	mux.HandleFunc("/demo.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(cfg)
	})
	mux.Handle("/netmsg.js", web.Handler())
	mux.Handle("/signal", ss.WebSocketHandler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go hs.Serve(l)
	defer hs.Close()
	url := "http://" + l.Addr().String() + "/"
	fmt.Fprintf(out, "web demo: open %s in a browser (alice, bob and carol are waiting; Ctrl-C ends)\n", url)
	if ready != nil {
		ready(url)
	}

	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for i, b := range bots {
		forward := i == 0 // alice passes chat and dots between tabs
		wg.Add(3)
		go func() { defer wg.Done(); b.chat(ctx, forward) }()
		go func() { defer wg.Done(); b.dots(ctx, forward) }()
		go func() { defer wg.Done(); b.move(ctx, i) }()
	}
	t := time.NewTicker(demoWebEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		for _, b := range bots {
			for _, id := range b.tabList() {
				st, info, rt := b.m.GetSessionConnectionInfo(id)
				route := "direct"
				if info.Flags&netmsg.ConnInfoRelayed != 0 {
					route = "relayed"
				}
				fmt.Fprintf(out, "  %-5s <-> %-26v %-10v %-8s ping %s\n", b.name, id, st, route, fmtPing(rt.Ping))
			}
		}
	}
}

// chat answers each tab's hello, and (forward) passes every line to the
// other tabs.
func (b *webBot) chat(ctx context.Context, forward bool) {
	for {
		m, err := b.m.Receive(ctx, chChat)
		if err != nil {
			return
		}
		from, text := m.Identity, string(m.Payload)
		m.Release()
		b.addTab(from)
		who := strings.TrimPrefix(from.String(), "str:")
		if strings.HasPrefix(text, "hello") {
			b.sendTab(from, fmt.Appendf(nil, "hi %s, I am %s; my dot goes round at %d Hz", who, b.name, demoDotHz), netmsg.SendReliable, chChat)
		}
		if !forward {
			continue
		}
		for _, id := range b.tabList() {
			if id != from {
				b.sendTab(id, fmt.Appendf(nil, "(%s) %s", who, text), netmsg.SendReliable, chChat)
			}
		}
	}
}

// dots takes the tabs' dots, and (forward) passes each to the other tabs
// with its sender's identity in front.
func (b *webBot) dots(ctx context.Context, forward bool) {
	for {
		ms, err := b.m.ReceiveBatch(ctx, chState, 64)
		if err != nil {
			return
		}
		for _, m := range ms {
			if forward && len(m.Payload) == 8 {
				id := m.Identity.String()
				fwd := append([]byte{byte(len(id))}, id...)
				fwd = append(fwd, m.Payload...)
				for _, to := range b.tabList() {
					if to != m.Identity {
						b.sendTab(to, fwd, netmsg.SendUnreliable, chState)
					}
				}
			}
			m.Release()
		}
	}
}

// move sends the bot's dot to every tab at demoDotHz: a Lissajous curve,
// each bot on its own.
func (b *webBot) move(ctx context.Context, i int) {
	t := time.NewTicker(time.Second / demoDotHz)
	defer t.Stop()
	start := time.Now()
	var buf [8]byte
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := time.Since(start).Seconds()
		ph := float64(i) * 2 * math.Pi / 3
		x := 200 + 150*math.Sin(s*0.7+ph)
		y := 150 + 110*math.Sin(s*1.1+2*ph)
		binary.LittleEndian.PutUint32(buf[:], math.Float32bits(float32(x)))
		binary.LittleEndian.PutUint32(buf[4:], math.Float32bits(float32(y)))
		for _, id := range b.tabList() {
			b.sendTab(id, buf[:], netmsg.SendUnreliable, chState)
		}
	}
}

func mustParseIdentity(s string) netmsg.Identity {
	id, err := netmsg.ParseIdentity(s)
	if err != nil {
		panic(err)
	}
	return id
}
