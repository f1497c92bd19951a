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

	"github.com/netmsg-go/netmsg/netsim"
)

// msgPeer is a Host with its Messages API and a record of its callbacks.
type msgPeer struct {
	*Host
	m        *Messages
	id       Identity // how the other peers address it: ip:<its address>
	mu       sync.Mutex
	requests []Identity
	failures []ConnectionInfo
	connects []ConnectionInfo // OnSessionConnected
	closed   []ConnectionInfo // OnSessionClosedByPeer
}

func (p *msgPeer) gotEvents() (connects, closed []ConnectionInfo) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ConnectionInfo(nil), p.connects...), append([]ConnectionInfo(nil), p.closed...)
}

func (p *msgPeer) gotRequests() []Identity {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Identity(nil), p.requests...)
}

func (p *msgPeer) gotFailures() []ConnectionInfo {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]ConnectionInfo(nil), p.failures...)
}

// newMsgPeers opens n Hosts on nw at 127.0.0.(i+1):27015 with Messages on.
func newMsgPeers(t *testing.T, nw *netsim.Network, n int) []*msgPeer {
	t.Helper()
	return newMsgPeersWith(t, nw, n, nil)
}

// newMsgPeersWith is newMsgPeers with a hook that adjusts each Host's
// Config before it starts. With nw nil the Hosts use real UDP sockets on
// 127.0.0.1.
func newMsgPeersWith(t *testing.T, nw *netsim.Network, n int, adjust func(i int, c *Config)) []*msgPeer {
	t.Helper()
	var out []*msgPeer
	for i := range n {
		p := &msgPeer{}
		cfg := Config{
			OnSessionRequest: func(peer Identity) {
				p.mu.Lock()
				p.requests = append(p.requests, peer)
				p.mu.Unlock()
			},
			OnSessionFailed: func(info ConnectionInfo) {
				p.mu.Lock()
				p.failures = append(p.failures, info)
				p.mu.Unlock()
			},
			OnSessionConnected: func(info ConnectionInfo) {
				p.mu.Lock()
				p.connects = append(p.connects, info)
				p.mu.Unlock()
			},
			OnSessionClosedByPeer: func(info ConnectionInfo) {
				p.mu.Lock()
				p.closed = append(p.closed, info)
				p.mu.Unlock()
			},
		}
		if nw != nil {
			addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)}), 27015)
			ep, err := nw.Listen(addr)
			if err != nil {
				t.Fatal(err)
			}
			cfg.PacketConn = ep
		} else {
			cfg.ListenAddr = netip.MustParseAddrPort("127.0.0.1:0")
		}
		if adjust != nil {
			adjust(i, &cfg)
		}
		h, err := NewHost(cfg)
		if err != nil {
			t.Fatal(err)
		}
		p.id, _ = IdentityFromAddr(h.LocalAddr())
		p.Host = h
		p.m = h.Messages()
		out = append(out, p)
	}
	return out
}

// msgPair opens two Hosts with Messages on a netsim network with the given
// one-way delay; everything closes when the test ends.
func msgPair(t *testing.T, delay time.Duration) (alice, bob *msgPeer) {
	t.Helper()
	nw, err := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: delay}})
	if err != nil {
		t.Fatal(err)
	}
	ps := newMsgPeers(t, nw, 2)
	t.Cleanup(func() {
		closeAll(ps)
		nw.Close()
	})
	return ps[0], ps[1]
}

// openSession has from send a first message on channel 0, to accept the
// request, and waits until to received it.
func openSession(t *testing.T, from, to *msgPeer) {
	t.Helper()
	if err := from.m.SendMessageToUser(to.id, []byte("hello"), SendReliable, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "a session request", func() bool { return len(to.gotRequests()) > 0 })
	to.m.AcceptSessionWithUser(from.id)
	if text, m := recvText(t, to, 0); text != "hello" {
		t.Fatalf("first message %q, want hello", text)
	} else {
		m.Release()
	}
}

func closeAll(ps []*msgPeer) {
	for _, p := range ps {
		p.Close()
	}
}

// recvText waits for the next message on channel and returns its text.
func recvText(t *testing.T, p *msgPeer, channel int) (string, *Message) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := p.m.Receive(ctx, channel)
	if err != nil {
		t.Fatalf("receive on channel %d: %v", channel, err)
	}
	return string(m.Payload), m
}

