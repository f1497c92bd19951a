package relay

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/stun/v4"
)

// floodSize is the flood tests' scale: small in CI, NETMSG_RELAY_FLOOD=n
// multiplies it (the figures in the report used 20).
func floodSize(t *testing.T) int {
	n := 1
	if v := os.Getenv("NETMSG_RELAY_FLOOD"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 1 {
			t.Fatalf("NETMSG_RELAY_FLOOD=%q", v)
		}
	}
	return n
}

// busyConn measures the time pion's read loop spends on each datagram:
// from ReadFrom returning it to the next ReadFrom call.
type busyConn struct {
	net.PacketConn
	mu      sync.Mutex
	handed  time.Time
	busy    time.Duration
	packets int
}

func (c *busyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.mu.Lock()
	if !c.handed.IsZero() {
		c.busy += time.Since(c.handed)
		c.handed = time.Time{}
	}
	c.mu.Unlock()
	n, a, err := c.PacketConn.ReadFrom(b)
	if err == nil {
		c.mu.Lock()
		c.handed = time.Now()
		c.packets++
		c.mu.Unlock()
	}
	return n, a, err
}

func (c *busyConn) spent() (time.Duration, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.busy, c.packets
}

// heapInUse is the live heap after a collection, in KiB.
func heapInUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse) / 1024
}

func newFloodServer(t *testing.T, cfg Config) (*Server, *busyConn) {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	bc := &busyConn{PacketConn: pc}
	cfg.PacketConn = bc
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, bc
}

// floodAllocate sends one Allocate from each client, as fast as the
// server answers (a nonce fetched once serves them all), and counts the
// successes and 486s.
func floodAllocate(t *testing.T, s *Server, clients []*rawTURN) (ok, quota int) {
	t.Helper()
	switch code := clients[0].allocate(); code { // also fetches a nonce
	case 0:
		ok++
	case int(stun.CodeAllocQuotaReached):
		quota++
	default:
		t.Fatalf("client 0: error %d", code)
	}
	for _, c := range clients[1:] {
		c.nonce = clients[0].nonce
	}
	// In windows of 64, so that the server's socket buffer (not the
	// server) is no bottleneck on loopback.
	const window = 64
	for lo := 1; lo < len(clients); lo += window {
		hi := min(lo+window, len(clients))
		ids := make([][stun.TransactionIDSize]byte, hi-lo)
		for i, c := range clients[lo:hi] {
			m := c.build(stun.NewType(stun.MethodAllocate, stun.ClassRequest), attrRequestedTransportUDP)
			ids[i] = m.TransactionID
			c.send(m)
		}
		for i, c := range clients[lo:hi] {
			resp, err := c.read(ids[i], 5*time.Second)
			if err != nil {
				t.Fatalf("client %d: %v", lo+i, err)
			}
			if resp.Type.Class == stun.ClassSuccessResponse {
				ok++
				continue
			}
			var code stun.ErrorCodeAttribute
			code.GetFrom(resp)
			if code.Code != stun.CodeAllocQuotaReached {
				t.Fatalf("client %d: error %d", lo+i, code.Code)
			}
			quota++
		}
	}
	return ok, quota
}

// TestRelayAllocationFlood: one user from many addresses, and many users
// from one address, ask for allocations all at once; each gets its quota
// and no more, the server's table stays that size, and a good client
// still allocates. Run with -v for the figures.
func TestRelayAllocationFlood(t *testing.T) {
	n := 150 * floodSize(t)
	s, bc := newFloodServer(t, Config{AuthSecrets: []string{"k"}, MaxAllocations: 10 * n})
	exp := time.Now().Add(time.Hour)
	g0, h0 := runtime.NumGoroutine(), heapInUse()
	start := time.Now()

	// One user ("mallory") from n addresses 127.0.x.y.
	u, p := RESTCredential("k", "mallory", exp)
	clients := make([]*rawTURN, n)
	for i := range clients {
		clients[i] = newRawTURN(t, s.Addr(), fmt.Sprintf("127.1.%d.%d:0", i/200, 1+i%200), u, p)
	}
	ok, quota := floodAllocate(t, s, clients)
	if ok != DefaultMaxAllocationsPerUser || quota != n-ok {
		t.Errorf("one user, %d addresses: %d allocated, %d refused; want %d allocated", n, ok, quota, DefaultMaxAllocationsPerUser)
	}
	// n users from one address.
	for i := range clients {
		u, p := RESTCredential("k", fmt.Sprintf("sybil%d", i), exp)
		clients[i] = newRawTURN(t, s.Addr(), "127.2.0.1:0", u, p)
	}
	ok2, quota2 := floodAllocate(t, s, clients)
	if ok2 != DefaultMaxAllocationsPerAddr || quota2 != n-ok2 {
		t.Errorf("%d users, one address: %d allocated, %d refused; want %d allocated", n, ok2, quota2, DefaultMaxAllocationsPerAddr)
	}
	elapsed := time.Since(start)
	busy, pkts := bc.spent()
	for _, c := range clients {
		c.c.Close()
	}
	clients = nil
	heap := heapInUse() - h0 // the test's closed sockets, waiting for their cleanups, included

	u, p = RESTCredential("k", "good", exp)
	t0 := time.Now()
	if code := newRawTURN(t, s.Addr(), "127.3.0.1:0", u, p).allocate(); code != 0 {
		t.Errorf("a good client after the flood: error %d", code)
	}
	st := s.Stats()
	if st.Allocations != ok+ok2+1 || st.RefusedUser != uint64(quota) || st.RefusedAddr != uint64(quota2) {
		t.Errorf("stats %+v", st)
	}
	t.Logf("allocation flood: %d requests in %v; server busy %v (%v per request, %d datagrams); %d allocations held (%d goroutines more than before; the test process heap %+d KiB, its %d closed client sockets included); a good client allocated in %v",
		2*n, elapsed.Round(time.Millisecond), busy.Round(time.Millisecond), (busy / time.Duration(pkts)).Round(time.Microsecond), pkts, st.Allocations, runtime.NumGoroutine()-g0, heap, 2*n, time.Since(t0).Round(time.Microsecond))
}

