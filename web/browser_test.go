package web

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

// chromium finds Debian's chromium; the test is skipped without it
// unless NETMSG_REQUIRE_CHROMIUM is set.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("NETMSG_REQUIRE_CHROMIUM") != "" {
		t.Fatal("chromium not installed and NETMSG_REQUIRE_CHROMIUM is set")
	}
	t.Skip("chromium not installed")
	return ""
}

// testPage loads the module and leaves it in window.netmsg.
const testPage = `<!doctype html><title>netmsg test</title>
<script type="module">
import * as netmsg from "/netmsg.js";
window.netmsg = netmsg;
window.events = [];
window.ready = true;
</script>`

// browserEnv is a signaling server (TCP for the Host, WebSocket for the
// pages), an HTTP server with the module and the test page, and headless
// Chromium.
type browserEnv struct {
	t     *testing.T
	wsURL string
	tcp   string
	page  string
	ctx   context.Context // the browser's first tab
}

func newBrowserEnv(t *testing.T) *browserEnv { return newBrowserEnvWith(t, signaling.ServerConfig{}) }

func newBrowserEnvWith(t *testing.T, sc signaling.ServerConfig) *browserEnv {
	bin := chromium(t)
	sc.Logger = slog.New(slog.DiscardHandler)
	s, err := signaling.NewServer(sc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	tcp, err := s.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wsAddr, err := s.ListenWS("127.0.0.1:0", "/", nil)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/netmsg.js", Handler())
	mux.HandleFunc("/test.html", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, testPage) })
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)

	e := &browserEnv{t: t, wsURL: "ws://" + wsAddr.String() + "/", tcp: tcp.String(), page: hs.URL + "/test.html", ctx: startBrowser(t, bin, 3*time.Minute)}
	e.load(e.ctx)
	return e
}

// startBrowser starts headless Chromium (bin) for the test and returns
// its first tab's context, which ends after limit.
func startBrowser(t *testing.T, bin string, limit time.Duration) context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("headless", true), chromedp.DisableGPU,
		// Host candidates as addresses, not mDNS names (which the Go side
		// does not resolve in tests).
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	ctx, cancel = context.WithTimeout(ctx, limit)
	t.Cleanup(cancel)
	return ctx
}

