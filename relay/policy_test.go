package relay

import (
	"bytes"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

func TestPeerRefusal(t *testing.T) {
	for _, v := range []struct{ ip, want string }{
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"127.0.0.1", "loopback"},
		{"127.255.0.9", "loopback"},
		{"::1", "loopback"},
		{"::ffff:127.0.0.1", "loopback"},
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"192.168.1.1", "private"},
		{"fd00::1", "private"},
		{"fc12::1", "private"},
		{"::ffff:192.168.0.1", "private"},
		{"169.254.169.254", "link-local"},
		{"fe80::1", "link-local"},
		{"224.0.0.1", "link-local"},
		{"ff02::1", "link-local"},
		{"239.1.2.3", "multicast"},
		{"ff0e::1", "multicast"},
		{"100.64.0.1", "shared"},
		{"0.1.2.3", "reserved"},
		{"192.0.0.8", "reserved"},
		{"198.18.0.1", "reserved"},
		{"240.0.0.1", "reserved"},
		{"255.255.255.255", "reserved"},
		{"100::1", "reserved"},
		{"2001::1", "reserved"},
		{"::7f00:1", "ipv4-compatible"},
		{"64:ff9b::7f00:1", "loopback"},
		{"64:ff9b::a00:1", "private"},
		{"64:ff9b:1::a9fe:a9fe", "link-local"},
		{"2002:c0a8:101::1", "private"},
		{"2002:7f00:1::", "loopback"},
		// Relayed to.
		{"8.8.8.8", ""},
		{"172.32.0.1", ""},
		{"100.128.0.1", ""},
		{"198.51.100.20", ""},
		{"203.0.113.7", ""},
		{"2001:db8::1", ""},
		{"2606:4700::1", ""},
		{"64:ff9b::808:808", ""},
		{"2002:808:808::1", ""},
		{"::ffff:8.8.4.4", ""},
	} {
		if got := PeerRefusal(netip.MustParseAddr(v.ip)); got != v.want {
			t.Errorf("PeerRefusal(%s) = %q, want %q", v.ip, got, v.want)
		}
	}
	if got := PeerRefusal(netip.Addr{}); got != "unspecified" {
		t.Errorf("zero Addr: %q", got)
	}
}