// TestRelayAuthFlood: a guesser sends wrong passwords as fast as the
// server answers; each is counted, the log gets a line a second at most,
// the server answers each with one small error (never more bytes than
// the request), and good clients allocate within a second throughout.
// Run with -v for the figures.
func TestRelayAuthFlood(t *testing.T) {
	n := 2000 * floodSize(t)
	var logs syncBuffer
	s, bc := newFloodServer(t, Config{Users: map[string]string{"victim": "right"}, AuthSecrets: []string{"k"},
		Logger: newTextLogger(&logs)})
	guesser := newRawTURN(t, s.Addr(), "127.4.0.1:0", "victim", "guess")
	guesser.allocate() // a nonce
	h0 := heapInUse()

	var good atomic.Int64 // slowest good allocation, ns
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			u, p := RESTCredential("k", fmt.Sprintf("good%d", i), time.Now().Add(time.Hour))
			c := newRawTURN(t, s.Addr(), fmt.Sprintf("127.5.%d.%d:0", i/200, 1+i%200), u, p)
			t0 := time.Now()
			if code := c.allocate(); code != 0 {
				t.Errorf("good client during the flood: error %d", code)
				return
			}
			if d := time.Since(t0); int64(d) > good.Load() {
				good.Store(int64(d))
			}
			c.c.Close()
		}
	}()

	const window = 32
	var sentBytes, gotBytes int
	start := time.Now()
	busy0, pkts0 := bc.spent()
	ids := make(map[[stun.TransactionIDSize]byte]bool, window)
	buf := make([]byte, 1600)
	for sent := 0; sent < n; {
		for len(ids) < window && sent < n {
			m := guesser.build(stun.NewType(stun.MethodAllocate, stun.ClassRequest), attrRequestedTransportUDP)
			ids[m.TransactionID] = true
			guesser.send(m)
			sentBytes += len(m.Raw)
			sent++
		}
		guesser.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		nr, _, err := guesser.c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("after %d guesses: %v", sent, err)
		}
		m := &stun.Message{Raw: buf[:nr]}
		if m.Decode() == nil && ids[m.TransactionID] {
			delete(ids, m.TransactionID)
			gotBytes += nr
		}
	}
	for len(ids) > 0 {
		guesser.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		nr, _, err := guesser.c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("%d answers missing: %v", len(ids), err)
		}
		m := &stun.Message{Raw: buf[:nr]}
		if m.Decode() == nil && ids[m.TransactionID] {
			delete(ids, m.TransactionID)
			gotBytes += nr
		}
	}
	elapsed := time.Since(start)
	busy, pkts := bc.spent()
	close(stop)
	<-done
	heap := heapInUse() - h0

	st := s.Stats()
	if st.AuthBadPassword < uint64(n) {
		t.Errorf("%d wrong passwords counted of %d", st.AuthBadPassword, n)
	}
	if gotBytes > sentBytes {
		t.Errorf("answers %d bytes to %d bytes of guesses", gotBytes, sentBytes)
	}
	lines := len(logs.lines("authentication failed"))
	if max := int(elapsed/logInterval) + 2; lines > max {
		t.Errorf("%d log lines in %v", lines, elapsed)
	}
	if g := time.Duration(good.Load()); g > time.Second {
		t.Errorf("a good client waited %v to allocate during the flood", g)
	}
	t.Logf("auth flood: %d wrong passwords in %v (%.0f/s), all counted; server busy %v (%v per datagram); answers %d bytes for %d bytes of requests; %d log lines; heap %+d KiB; slowest good allocation %v",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), (busy - busy0).Round(time.Millisecond), ((busy - busy0) / time.Duration(pkts-pkts0)).Round(time.Microsecond),
		gotBytes, sentBytes, lines, heap, time.Duration(good.Load()).Round(time.Microsecond))
}
