package netmsg

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

// TestMessagesSlowReader is issue 12's slow reader on fake time: over a
// link losing 10% each way, the sender queues 3 channels x 2,000 reliable
// messages of 8-3,000 bytes (retrying on ResultLimitExceeded) while the
// receiver, which accepted the session, does not read for five minutes.
// The session stays up on both sides (no failure, no close), the sender is
// pushed back, and when the receiver reads again it gets every message
// exactly once and in order.
func TestMessagesSlowReader(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Seed: 3, Link: netsim.LinkConfig{Delay: 5 * time.Millisecond, Jitter: 2 * time.Millisecond, LossPercent: 10}})
		defer nw.Close()
		ps := newMsgPeersWith(t, nw, 2, func(i int, c *Config) {
			if testing.Verbose() {
				c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
			}
		})
		defer closeAll(ps)
		snd, rcv := ps[0], ps[1]
		openSession(t, snd, rcv)

		const channels, perChannel = 3, 2000
		r := rand.New(rand.NewPCG(1, 2))
		msg := func(ch, i int) []byte {
			b := make([]byte, 8+r.IntN(2993))
			binary.LittleEndian.PutUint32(b, uint32(ch))
			binary.LittleEndian.PutUint32(b[4:], uint32(i))
			return b
		}
		sendDone := make(chan int)
		go func() {
			pushedBack := 0
			for i := range perChannel {
				for ch := range channels {
					b := msg(ch, i)
					for {
						err := snd.m.SendMessageToUser(rcv.id, b, SendReliable, ch)
						if err == nil {
							break
						}
						if !errors.Is(err, ResultLimitExceeded) {
							t.Errorf("send %d/%d: %v", ch, i, err)
							sendDone <- pushedBack
							return
						}
						pushedBack++
						time.Sleep(50 * time.Millisecond)
					}
				}
			}
			sendDone <- pushedBack
		}()

		// The receiver does not read for five minutes.
		time.Sleep(5 * time.Minute)
		for _, p := range []*msgPeer{snd, rcv} {
			if f := p.gotFailures(); len(f) != 0 {
				t.Fatalf("%v: session failed while the receiver did not read: %+v", p.id, f)
			}
			if _, c := p.gotEvents(); len(c) != 0 {
				t.Fatalf("%v: session closed: %+v", p.id, c)
			}
		}
		if st, info, _ := snd.m.GetSessionConnectionInfo(rcv.id); st != StateConnected {
			t.Fatalf("sender's session %v %+v", st, info)
		}

		next := [channels]int{}
		deadline := time.Now().Add(10 * time.Minute)
		for got := 0; got < channels*perChannel; {
			if time.Now().After(deadline) {
				t.Fatalf("received %d of %d (next %v)", got, channels*perChannel, next)
			}
			n := 0
			for ch := range channels {
				for _, m := range rcv.m.ReceiveMessagesOnChannel(ch, 100) {
					c, i := int(binary.LittleEndian.Uint32(m.Payload)), int(binary.LittleEndian.Uint32(m.Payload[4:]))
					if c != ch || i != next[ch] {
						t.Fatalf("channel %d: got message %d/%d, want %d", ch, c, i, next[ch])
					}
					next[ch]++
					m.Release()
					n++
				}
			}
			got += n
			if n == 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
		pushedBack := <-sendDone
		if pushedBack == 0 {
			t.Error("the sender was never pushed back")
		}
		for _, p := range []*msgPeer{snd, rcv} {
			if f := p.gotFailures(); len(f) != 0 {
				t.Fatalf("%v: session failed: %+v", p.id, f)
			}
		}
		t.Logf("pushed back %d times; all %d messages in order", pushedBack, channels*perChannel)
	})
}

