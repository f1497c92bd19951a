package netmsg

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/p2p"
	"github.com/netmsg-go/netmsg/signaling"
)

// rtcPeer is a Host whose Messages sessions with browsers run over WebRTC
// on loopback, recording its session events.
type rtcPeer struct {
	*Host
	m      *Messages
	id     Identity
	mu     sync.Mutex
	req    []Identity
	closed []ConnectionInfo
	failed []ConnectionInfo
	conn   []ConnectionInfo
	accept bool
}

func (p *rtcPeer) events() (req []Identity, closed, failed, conn []ConnectionInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Identity(nil), p.req...), append([]ConnectionInfo(nil), p.closed...), append([]ConnectionInfo(nil), p.failed...), append([]ConnectionInfo(nil), p.conn...)
}

// newRTCPeer opens a Host named id on 127.0.0.1 with a signaling Conn from
// hub; isBrowser says which peers it reaches over WebRTC (nil: the
// default prefix).
func newRTCPeer(t *testing.T, hub *signaling.Hub, id string, accept bool, isBrowser func(Identity) bool, adjust ...func(*Config)) *rtcPeer {
	t.Helper()
	sc, err := hub.Connect(id)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	p := &rtcPeer{id: mustIdentity(t, id), accept: accept}
	cfg := Config{
		Identity:   p.id,
		ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"),
		Signaling:  sc,
		WebRTC:     WebRTCConfig{HostAddrs: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, IsBrowser: isBrowser},
		OnSessionRequest: func(peer Identity) {
			p.mu.Lock()
			p.req = append(p.req, peer)
			acc := p.accept
			p.mu.Unlock()
			if acc {
				p.m.AcceptSessionWithUser(peer)
			}
		},
		OnSessionClosedByPeer: func(info ConnectionInfo) { p.mu.Lock(); p.closed = append(p.closed, info); p.mu.Unlock() },
		OnSessionFailed:       func(info ConnectionInfo) { p.mu.Lock(); p.failed = append(p.failed, info); p.mu.Unlock() },
		OnSessionConnected:    func(info ConnectionInfo) { p.mu.Lock(); p.conn = append(p.conn, info); p.mu.Unlock() },
	}
	for _, f := range adjust {
		f(&cfg)
	}
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Host = h
	p.m = h.Messages()
	t.Cleanup(func() { h.Close() })
	return p
}

func recvN(t *testing.T, m *Messages, ch, n int) []*Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var out []*Message
	for len(out) < n {
		ms, err := m.ReceiveBatch(ctx, ch, n-len(out))
		if err != nil {
			t.Fatalf("channel %d: %d of %d messages: %v", ch, len(out), n, err)
		}
		out = append(out, ms...)
	}
	return out
}

