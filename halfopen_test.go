package netmsg

import (
	"crypto/ed25519"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/conn"
	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/transport"
)

// replayer captures one real connect request to a server and replays it
// with fresh challenges (and connection ids) from other source ports, as
// the attack of issue 12 does: no crypto work per connection.
type replayer struct {
	t         *testing.T
	nw        *netsim.Network
	srv       netip.AddrPort
	chReq     []byte // a real, padded challenge request
	connReq   *pb.UDPConnectRequest
	nextID    uint32
	bytesSent int64
}

func newReplayer(t *testing.T, nw *netsim.Network, srv netip.AddrPort) *replayer {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	from := netip.MustParseAddrPort("127.0.0.66:1000")
	c, err := conn.Dial(conn.Config{Identity: "ip:127.0.0.66:1000", Key: key, VirtualPort: messagesVirtualPort}, time.Now(), 7, srv)
	if err != nil {
		t.Fatal(err)
	}
	r := &replayer{t: t, nw: nw, srv: srv, nextID: 1000}
	ep, err := nw.Listen(from)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	chReq, ok := c.Poll(time.Now(), nil)
	if !ok {
		t.Fatal("no challenge request")
	}
	r.chReq = append([]byte(nil), chReq...)
	reply := r.exchange(ep, r.chReq)
	if err := c.HandleDatagram(time.Now(), srv, reply); err != nil {
		t.Fatal(err)
	}
	req, ok := c.Poll(time.Now(), nil)
	if !ok {
		t.Fatal("no connect request")
	}
	id, m, err := pb.ParseControl(req)
	if err != nil || id != pb.UDPMsgID_UDP_MSG_CONNECT_REQUEST {
		t.Fatalf("captured %v %v", id, err)
	}
	r.connReq = m.(*pb.UDPConnectRequest)
	return r
}

// exchange sends b from ep and returns the server's answer.
func (r *replayer) exchange(ep *netsim.Endpoint, b []byte) []byte {
	r.t.Helper()
	ep.WriteBatch([]transport.Packet{{Buf: b, N: len(b), Addr: r.srv}})
	r.bytesSent += int64(len(b))
	pkts := []transport.Packet{{Buf: make([]byte, transport.MaxDatagram)}}
	if _, err := ep.ReadBatch(pkts); err != nil {
		r.t.Fatal(err)
	}
	return pkts[0].Bytes()
}

// replay gets a challenge for from and sends the captured connect request
// with it and a fresh connection id.
func (r *replayer) replay(from netip.AddrPort) {
	r.t.Helper()
	ep, err := r.nw.Listen(from)
	if err != nil {
		r.t.Fatal(err)
	}
	defer ep.Close()
	id, m, err := pb.ParseControl(r.exchange(ep, r.chReq))
	if err != nil || id != pb.UDPMsgID_UDP_MSG_CHALLENGE_REPLY {
		r.t.Fatalf("challenge reply %v %v", id, err)
	}
	req := proto.Clone(r.connReq).(*pb.UDPConnectRequest)
	req.Challenge = proto.Uint64(m.(*pb.UDPChallengeReply).GetChallenge())
	r.nextID++
	req.ClientConnectionId = proto.Uint32(r.nextID)
	b, err := pb.AppendControl(nil, pb.UDPMsgID_UDP_MSG_CONNECT_REQUEST, req)
	if err != nil {
		r.t.Fatal(err)
	}
	ep.WriteBatch([]transport.Packet{{Buf: b, N: len(b), Addr: r.srv}})
	r.bytesSent += int64(len(b))
}

