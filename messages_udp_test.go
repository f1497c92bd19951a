package netmsg

// The Messages rules over real UDP sockets on 127.0.0.1 (the netsim tests
// in messages_test.go check the same rules in fake time; these show them on
// the real socket path: batching, GRO/GSO, the reader and timer goroutines).
// Waits are generous and bounded; nothing here depends on timing to pass.

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

	"go.uber.org/goleak"
)

func udpMsgPair(t *testing.T, adjust func(i int, c *Config)) (alice, bob *msgPeer) {
	t.Helper()
	ps := newMsgPeersWith(t, nil, 2, adjust)
	t.Cleanup(func() { closeAll(ps) })
	return ps[0], ps[1]
}

// TestMessagesUDPRequestIgnoreAccept: a request is posted, repeated while
// ignored, nothing is delivered until accepted; then everything arrives in
// order with its fields; a reply is an implicit accept on the other side.
func TestMessagesUDPRequestIgnoreAccept(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the peers' cleanups
	alice, bob := udpMsgPair(t, nil)
	for i := range 5 {
		if err := alice.m.SendMessageToUser(bob.id, fmt.Appendf(nil, "m%d", i), SendReliable, 4); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "the request repeated", func() bool { return len(bob.gotRequests()) >= 2 })
	if r := bob.gotRequests(); r[0] != alice.id {
		t.Fatalf("request from %v, want %v", r[0], alice.id)
	}
	if ms := bob.m.ReceiveMessagesOnChannel(4, 10); len(ms) != 0 {
		t.Fatalf("%d messages delivered before accepting", len(ms))
	}
	if st, _, _ := bob.m.GetSessionConnectionInfo(alice.id); st != StateConnecting {
		t.Fatalf("ignored session reads %v, want Connecting", st)
	}
	if !bob.m.AcceptSessionWithUser(alice.id) {
		t.Fatal("accept failed")
	}
	for i := range 5 {
		text, m := recvText(t, bob, 4)
		if text != fmt.Sprintf("m%d", i) || m.Identity != alice.id || m.Channel != 4 || m.Flags != SendReliable {
			t.Fatalf("message %d: %q %+v", i, text, m)
		}
		m.Release()
	}
	// Implicit accept the other way: carol's request to alice is accepted
	// by alice's send to carol.
	carol := newMsgPeersWith(t, nil, 1, nil)[0]
	defer carol.Close()
	carol.m.SendMessageToUser(alice.id, []byte("from carol"), SendReliable, 0)
	waitFor(t, 10*time.Second, "carol's request", func() bool {
		for _, id := range alice.gotRequests() {
			if id == carol.id {
				return true
			}
		}
		return false
	})
	if err := alice.m.SendMessageToUser(carol.id, []byte("to carol"), SendReliable, 0); err != nil {
		t.Fatal(err)
	}
	if text, m := recvText(t, alice, 0); text != "from carol" {
		t.Fatalf("alice got %q", text)
	} else {
		m.Release()
	}
	if text, m := recvText(t, carol, 0); text != "to carol" {
		t.Fatalf("carol got %q", text)
	} else {
		m.Release()
	}
}

