package netmsg

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
)

// TestMessagesChannelsDoNotBlock: between two netmsg Hosts a lost packet on
// channel 1 does not delay channel 2 (each channel rides its own lane);
// when one side behaves as GNS (no lane extension), every channel shares
// lane 0 and channel 2 waits for channel 1's retransmission, as with GNS.
func TestMessagesChannelsDoNotBlock(t *testing.T) {
	for _, gns := range []bool{false, true} {
		name := "netmsg peer"
		if gns {
			name = "GNS-style peer"
		}
		t.Run(name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				const delay = 20 * time.Millisecond
				nw, err := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: delay}})
				if err != nil {
					t.Fatal(err)
				}
				defer nw.Close()
				ps := newMsgPeersWith(t, nw, 2, func(i int, c *Config) { c.gnsLanes = gns && i == 1 })
				defer closeAll(ps)
				alice, bob := ps[0], ps[1]
				openSession(t, alice, bob)
				// Every channel used once, both ways, so nothing below waits
				// on a session or channel being set up.
				for _, ch := range []int{1, 2} {
					alice.m.SendMessageToUser(bob.id, []byte("warm"), SendReliable|SendNoNagle, ch)
					if text, m := recvText(t, bob, ch); text != "warm" {
						t.Fatalf("channel %d: %q", ch, text)
					} else {
						m.Release()
					}
				}
				time.Sleep(time.Second)

				// Drop the next data packet from alice to bob: the one that
				// carries channel 1's message.
				var armed atomic.Bool
				armed.Store(true)
				a, b := alice.LocalAddr(), bob.LocalAddr()
				if err := nw.SetLink(a, b, netsim.LinkConfig{Delay: delay, Drop: func(_ uint64, d []byte) bool {
					return len(d) > 0 && d[0]&0x80 != 0 && armed.CompareAndSwap(true, false)
				}}); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				if err := alice.m.SendMessageToUser(bob.id, []byte("one"), SendReliable|SendNoNagle, 1); err != nil {
					t.Fatal(err)
				}
				if err := alice.m.SendMessageToUser(bob.id, []byte("two"), SendReliable|SendNoNagle, 2); err != nil {
					t.Fatal(err)
				}
				var arrived [3]time.Duration
				done := make(chan struct{})
				for _, ch := range []int{1, 2} {
					go func() {
						text, m := recvText(t, bob, ch)
						m.Release()
						if text != map[int]string{1: "one", 2: "two"}[ch] {
							t.Errorf("channel %d: %q", ch, text)
						}
						arrived[ch] = time.Since(start)
						done <- struct{}{}
					}()
				}
				<-done
				<-done
				if armed.Load() {
					t.Fatal("no packet was dropped")
				}
				t.Logf("channel 1 after %v, channel 2 after %v", arrived[1], arrived[2])
				if arrived[1] <= 2*delay {
					t.Fatalf("channel 1 arrived after %v: its packet was not the one lost", arrived[1])
				}
				if gns {
					if arrived[2] < arrived[1] {
						t.Errorf("GNS-style: channel 2 (%v) overtook channel 1 (%v) on one lane", arrived[2], arrived[1])
					}
				} else if arrived[2] > delay+time.Millisecond {
					t.Errorf("channel 2 took %v, want one-way delay %v: blocked by channel 1's loss", arrived[2], delay)
				}
			})
		})
	}
}

// TestMessagesReceiveBatch: ReceiveBatch blocks until a message arrives,
// returns up to max in order, refuses a bad max, and ends with ctx.
func TestMessagesReceiveBatch(t *testing.T) {
	bubble(t, func(t *testing.T) {
		alice, bob := msgPair(t, 10*time.Millisecond)
		openSession(t, alice, bob)
		if _, err := bob.m.ReceiveBatch(context.Background(), 0, 0); !errors.Is(err, ResultInvalidParam) {
			t.Fatalf("max 0: %v", err)
		}
		for i := range 10 {
			alice.m.SendMessageToUser(bob.id, []byte{byte(i)}, SendReliable, 3)
		}
		time.Sleep(time.Second)
		got := 0
		for got < 10 {
			ms, err := bob.m.ReceiveBatch(context.Background(), 3, 4)
			if err != nil {
				t.Fatal(err)
			}
			if len(ms) > 4 {
				t.Fatalf("%d messages, max 4", len(ms))
			}
			for _, m := range ms {
				if m.Payload[0] != byte(got) || m.Channel != 3 {
					t.Fatalf("message %d: %v on channel %d", got, m.Payload, m.Channel)
				}
				got++
				m.Release()
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := bob.m.ReceiveBatch(ctx, 3, 4); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("empty channel: %v", err)
		}
	})
}

// TestMessagesConnectionFields: a Messages message names its session's
// connection, which the connection API refuses (the session owns it, as in
// GNS), and user data reads -1, GNS's "none set".
func TestMessagesConnectionFields(t *testing.T) {
	bubble(t, func(t *testing.T) {
		alice, bob := msgPair(t, 10*time.Millisecond)
		openSession(t, alice, bob)
		alice.m.SendMessageToUser(bob.id, []byte("x"), SendReliable, 0)
		_, m := recvText(t, bob, 0)
		defer m.Release()
		if m.Connection == InvalidConn {
			t.Error("Message.Connection is invalid")
		}
		if m.ReceiverUserData != -1 {
			t.Errorf("receiver user data %d, want -1", m.ReceiverUserData)
		}
		if bob.SetConnectionUserData(m.Connection, 7) {
			t.Error("SetConnectionUserData took a session's connection")
		}
		if _, err := bob.ConnectionInfo(m.Connection); err == nil {
			t.Error("ConnectionInfo took a session's connection")
		}
		_, info, _ := bob.m.GetSessionConnectionInfo(alice.id)
		if info.UserData != -1 {
			t.Errorf("session user data %d, want -1", info.UserData)
		}
	})
}

// TestMessagesChannelBound: a peer that sends on ever more channels makes
// at most maxChannels channel queues; what it sends beyond them is
// dropped and counted, and the channels in use keep working.
func TestMessagesChannelBound(t *testing.T) {
	defer func(n int) { maxChannels = n }(maxChannels)
	maxChannels = 20
	bubble(t, func(t *testing.T) {
		alice, bob := msgPair(t, time.Millisecond)
		openSession(t, alice, bob)
		before := bob.Host.Stats().Dropped
		for ch := range 50 {
			if err := alice.m.SendMessageToUser(bob.id, []byte{byte(ch)}, SendReliable, ch); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second)
		bob.m.chMu.Lock()
		n := len(bob.m.channels)
		bob.m.chMu.Unlock()
		if n > maxChannels {
			t.Fatalf("%d channel queues, bound %d", n, maxChannels)
		}
		got := 0
		for ch := range 50 {
			for _, m := range bob.m.ReceiveMessagesOnChannel(ch, 10) {
				if int(m.Payload[0]) != ch {
					t.Fatalf("channel %d: message %d", ch, m.Payload[0])
				}
				got++
				m.Release()
			}
		}
		dropped := bob.Host.Stats().Dropped - before
		if got+int(dropped) != 50 || dropped == 0 {
			t.Fatalf("%d received and %d dropped of 50", got, dropped)
		}
		// A channel that has a queue still carries messages.
		alice.m.SendMessageToUser(bob.id, []byte("again"), SendReliable, 0)
		if text, m := recvText(t, bob, 0); text != "again" {
			t.Fatalf("channel 0 after the bound: %q", text)
		} else {
			m.Release()
		}
	})
}
