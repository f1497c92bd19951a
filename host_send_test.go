package netmsg

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
)

// slowSendConfig is a connection's config with a fixed 64 KiB/s send rate
// and a 16 KiB send buffer: a sender of 1000-byte messages fills the
// buffer in a moment and then waits on the rate.
var slowSendConfig = ConnConfig{SendRateMin: 64 << 10, SendRateMax: 64 << 10, SendBufferSize: 16 << 10}

// TestHostSendWaitsForRoom: Send waits while the send buffer is full
// (where SendMessageToConnection fails with ResultLimitExceeded) and
// returns once there is room, so a loop of Sends delivers every message
// once and in order at the connection's rate; it ends with ctx, and with
// the connection's error when the connection ends while it waits.
func TestHostSendWaitsForRoom(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, ea, eb := netsimEndpoints(t, netsim.LinkConfig{Delay: 5 * time.Millisecond})
		defer nw.Close()
		alice, _ := ParseIdentity("str:alice")
		bob, _ := ParseIdentity("str:bob")
		cli := newTestPeer(t, Config{PacketConn: ea, Identity: alice}, false)
		srv := newTestPeer(t, Config{PacketConn: eb, Identity: bob}, true)
		defer srv.Close()
		defer cli.Close()
		c, err := cli.ConnectWith(srv.LocalAddr(), slowSendConfig)
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "connected", func() bool { st, _ := cli.lastState(c); return st == StateConnected })
		s := serverConn(t, srv)

		const n = 200 // 200 KB: about 3 s at 64 KiB/s
		got := receiveNumbered(n, 1000, func(ctx context.Context) (*Message, error) { return srv.Receive(ctx, s) })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		full := 0
		start := time.Now()
		for i := range uint64(n) {
			b := numbered(i, 1000)
			if _, err := cli.SendMessageToConnection(c, b, SendReliable); err == nil {
				continue
			} else if !errors.Is(err, ResultLimitExceeded) {
				t.Fatal(err)
			}
			full++
			if _, err := cli.Send(ctx, c, b, SendReliable); err != nil {
				t.Fatalf("Send of message %d: %v", i, err)
			}
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		el := time.Since(start)
		if full == 0 {
			t.Fatal("the send buffer never filled: the test does not test Send")
		}
		if el < 2*time.Second || el > 5*time.Second {
			t.Errorf("%d messages of 1000 B at 64 KiB/s took %v", n, el)
		}

		// Full, and ctx ends: ctx's error.
		for {
			if _, err := cli.SendMessageToConnection(c, make([]byte, 1000), SendReliable); errors.Is(err, ResultLimitExceeded) {
				break
			}
		}
		short, cancelShort := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancelShort()
		if _, err := cli.Send(short, c, make([]byte, 1000), SendReliable); err != context.DeadlineExceeded {
			t.Fatalf("Send with a full buffer past ctx's deadline: %v", err)
		}

		// Full, and the connection ends: its error, not a hang. (A
		// message that needs three quarters of the buffer waits about
		// 190 ms at this rate; the close comes in 15 ms.)
		done := make(chan error, 1)
		go func() {
			_, err := cli.Send(ctx, c, make([]byte, 12<<10), SendReliable)
			done <- err
		}()
		time.Sleep(10 * time.Millisecond)
		srv.CloseConnection(s, EndAppMin+7, "bye", false)
		if err := <-done; !errors.Is(err, ResultNoConnection) {
			st, _ := cli.lastState(c)
			t.Fatalf("Send on a connection the peer closed: %v, want ResultNoConnection (state %v, at %v)", err, st, time.Since(start))
		}
	})
}

// TestMessagesSendWaitsForRoom is TestHostSendWaitsForRoom for
// Messages.Send.
func TestMessagesSendWaitsForRoom(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, err := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 5 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		defer nw.Close()
		ps := newMsgPeersWith(t, nw, 2, func(_ int, c *Config) { c.ConnConfig = slowSendConfig })
		defer closeAll(ps)
		alice, bob := ps[0], ps[1]
		openSession(t, alice, bob)
		const n = 200
		got := receiveNumbered(n, 1000, func(ctx context.Context) (*Message, error) { return bob.m.Receive(ctx, 2) })
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		full := 0
		for i := range uint64(n) {
			b := numbered(i, 1000)
			if err := alice.m.SendMessageToUser(bob.id, b, SendReliable, 2); err == nil {
				continue
			} else if !errors.Is(err, ResultLimitExceeded) {
				t.Fatal(err)
			}
			full++
			if err := alice.m.Send(ctx, bob.id, b, SendReliable, 2); err != nil {
				t.Fatalf("Send of message %d: %v", i, err)
			}
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		if full == 0 {
			t.Fatal("the send buffer never filled: the test does not test Send")
		}
		short, cancelShort := context.WithTimeout(context.Background(), 5*time.Millisecond)
		defer cancelShort()
		for {
			err := alice.m.Send(short, bob.id, make([]byte, 1000), SendReliable, 2)
			if err == context.DeadlineExceeded {
				break
			}
			if err != nil {
				t.Fatalf("Send with a full buffer past ctx's deadline: %v", err)
			}
		}
	})
}

// receiveNumbered receives n messages of size bytes numbered 0 to n-1
// (numbered) with recv on a goroutine of its own, and sends its verdict
// on the channel it returns: nil when all came once and in order.
func receiveNumbered(n, size int, recv func(ctx context.Context) (*Message, error)) <-chan error {
	got := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i := range uint64(n) {
			m, err := recv(ctx)
			if err != nil {
				got <- err
				return
			}
			if m.Size != size || binary.LittleEndian.Uint64(m.Payload) != i {
				got <- errors.New("a message out of order or damaged")
				return
			}
			m.Release()
		}
		got <- nil
	}()
	return got
}

// TestHostReceiveWakesOnChange: a Receive waiting on a connection returns
// at once when the application closes the connection or puts it in a poll
// group (an error matching ResultNoConnection), rather than waiting for
// its ctx.
func TestHostReceiveWakesOnChange(t *testing.T) {
	for _, change := range []string{"close", "poll group"} {
		t.Run(change, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: time.Millisecond})
				defer nw.Close()
				defer srv.Close()
				defer cli.Close()
				connectWait(t, cli, srv)
				s := serverConn(t, srv)
				done := make(chan error, 1)
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
					defer cancel()
					_, err := srv.Receive(ctx, s)
					done <- err
				}()
				time.Sleep(time.Second)
				start := time.Now()
				if change == "close" {
					srv.CloseConnection(s, 0, "", false)
				} else {
					srv.SetConnectionPollGroup(s, srv.CreatePollGroup())
				}
				err := <-done
				if !errors.Is(err, ResultNoConnection) || time.Since(start) > time.Second {
					t.Fatalf("Receive after %s: %v after %v", change, err, time.Since(start))
				}
			})
		})
	}
}