// syncBuffer is a log destination the server's goroutines write to while
// the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *syncBuffer) lines(substr string) []string {
	var out []string
	for _, l := range strings.Split(b.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// TestRelayRefusesSpecialPeers: by default a client cannot relay to
// loopback (nor any special address): CreatePermission and ChannelBind
// get 403, a Send indication reaches no one, and each refusal is counted
// and logged with the client's and the peer's address. AllowPeers lets
// exactly what it lists through.
func TestRelayRefusesSpecialPeers(t *testing.T) {
	var logs syncBuffer
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"},
		AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		Logger:     slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	victim, err := net.ListenPacket("udp4", "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	defer victim.Close()
	victimAddr := netip.MustParseAddrPort(victim.LocalAddr().String())

	r := newRawTURN(t, s.Addr(), "127.0.0.1:0", "u", "p")
	if code := r.allocate(); code != 0 {
		t.Fatalf("allocate: error %d", code)
	}
	if code := r.do(stun.MethodCreatePermission, peerAttr(victimAddr)); code != 403 {
		t.Errorf("CreatePermission to %v: %d, want 403", victimAddr, code)
	}
	for _, ip := range []string{"10.0.0.1", "192.168.1.1", "169.254.169.254", "224.0.0.251", "0.0.0.0", "100.64.0.1"} {
		if code := r.do(stun.MethodCreatePermission, peerAttr(netip.AddrPortFrom(netip.MustParseAddr(ip), 9))); code != 403 {
			t.Errorf("CreatePermission to %s: %d, want 403", ip, code)
		}
	}
	// pion answers a refused ChannelBind with 401 (RFC 5766 says 403).
	if code := r.do(stun.MethodChannelBind, channelAttr(0x4000), peerAttr(victimAddr)); code != 403 && code != 401 {
		t.Errorf("ChannelBind to %v: %d, want 403 or 401", victimAddr, code)
	}
	r.send(r.build(stun.NewType(stun.MethodSend, stun.ClassIndication), peerAttr(victimAddr), stun.RawAttribute{Type: stun.AttrData, Value: []byte("hello")}))
	expectNothing(t, victim, 200*time.Millisecond)
	if got := s.Stats().RefusedPeers; got != 8 {
		t.Errorf("RefusedPeers = %d, want 8", got)
	}
	lines := logs.lines("peer address refused")
	if len(lines) == 0 || !strings.Contains(lines[0], "peer=127.0.0.2") || !strings.Contains(lines[0], "client="+r.c.LocalAddr().String()) || !strings.Contains(lines[0], "reason=loopback") {
		t.Errorf("refusal log: %q", lines)
	}

	// 127.0.0.1 is allowed: a permission, a channel and data.
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peerAddr := netip.MustParseAddrPort(peer.LocalAddr().String())
	if code := r.do(stun.MethodCreatePermission, peerAttr(peerAddr)); code != 0 {
		t.Errorf("CreatePermission to an allowed peer: %d", code)
	}
	if code := r.do(stun.MethodChannelBind, channelAttr(0x4001), peerAttr(peerAddr)); code != 0 {
		t.Errorf("ChannelBind to an allowed peer: %d", code)
	}
	r.send(r.build(stun.NewType(stun.MethodSend, stun.ClassIndication), peerAttr(peerAddr), stun.RawAttribute{Type: stun.AttrData, Value: []byte("hello")}))
	buf := make([]byte, 100)
	peer.SetReadDeadline(time.Now().Add(3 * time.Second))
	if n, _, err := peer.ReadFrom(buf); err != nil || string(buf[:n]) != "hello" {
		t.Errorf("allowed peer got %q, %v", buf[:n], err)
	}
	// The counters grow just after the write that the peer received.
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		st := s.Stats()
		if st.PacketsToPeers == 1 && st.BytesToPeers == 5 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("relayed to peers: %d packets, %d bytes; want 1, 5", st.PacketsToPeers, st.BytesToPeers)
			break
		}
	}
}

// TestRelayQuotaPerUser: one user cannot take more than
// MaxAllocationsPerUser allocations (486), whatever its client addresses;
// another user still allocates.
func TestRelayQuotaPerUser(t *testing.T) {
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"greedy": "p", "other": "q"}, MaxAllocationsPerUser: 3, MaxAllocationsPerAddr: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ok := 0
	for i := range 6 {
		bind := "127.0.0.1:0"
		if i%2 == 1 {
			bind = "127.0.0.3:0"
		}
		switch code := newRawTURN(t, s.Addr(), bind, "greedy", "p").allocate(); code {
		case 0:
			ok++
		case 486:
		default:
			t.Fatalf("allocation %d: error %d", i, code)
		}
	}
	if ok != 3 {
		t.Errorf("%d allocations for one user, want 3", ok)
	}
	if code := newRawTURN(t, s.Addr(), "127.0.0.1:0", "other", "q").allocate(); code != 0 {
		t.Errorf("another user: error %d", code)
	}
	if st := s.Stats(); st.RefusedUser != 3 || st.Refused != 3 || st.Allocations != 4 {
		t.Errorf("stats %+v", st)
	}
}