// TestMessagesRequestAccept: the first message from a peer posts a session
// request; the messages wait until the request is accepted, then arrive
// with every field filled, in order per channel.
func TestMessagesRequestAccept(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 10 * time.Millisecond}})
		defer nw.Close()
		ps := newMsgPeers(t, nw, 2)
		defer closeAll(ps)
		alice, bob := ps[0], ps[1]

		for i := range 5 {
			for _, ch := range []int{1, 2} {
				if err := alice.m.SendMessageToUser(bob.id, fmt.Appendf(nil, "ch%d msg%d", ch, i), SendReliable, ch); err != nil {
					t.Fatal(err)
				}
			}
		}
		waitFor(t, time.Minute, "a session request", func() bool { return len(bob.gotRequests()) > 0 })
		if got := bob.gotRequests()[0]; got != alice.id {
			t.Fatalf("request from %v, want %v", got, alice.id)
		}
		// Not accepted: nothing is delivered, and the request is posted
		// again while alice keeps trying.
		time.Sleep(2500 * time.Millisecond)
		if ms := bob.m.ReceiveMessagesOnChannel(1, 10); len(ms) != 0 {
			t.Fatalf("%d messages delivered before the session was accepted", len(ms))
		}
		if n := len(bob.gotRequests()); n < 2 {
			t.Errorf("the request was posted %d times in 2.5 s, want it repeated", n)
		}
		if st, _, _ := bob.m.GetSessionConnectionInfo(alice.id); st != StateConnecting {
			t.Errorf("bob's session state %v, want Connecting", st)
		}
		if !bob.m.AcceptSessionWithUser(alice.id) {
			t.Fatal("accept failed")
		}
		for _, ch := range []int{1, 2} {
			for i := range 5 {
				text, m := recvText(t, bob, ch)
				if want := fmt.Sprintf("ch%d msg%d", ch, i); text != want {
					t.Fatalf("channel %d message %d is %q, want %q", ch, i, text, want)
				}
				if m.Channel != ch || m.Identity != alice.id || m.Flags != SendReliable || m.Size != len(text) || m.Connection == InvalidConn || m.TimeReceived.IsZero() {
					t.Fatalf("message fields %+v", m)
				}
				m.Release()
			}
		}
		// And back.
		if err := bob.m.SendMessageToUser(alice.id, []byte("hi alice"), SendReliable, 7); err != nil {
			t.Fatal(err)
		}
		if text, m := recvText(t, alice, 7); text != "hi alice" || m.Identity != bob.id {
			t.Fatalf("alice got %q from %v", text, m.Identity)
		}
		st, info, status := alice.m.GetSessionConnectionInfo(bob.id)
		if st != StateConnected || info.Identity != bob.id || info.RemoteAddress != bob.LocalAddr() || status.Ping < 0 {
			t.Errorf("alice's session: %v %+v %+v", st, info, status)
		}
		if st, _, _ := alice.m.GetSessionConnectionInfo(mustIdentity(t, "str:nobody")); st != StateNone {
			t.Errorf("no session reads %v, want None", st)
		}
	})
}

// TestMessagesImplicitAccept: a send to a peer with a pending request
// accepts it.
func TestMessagesImplicitAccept(t *testing.T) {
	bubble(t, func(t *testing.T) {
		alice, bob := msgPair(t, 5*time.Millisecond)
		alice.m.SendMessageToUser(bob.id, []byte("ping"), SendReliable, 0)
		waitFor(t, time.Minute, "a session request", func() bool { return len(bob.gotRequests()) > 0 })
		if err := bob.m.SendMessageToUser(alice.id, []byte("pong"), SendReliable, 0); err != nil {
			t.Fatal(err)
		}
		if text, _ := recvText(t, bob, 0); text != "ping" {
			t.Fatalf("bob got %q", text)
		}
		if text, _ := recvText(t, alice, 0); text != "pong" {
			t.Fatalf("alice got %q", text)
		}
	})
}

