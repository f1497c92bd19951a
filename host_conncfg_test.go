package netmsg

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
)

// acceptedServerConns returns the server's handles of its connections, in
// the order they appeared.
func acceptedServerConns(p *testPeer) []ConnHandle {
	var out []ConnHandle
	seen := map[ConnHandle]bool{}
	for _, ev := range p.seen() {
		if ev.Info.State == StateConnecting && !seen[ev.Conn] {
			seen[ev.Conn] = true
			out = append(out, ev.Conn)
		}
	}
	return out
}

// TestConnectionSettings: a connection given its own settings at connect
// time uses them and another connection of the same Host does not; a live
// change takes effect; bad settings are refused.
func TestConnectionSettings(t *testing.T) {
	bubble(t, func(t *testing.T) {
		cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: 10 * time.Millisecond})
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		slow, err := cli.ConnectWith(srv.LocalAddr(), ConnConfig{SendRateMin: 64 << 10, SendRateMax: 64 << 10, TimeoutConnected: 3 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		fast := connectWait(t, cli, srv)
		waitFor(t, time.Minute, "both connected", func() bool { st, _ := cli.lastState(slow); return st == StateConnected })
		rate := func(c ConnHandle) int {
			st, err := cli.RealTimeStatus(c)
			if err != nil {
				t.Fatal(err)
			}
			return st.SendRateBytesPerSecond
		}
		if got := rate(slow); got != 64<<10 {
			t.Errorf("the connection with its own settings sends at %d B/s, want %d", got, 64<<10)
		}
		if got := rate(fast); got == 64<<10 {
			t.Errorf("the other connection took its settings too (%d B/s)", got)
		}
		// Send a backlog on both: the slow one takes about a second per
		// 64 KiB, the other is done at once.
		for i := range 64 {
			for _, c := range []ConnHandle{slow, fast} {
				if _, err := cli.SendMessageToConnection(c, numbered(uint64(i), 4000), SendReliable); err != nil {
					t.Fatal(err)
				}
			}
		}
		time.Sleep(time.Second)
		slowSt, _ := cli.RealTimeStatus(slow)
		fastSt, _ := cli.RealTimeStatus(fast)
		if slowSt.PendingReliable == 0 || fastSt.PendingReliable != 0 {
			t.Errorf("after 1 s: %d bytes still queued on the slow connection (want some), %d on the other (want none)", slowSt.PendingReliable, fastSt.PendingReliable)
		}
		// Live change: the slow connection speeds up.
		if err := cli.SetConnectionConfig(slow, ConnConfig{SendRateMin: 1 << 20, SendRateMax: 1 << 20}); err != nil {
			t.Fatal(err)
		}
		if got := rate(slow); got != 1<<20 {
			t.Errorf("after the change: %d B/s, want %d", got, 1<<20)
		}
		time.Sleep(time.Second)
		if st, _ := cli.RealTimeStatus(slow); st.PendingReliable != 0 {
			t.Errorf("after the change: %d bytes still queued", st.PendingReliable)
		}
		// Refused: bad values, the Host's fake network, an unknown handle.
		if err := cli.SetConnectionConfig(slow, ConnConfig{SendBufferSize: 1}); !errors.Is(err, ErrBadConfig) {
			t.Errorf("bad send buffer: %v", err)
		}
		if _, err := cli.ConnectWith(srv.LocalAddr(), ConnConfig{FakeSend: FakeNetwork{LossPercent: 5}}); !errors.Is(err, ErrBadConfig) {
			t.Errorf("per-connection fake network: %v", err)
		}
		if err := cli.SetConnectionConfig(InvalidConn, ConnConfig{}); !errors.Is(err, ErrNoSuchConn) {
			t.Errorf("unknown handle: %v", err)
		}
	})
}