// TestRelayQuotaPerAddr: one client address cannot take more than
// MaxAllocationsPerAddr allocations, even with several users; another
// address still allocates. REST credentials of one user share its quota.
func TestRelayQuotaPerAddr(t *testing.T) {
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", AuthSecrets: []string{"k"}, MaxAllocationsPerUser: 2, MaxAllocationsPerAddr: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	exp := time.Now().Add(time.Hour)
	codes := []int{}
	for i := range 5 {
		u, p := RESTCredential("k", []string{"a", "b", "c", "d", "e"}[i], exp)
		codes = append(codes, newRawTURN(t, s.Addr(), "127.0.0.1:0", u, p).allocate())
	}
	if want := []int{0, 0, 0, 486, 486}; !equalInts(codes, want) {
		t.Errorf("allocations from one address: %v, want %v", codes, want)
	}
	u, p := RESTCredential("k", "f", exp)
	if code := newRawTURN(t, s.Addr(), "127.0.0.4:0", u, p).allocate(); code != 0 {
		t.Errorf("another address: error %d", code)
	}
	// User f's second credential (renewed) shares f's quota of 2.
	u, p = RESTCredential("k", "f", exp.Add(time.Minute))
	if code := newRawTURN(t, s.Addr(), "127.0.0.4:0", u, p).allocate(); code != 0 {
		t.Errorf("f's second allocation: error %d", code)
	}
	u, p = RESTCredential("k", "f", exp.Add(2*time.Minute))
	if code := newRawTURN(t, s.Addr(), "127.0.0.4:0", u, p).allocate(); code != 486 {
		t.Errorf("f's third allocation: %d, want 486", code)
	}
	if st := s.Stats(); st.RefusedAddr != 2 || st.RefusedUser != 1 {
		t.Errorf("stats %+v", st)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRelayGoneClientExpires: the allocation of a client that vanishes
// without deallocating ends when its lifetime runs out, and frees its
// user's quota.
func TestRelayGoneClientExpires(t *testing.T) {
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"}, MaxAllocationsPerUser: 1, AllocationLifetime: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gone := newRawTURN(t, s.Addr(), "127.0.0.1:0", "u", "p")
	if code := gone.allocate(); code != 0 {
		t.Fatalf("allocate: %d", code)
	}
	gone.c.Close() // no Refresh, no deallocation
	if code := newRawTURN(t, s.Addr(), "127.0.0.1:0", "u", "p").allocate(); code != 486 {
		t.Fatalf("second allocation while the first lives: %d, want 486", code)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Stats().Allocations != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the gone client's allocation outlived its lifetime by seconds")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code := newRawTURN(t, s.Addr(), "127.0.0.1:0", "u", "p").allocate(); code != 0 {
		t.Errorf("allocation after expiry: %d", code)
	}
}

// TestRelayAuthFailuresLogged: every failed authentication is counted by
// reason and answered 401 with a fresh nonce (RFC 8489; pion/turn since
// v5.1.3); the log gets one line per second at most, with the client's
// address, and the next line counts those held back.
func TestRelayAuthFailuresLogged(t *testing.T) {
	var logs syncBuffer
	var mu sync.Mutex
	now := time.Unix(1800000000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"}, AuthSecrets: []string{"k"}, Now: clock,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	guesser := newRawTURN(t, s.Addr(), "127.0.0.1:0", "u", "wrong")
	for i := range 50 {
		if code := guesser.allocate(); code != 401 {
			t.Fatalf("guess %d: %d, want 401", i, code)
		}
	}
	expU, expP := RESTCredential("k", "x", now.Add(-time.Second))
	for range 5 {
		if code := newRawTURN(t, s.Addr(), "127.0.0.1:0", expU, expP).allocate(); code != 401 {
			t.Fatalf("expired: %d, want 401", code)
		}
	}
	for range 7 {
		if code := newRawTURN(t, s.Addr(), "127.0.0.1:0", "nobody", "x").allocate(); code != 401 {
			t.Fatalf("unknown: %d, want 401", code)
		}
	}
	st := s.Stats()
	if st.AuthBadPassword != 50 || st.AuthExpired != 5 || st.AuthUnknownUser != 7 || st.AuthFailed != 62 {
		t.Errorf("stats %+v", st)
	}
	lines := logs.lines("authentication failed")
	if len(lines) != 1 || !strings.Contains(lines[0], "client="+guesser.c.LocalAddr().String()) || !strings.Contains(lines[0], `reason="bad password"`) {
		t.Fatalf("log lines %q", lines)
	}
	mu.Lock()
	now = now.Add(2 * time.Second)
	mu.Unlock()
	guesser.allocate()
	lines = logs.lines("authentication failed")
	if len(lines) != 2 || !strings.Contains(lines[1], "suppressed=61") {
		t.Errorf("log lines %q", lines)
	}
	if code := newRawTURN(t, s.Addr(), "127.0.0.1:0", "u", "p").allocate(); code != 0 {
		t.Errorf("the right password after the guesses: %d", code)
	}
}

func newTextLogger(w *syncBuffer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// TestRelayPermissionQuota: one allocation holds permissions for at most
// MaxPermissionsPerAllocation peer addresses; refreshing one it holds
// still works, and the bound is per allocation.
func TestRelayPermissionQuota(t *testing.T) {
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"}, MaxPermissionsPerAllocation: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	peer := func(i int) stun.Setter {
		return peerAttr(netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 9))
	}
	r := newRawTURN(t, s.Addr(), "127.0.0.1:0", "u", "p")
	if code := r.allocate(); code != 0 {
		t.Fatalf("allocate: %d", code)
	}
	for i := 1; i <= 3; i++ {
		if code := r.do(stun.MethodCreatePermission, peer(i)); code != 0 {
			t.Fatalf("permission %d: %d", i, code)
		}
	}
	if code := r.do(stun.MethodCreatePermission, peer(4)); code != 403 {
		t.Errorf("fourth peer: %d, want 403", code)
	}
	if code := r.do(stun.MethodChannelBind, channelAttr(0x4000), peer(5)); code == 0 {
		t.Error("channel to a fifth peer bound")
	}
	if code := r.do(stun.MethodCreatePermission, peer(2)); code != 0 {
		t.Errorf("refreshing a held permission: %d", code)
	}
	if code := r.do(stun.MethodChannelBind, channelAttr(0x4001), peer(1)); code != 0 {
		t.Errorf("channel to a held peer: %d", code)
	}
	if st := s.Stats(); st.RefusedPermissions != 2 || st.RefusedPeers != 0 {
		t.Errorf("stats %+v", st)
	}
	// Another allocation has its own bound.
	r2 := newRawTURN(t, s.Addr(), "127.0.0.1:0", "u", "p")
	if code := r2.allocate(); code != 0 {
		t.Fatalf("allocate: %d", code)
	}
	if code := r2.do(stun.MethodCreatePermission, peer(4)); code != 0 {
		t.Errorf("another allocation's first permission: %d", code)
	}
	// Deallocating forgets the allocation's permissions.
	if code := r.do(stun.MethodRefresh, stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}); code != 0 {
		t.Fatalf("deallocate: %d", code)
	}
	s.perms.Lock()
	n := len(s.perms.byClient)
	s.perms.Unlock()
	if n != 1 {
		t.Errorf("permission sets of %d allocations kept, want 1", n)
	}
}

// TestRelayDebugLog: at debug level, allocations and permissions are
// logged as they come and go.
func TestRelayDebugLog(t *testing.T) {
	var logs syncBuffer
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	r := newRawTURN(t, s.Addr(), "127.0.0.1:0", "u", "p")
	if code := r.allocate(); code != 0 {
		t.Fatalf("allocate: %d", code)
	}
	if code := r.do(stun.MethodCreatePermission, peerAttr(netip.MustParseAddrPort("203.0.113.1:9"))); code != 0 {
		t.Fatalf("permission: %d", code)
	}
	if code := r.do(stun.MethodRefresh, stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}); code != 0 {
		t.Fatalf("deallocate: %d", code)
	}
	for _, want := range []string{"allocation created", "permission created", "allocation ended"} {
		if l := logs.lines(want); len(l) != 1 || !strings.Contains(l[0], "client="+r.c.LocalAddr().String()) {
			t.Errorf("%q lines: %q", want, l)
		}
	}
}