// TestMessagesCloseSession: closing a session frees it at once; the peer's
// side goes away quietly (1001 is no failure), and a new message makes a
// new request.
func TestMessagesCloseSession(t *testing.T) {
	bubble(t, func(t *testing.T) {
		alice, bob := msgPair(t, 5*time.Millisecond)
		openSession(t, alice, bob)
		alice.m.SendMessageToUser(bob.id, []byte("unread"), SendReliable, 3)
		waitFor(t, time.Minute, "the unread message", func() bool {
			bob.m.chMu.Lock()
			defer bob.m.chMu.Unlock()
			q := bob.m.channels[3]
			return q != nil && q.len() == 1
		})
		if !bob.m.CloseSessionWithUser(alice.id) {
			t.Fatal("close failed")
		}
		if st, _, _ := bob.m.GetSessionConnectionInfo(alice.id); st != StateNone {
			t.Errorf("bob's closed session reads %v", st)
		}
		if ms := bob.m.ReceiveMessagesOnChannel(3, 10); len(ms) != 0 {
			t.Errorf("an unread message survived CloseSessionWithUser")
		}
		waitFor(t, time.Minute, "alice's session to go", func() bool {
			st, _, _ := alice.m.GetSessionConnectionInfo(bob.id)
			return st == StateNone
		})
		if f := alice.gotFailures(); len(f) != 0 {
			t.Errorf("a closed session was reported as failed: %+v", f)
		}
		// The opt-in events: both saw the session connect, alice saw bob
		// close it.
		waitFor(t, time.Minute, "the closed-by-peer event", func() bool { _, c := alice.gotEvents(); return len(c) == 1 })
		conn, closed := alice.gotEvents()
		if len(conn) != 1 || conn[0].Identity != bob.id || closed[0].EndReason != EndSessionClosed || closed[0].Identity != bob.id {
			t.Errorf("alice's events: connected %+v, closed by peer %+v", conn, closed)
		}
		if conn, _ := bob.gotEvents(); len(conn) != 1 || conn[0].Identity != alice.id {
			t.Errorf("bob's connected events: %+v", conn)
		}
		n := len(bob.gotRequests())
		alice.m.SendMessageToUser(bob.id, []byte("again"), SendReliable, 0)
		waitFor(t, time.Minute, "a new request", func() bool { return len(bob.gotRequests()) > n })
		if bob.m.CloseSessionWithUser(mustIdentity(t, "str:nobody")) {
			t.Error("closing a session that does not exist returned true")
		}
	})
}

// TestMessagesCloseChannel: closing a channel drops its unread messages;
// closing the last one closes the session.
func TestMessagesCloseChannel(t *testing.T) {
	bubble(t, func(t *testing.T) {
		alice, bob := msgPair(t, 5*time.Millisecond)
		alice.m.SendMessageToUser(bob.id, []byte("a1"), SendReliable, 1)
		alice.m.SendMessageToUser(bob.id, []byte("b1"), SendReliable, 2)
		waitFor(t, time.Minute, "a session request", func() bool { return len(bob.gotRequests()) > 0 })
		bob.m.AcceptSessionWithUser(alice.id)
		recvText(t, bob, 2)
		waitFor(t, time.Minute, "a1 waiting", func() bool {
			bob.m.chMu.Lock()
			defer bob.m.chMu.Unlock()
			q := bob.m.channels[1]
			return q != nil && q.len() == 1
		})
		if !bob.m.CloseChannelWithUser(alice.id, 1) {
			t.Fatal("close channel failed")
		}
		if ms := bob.m.ReceiveMessagesOnChannel(1, 10); len(ms) != 0 {
			t.Error("an unread message survived CloseChannelWithUser")
		}
		if st, _, _ := bob.m.GetSessionConnectionInfo(alice.id); st != StateConnected {
			t.Errorf("session %v after closing one of two channels, want Connected", st)
		}
		bob.m.CloseChannelWithUser(alice.id, 2)
		if st, _, _ := bob.m.GetSessionConnectionInfo(alice.id); st != StateNone {
			t.Errorf("session %v after closing the last channel, want None", st)
		}
	})
}

// TestMessagesIdleTimeout: a session unused for 3 minutes closes silently
// on both sides.
func TestMessagesIdleTimeout(t *testing.T) {
	bubble(t, func(t *testing.T) {
		alice, bob := msgPair(t, 5*time.Millisecond)
		openSession(t, alice, bob)
		time.Sleep(2 * time.Minute)
		if st, _, _ := alice.m.GetSessionConnectionInfo(bob.id); st != StateConnected {
			t.Fatalf("session %v after 2 idle minutes, want Connected", st)
		}
		time.Sleep(90 * time.Second)
		for _, p := range []*msgPeer{alice, bob} {
			other := bob.id
			if p == bob {
				other = alice.id
			}
			if st, _, _ := p.m.GetSessionConnectionInfo(other); st != StateNone {
				t.Errorf("session %v after 3.5 idle minutes, want None", st)
			}
			if f := p.gotFailures(); len(f) != 0 {
				t.Errorf("idle timeout reported as a failure: %+v", f)
			}
		}
	})
}