// TestConnectionSettingsAccept: the accepting side can give a connection its
// own settings.
func TestConnectionSettingsAccept(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, ea, eb := netsimEndpoints(t, netsim.LinkConfig{Delay: 10 * time.Millisecond})
		defer nw.Close()
		cli := newTestPeer(t, Config{PacketConn: ea}, false)
		defer cli.Close()
		srv := newTestPeer(t, Config{PacketConn: eb}, false)
		defer srv.Close()
		if _, err := srv.Listen(); err != nil {
			t.Fatal(err)
		}
		c, err := cli.Connect(srv.LocalAddr())
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "the incoming connection", func() bool { return len(acceptedServerConns(srv)) == 1 })
		s := acceptedServerConns(srv)[0]
		if err := srv.AcceptConnectionWith(s, ConnConfig{SendRateMin: 32 << 10, SendRateMax: 32 << 10}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "connected", func() bool { st, _ := cli.lastState(c); return st == StateConnected })
		if st, _ := srv.RealTimeStatus(s); st.SendRateBytesPerSecond != 32<<10 {
			t.Errorf("accepted with its own rate: %d B/s", st.SendRateBytesPerSecond)
		}
		if st, _ := cli.RealTimeStatus(c); st.SendRateBytesPerSecond == 32<<10 {
			t.Errorf("the client took the server's setting")
		}
	})
}

// laneRun sends a backlog of 1000-byte messages tagged with their lane on
// each lane of cfg, all queued at once, at a fixed 100 KB/s, and returns
// the lane of each message in the order the server received them.
func laneRun(t *testing.T, lanes []Lane, perLane int) []int {
	cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: 5 * time.Millisecond})
	defer nw.Close()
	defer srv.Close()
	defer cli.Close()
	c, err := cli.ConnectWith(srv.LocalAddr(), ConnConfig{SendRateMin: 100_000, SendRateMax: 100_000, SendBufferSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.ConfigureConnectionLanes(c, lanes); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "connected", func() bool { st, _ := cli.lastState(c); return st == StateConnected })
	s := serverConn(t, srv.testPeerOf())
	for i := range perLane {
		for lane := len(lanes) - 1; lane >= 0; lane-- { // the least urgent first
			msg := make([]byte, 1000)
			binary.LittleEndian.PutUint32(msg, uint32(lane))
			binary.LittleEndian.PutUint32(msg[4:], uint32(i))
			if _, err := cli.SendMessageOnLane(c, lane, msg, SendReliable); err != nil {
				t.Fatal(err)
			}
		}
	}
	st, err := cli.ConnectionLaneStatus(c)
	if err != nil || len(st) != len(lanes) {
		t.Fatalf("lane status: %v, %d lanes", err, len(st))
	}
	for i := range lanes {
		if st[i].PendingReliable == 0 || st[i].QueueTime <= 0 {
			t.Errorf("lane %d status %+v: want data pending and a queue time", i, st[i])
		}
	}
	if len(lanes) == 2 && lanes[0].Priority < lanes[1].Priority && st[1].QueueTime <= st[0].QueueTime {
		t.Errorf("the less urgent lane's queue time %v is not above the urgent one's %v", st[1].QueueTime, st[0].QueueTime)
	}
	if _, err := cli.SendMessageOnLane(c, len(lanes), []byte("x"), SendReliable); !errors.Is(err, ResultInvalidParam) {
		t.Errorf("send on a lane that does not exist: %v", err)
	}
	var order []int
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	next := make([]uint32, len(lanes))
	for len(order) < perLane*len(lanes) {
		ms, err := srv.ReceiveBatch(ctx, s, 100)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range ms {
			lane, seq := binary.LittleEndian.Uint32(m.Payload), binary.LittleEndian.Uint32(m.Payload[4:])
			if seq != next[lane] {
				t.Fatalf("lane %d: message %d, want %d", lane, seq, next[lane])
			}
			next[lane]++
			order = append(order, int(lane))
			m.Release()
		}
	}
	return order
}

// testPeerOf returns p (for symmetry in laneRun).
func (p *testPeer) testPeerOf() *testPeer { return p }

// TestLanesPriority: while a more urgent lane has data, a less urgent lane
// sends nothing, whatever the order the messages were queued in.
func TestLanesPriority(t *testing.T) {
	bubble(t, func(t *testing.T) {
		order := laneRun(t, []Lane{{Priority: 0}, {Priority: 1}}, 100)
		// Everything of lane 0 before anything of lane 1, but for what
		// was already in flight when lane 0's data was queued (nothing:
		// all was queued before the first packet, lane 1 first).
		last0, first1 := -1, len(order)
		for i, l := range order {
			if l == 0 {
				last0 = i
			} else if i < first1 {
				first1 = i
			}
		}
		if first1 < last0 {
			t.Errorf("lane 1 delivered its first message at %d, before lane 0's last at %d", first1, last0)
		}
	})
}