// TestConnSlowReader: the slow reader on the connection API, the receiver's
// connection in a poll group: over a link losing 10% each way the sender
// queues 6,000 reliable messages of 8-3,000 bytes (retrying on
// ResultLimitExceeded) while the receiver does not read for five minutes;
// the connection stays up on both sides and every message then arrives
// once and in order.
func TestConnSlowReader(t *testing.T) {
	bubble(t, func(t *testing.T) {
		cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: 5 * time.Millisecond, Jitter: 2 * time.Millisecond, LossPercent: 10})
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		c := connectWait(t, cli, srv)
		s := serverConn(t, srv)
		g := srv.CreatePollGroup()
		if !srv.SetConnectionPollGroup(s, g) {
			t.Fatal("poll group")
		}
		const total = 6000
		r := rand.New(rand.NewPCG(5, 6))
		sendDone := make(chan int)
		go func() {
			pushedBack := 0
			for i := range total {
				b := make([]byte, 8+r.IntN(2993))
				binary.LittleEndian.PutUint64(b, uint64(i))
				for {
					_, err := cli.SendMessageToConnection(c, b, SendReliable)
					if err == nil {
						break
					}
					if !errors.Is(err, ResultLimitExceeded) {
						t.Errorf("send %d: %v", i, err)
						sendDone <- pushedBack
						return
					}
					pushedBack++
					time.Sleep(50 * time.Millisecond)
				}
			}
			sendDone <- pushedBack
		}()
		time.Sleep(5 * time.Minute)
		for _, p := range []struct {
			peer *testPeer
			c    ConnHandle
		}{{cli, c}, {srv, s}} {
			if st, info := p.peer.lastState(p.c); st != StateConnected {
				t.Fatalf("connection %v after 5 min without reading: %v %q", p.c, st, info.EndDebug)
			}
		}
		next := 0
		deadline := time.Now().Add(10 * time.Minute)
		for next < total {
			if time.Now().After(deadline) {
				t.Fatalf("received %d of %d", next, total)
			}
			ms := srv.ReceiveMessagesOnPollGroup(g, 100)
			for _, m := range ms {
				if i := int(binary.LittleEndian.Uint64(m.Payload)); i != next {
					t.Fatalf("got message %d, want %d", i, next)
				}
				next++
				m.Release()
			}
			if len(ms) == 0 {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if pushedBack := <-sendDone; pushedBack == 0 {
			t.Error("the sender was never pushed back")
		}
	})
}

// TestConnSlowReaderKeepsSenderHearing: while the receiver does not read
// and discards the sender's new data, it keeps sending to the sender (acks
// that nack the discarded packets, answers to ack requests), as GNS does: a
// sender that hears nothing for TimeoutConnected drops the connection, and
// a GNS sender's pings always ride packets with data. Over a minute of a
// sender that keeps writing, the receiver is never silent for a second.
func TestConnSlowReaderKeepsSenderHearing(t *testing.T) {
	bubble(t, func(t *testing.T) {
		link := netsim.LinkConfig{Delay: 5 * time.Millisecond, Jitter: 2 * time.Millisecond, LossPercent: 10}
		cli, srv, nw := netsimPair(t, link)
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		c := connectWait(t, cli, srv)
		s := serverConn(t, srv)
		var mu sync.Mutex
		var last time.Time
		var longest time.Duration
		back := link
		back.Drop = func(_ uint64, _ []byte) bool {
			mu.Lock()
			defer mu.Unlock()
			now := time.Now()
			if !last.IsZero() && now.Sub(last) > longest {
				longest = now.Sub(last)
			}
			last = now
			return false
		}
		if err := nw.SetLink(srv.LocalAddr(), cli.LocalAddr(), back); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1500)
		pushedBack := 0
		for end := time.Now().Add(time.Minute); time.Now().Before(end); {
			if _, err := cli.SendMessageToConnection(c, b, SendReliable); errors.Is(err, ResultLimitExceeded) {
				pushedBack++
			} else if err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		mu.Lock()
		gap := longest
		mu.Unlock()
		if gap >= time.Second {
			t.Errorf("the receiver was silent for %v while it did not read", gap)
		}
		if pushedBack == 0 {
			t.Error("the sender was never pushed back")
		}
		for _, p := range []struct {
			peer *testPeer
			c    ConnHandle
		}{{cli, c}, {srv, s}} {
			if st, info := p.peer.lastState(p.c); st != StateConnected {
				t.Fatalf("connection %v: %v %q", p.c, st, info.EndDebug)
			}
		}
	})
}