// TestMessagesFailedAndRestart: a session that cannot connect is reported
// failed with its end reason; sends then fail with ResultNoConnection until
// SendAutoRestartBrokenSession starts a new one.
func TestMessagesFailedAndRestart(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 5 * time.Millisecond}})
		defer nw.Close()
		ps := newMsgPeers(t, nw, 1)
		defer closeAll(ps)
		alice := ps[0]
		nobody, _ := IdentityFromAddr(netip.MustParseAddrPort("127.0.0.99:27015"))
		if err := alice.m.SendMessageToUser(nobody, []byte("anyone?"), SendReliable, 0); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "the failure", func() bool { return len(alice.gotFailures()) > 0 })
		f := alice.gotFailures()[0]
		if f.EndReason != EndMiscTimeout || f.Identity != nobody || f.State != StateProblemDetectedLocally {
			t.Errorf("failure %+v, want ProblemDetectedLocally with %v", f, EndMiscTimeout)
		}
		st, info, _ := alice.m.GetSessionConnectionInfo(nobody)
		if st != StateProblemDetectedLocally || info.EndReason != EndMiscTimeout {
			t.Errorf("failed session reads %v %v", st, info.EndReason)
		}
		if err := alice.m.SendMessageToUser(nobody, []byte("again"), SendReliable, 0); !errors.Is(err, ResultNoConnection) {
			t.Fatalf("send on a failed session: %v, want ResultNoConnection", err)
		}
		if err := alice.m.SendMessageToUser(nobody, []byte("again"), SendReliable|SendAutoRestartBrokenSession, 0); err != nil {
			t.Fatalf("send with auto restart: %v", err)
		}
		if st, _, _ := alice.m.GetSessionConnectionInfo(nobody); st != StateConnecting {
			t.Errorf("restarted session reads %v, want Connecting", st)
		}
	})
}

// TestMessagesSymmetricConnect: both sides send first at the same moment;
// one connection survives and no message is lost.
func TestMessagesSymmetricConnect(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				nw, _ := netsim.New(netsim.Config{Seed: seed, Link: netsim.LinkConfig{Delay: 20 * time.Millisecond, Jitter: 5 * time.Millisecond}})
				defer nw.Close()
				ps := newMsgPeers(t, nw, 2)
				defer closeAll(ps)
				alice, bob := ps[0], ps[1]
				for i := range 3 {
					alice.m.SendMessageToUser(bob.id, fmt.Appendf(nil, "a%d", i), SendReliable, 0)
					bob.m.SendMessageToUser(alice.id, fmt.Appendf(nil, "b%d", i), SendReliable, 0)
				}
				for i := range 3 {
					if text, _ := recvText(t, bob, 0); text != fmt.Sprintf("a%d", i) {
						t.Fatalf("bob got %q, want a%d", text, i)
					}
					if text, _ := recvText(t, alice, 0); text != fmt.Sprintf("b%d", i) {
						t.Fatalf("alice got %q, want b%d", text, i)
					}
				}
				time.Sleep(time.Second)
				if ms := bob.m.ReceiveMessagesOnChannel(0, 10); len(ms) != 0 {
					t.Fatalf("bob got %d extra messages (duplicates)", len(ms))
				}
				for _, p := range ps {
					p.Host.mu.Lock()
					n := 0
					for _, hc := range p.conns {
						if hc.sess != nil {
							n++
						}
					}
					p.Host.mu.Unlock()
					if n != 1 {
						t.Errorf("%d session connections survive, want 1", n)
					}
				}
			})
		})
	}
}