// TestLanesWeights: lanes of equal priority share the rate by weight.
func TestLanesWeights(t *testing.T) {
	bubble(t, func(t *testing.T) {
		order := laneRun(t, []Lane{{Weight: 1}, {Weight: 3}}, 200)
		// While both have a backlog (the first half of the run), lane 1
		// gets about three times lane 0's share.
		var n [2]int
		for _, l := range order[:200] {
			n[l]++
		}
		if r := float64(n[1]) / float64(max(n[0], 1)); r < 2.4 || r > 3.6 {
			t.Errorf("in the first 200 messages lane 0 had %d and lane 1 %d (ratio %.2f), want about 3", n[0], n[1], r)
		}
	})
}

// TestSendMessagesBatch: one result per message, in order per connection;
// an unknown connection and an oversized message fail alone.
func TestSendMessagesBatch(t *testing.T) {
	bubble(t, func(t *testing.T) {
		cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: 5 * time.Millisecond})
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		a := connectWait(t, cli, srv)
		b := connectWait(t, cli, srv)
		conns := acceptedServerConns(srv)
		if len(conns) != 2 {
			t.Fatalf("%d server connections", len(conns))
		}
		var msgs []OutgoingMessage
		for i := range 10 {
			msgs = append(msgs, OutgoingMessage{Conn: a, Data: numbered(uint64(i), 100), Flags: SendReliable})
			msgs = append(msgs, OutgoingMessage{Conn: b, Data: numbered(uint64(i), 100), Flags: SendReliable})
		}
		msgs = append(msgs, OutgoingMessage{Conn: 12345, Data: []byte("nobody"), Flags: SendReliable})
		msgs = append(msgs, OutgoingMessage{Conn: a, Data: make([]byte, 512*1024+1), Flags: SendReliable})
		res := cli.SendMessages(msgs, nil)
		if len(res) != len(msgs) {
			t.Fatalf("%d results for %d messages", len(res), len(msgs))
		}
		for i := range 20 {
			if res[i].Err != nil || res[i].MessageNumber != int64(i/2+1) {
				t.Errorf("message %d: %+v, want number %d", i, res[i], i/2+1)
			}
		}
		if !errors.Is(res[20].Err, ErrNoSuchConn) {
			t.Errorf("unknown connection: %v", res[20].Err)
		}
		if !errors.Is(res[21].Err, ResultInvalidParam) {
			t.Errorf("oversized: %v", res[21].Err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for _, s := range conns {
			for i := range 10 {
				ms, err := srv.ReceiveBatch(ctx, s, 1)
				if err != nil {
					t.Fatal(err)
				}
				if binary.LittleEndian.Uint64(ms[0].Payload) != uint64(i) {
					t.Fatalf("connection %d: message %d out of order", s, i)
				}
				ms[0].Release()
			}
		}
		// After a close, the batch reports the connection's end.
		cli.CloseConnection(a, 0, "bye", false)
		if res := cli.SendMessages([]OutgoingMessage{{Conn: a, Data: []byte("x")}}, res); !errors.Is(res[0].Err, ErrNoSuchConn) {
			t.Errorf("closed handle: %v", res[0].Err)
		}
	})
}

// TestConnErrorCarriesReason: a send on a connection the peer closed fails
// with a ConnError carrying the peer's reason, which matches
// ResultNoConnection.
func TestConnErrorCarriesReason(t *testing.T) {
	bubble(t, func(t *testing.T) {
		cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: 5 * time.Millisecond})
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		c := connectWait(t, cli, srv)
		s := serverConn(t, srv)
		srv.CloseConnection(s, EndAppMin+7, "server going away", false)
		waitFor(t, time.Minute, "closed by peer", func() bool { st, _ := cli.lastState(c); return st == StateClosedByPeer })
		_, err := cli.SendMessageToConnection(c, []byte("late"), SendReliable)
		var ce *ConnError
		if !errors.As(err, &ce) || !errors.Is(err, ResultNoConnection) {
			t.Fatalf("send after the peer closed: %v, want a ConnError matching ResultNoConnection", err)
		}
		if ce.Reason != EndAppMin+7 || ce.Debug != "server going away" || ce.State != StateClosedByPeer || ce.Conn != c {
			t.Errorf("ConnError %+v", ce)
		}
	})
}