// TestMessagesSlowReaderNoDiscard: over a P2P session, direct and through
// a TURN server (package relay) on the in-memory network, the sender sends
// 4,000 reliable messages as fast as it may while the receiver, whose
// receive queue holds 64 messages, takes at most 16 every millisecond.
// The Host's reader waits for such a reader (readerStall) rather than let
// the engine discard what does not fit, whichever path the data came by:
// the receiver's engine discards nothing, and every message arrives once,
// in order. (Data through the relay used to skip that wait: a relayed run
// discarded hundreds of packets, which the sender then resent.)
func TestMessagesSlowReaderNoDiscard(t *testing.T) {
	for _, relayed := range []bool{false, true} {
		name := "direct"
		if relayed {
			name = "relayed"
		}
		t.Run(name, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 250 * time.Microsecond}})
				defer nw.Close()
				addrs := []netip.AddrPort{netip.MustParseAddrPort("10.77.1.2:27015"), netip.MustParseAddrPort("10.77.2.2:27015")}
				var turn []TURNServer
				if relayed {
					// Host candidates are unreachable: only the relay joins them.
					nw.SetLink(addrs[0], addrs[1], netsim.LinkConfig{LossPercent: 100})
					nw.SetLink(addrs[1], addrs[0], netsim.LinkConfig{LossPercent: 100})
					turnAddr := netip.MustParseAddrPort("10.77.1.1:3478")
					rs, err := relay.NewServer(relay.Config{Logger: slog.New(slog.DiscardHandler), ListenPacket: nw.ListenPacket, ListenAddr: turnAddr.String(), RelayIP: turnAddr.Addr(), Users: map[string]string{"u": "p"}, AllowPeers: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}})
					if err != nil {
						t.Fatal(err)
					}
					defer rs.Close()
					turn = []TURNServer{{Addr: rs.Addr(), Username: "u", Password: "p"}}
				}
				hub, _ := signaling.NewHub(signaling.HubConfig{Delay: 250 * time.Microsecond})
				var ps []*msgPeer
				for i, addr := range addrs {
					ep, err := nw.Listen(addr)
					if err != nil {
						t.Fatal(err)
					}
					id := mustIdentity(t, fmt.Sprintf("str:slow%d", i))
					sc, _ := hub.Connect(id.String())
					defer sc.Close()
					p := &msgPeer{id: id}
					h, err := NewHost(Config{PacketConn: ep, Identity: id, Signaling: sc, TURNServers: turn, P2PRelayOnly: relayed,
						ConnConfig:       ConnConfig{RecvBufferMessages: 64},
						OnSessionRequest: func(peer Identity) { p.m.AcceptSessionWithUser(peer) }})
					if err != nil {
						t.Fatal(err)
					}
					p.Host, p.m = h, h.Messages()
					ps = append(ps, p)
				}
				defer closeAll(ps)
				snd, rcv := ps[0], ps[1]

				const total, size = 4000, 1000
				sendErr := make(chan error, 1)
				go func() {
					b := make([]byte, size)
					for i := range total {
						binary.LittleEndian.PutUint32(b, uint32(i))
						for {
							err := snd.m.SendMessageToUser(rcv.id, b, SendReliable, 0)
							if err == nil {
								break
							}
							if !errors.Is(err, ResultLimitExceeded) {
								sendErr <- fmt.Errorf("send %d: %w", i, err)
								return
							}
							time.Sleep(100 * time.Microsecond)
						}
					}
					sendErr <- nil
				}()
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				for next := 0; next < total; {
					ms, err := rcv.m.ReceiveBatch(ctx, 0, 16)
					if err != nil {
						t.Fatalf("after %d messages: %v", next, err)
					}
					for _, m := range ms {
						if got := int(binary.LittleEndian.Uint32(m.Payload)); got != next || len(m.Payload) != size {
							t.Fatalf("message %d: got #%d, %d bytes", next, got, len(m.Payload))
						}
						next++
						m.Release()
					}
					time.Sleep(time.Millisecond)
				}
				if err := <-sendErr; err != nil {
					t.Fatal(err)
				}
				if _, info, _ := snd.m.GetSessionConnectionInfo(rcv.id); (info.Flags&ConnInfoRelayed != 0) != relayed {
					t.Fatalf("path %q, want relayed %v", info.Description, relayed)
				}
				rcv.Host.mu.Lock()
				var discarded int64
				for _, hc := range rcv.conns {
					discarded += hc.c.Stats(time.Now()).PacketsDiscarded
				}
				rcv.Host.mu.Unlock()
				if discarded != 0 {
					t.Errorf("the receiver's engine discarded %d packets", discarded)
				}
			})
		})
	}
}
