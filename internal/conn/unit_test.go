package conn

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
)

func TestDataHeaderTruncations(t *testing.T) {
	h := dataHeader{ToConnID: 0xdeadbeef, WirePktNum: 0x1234, Stats: []byte{0x18, 0x02}, HasTimeSincePrev: true, TimeSincePrev: 77}
	b := appendDataHeader(nil, &h)
	if len(b) != dataHeaderLen(&h) || len(b) != 7+3+2 {
		t.Fatalf("len %d", len(b))
	}
	g, n, err := parseDataHeader(b)
	if err != nil || n != len(b) || g.ToConnID != h.ToConnID || g.WirePktNum != h.WirePktNum ||
		!bytes.Equal(g.Stats, h.Stats) || g.TimeSincePrev != 77 || g.timeSincePrev() != 77*16*time.Microsecond {
		t.Fatalf("round trip %+v %d %v", g, n, err)
	}
	for i := range len(b) {
		if _, _, err := parseDataHeader(b[:i]); !errors.Is(err, ErrBadHeader) {
			t.Errorf("prefix %d: %v", i, err)
		}
	}
	bad := append([]byte{0x84}, b[1:]...)
	if _, _, err := parseDataHeader(bad); err == nil {
		t.Error("reserved flag accepted")
	}
}

func TestRecvWindow(t *testing.T) {
	var w recvWindow
	w.init(1)
	if _, v := w.expand(1); v != pktDuplicate && v != pktTooOld {
		t.Error("handshake packet number accepted")
	}
	// In order through a 16-bit wrap.
	for n := int64(2); n < 70000; n++ {
		got, v := w.expand(w16(n))
		if v != pktOK || got != n {
			t.Fatalf("packet %d: %d %d", n, got, v)
		}
		w.mark(got)
	}
	// Duplicates and old packets.
	if _, v := w.expand(w16(69999)); v != pktDuplicate {
		t.Errorf("duplicate: %d", v)
	}
	if _, v := w.expand(w16(69999 - 200)); v != pktTooOld {
		t.Errorf("old: %d", v)
	}
	// Out of order within the window is fine once, then a duplicate.
	w.mark(70005)
	got, v := w.expand(w16(70002))
	if v != pktOK || got != 70002 {
		t.Errorf("out of order: %d %d", got, v)
	}
	w.mark(got)
	if _, v := w.expand(w16(70002)); v != pktDuplicate {
		t.Errorf("out-of-order duplicate: %d", v)
	}
	// Nearest to the highest: a wire number just below the highest is
	// behind it, not 65536 ahead.
	if got, _ := w.expand(w16(70005 - 10)); got != 70005-10 {
		t.Errorf("nearest: %d", got)
	}
	if got, _ := w.expand(w16(70005 + 30000)); got != 70005+30000 {
		t.Errorf("forward: %d", got)
	}
	// A far jump clears the masks.
	w.mark(70005 + 1000)
	if _, v := w.expand(w16(70005 + 999)); v != pktOK {
		t.Errorf("after jump: %d", v)
	}
}

func challengeRequest(id uint32) []byte {
	b, _ := pb.AppendControl(nil, pb.UDPMsgID_UDP_MSG_CHALLENGE_REQUEST, &pb.UDPChallengeRequest{
		ConnectionId: proto.Uint32(id), MyTimestamp: proto.Uint64(5), ProtocolVersion: proto.Uint32(13),
	})
	return b
}