// TestMessagesUDPCloseChannelAndSession: closing a channel drops its unread
// messages and closing the last one closes the session; closing a session
// ends it at once and the peer hears 1001 (reported as closed by peer, not
// as a failure); a new send makes a new session.
func TestMessagesUDPCloseChannelAndSession(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the peers' cleanups
	alice, bob := udpMsgPair(t, nil)
	openSession(t, alice, bob)
	for _, ch := range []int{1, 2} {
		if err := alice.m.SendMessageToUser(bob.id, []byte("unread"), SendReliable, ch); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "both unread messages", func() bool {
		bob.m.chMu.Lock()
		defer bob.m.chMu.Unlock()
		q1, q2 := bob.m.channels[1], bob.m.channels[2]
		return q1 != nil && q2 != nil && q1.len() == 1 && q2.len() == 1
	})
	if !bob.m.CloseChannelWithUser(alice.id, 1) {
		t.Fatal("close channel 1 failed")
	}
	if ms := bob.m.ReceiveMessagesOnChannel(1, 10); len(ms) != 0 {
		t.Fatal("closing the channel kept its unread message")
	}
	if st, _, _ := bob.m.GetSessionConnectionInfo(alice.id); st != StateConnected {
		t.Fatalf("session %v after closing one of its channels, want Connected", st)
	}
	bob.m.CloseChannelWithUser(alice.id, 0)
	if !bob.m.CloseChannelWithUser(alice.id, 2) {
		t.Fatal("close channel 2 failed")
	}
	if st, _, _ := bob.m.GetSessionConnectionInfo(alice.id); st != StateNone {
		t.Fatalf("session %v after closing its last channel, want None", st)
	}
	waitFor(t, 10*time.Second, "alice hears the close", func() bool { _, closed := alice.gotEvents(); return len(closed) == 1 })
	if _, closed := alice.gotEvents(); closed[0].EndReason != EndSessionClosed || closed[0].Identity != bob.id {
		t.Errorf("alice saw %+v, want closed by peer with %v", closed[0], EndSessionClosed)
	}
	if f := alice.gotFailures(); len(f) != 0 {
		t.Errorf("a close was reported as a failure: %+v", f)
	}
	// A new send makes a new session; then close it from alice's side.
	if err := alice.m.SendMessageToUser(bob.id, []byte("again"), SendReliable, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a second request", func() bool { return len(bob.gotRequests()) >= 2 })
	bob.m.AcceptSessionWithUser(alice.id)
	if text, m := recvText(t, bob, 0); text != "again" {
		t.Fatalf("bob got %q", text)
	} else {
		m.Release()
	}
	if !alice.m.CloseSessionWithUser(bob.id) {
		t.Fatal("close session failed")
	}
	if st, _, _ := alice.m.GetSessionConnectionInfo(bob.id); st != StateNone {
		t.Fatalf("closed session reads %v", st)
	}
	waitFor(t, 10*time.Second, "bob hears the close", func() bool { _, closed := bob.gotEvents(); return len(closed) == 1 })
}

// TestMessagesUDPFailure: a session to a port where nobody listens fails
// with ProblemDetectedLocally and a timeout; sends then return
// ResultNoConnection until SendAutoRestartBrokenSession starts again.
func TestMessagesUDPFailure(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the peers' cleanups
	alice := newMsgPeersWith(t, nil, 1, func(_ int, c *Config) { c.TimeoutInitial = time.Second })[0]
	defer alice.Close()
	nobody, _ := IdentityFromAddr(netip.MustParseAddrPort("127.0.0.1:9")) // discard: nobody answers
	if err := alice.m.SendMessageToUser(nobody, []byte("anyone?"), SendReliable, 0); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the failure", func() bool { return len(alice.gotFailures()) > 0 })
	if f := alice.gotFailures()[0]; f.State != StateProblemDetectedLocally || f.Identity != nobody ||
		(f.EndReason != EndMiscTimeout && f.EndReason != EndMiscGeneric) {
		t.Errorf("failure %+v", f)
	}
	if err := alice.m.SendMessageToUser(nobody, []byte("again"), SendReliable, 0); !errors.Is(err, ResultNoConnection) {
		t.Fatalf("send on a failed session: %v", err)
	}
	if err := alice.m.SendMessageToUser(nobody, []byte("again"), SendReliable|SendAutoRestartBrokenSession, 0); err != nil {
		t.Fatalf("auto restart: %v", err)
	}
	if st, _, _ := alice.m.GetSessionConnectionInfo(nobody); st != StateConnecting {
		t.Errorf("restarted session reads %v, want Connecting", st)
	}
}

// TestMessagesUDPSymmetricConnect: both sides send first; exactly one
// connection survives and every message arrives once, in order.
func TestMessagesUDPSymmetricConnect(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the peers' cleanups
	for round := range 3 {
		alice, bob := udpMsgPair(t, nil)
		for i := range 5 {
			alice.m.SendMessageToUser(bob.id, fmt.Appendf(nil, "a%d", i), SendReliable, 0)
			bob.m.SendMessageToUser(alice.id, fmt.Appendf(nil, "b%d", i), SendReliable, 0)
		}
		for i := range 5 {
			if text, m := recvText(t, bob, 0); text != fmt.Sprintf("a%d", i) {
				t.Fatalf("round %d: bob got %q, want a%d", round, text, i)
			} else {
				m.Release()
			}
			if text, m := recvText(t, alice, 0); text != fmt.Sprintf("b%d", i) {
				t.Fatalf("round %d: alice got %q, want b%d", round, text, i)
			} else {
				m.Release()
			}
		}
		time.Sleep(300 * time.Millisecond)
		for _, p := range []*msgPeer{alice, bob} {
			if ms := p.m.ReceiveMessagesOnChannel(0, 10); len(ms) != 0 {
				t.Fatalf("round %d: %d duplicates", round, len(ms))
			}
		}
		closeAll([]*msgPeer{alice, bob})
	}
}

// TestMessagesUDPLossy: over real sockets with the fake network at 10% and
// 30% loss each way, with reordering-inducing jitter and duplication,
// reliable messages on three channels arrive exactly once and in order per
// channel, both ways; unreliable ones arrive intact or not at all.
func TestMessagesUDPLossy(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the peers' cleanups
	for _, loss := range []float64{10, 30} {
		t.Run(fmt.Sprint(loss), func(t *testing.T) {
			fake := func(i int, c *Config) {
				c.FakeSend = FakeNetwork{LossPercent: loss, Lag: 2 * time.Millisecond, Jitter: 3 * time.Millisecond}
				c.FakeRecv = FakeNetwork{DuplicatePercent: 10, ReorderPercent: 10, ReorderLag: 4 * time.Millisecond}
				c.Rand = seededRand(uint64(100*loss) + uint64(i))
				c.OnSessionRequest = nil
			}
			alice, bob := udpMsgPair(t, fake)
			const n = 150
			channels := []int{0, 5, -3}
			size := func(i int) int { return 9 + (i*131)%1500 }
			var wg sync.WaitGroup
			for _, pair := range [][2]*msgPeer{{alice, bob}, {bob, alice}} {
				wg.Go(func() {
					from, to := pair[0], pair[1]
					for i := range n {
						for _, ch := range channels {
							b := numbered(uint64(i), size(i))
							for {
								err := from.m.SendMessageToUser(to.id, b, SendReliable, ch)
								if err == nil {
									break
								}
								if !errors.Is(err, ResultLimitExceeded) {
									t.Errorf("send: %v", err)
									return
								}
								time.Sleep(time.Millisecond) // the send buffer is full: wait for acks
							}
							from.m.SendMessageToUser(to.id, b, SendUnreliable, ch+100)
						}
					}
				})
			}
			wg.Wait()
			for _, p := range []*msgPeer{alice, bob} {
				next := map[int]uint64{}
				deadline := time.Now().Add(60 * time.Second)
				for done := 0; done < len(channels); {
					if time.Now().After(deadline) {
						t.Fatalf("timed out: %v of %d per channel", next, n)
					}
					done = 0
					for _, ch := range channels {
						for _, m := range p.m.ReceiveMessagesOnChannel(ch, 64) {
							seq := binary.LittleEndian.Uint64(m.Payload)
							if seq != next[ch] || !bytes.Equal(m.Payload, numbered(seq, size(int(seq)))) {
								t.Fatalf("channel %d: message %d arrived as %d (order, duplicate or corruption)", ch, next[ch], seq)
							}
							next[ch]++
							m.Release()
						}
						if next[ch] == n {
							done++
						}
					}
					for _, ch := range channels {
						for _, m := range p.m.ReceiveMessagesOnChannel(ch+100, 64) {
							seq := binary.LittleEndian.Uint64(m.Payload)
							if seq >= n || !bytes.Equal(m.Payload, numbered(seq, size(int(seq)))) {
								t.Fatalf("unreliable message %d damaged", seq)
							}
							m.Release()
						}
					}
					time.Sleep(2 * time.Millisecond)
				}
			}
			// Channels are accepted by the implicit accept of the sends
			// both ways; no request stayed pending.
			closeAll([]*msgPeer{alice, bob})
		})
	}
}

// TestMessagesUDPManyPeers: 1,000 sessions to one Host over real sockets
// (one socket per peer), each echoing a message.
func TestMessagesUDPManyPeers(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the peers' cleanups
	const n = 1000
	hub := newMsgPeersWith(t, nil, 1, nil)[0]
	defer hub.Close()
	peers := newMsgPeersWith(t, nil, n, func(_ int, c *Config) { c.OnSessionRequest = nil })
	defer closeAll(peers)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() {
		done := 0 // requests accepted (a peer that restarts its session asks again)
		for ctx.Err() == nil {
			reqs := hub.gotRequests()
			for _, id := range reqs[done:] {
				hub.m.AcceptSessionWithUser(id)
			}
			done = len(reqs)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	// On a loaded machine, a thousand handshakes at once can take longer
	// than the connect timeout: a peer whose session failed before its
	// message arrived sends it again on a fresh session, as an
	// application would, and the test counts each peer's message once.
	send := func(i int) {
		if err := peers[i].m.SendMessageToUser(hub.id, numbered(uint64(i), 32), SendReliable|SendAutoRestartBrokenSession, 0); err != nil {
			t.Fatal(err)
		}
	}
	for i := range peers {
		send(i)
	}
	index := map[Identity]int{}
	for i, p := range peers {
		index[p.id] = i
	}
	arrived := map[Identity]bool{}
	for len(arrived) < n {
		rctx, rcancel := context.WithTimeout(ctx, time.Second)
		ms, err := hub.m.ReceiveBatch(rctx, 0, 64)
		rcancel()
		if ctx.Err() != nil {
			t.Fatalf("after %d of %d: %v", len(arrived), n, ctx.Err())
		}
		if err != nil {
			for i, p := range peers {
				if st, _, _ := p.m.GetSessionConnectionInfo(hub.id); !arrived[p.id] && st == StateProblemDetectedLocally {
					send(i)
				}
			}
			continue
		}
		for _, m := range ms {
			i, ok := index[m.Identity]
			if !ok || !bytes.Equal(m.Payload, numbered(uint64(i), 32)) {
				t.Fatalf("unexpected message from %v", m.Identity)
			}
			if arrived[m.Identity] {
				t.Fatalf("%v's message arrived twice", m.Identity)
			}
			arrived[m.Identity] = true
			if err := hub.m.SendMessageToUser(m.Identity, m.Payload, SendReliable|SendAutoRestartBrokenSession, 0); err != nil {
				t.Fatal(err)
			}
			m.Release()
		}
	}
	for i, p := range peers {
		ms, err := p.m.ReceiveBatch(ctx, 0, 1)
		if err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
		if !bytes.Equal(ms[0].Payload, numbered(uint64(i), 32)) {
			t.Fatalf("peer %d got the wrong echo", i)
		}
		ms[0].Release()
	}
	cancel()
}