// exchangeRTC sends from a to b on three channels (0 and 2 reliable, 2
// with messages over one fragment; 1 unreliable) and checks that b gets
// every reliable message once and in order.
func exchangeRTC(t *testing.T, a, b *rtcPeer, n int) {
	t.Helper()
	big := bytes.Repeat([]byte("0123456789abcdef"), 2500) // 40 KB: 3 fragments
	for i := range n {
		if err := a.m.SendMessageToUser(b.id, fmt.Appendf(nil, "r%d", i), SendReliable, 0); err != nil {
			t.Fatal(err)
		}
		if err := a.m.SendMessageToUser(b.id, fmt.Appendf(nil, "u%d", i), SendUnreliable, 1); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if err := a.m.SendMessageToUser(b.id, append(fmt.Appendf(nil, "%04d", i), big...), SendReliable, 2); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, m := range recvN(t, b.m, 0, n) {
		if got := string(m.Payload); got != fmt.Sprintf("r%d", i) || m.Identity != a.id || m.Channel != 0 || m.Flags&SendReliable == 0 {
			t.Fatalf("channel 0 message %d: %q from %v on %d", i, got, m.Identity, m.Channel)
		}
		m.Release()
	}
	for i, m := range recvN(t, b.m, 2, (n+9)/10) {
		if want := append(fmt.Appendf(nil, "%04d", i*10), big...); !bytes.Equal(m.Payload, want) {
			t.Fatalf("channel 2 message %d differs (%d bytes)", i, len(m.Payload))
		}
		m.Release()
	}
	// Unreliable: whatever came (on loopback, normally everything).
	time.Sleep(50 * time.Millisecond)
	for _, m := range b.m.ReceiveMessagesOnChannel(1, 10*n) {
		if m.Payload[0] != 'u' || m.Channel != 1 {
			t.Fatalf("channel 1: %q", m.Payload)
		}
		m.Release()
	}
}

// TestWebRTCSession: a session between two Hosts over WebRTC (the second
// stands for a browser: its identity has the browser prefix): request and
// accept, messages both ways on three channels, connection info with
// route and ping, a close seen by the other side with its reason.
func TestWebRTCSession(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	hub, _ := signaling.NewHub(signaling.HubConfig{})
	host := newRTCPeer(t, hub, "str:host", true, nil)
	web := newRTCPeer(t, hub, "str:web-b", true, nil)

	exchangeRTC(t, host, web, 100)
	if req, _, _, _ := web.events(); len(req) == 0 || req[0] != host.id {
		t.Fatalf("requests %v", req)
	}
	exchangeRTC(t, web, host, 100)
	st, info, rt := host.m.GetSessionConnectionInfo(web.id)
	if st != StateConnected || info.Flags&ConnInfoRelayed != 0 || info.Flags&ConnInfoFast == 0 || !info.RemoteAddress.Addr().IsLoopback() || info.Identity != web.id {
		t.Fatalf("info %v %+v", st, info)
	}
	waitFor(t, 15*time.Second, "a ping", func() bool { _, _, rt = web.m.GetSessionConnectionInfo(host.id); return rt.Ping > 0 })
	t.Logf("route %q, ping %v", info.Description, rt.Ping)
	// A message larger than 512 KiB is refused.
	if err := host.m.SendMessageToUser(web.id, make([]byte, 512<<10+1), SendReliable, 0); err == nil {
		t.Error("a message over 512 KiB was sent")
	}

	host.m.CloseSessionWithUser(web.id)
	waitFor(t, 15*time.Second, "the close", func() bool { _, c, _, _ := web.events(); return len(c) == 1 })
	if _, c, f, _ := web.events(); c[0].EndReason != EndSessionClosed || c[0].EndDebug != "Session closed" || c[0].Identity != host.id || len(f) != 0 {
		t.Errorf("closed %+v, failed %+v", c, f)
	}
	if st, _, _ := web.m.GetSessionConnectionInfo(host.id); st != StateNone {
		t.Errorf("the closed session is in state %v", st)
	}
	// A new session after the close: the browser side sends first now.
	exchangeRTC(t, web, host, 20)
	// The Host closing: the peer's session fails with the Host's reason.
	host.Close()
	waitFor(t, 15*time.Second, "the failure", func() bool { _, _, f, _ := web.events(); return len(f) == 1 })
	if _, _, f, _ := web.events(); f[0].EndReason != EndAppMin || f[0].EndDebug != "host closed" || f[0].State != StateClosedByPeer {
		t.Errorf("failed %+v", f[0])
	}
	err := web.m.SendMessageToUser(host.id, []byte("x"), SendReliable, 0)
	if ce, ok := err.(*ConnError); !ok || ce.Reason != EndAppMin {
		t.Errorf("send on the failed session: %v", err)
	}
}

// TestWebRTCSymmetric: both sides send first at once; one session is
// made and every message arrives once.
func TestWebRTCSymmetric(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	hub, _ := signaling.NewHub(signaling.HubConfig{Delay: 20 * time.Millisecond})
	all := func(Identity) bool { return true }
	a := newRTCPeer(t, hub, "str:a", false, all)
	b := newRTCPeer(t, hub, "str:b", false, all)
	for i := range 10 {
		a.m.SendMessageToUser(b.id, fmt.Appendf(nil, "r%d", i), SendReliable, 0)
		b.m.SendMessageToUser(a.id, fmt.Appendf(nil, "r%d", i), SendReliable, 0)
	}
	for _, p := range [][2]*rtcPeer{{a, b}, {b, a}} {
		for i, m := range recvN(t, p[1].m, 0, 10) {
			if string(m.Payload) != fmt.Sprintf("r%d", i) {
				t.Fatalf("%v got %q as message %d", p[1].id, m.Payload, i)
			}
		}
	}
	time.Sleep(100 * time.Millisecond)
	if ms := b.m.ReceiveMessagesOnChannel(0, 10); len(ms) != 0 {
		t.Errorf("extra messages %d", len(ms))
	}
}

// TestWebRTCSignalBlobs: a WebRTC blob is never a GNS rendezvous message
// and the other way round.
func TestWebRTCSignalBlobs(t *testing.T) {
	blob := marshalRTCSignal(rtcSignal{Kind: "offer", Sid: "1", SDP: "v=0"})
	if !isRTCSignal(blob) {
		t.Fatal("not recognised")
	}
	if _, err := p2p.ParseRendezvous(blob); err == nil {
		t.Error("a WebRTC blob parses as a GNS rendezvous")
	}
}

// TestWebRTCSlowReader: a receiver that does not read holds at most
// RecvBufferMessages messages; the sender is held back (its sends fail
// with ResultLimitExceeded once its buffers fill) and, once the receiver
// reads, everything arrives once and in order.
func TestWebRTCSlowReader(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	hub, _ := signaling.NewHub(signaling.HubConfig{})
	a := newRTCPeer(t, hub, "str:a", true, nil)
	b := newRTCPeer(t, hub, "str:web-b", true, nil, func(c *Config) { c.RecvBufferMessages = 50 })
	const n = 400
	msg := make([]byte, 4000)
	sent := make(chan int, 1)
	go func() {
		i, full := 0, 0
		for i < n {
			binary.LittleEndian.PutUint32(msg, uint32(i))
			err := a.m.SendMessageToUser(b.id, msg, SendReliable, 0)
			if errors.Is(err, ResultLimitExceeded) {
				full++
				time.Sleep(5 * time.Millisecond)
				continue
			}
			if err != nil {
				t.Error(err)
				break
			}
			i++
		}
		sent <- full
	}()
	waitFor(t, 15*time.Second, "the receiver's queue to fill", func() bool { return b.unreadWeb(a.id) == 50 })
	time.Sleep(200 * time.Millisecond)
	if u := b.unreadWeb(a.id); u != 50 {
		t.Fatalf("%d unread messages, limit 50", u)
	}
	for i, m := range recvN(t, b.m, 0, n) {
		if got := binary.LittleEndian.Uint32(m.Payload); got != uint32(i) {
			t.Fatalf("message %d is %d", i, got)
		}
		m.Release()
	}
	t.Logf("the sender found its buffer full %d times", <-sent)
}

// unreadWeb is the browser session's count of unread messages.
func (p *rtcPeer) unreadWeb(peer Identity) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.Host.mu.Lock()
	defer p.Host.mu.Unlock()
	if ws := p.m.web[peer]; ws != nil {
		return int(ws.unread.Load())
	}
	return -1
}

