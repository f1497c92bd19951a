package netmsg

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/fakenet"
	"github.com/netmsg-go/netmsg/netsim"
	"go.uber.org/goleak"
)

// seededRand returns a reproducible Config.Rand.
func seededRand(seed uint64) *rand.ChaCha8 {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

// fakeStats returns the counters of h's fake network, failing if it has none.
func fakeStats(t *testing.T, h *Host) (send, recv fakenet.Stats) {
	t.Helper()
	fc, ok := h.pc.(*fakenet.Conn)
	if !ok {
		t.Fatalf("the Host's PacketConn is a %T, not wrapped by fakenet", h.pc)
	}
	return fc.Stats()
}

// sendAll sends n numbered reliable messages on c, waiting while the send
// buffer is full.
func sendAll(t *testing.T, p *testPeer, c ConnHandle, n int, size func(int) int) {
	for i := range n {
		for {
			_, err := p.SendMessageToConnection(c, numbered(uint64(i), size(i)), SendReliable)
			if err == nil {
				break
			}
			if !errors.Is(err, ResultLimitExceeded) {
				t.Errorf("send %d: %v", i, err)
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// TestHostFakeNetworkUDP: two Hosts over real loopback UDP, each losing 20%
// of what it sends and delaying the rest by 10 ms, exchange 500 reliable
// messages each way: every one arrives exactly once and in order.
//
// The seeds are ones whose first handshake packets get through: each lost
// handshake packet costs GNS's 500 ms connect retry, and an unlucky seed
// (1 and 2 lose 6 of them) would make this real-time test slow.
func TestHostFakeNetworkUDP(t *testing.T) {
	defer goleak.VerifyNone(t)
	fake := FakeNetwork{LossPercent: 20, Lag: 10 * time.Millisecond}
	srv := newTestPeer(t, Config{ConnConfig: ConnConfig{FakeSend: fake}, Rand: seededRand(5)}, true)
	defer srv.Close()
	cli := newTestPeer(t, Config{ConnConfig: ConnConfig{FakeSend: fake}, Rand: seededRand(6)}, false)
	defer cli.Close()

	const n, limit = 500, 4 * time.Second
	size := func(i int) int { return 20 + (i*131)%300 }
	c, err := cli.Connect(srv.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, limit, "client connected", func() bool { st, _ := cli.lastState(c); return st == StateConnected })
	s := serverConn(t, srv)
	waitFor(t, limit, "server connected", func() bool { st, _ := srv.lastState(s); return st == StateConnected })

	done := make(chan struct{})
	go func() { defer close(done); sendAll(t, srv, s, n, size) }()
	sendAll(t, cli, c, n, size)
	<-done

	got := map[*testPeer]int{}
	waitFor(t, limit, "all messages both ways", func() bool {
		for _, x := range []struct {
			p *testPeer
			c ConnHandle
		}{{cli, c}, {srv, s}} {
			for _, m := range x.p.ReceiveMessagesOnConnection(x.c, 64) {
				want := got[x.p]
				if seq := binary.LittleEndian.Uint64(m.Payload); seq != uint64(want) || !bytes.Equal(m.Payload, numbered(seq, size(want))) {
					t.Fatalf("message %d arrived as %d (order, duplicate or corruption)", want, seq)
				}
				got[x.p]++
				m.Release()
			}
		}
		return got[cli] == n && got[srv] == n
	})
	// Nothing more: no duplicate after the last one.
	time.Sleep(50 * time.Millisecond)
	if extra := len(cli.ReceiveMessagesOnConnection(c, 64)) + len(srv.ReceiveMessagesOnConnection(s, 64)); extra != 0 {
		t.Errorf("%d messages beyond the %d sent", extra, n)
	}
	for _, p := range []*testPeer{cli, srv} {
		st, _ := fakeStats(t, p.Host)
		if st.DroppedLoss == 0 || st.Datagrams == 0 {
			t.Errorf("fake network dropped nothing: %+v", st)
		}
		if loss := float64(st.DroppedLoss) / float64(st.Datagrams); loss < 0.1 || loss > 0.3 {
			t.Errorf("loss %.2f, want about 0.2 (%+v)", loss, st)
		}
	}
	cli.Close()
	srv.Close()
}

// TestHostFakeNetworkMessages: the Messages API over real loopback UDP with
// 10% loss and 5 ms lag on what each Host sends, and jitter and 5%
// duplicates on what it receives.
func TestHostFakeNetworkMessages(t *testing.T) {
	defer goleak.VerifyNone(t)
	send := FakeNetwork{LossPercent: 10, Lag: 5 * time.Millisecond}
	recv := FakeNetwork{Jitter: 2 * time.Millisecond, DuplicatePercent: 5}
	var hs [2]*Host
	for i := range hs {
		h, err := NewHost(Config{
			ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"),
			ConnConfig: ConnConfig{FakeSend: send, FakeRecv: recv},
			Rand:       seededRand(uint64(10 + i)),
			OnSessionRequest: func(peer Identity) {
				hs[i].Messages().AcceptSessionWithUser(peer)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		hs[i] = h
	}
	const n = 300
	size := func(i int) int { return 10 + (i*97)%1000 }
	sendAll := func(from, to *Host) {
		peer, _ := IdentityFromAddr(to.LocalAddr())
		for i := range n {
			for {
				err := from.Messages().SendMessageToUser(peer, numbered(uint64(i), size(i)), SendReliable, 0)
				if err == nil {
					break
				}
				if !errors.Is(err, ResultLimitExceeded) {
					t.Errorf("send %d: %v", i, err)
					return
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); sendAll(hs[1], hs[0]) }()
	sendAll(hs[0], hs[1])
	<-done

	got := [2]int{}
	deadline := time.Now().Add(4 * time.Second)
	for got[0] < n || got[1] < n {
		if time.Now().After(deadline) {
			t.Fatalf("timed out with %v of %d messages each way", got, n)
		}
		for i, h := range hs {
			for _, m := range h.Messages().ReceiveMessagesOnChannel(0, 64) {
				if seq := binary.LittleEndian.Uint64(m.Payload); seq != uint64(got[i]) || !bytes.Equal(m.Payload, numbered(seq, size(got[i]))) {
					t.Fatalf("host %d: message %d arrived as %d (order, duplicate or corruption)", i, got[i], seq)
				}
				got[i]++
				m.Release()
			}
		}
		time.Sleep(2 * time.Millisecond)
	}
	for _, h := range hs {
		st, rt := fakeStats(t, h)
		if st.DroppedLoss == 0 || rt.Duplicated == 0 {
			t.Errorf("fake network dropped nothing: send %+v, recv %+v", st, rt)
		}
	}
	for _, h := range hs {
		h.Close()
	}
}

// TestHostNoFakeNetwork: without fake conditions the Host's socket is not
// wrapped.
func TestHostNoFakeNetwork(t *testing.T) {
	h, err := NewHost(Config{ListenAddr: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if _, ok := h.pc.(*fakenet.Conn); ok {
		t.Error("a Host with no fake conditions wrapped its socket")
	}
}

// TestHostFakeNetworkNetsim runs the common end-to-end script on fake time
// over a perfect in-memory network, with every fake condition on both Hosts.
func TestHostFakeNetworkNetsim(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, err := netsim.New(netsim.Config{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		defer nw.Close()
		send := FakeNetwork{
			LossPercent: 5, Lag: 20 * time.Millisecond, Jitter: 5 * time.Millisecond,
			ReorderPercent: 5, DuplicatePercent: 5, RateLimit: 2 << 20,
		}
		recv := FakeNetwork{LossPercent: 5, Jitter: time.Millisecond}
		var peers [2]*testPeer
		for i, name := range []string{"alice", "bob"} {
			ep, err := nw.Listen(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)}), 27015))
			if err != nil {
				t.Fatal(err)
			}
			id, _ := ParseIdentity("str:" + name)
			peers[i] = newTestPeer(t, Config{
				PacketConn: ep, Identity: id, Rand: seededRand(uint64(20 + i)),
				ConnConfig: ConnConfig{FakeSend: send, FakeRecv: recv},
			}, i == 1)
			defer peers[i].Close()
		}
		exchange(t, peers[0], peers[1], 2*time.Minute, true)
		for _, p := range peers {
			st, rt := fakeStats(t, p.Host)
			if st.DroppedLoss == 0 || st.Reordered == 0 || st.Duplicated == 0 || rt.DroppedLoss == 0 {
				t.Errorf("a condition was not applied: send %+v, recv %+v", st, rt)
			}
		}
	})
}
