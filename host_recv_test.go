package netmsg

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
)

// TestMessagesHeldBackOneAtATime: with a receive queue of 8 messages, 300
// reliable messages sent at once wait in the engine (and, beyond its own
// limit, at the sender); a receiver taking them one at a time with Receive,
// slowly enough that the queue fills, gets every one, in order, and the
// queue never holds more than the limit. This pins took's refill: the
// last messages can only reach the queue through the takes (the sender
// stopped, so no datagram brings the reader back) without waiting for
// the engine's timers.
func TestMessagesHeldBackOneAtATime(t *testing.T) {
	const limit, total = 8, 300
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: time.Millisecond}})
		defer nw.Close()
		ps := newMsgPeersWith(t, nw, 2, func(i int, c *Config) { c.RecvBufferMessages = limit })
		defer closeAll(ps)
		alice, bob := ps[0], ps[1]
		openSession(t, alice, bob)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i := range total {
			var b [8]byte
			binary.LittleEndian.PutUint64(b[:], uint64(i))
			for {
				err := alice.m.SendMessageToUser(bob.id, b[:], SendReliable, 0)
				if err == nil {
					break
				}
				if err != ResultLimitExceeded {
					t.Fatalf("send %d: %v", i, err)
				}
				time.Sleep(time.Millisecond)
			}
		}
		var hc *hostConn
		start := time.Now()
		for i := range total {
			time.Sleep(100 * time.Microsecond) // a slow receiver: the queue fills meanwhile
			m, err := bob.m.Receive(ctx, 0)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if got := binary.LittleEndian.Uint64(m.Payload); got != uint64(i) {
				t.Fatalf("message %d: got %d", i, got)
			}
			hc = m.conn
			if q := hc.queued.Load(); q > limit || q < 0 {
				t.Fatalf("after message %d: %d queued, limit %d", i, q, limit)
			}
			m.Release()
		}
		// 30 ms of the receiver's pauses; without the refill by the takes,
		// the held messages wait for the engine's timers (25 s).
		if d := time.Since(start); d > 200*time.Millisecond {
			t.Errorf("%d messages took %v, want under 200 ms", total, d)
		}
		if q := hc.queued.Load(); q != 0 {
			t.Errorf("%d messages counted as queued at the end", q)
		}
		if ms := bob.m.ReceiveMessagesOnChannel(0, 10); len(ms) != 0 {
			t.Errorf("%d messages more than sent", len(ms))
		}
	})
}

// TestMessagesHeldBackBatch is the same with ReceiveMessagesOnChannel
// taking 3 at a time without blocking, every millisecond, while the
// sender sends whatever its buffer takes.
func TestMessagesHeldBackBatch(t *testing.T) {
	const limit, total = 8, 300
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: time.Millisecond}})
		defer nw.Close()
		ps := newMsgPeersWith(t, nw, 2, func(i int, c *Config) { c.RecvBufferMessages = limit })
		defer closeAll(ps)
		alice, bob := ps[0], ps[1]
		sent := 0
		got := 0
		start := time.Now()
		for got < total {
			for sent < total {
				var b [8]byte
				binary.LittleEndian.PutUint64(b[:], uint64(sent))
				if err := alice.m.SendMessageToUser(bob.id, b[:], SendReliable, 0); err != nil {
					if err != ResultLimitExceeded {
						t.Fatalf("send %d: %v", sent, err)
					}
					break
				}
				sent++
			}
			time.Sleep(time.Millisecond)
			bob.m.AcceptSessionWithUser(alice.id)
			for _, m := range bob.m.ReceiveMessagesOnChannel(0, 3) {
				if v := binary.LittleEndian.Uint64(m.Payload); v != uint64(got) {
					t.Fatalf("message %d: got %d", got, v)
				}
				if q := m.conn.queued.Load(); q > limit || q < 0 {
					t.Fatalf("after message %d: %d queued, limit %d", got, q, limit)
				}
				got++
				m.Release()
			}
		}
		// 100 ms of takes at 3 a millisecond; 26 s without the refill.
		if d := time.Since(start); d > time.Second {
			t.Errorf("%d messages took %v, want under 1 s", total, d)
		}
	})
}