// TestWebRTCIdle: a browser session unused for SessionIdleTimeout closes
// quietly on both sides (1002 to the peer), and the next send makes a new
// one.
func TestWebRTCIdle(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	hub, _ := signaling.NewHub(signaling.HubConfig{})
	idle := func(c *Config) { c.SessionIdleTimeout = 700 * time.Millisecond }
	a := newRTCPeer(t, hub, "str:a", true, nil, idle)
	b := newRTCPeer(t, hub, "str:web-b", true, nil, func(c *Config) { c.SessionIdleTimeout = time.Hour })
	exchangeRTC(t, a, b, 5)
	waitFor(t, 10*time.Second, "b to see the idle close", func() bool { _, c, _, _ := b.events(); return len(c) == 1 })
	if _, c, f, _ := b.events(); c[0].EndReason != EndIdleTimeout || len(f) != 0 {
		t.Errorf("b saw %+v, failures %+v", c, f)
	}
	if st, _, _ := a.m.GetSessionConnectionInfo(b.id); st != StateNone {
		t.Errorf("a's idle session is in state %v", st)
	}
	if _, c, f, _ := a.events(); len(c)+len(f) != 0 {
		t.Errorf("a was told of its own idle close: %+v %+v", c, f)
	}
	exchangeRTC(t, a, b, 5)
}