// TestHalfOpenReplayFlood: a captured connect request replayed with fresh
// challenges from 2,000 source ports of one address, and from 300 more
// addresses, against a server whose application accepts every session
// request, makes at most MaxHalfOpenPerAddr connections per address and
// MaxHalfOpen (and MaxPendingSessionRequests) in all; the rest are counted
// in HalfOpenRefused. The replayed connections, never proven by a data
// packet, time out and free their places, after which a real client
// connects.
func TestHalfOpenReplayFlood(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: time.Millisecond}})
		defer nw.Close()
		var srvM *Messages
		ps := newMsgPeersWith(t, nw, 2, func(i int, c *Config) {
			if i == 0 {
				c.Limits = Limits{MaxHalfOpen: 100, MaxHalfOpenPerAddr: 8, MaxPendingSessionRequests: 60}
				c.OnSessionRequest = func(p Identity) { srvM.AcceptSessionWithUser(p) }
			}
		})
		defer closeAll(ps)
		srv, good := ps[0], ps[1]
		srvM = srv.m
		r := newReplayer(t, nw, srv.LocalAddr())
		halfOpen := func() (int, int) { return srv.ho.counts() }
		conns := func() int {
			srv.Host.mu.Lock()
			defer srv.Host.mu.Unlock()
			return len(srv.conns)
		}

		for port := range 2000 {
			r.replay(netip.AddrPortFrom(netip.MustParseAddr("10.66.0.1"), uint16(2000+port)))
		}
		time.Sleep(100 * time.Millisecond)
		if n, _ := halfOpen(); n != 8 {
			t.Errorf("one address made %d half-open connections, want MaxHalfOpenPerAddr = 8", n)
		}
		if n := conns(); n > 8 {
			t.Errorf("the server holds %d connections after 2,000 replays from one address", n)
		}
		for a := range 300 {
			addr := netip.AddrFrom4([4]byte{10, 67, byte(a >> 8), byte(a)})
			for port := range 3 {
				r.replay(netip.AddrPortFrom(addr, uint16(3000+port)))
			}
		}
		time.Sleep(100 * time.Millisecond)
		total, msgs := halfOpen()
		if total > 100 || msgs > 60 {
			t.Errorf("%d half-open (%d Messages), want at most 100 (60)", total, msgs)
		}
		if n := conns(); n > 100 {
			t.Errorf("the server holds %d connections", n)
		}
		st := srv.Stats()
		if want := int64(2000 + 900 - 100); st.HalfOpenRefused < want {
			t.Errorf("HalfOpenRefused %d, want at least %d", st.HalfOpenRefused, want)
		}
		t.Logf("after the flood: %d connections, %d half-open (%d Messages), refused %d, server bytes in %d out %d (attacker sent %d)",
			conns(), total, msgs, st.HalfOpenRefused, st.BytesIn, st.BytesOut, r.bytesSent)

		// The replayed connections are never proven: they time out and
		// free their places; then a real client gets in.
		time.Sleep(time.Minute)
		if total, msgs := halfOpen(); total != 0 || msgs != 0 {
			t.Errorf("%d half-open (%d Messages) a minute after the flood", total, msgs)
			srv.Host.mu.Lock()
			for _, hc := range srv.conns {
				t.Logf("left: %v handle %v sess %v state %v removed %v %+v", hc.c.RemoteAddr(), hc.handle, hc.sess != nil, hc.c.State(), hc.removed, hc.ho)
			}
			for id, s := range srv.m.sessions {
				t.Logf("session %v failed %v accepted %v hc %v", id, s.failed, s.accepted, s.hc != nil)
			}
			srv.Host.mu.Unlock()
		}
		if err := good.m.SendMessageToUser(srv.id, []byte("hello"), SendReliable, 0); err != nil {
			t.Fatal(err)
		}
		if text, m := recvText(t, srv, 0); text != "hello" {
			t.Fatalf("server got %q", text)
		} else {
			m.Release()
		}
		good.m.SendMessageToUser(srv.id, []byte("proof"), SendReliable, 0)
		recvText(t, srv, 0)
		if total, _ := halfOpen(); total != 0 {
			t.Errorf("a proven client still counts as half-open (%d)", total)
		}
	})
}

// TestLimitsDefaults: the zero Limits take the documented defaults;
// negative values are refused.
func TestLimitsDefaults(t *testing.T) {
	l, err := Limits{}.withDefaults()
	if err != nil || l != (Limits{MaxHalfOpen: 1024, MaxHalfOpenPerAddr: 16, MaxPendingSessionRequests: 256}) {
		t.Fatalf("%+v %v", l, err)
	}
	if _, err := (&Config{Limits: Limits{MaxHalfOpenPerAddr: -1}}).withDefaults(); err == nil {
		t.Fatal("a negative limit was taken")
	}
}