// load opens the test page in the tab of ctx.
func (e *browserEnv) load(ctx context.Context) {
	e.t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Navigate(e.page)); err != nil {
		e.t.Fatal(err)
	}
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(async () => { while (!window.ready) await new Promise(r => setTimeout(r, 10)); return true })()`, chromedp.EvalAwaitPromise)); err != nil {
		e.t.Fatal(err)
	}
}

// newTab opens a second tab with the test page.
func (e *browserEnv) newTab() context.Context {
	ctx, cancel := chromedp.NewContext(e.ctx)
	e.t.Cleanup(cancel)
	e.load(ctx)
	return ctx
}

// eval runs an async JavaScript body in the tab of ctx and returns its
// result.
func eval[T any](t *testing.T, ctx context.Context, body string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T]("(async () => {"+body+"})()", chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%v\nin: %s", err, body)
	}
	return v
}

// host is a Go Host on the signaling server (TCP, trivial protocol).
type host struct {
	*netmsg.Host
	m      *netmsg.Messages
	id     netmsg.Identity
	mu     sync.Mutex
	failed []netmsg.ConnectionInfo
	closed []netmsg.ConnectionInfo
}

func (h *host) events() (failed, closed []netmsg.ConnectionInfo) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append(failed, h.failed...), append(closed, h.closed...)
}

func (e *browserEnv) newHost(id string, adjust func(*netmsg.Config)) *host {
	t := e.t
	sc, err := signaling.DialTrivial(context.Background(), e.tcp, id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	h := &host{id: mustID(t, id)}
	cfg := netmsg.Config{
		Identity:              h.id,
		ListenAddr:            netip.MustParseAddrPort("127.0.0.1:0"),
		Signaling:             sc,
		Logger:                slog.New(slog.DiscardHandler),
		WebRTC:                netmsg.WebRTCConfig{HostAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}},
		OnSessionRequest:      func(peer netmsg.Identity) { h.m.AcceptSessionWithUser(peer) },
		OnSessionFailed:       func(i netmsg.ConnectionInfo) { h.mu.Lock(); h.failed = append(h.failed, i); h.mu.Unlock() },
		OnSessionClosedByPeer: func(i netmsg.ConnectionInfo) { h.mu.Lock(); h.closed = append(h.closed, i); h.mu.Unlock() },
	}
	if adjust != nil {
		adjust(&cfg)
	}
	nh, err := netmsg.NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nh.Close() })
	h.Host, h.m = nh, nh.Messages()
	return h
}

func mustID(t *testing.T, s string) netmsg.Identity {
	id, err := netmsg.ParseIdentity(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// connectJS makes window[name] a Peer registered as id that accepts
// every session request and records its session events in window.events.
func connectJS(name, wsURL, id, opts string) string {
	if opts == "" {
		opts = "{}"
	}
	return fmt.Sprintf(`
		const p = await netmsg.connect(%q, %q, %s);
		window[%q] = p;
		p.addEventListener("sessionrequest", e => p.acceptSessionWithUser(e.detail.identity));
		for (const k of ["sessionclosed", "sessionfailed", "sessionconnected"])
			p.addEventListener(k, e => window.events.push({peer: %q, kind: k, identity: e.detail.identity, reason: e.detail.info.endReason, debug: e.detail.info.endDebug, route: e.detail.info.route}));
		return true;`, wsURL, id, opts, name, id)
}

// sendJS sends n messages from window[name] to peer on three channels:
// 0 reliable ("r<i>"), 1 unreliable ("u<i>"), 2 reliable every tenth,
// of 40 KB (three fragments).
func sendJS(name, peer string, n int) string {
	return fmt.Sprintf(`
		const p = window[%q];
		const big = "0123456789abcdef".repeat(2500);
		const send = async (to, data, flags, ch) => {
			for (;;) {
				try { return p.sendMessageToUser(to, data, flags, ch); }
				catch (e) { if (e.result !== netmsg.Result.LimitExceeded) throw e; }
				await new Promise(r => setTimeout(r, 10));
			}
		};
		for (let i = 0; i < %d; i++) {
			await send(%q, "r" + i, netmsg.SEND_RELIABLE, 0);
			await send(%q, "u" + i, netmsg.SEND_UNRELIABLE, 1);
			if (i %% 10 === 0) await send(%q, String(i).padStart(4, "0") + big, netmsg.SEND_RELIABLE, 2);
		}
		return true;`, name, n, peer, peer, peer)
}

// recvJS reads n messages from channel ch of window[name] and returns
// their texts (the big ones shortened to their first 4 characters and
// length).
func recvJS(name string, ch, n int) string {
	return fmt.Sprintf(`
		const out = [];
		const it = window[%q].receive(%d)[Symbol.asyncIterator]();
		const timeout = new Promise(r => setTimeout(() => r({timeout: true}), 20000));
		while (out.length < %d) {
			const r = await Promise.race([it.next(), timeout]);
			if (r.timeout) { out.push("timeout"); break; }
			const t = r.value.text;
			out.push(t.length > 100 ? t.slice(0, 4) + ":" + t.length + ":" + r.value.identity : t + ":" + r.value.identity);
		}
		return out;`, name, ch, n)
}

// hostSend sends n messages from h to peer as sendJS does.
func hostSend(t *testing.T, h *host, peer netmsg.Identity, n int) {
	t.Helper()
	big := strings.Repeat("0123456789abcdef", 2500)
	send := func(data []byte, flags netmsg.SendFlags, ch int) {
		for {
			err := h.m.SendMessageToUser(peer, data, flags, ch)
			if !errors.Is(err, netmsg.ResultLimitExceeded) {
				must(t, err)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for i := range n {
		send(fmt.Appendf(nil, "r%d", i), netmsg.SendReliable, 0)
		send(fmt.Appendf(nil, "u%d", i), netmsg.SendUnreliable, 1)
		if i%10 == 0 {
			send(fmt.Appendf(nil, "%04d%s", i, big), netmsg.SendReliable, 2)
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// hostRecv checks that h gets the n reliable messages of sendJS from
// peer, each once and in order, and whatever unreliable ones came.
func hostRecv(t *testing.T, h *host, peer netmsg.Identity, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range n {
		m, err := h.m.Receive(ctx, 0)
		if err != nil {
			t.Fatalf("channel 0, message %d: %v", i, err)
		}
		if string(m.Payload) != fmt.Sprintf("r%d", i) || m.Identity != peer {
			t.Fatalf("channel 0, message %d: %q from %v", i, m.Payload, m.Identity)
		}
		m.Release()
	}
	for i := 0; i < n; i += 10 {
		m, err := h.m.Receive(ctx, 2)
		if err != nil {
			t.Fatalf("channel 2, message %d: %v", i, err)
		}
		if want := fmt.Sprintf("%04d", i); len(m.Payload) != 40004 || string(m.Payload[:4]) != want {
			t.Fatalf("channel 2: %q... (%d bytes), want %s", m.Payload[:4], len(m.Payload), want)
		}
		m.Release()
	}
	time.Sleep(50 * time.Millisecond)
	got := 0
	for _, m := range h.m.ReceiveMessagesOnChannel(1, 10*n) {
		if m.Payload[0] != 'u' || m.Identity != peer {
			t.Fatalf("channel 1: %q", m.Payload)
		}
		got++
	}
	t.Logf("%v: %d of %d unreliable messages", h.id, got, n)
}

// checkJSRecv checks what recvJS returned for the messages of hostSend.
func checkJSRecv(t *testing.T, got0, got2 []string, from string, n int) {
	t.Helper()
	if len(got0) != n {
		t.Fatalf("channel 0: %d messages of %d: %v", len(got0), n, got0[max(0, len(got0)-3):])
	}
	for i, s := range got0 {
		if want := fmt.Sprintf("r%d:%s", i, from); s != want {
			t.Fatalf("channel 0 message %d: %q, want %q", i, s, want)
		}
	}
	for i, s := range got2 {
		if want := fmt.Sprintf("%04d:40004:%s", 10*i, from); s != want {
			t.Fatalf("channel 2 message %d: %q, want %q", i, s, want)
		}
	}
}

// jsEvents returns window.events.
func jsEvents(t *testing.T, ctx context.Context) []map[string]any {
	return eval[[]map[string]any](t, ctx, "return window.events")
}

func waitJSEvent(t *testing.T, ctx context.Context, kind, identity string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		for _, ev := range jsEvents(t, ctx) {
			if ev["kind"] == kind && ev["identity"] == identity {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event for %s: %v", kind, identity, jsEvents(t, ctx))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func waitHost(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBrowserHost: a page loads netmsg.js, connects through a real
// signaling server over WebSocket and exchanges messages with a Go Host
// on three channels: the page sends first and the Host accepts, then the
// Host sends first to another of the page's identities and the page
// accepts; every reliable message once and in order; the route and ping
// on both sides; a close with a reason seen on both sides.
func TestBrowserHost(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	e := newBrowserEnv(t)
	h := e.newHost("str:host", nil)
	ctx := e.ctx
	const n = 200
	eval[bool](t, ctx, connectJS("tab1", e.wsURL, "str:web-tab1", ""))

	// The page sends first; the Host accepts (its OnSessionRequest).
	eval[bool](t, ctx, sendJS("tab1", "str:host", n))
	tab1 := mustID(t, "str:web-tab1")
	hostRecv(t, h, tab1, n)
	hostSend(t, h, tab1, n)
	checkJSRecv(t, eval[[]string](t, ctx, recvJS("tab1", 0, n)), eval[[]string](t, ctx, recvJS("tab1", 2, n/10)), "str:host", n)
	if ev := waitJSEvent(t, ctx, "sessionconnected", "str:host"); ev["route"] != "direct" {
		t.Errorf("the page's route: %v", ev)
	}
	st, info, rt := h.m.GetSessionConnectionInfo(tab1)
	if st != netmsg.StateConnected || info.Flags&netmsg.ConnInfoRelayed != 0 || !info.RemoteAddress.IsValid() {
		t.Errorf("Host's view: %v %+v", st, info)
	}
	waitHost(t, "the Host's ping", func() bool { _, _, rt = h.m.GetSessionConnectionInfo(tab1); return rt.Ping > 0 })
	jsInfo := eval[map[string]any](t, ctx, `
		while (window.tab1.getSessionConnectionInfo("str:host").ping < 0) await new Promise(r => setTimeout(r, 20));
		return window.tab1.getSessionConnectionInfo("str:host");`)
	t.Logf("Host: %s, ping %v; page: %v, ping %v ms", info.Description, rt.Ping, jsInfo["description"], jsInfo["ping"])

	// The Host sends first to a second identity of the page, which accepts.
	eval[bool](t, ctx, connectJS("tab2", e.wsURL, "str:web-tab2", ""))
	tab2 := mustID(t, "str:web-tab2")
	hostSend(t, h, tab2, n)
	checkJSRecv(t, eval[[]string](t, ctx, recvJS("tab2", 0, n)), eval[[]string](t, ctx, recvJS("tab2", 2, n/10)), "str:host", n)
	eval[bool](t, ctx, sendJS("tab2", "str:host", n))
	hostRecv(t, h, tab2, n)

	// The page closes with a reason: the Host's session fails with it.
	eval[bool](t, ctx, `return window.tab1.closeSessionWithUser("str:host", 1234, "the tab says goodbye")`)
	waitHost(t, "the Host to see the close", func() bool { f, _ := h.events(); return len(f) > 0 })
	if f, _ := h.events(); f[0].EndReason != 1234 || f[0].EndDebug != "the tab says goodbye" || f[0].Identity != tab1 || f[0].State != netmsg.StateClosedByPeer {
		t.Errorf("the Host saw %+v", f[0])
	}
	// The Host closes: the page sees 1001, "Session closed".
	h.m.CloseSessionWithUser(tab2)
	if ev := waitJSEvent(t, ctx, "sessionclosed", "str:host"); ev["reason"] != 1001.0 || ev["debug"] != "Session closed" || ev["peer"] != "str:web-tab2" {
		t.Errorf("the page saw %v", ev)
	}
	if st := eval[float64](t, ctx, `return window.tab2.getSessionConnectionInfo("str:host").state`); st != 0 {
		t.Errorf("the page's closed session is in state %v", st)
	}
	if os.Getenv("NETMSG_WEB_BENCH") != "" {
		benchBrowserHost(t, ctx, h)
	}
}

// benchBrowserHost measures the round-trip time of a 32-byte reliable
// message between the page and the Host (the Host echoes), and the
// throughput of 16 KiB reliable messages from the page to the Host.
func benchBrowserHost(t *testing.T, ctx context.Context, h *host) {
	go func() {
		for {
			m, err := h.m.Receive(context.Background(), 7)
			if err != nil {
				return
			}
			h.m.SendMessageToUser(m.Identity, m.Payload, netmsg.SendReliable|netmsg.SendNoNagle, 7)
			m.Release()
		}
	}()
	rtts := eval[[]float64](t, ctx, `
		const p = await netmsg.connect(window.tab1.url, "str:web-bench");
		const it = p.receive(7)[Symbol.asyncIterator]();
		const msg = new Uint8Array(32);
		const out = [];
		for (let i = 0; i < 520; i++) {
			const t0 = performance.now();
			p.sendMessageToUser("str:host", msg, netmsg.SEND_RELIABLE, 7);
			await it.next();
			if (i >= 20) out.push(performance.now() - t0);
		}
		window.bench = p;
		return out;`)
	sort.Float64s(rtts)
	t.Logf("RTT page -> Host -> page, 32-byte reliable message, %d round trips: median %.3f ms, p90 %.3f ms, min %.3f ms",
		len(rtts), rtts[len(rtts)/2], rtts[len(rtts)*9/10], rtts[0])

	const total = 64 << 20
	got := make(chan time.Duration, 1)
	go func() {
		n := 0
		var start time.Time
		for n < total {
			ms, err := h.m.ReceiveBatch(context.Background(), 8, 256)
			if err != nil {
				return
			}
			if start.IsZero() {
				start = time.Now()
			}
			for _, m := range ms {
				n += len(m.Payload)
				m.Release()
			}
		}
		got <- time.Since(start)
	}()
	sent := eval[float64](t, ctx, fmt.Sprintf(`
		const p = window.bench;
		const msg = new Uint8Array(16384);
		let sent = 0;
		while (sent < %d) {
			await p.waitSendBuffer("str:host", 256 << 10);
			p.sendMessageToUser("str:host", msg, netmsg.SEND_RELIABLE, 8);
			sent += msg.length;
		}
		return sent;`, total))
	select {
	case d := <-got:
		t.Logf("throughput page -> Host, 16 KiB reliable messages: %.0f MB in %v = %.1f MB/s", sent/1e6, d.Round(time.Millisecond), sent/1e6/d.Seconds())
	case <-time.After(60 * time.Second):
		t.Error("the throughput run did not finish")
	}
}

// newRelay starts the repository's TURN relay on loopback and returns
// its address.
func newRelay(t *testing.T) netip.AddrPort {
	rs, err := relay.NewServer(relay.Config{Logger: slog.New(slog.DiscardHandler), ListenAddr: "127.0.0.1:0",
		Users: map[string]string{"u": "p"}, AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	return rs.Addr()
}

// relayOpts are connect options for a page that uses only the relay.
func relayOpts(turn netip.AddrPort) string {
	return fmt.Sprintf(`{iceServers: [{urls: "turn:%s?transport=udp", username: "u", credential: "p"}], iceTransportPolicy: "relay"}`, turn)
}

// TestBrowserTabs: two tabs talk to each other through the server. (Two
// Chromiums would pair their host candidates, which are not on loopback
// (Chromium leaves loopback out), so the test relays them through a TURN
// relay on loopback.)
func TestBrowserTabs(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	turn := newRelay(t)
	e := newBrowserEnv(t)
	a, b := e.ctx, e.newTab()
	eval[bool](t, a, connectJS("me", e.wsURL, "str:web-a", relayOpts(turn)))
	eval[bool](t, b, connectJS("me", e.wsURL, "str:web-b", relayOpts(turn)))
	const n = 100
	eval[bool](t, a, sendJS("me", "str:web-b", n))
	checkJSRecv(t, eval[[]string](t, b, recvJS("me", 0, n)), eval[[]string](t, b, recvJS("me", 2, n/10)), "str:web-a", n)
	eval[bool](t, b, sendJS("me", "str:web-a", n))
	checkJSRecv(t, eval[[]string](t, a, recvJS("me", 0, n)), eval[[]string](t, a, recvJS("me", 2, n/10)), "str:web-b", n)
	t.Logf("a: %v", eval[map[string]any](t, a, `return window.me.getSessionConnectionInfo("str:web-b")`)["description"])
	eval[bool](t, a, `return window.me.closeSessionWithUser("str:web-b", 1500, "bye, b")`)
	if ev := waitJSEvent(t, b, "sessionfailed", "str:web-a"); ev["reason"] != 1500.0 || ev["debug"] != "bye, b" {
		t.Errorf("b saw %v", ev)
	}
}

// TestBrowserRelay: a page and a Host connected only through a TURN
// relay (the repository's relay, on loopback): both ends use relay
// candidates alone, and both report the route as relayed.
func TestBrowserRelay(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	turn := newRelay(t)
	e := newBrowserEnv(t)
	h := e.newHost("str:host", func(c *netmsg.Config) {
		c.TURNServers = []netmsg.TURNServer{{Addr: turn, Username: "u", Password: "p"}}
		c.P2PRelayOnly = true
	})
	ctx := e.ctx
	eval[bool](t, ctx, connectJS("tab", e.wsURL, "str:web-tab", relayOpts(turn)))
	const n = 50
	eval[bool](t, ctx, sendJS("tab", "str:host", n))
	tab := mustID(t, "str:web-tab")
	hostRecv(t, h, tab, n)
	hostSend(t, h, tab, n)
	checkJSRecv(t, eval[[]string](t, ctx, recvJS("tab", 0, n)), eval[[]string](t, ctx, recvJS("tab", 2, n/10)), "str:host", n)
	_, info, _ := h.m.GetSessionConnectionInfo(tab)
	if info.Flags&netmsg.ConnInfoRelayed == 0 || info.RemoteAddress.IsValid() {
		t.Errorf("the Host's route is not relayed: %+v", info)
	}
	if ev := waitJSEvent(t, ctx, "sessionconnected", "str:host"); ev["route"] != "relayed" {
		t.Errorf("the page's route: %v", ev)
	}
	t.Logf("Host: %s", info.Description)
}

// TestBrowserAuthenticated: a page registers with the authenticated
// signaling protocol (its certificate, and a proof signed with
// WebCrypto's Ed25519), takes the TURN credentials the server hands out,
// and reaches a Host through the relay with them; a proof with the wrong
// key is refused.
func TestBrowserAuthenticated(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const secret = "s3cret"
	rs, err := relay.NewServer(relay.Config{Logger: slog.New(slog.DiscardHandler), ListenAddr: "127.0.0.1:0",
		AuthSecrets: []string{secret}, AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	e := newBrowserEnvWith(t, signaling.ServerConfig{AllowUnsigned: true,
		TURN: &signaling.TURNConfig{Secret: secret, Servers: []string{rs.Addr().String()}}})
	// The Host's own TURN credential comes from the same secret.
	user, pass := relay.RESTCredential(secret, "str:host", time.Now().Add(time.Hour))
	h := e.newHost("str:host", func(c *netmsg.Config) {
		c.TURNServers = []netmsg.TURNServer{{Addr: rs.Addr(), Username: user, Password: pass}}
		c.P2PRelayOnly = true
	})
	seed := make([]byte, ed25519.SeedSize)
	rand.Read(seed)
	key := ed25519.NewKeyFromSeed(seed)
	id := mustID(t, "str:web-auth")
	cert, err := netmsg.UnsignedCertificate(id, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx := e.ctx
	wrong := make([]byte, ed25519.SeedSize)
	if got := eval[string](t, ctx, fmt.Sprintf(`
		try { await netmsg.connect(%q, "str:web-auth", {cert: %q, key: %q}); return "registered" }
		catch (e) { return String(e) }`, e.wsURL, hex.EncodeToString(cert), hex.EncodeToString(wrong))); !strings.Contains(got, "refused") {
		t.Errorf("a wrong key: %s", got)
	}
	eval[bool](t, ctx, connectJS("tab", e.wsURL, "str:web-auth",
		fmt.Sprintf(`{cert: %q, key: %q, iceTransportPolicy: "relay"}`, hex.EncodeToString(cert), hex.EncodeToString(seed))))
	const n = 20
	eval[bool](t, ctx, sendJS("tab", "str:host", n))
	hostRecv(t, h, id, n)
	if ev := waitJSEvent(t, ctx, "sessionconnected", "str:host"); ev["route"] != "relayed" {
		t.Errorf("the page's route: %v", ev)
	}
}