func TestListenerChallenge(t *testing.T) {
	l, err := NewListener(testConfig("str:server"), []byte("0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	from := netip.MustParseAddrPort("192.0.2.1:1000")
	req := challengeRequest(42)
	r, err := l.HandleChallengeRequest(t0, from, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(r) > len(req) {
		t.Fatal("amplifies")
	}
	_, m, err := pb.ParseControl(r)
	if err != nil {
		t.Fatal(err)
	}
	rep := m.(*pb.UDPChallengeReply)
	if rep.GetConnectionId() != 42 || rep.GetYourTimestamp() != 5 || rep.GetProtocolVersion() != 13 {
		t.Errorf("reply %v", rep)
	}
	ch := rep.GetChallenge()
	for _, tc := range []struct {
		name   string
		after  time.Duration
		from   netip.AddrPort
		ok     bool
		tooOld bool
	}{
		{"now", 0, from, true, false},
		{"2 s later", 2 * time.Second, from, true, false},
		{"6 s later", 6 * time.Second, from, false, true},
		{"from the past", -3 * time.Second, from, false, true},
		{"other port", 0, netip.MustParseAddrPort("192.0.2.1:1001"), false, false},
		{"other address", 0, netip.MustParseAddrPort("192.0.2.2:1000"), false, false},
	} {
		ok, old := l.ch.check(t0.Add(tc.after), tc.from, ch)
		if ok != tc.ok || old != tc.tooOld {
			t.Errorf("%s: ok %v old %v", tc.name, ok, old)
		}
	}
	if ok, _ := l.ch.check(t0, from, ch^0x10000); ok {
		t.Error("tampered challenge accepted")
	}
	// Unpadded, empty or id-less requests get no reply.
	for _, b := range [][]byte{req[:100], challengeRequest(0), {0x20}, nil} {
		if r, err := l.HandleChallengeRequest(t0, from, b, nil); err == nil || r != nil {
			t.Errorf("bad request answered: %x", b)
		}
	}
}

// TestChallengeFlood: a flood of challenge requests from many addresses
// keeps no state and allocates a bounded amount per request.
func TestChallengeFlood(t *testing.T) {
	l, _ := NewListener(testConfig("str:server"), []byte("0123456789abcdef"))
	req := challengeRequest(7)
	dst := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(1000, func() {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, 2, 3}), 4000)
		l.HandleChallengeRequest(t0, from, req, dst)
	})
	if allocs > 30 {
		t.Errorf("%.0f allocations per challenge request", allocs)
	}
	if l.Stats().ChallengeReplies < 1000 {
		t.Error("not answered")
	}
}

func TestHandleStray(t *testing.T) {
	l, _ := NewListener(testConfig("str:server"), []byte("0123456789abcdef"))
	cl, _ := pb.AppendControl(nil, pb.UDPMsgID_UDP_MSG_CONNECTION_CLOSED, &pb.UDPConnectionClosed{
		ToConnectionId: proto.Uint32(5), FromConnectionId: proto.Uint32(6), ReasonCode: proto.Uint32(1000),
	})
	r := l.HandleStray(t0, clientAddr, cl, nil)
	_, m, err := pb.ParseControl(r)
	if err != nil {
		t.Fatal(err)
	}
	nc := m.(*pb.UDPNoConnection)
	if nc.GetFromConnectionId() != 5 || nc.GetToConnectionId() != 6 {
		t.Errorf("reply %v", nc)
	}
	if len(r) >= len(cl) {
		t.Error("amplifies")
	}
	data := appendDataHeader(nil, &dataHeader{ToConnID: 9, WirePktNum: 2})
	data = append(data, make([]byte, 20)...)
	if r := l.HandleStray(t0, clientAddr, data, nil); r != nil {
		t.Error("stray data answered (GNS ignores it)")
	}
	if r := l.HandleStray(t0, clientAddr, cl[:100], nil); r != nil {
		t.Error("unpadded connection closed answered")
	}
}

func TestConnectionExistsReply(t *testing.T) {
	b := ConnectionExistsReply(nil, 77)
	k, id := Classify(b)
	if k != KindConnectionClosed || id != 77 || len(b) != 512 {
		t.Fatalf("%v %d %d", k, id, len(b))
	}
}

func TestClassifyEdges(t *testing.T) {
	for _, b := range [][]byte{nil, {0x80, 1, 2, 3}, {0x80, 1, 2, 3, 4, 5}, {0x84, 1, 2, 3, 4, 5, 6}, {0x26, 0, 0, 0, 0}, {0xff, 0xff, 0xff, 0xff, 0x00},
		make([]byte, 1400)} {
		if k, _ := Classify(b); k != KindInvalid {
			t.Errorf("%x: %v", b, k)
		}
	}
	if k, id := Classify([]byte{0x83, 4, 3, 2, 1, 0, 0}); k != KindData || id != 0x01020304 {
		t.Errorf("data: %v %x", k, id)
	}
}

func w16(n int64) uint16 { return uint16(n & 0xffff) }

func TestMappedAddressesMatch(t *testing.T) {
	l, _ := NewListener(testConfig("str:server"), []byte("0123456789abcdef"))
	v4 := netip.MustParseAddrPort("192.0.2.1:1000")
	v4in6 := netip.MustParseAddrPort("[::ffff:192.0.2.1]:1000")
	r, _ := l.HandleChallengeRequest(t0, v4, challengeRequest(1), nil)
	_, m, _ := pb.ParseControl(r)
	if ok, _ := l.ch.check(t0, v4in6, m.(*pb.UDPChallengeReply).GetChallenge()); !ok {
		t.Error("challenge for a.b.c.d refused from ::ffff:a.b.c.d")
	}
	c, _ := Dial(testConfig("str:c"), t0, 1, v4in6)
	if c.RemoteAddr() != v4 {
		t.Errorf("remote %v", c.RemoteAddr())
	}
}