// TestMessagesLossy: under 10% and 30% loss with reordering, duplication and
// jitter, reliable messages from one peer on one channel arrive exactly once
// and in order, on every channel, both ways; unreliable ones intact or not
// at all.
func TestMessagesLossy(t *testing.T) {
	for _, loss := range []float64{10, 30} {
		t.Run(fmt.Sprint(loss), func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				nw, _ := netsim.New(netsim.Config{Seed: uint64(loss), Link: netsim.LinkConfig{
					Delay: 15 * time.Millisecond, Jitter: 5 * time.Millisecond, LossPercent: loss, ReorderPercent: 5, DuplicatePercent: 5,
				}})
				defer nw.Close()
				ps := newMsgPeers(t, nw, 2)
				defer closeAll(ps)
				alice, bob := ps[0], ps[1]
				const n = 300
				send := func(from, to *msgPeer) {
					for i := range n {
						ch := i % 3
						body := numbered(uint64(i), 10+(i*97)%3000)
						for {
							err := from.m.SendMessageToUser(to.id, body, SendReliable, ch)
							if err == nil {
								break
							}
							if !errors.Is(err, ResultLimitExceeded) {
								t.Errorf("send: %v", err)
								return
							}
							time.Sleep(10 * time.Millisecond)
						}
						from.m.SendMessageToUser(to.id, numbered(uint64(1_000_000+i), 200), SendUnreliable, 3)
					}
				}
				bob.m.SendMessageToUser(alice.id, []byte("hi"), SendReliable, 9) // both sides want to talk
				alice.m.SendMessageToUser(bob.id, []byte("hi"), SendReliable, 9)
				go send(alice, bob)
				go send(bob, alice)
				check := func(p *msgPeer) {
					next := [3]uint64{0, 1, 2}
					got := 0
					for got < n {
						for ch := range 3 {
							for _, m := range p.m.ReceiveMessagesOnChannel(ch, 64) {
								seq := binary.LittleEndian.Uint64(m.Payload)
								if seq != next[ch] || !bytes.Equal(m.Payload, numbered(seq, 10+(int(seq)*97)%3000)) {
									t.Fatalf("channel %d: got message %d, want %d (or corrupt)", ch, seq, next[ch])
								}
								next[ch] += 3
								got++
								m.Release()
							}
						}
						time.Sleep(5 * time.Millisecond)
					}
					for _, m := range p.m.ReceiveMessagesOnChannel(3, 1<<20) {
						if seq := binary.LittleEndian.Uint64(m.Payload); !bytes.Equal(m.Payload, numbered(seq, 200)) {
							t.Fatalf("unreliable message %d corrupt", seq)
						}
						m.Release()
					}
				}
				done := make(chan struct{})
				go func() { check(bob); close(done) }()
				check(alice)
				<-done
			})
		})
	}
}

// TestMessagesManyPeers: 1,000 sessions to one Host, each exchanging a
// message both ways.
func TestMessagesManyPeers(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 2 * time.Millisecond}})
		defer nw.Close()
		const n = 1000
		ps := newMsgPeers(t, nw, 1)
		defer closeAll(ps)
		hub := ps[0]
		var peers []*msgPeer
		for i := range n {
			addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 1, byte(i >> 8), byte(i)}), 1)
			ep, err := nw.Listen(addr)
			if err != nil {
				t.Fatal(err)
			}
			h, err := NewHost(Config{PacketConn: ep})
			if err != nil {
				t.Fatal(err)
			}
			p := &msgPeer{Host: h, m: h.Messages()}
			p.id, _ = IdentityFromAddr(addr)
			peers = append(peers, p)
		}
		defer closeAll(peers)
		for i, p := range peers {
			if err := p.m.SendMessageToUser(hub.id, numbered(uint64(i), 32), SendReliable, 0); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[Identity]bool{}
		waitFor(t, time.Minute, "every peer's request", func() bool {
			for _, id := range hub.gotRequests() {
				if !seen[id] {
					seen[id] = true
					hub.m.AcceptSessionWithUser(id)
				}
			}
			return len(seen) == n
		})
		got := 0
		for got < n {
			m, err := hub.m.Receive(context.Background(), 0)
			if err != nil {
				t.Fatal(err)
			}
			if err := hub.m.SendMessageToUser(m.Identity, m.Payload, SendReliable, 0); err != nil {
				t.Fatal(err)
			}
			m.Release()
			got++
		}
		for i, p := range peers {
			text, m := recvText(t, p, 0)
			if text != string(numbered(uint64(i), 32)) {
				t.Fatalf("peer %d got the wrong echo", i)
			}
			m.Release()
		}
	})
}
