package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// batchPair is two sockets of one batching (as a Server's are) and a
// peer socket outside it.
type batchPair struct {
	b      batching
	r, w   *batchConn
	peer   net.PacketConn
	rawBuf []byte
}

func newBatchPair(t *testing.T) *batchPair {
	t.Helper()
	p := &batchPair{rawBuf: make([]byte, 2048)}
	open := func() *batchConn {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		setBuffers(pc, 0)
		bc, ok := batched(&p.b, pc, relayedBatch, relayedGRO).(*batchConn)
		if !ok {
			t.Fatal("a UDP socket was not wrapped")
		}
		t.Cleanup(func() { bc.Close() })
		return bc
	}
	p.r, p.w = open(), open()
	var err error
	if p.peer, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.peer.Close() })
	return p
}

// toReader sends msg from the peer to the reading socket. On loopback the
// datagram is in the socket's queue when the call returns.
func (p *batchPair) toReader(t *testing.T, msg string) {
	t.Helper()
	if _, err := p.peer.WriteTo([]byte(msg), p.r.LocalAddr()); err != nil {
		t.Fatal(err)
	}
}

// read reads the reading socket through the batchConn.
func (p *batchPair) read(t *testing.T) string {
	t.Helper()
	buf := make([]byte, 2048)
	n, from, err := p.r.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if from.String() != p.peer.LocalAddr().String() {
		t.Fatalf("from %v, want %v", from, p.peer.LocalAddr())
	}
	return string(buf[:n])
}

// peerGot returns the n datagrams the peer receives next (waiting up to
// 5 s for each), then whatever more arrives within quiet.
func (p *batchPair) peerGot(t *testing.T, n int, quiet time.Duration) []string {
	t.Helper()
	var got []string
	for {
		d := 5 * time.Second
		if len(got) >= n {
			d = quiet
		}
		p.peer.SetReadDeadline(time.Now().Add(d))
		k, _, err := p.peer.ReadFrom(p.rawBuf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return got
			}
			t.Fatal(err)
		}
		got = append(got, string(p.rawBuf[:k]))
	}
}

func (p *batchPair) write(t *testing.T, msg string) {
	t.Helper()
	if n, err := p.w.WriteTo([]byte(msg), p.peer.LocalAddr()); err != nil || n != len(msg) {
		t.Fatalf("WriteTo: %d, %v", n, err)
	}
}

// TestBatchWritesWaitForTheReader: what a reader writes while it hands
// out a batch it read goes when it reads again, in order.
func TestBatchWritesWaitForTheReader(t *testing.T) {
	p := newBatchPair(t)
	p.toReader(t, "a")
	p.toReader(t, "b")
	if got := p.read(t); got != "a" {
		t.Fatalf("read %q", got)
	}
	p.write(t, "1")
	p.write(t, "2")
	if got := p.read(t); got != "b" { // from the same batch: no send yet
		t.Fatalf("read %q", got)
	}
	p.write(t, "3")
	if got := p.peerGot(t, 0, 50*time.Millisecond); len(got) != 0 {
		t.Fatalf("the peer got %q while the reader held its batch", got)
	}
	p.toReader(t, "c")
	if got := p.read(t); got != "c" { // a new read: the batch went first
		t.Fatalf("read %q", got)
	}
	if got := p.peerGot(t, 3, 20*time.Millisecond); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("the peer got %q, want [1 2 3]", got)
	}
}

// TestBatchWriteWithoutReader: a write made while no reader holds a batch
// (none has read, or every one read again) goes at once.
func TestBatchWriteWithoutReader(t *testing.T) {
	p := newBatchPair(t)
	p.write(t, "alone")
	if got := p.peerGot(t, 1, 20*time.Millisecond); fmt.Sprint(got) != "[alone]" {
		t.Fatalf("the peer got %q", got)
	}
	// A reader that held a batch and then waits again (here: closed)
	// holds nothing.
	p.toReader(t, "x")
	p.read(t)
	p.write(t, "held")
	p.r.Close()
	if got := p.peerGot(t, 1, 20*time.Millisecond); fmt.Sprint(got) != "[held]" {
		t.Fatalf("the peer got %q after the reader's socket closed", got)
	}
	if _, _, err := p.r.ReadFrom(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("ReadFrom after Close: %v", err)
	}
	if _, err := p.r.WriteTo([]byte("x"), p.peer.LocalAddr()); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteTo after Close: %v", err)
	}
	p.write(t, "after")
	if got := p.peerGot(t, 1, 20*time.Millisecond); fmt.Sprint(got) != "[after]" {
		t.Fatalf("the peer got %q", got)
	}
}

// TestBatchFull: a full batch goes without waiting for the reader, and
// nothing is lost or reordered past it.
func TestBatchFull(t *testing.T) {
	p := newBatchPair(t)
	p.toReader(t, "a")
	p.read(t)
	var want []string
	for i := range relayedBatch + 3 {
		m := fmt.Sprint(i)
		want = append(want, m)
		p.write(t, m)
	}
	if got := p.peerGot(t, relayedBatch, 50*time.Millisecond); fmt.Sprint(got) != fmt.Sprint(want[:relayedBatch]) {
		t.Fatalf("before the reader read again the peer got %q, want the full batch %q", got, want[:relayedBatch])
	}
	p.toReader(t, "b")
	p.read(t)
	if got := p.peerGot(t, 3, 20*time.Millisecond); fmt.Sprint(got) != fmt.Sprint(want[relayedBatch:]) {
		t.Fatalf("the peer got %q, want %q", got, want[relayedBatch:])
	}
}

// TestBatchInbox: datagrams another allocation relayed in process are read
// with the source given, wake a reader waiting on the socket, and take
// turns with the socket's datagrams.
func TestBatchInbox(t *testing.T) {
	p := newBatchPair(t)
	from := netip.MustParseAddrPort("127.0.0.1:4242")
	read := func() (string, string) {
		t.Helper()
		buf := make([]byte, 100)
		n, a, err := p.r.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n]), a.String()
	}

	// A reader waiting on the socket is woken.
	got := make(chan string)
	go func() {
		m, a := read()
		got <- m + " " + a
	}()
	// Wait until it waits (inject before that also works: the inbox is
	// looked at first).
	for i := 0; !p.r.waitingNow(); i++ {
		if i == 5000 {
			t.Fatal("the reader never waited on the socket")
		}
		time.Sleep(time.Millisecond)
	}
	if !p.r.inject([]byte("woken"), from) {
		t.Fatal("inject refused")
	}
	select {
	case g := <-got:
		if g != "woken 127.0.0.1:4242" {
			t.Fatalf("read %q", g)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting reader was not woken")
	}
	// The deadline is cleared: a later read of the socket waits as usual.
	p.toReader(t, "kernel")
	if m, a := read(); m != "kernel" || a != p.peer.LocalAddr().String() {
		t.Fatalf("read %q from %v", m, a)
	}

	// Turns: a full batch from the inbox, then the socket's datagram, then
	// the rest of the inbox.
	for i := range relayedBatch + 4 {
		p.r.inject([]byte(fmt.Sprint(i)), from)
	}
	p.toReader(t, "k")
	var order []string
	for range relayedBatch + 5 {
		m, _ := read()
		order = append(order, m)
	}
	if order[relayedBatch] != "k" || order[0] != "0" || order[relayedBatch-1] != fmt.Sprint(relayedBatch-1) || order[relayedBatch+1] != fmt.Sprint(relayedBatch) {
		t.Fatalf("read order %q", order)
	}

	// Bounded, and nothing after Close.
	for i := range inboxMax {
		if !p.r.inject([]byte{byte(i)}, from) {
			t.Fatalf("inject %d refused", i)
		}
	}
	if p.r.inject([]byte("over"), from) {
		t.Fatal("the inbox took more than inboxMax")
	}
	p.r.Close()
	if p.r.inject([]byte("closed"), from) {
		t.Fatal("a closed socket's inbox took a datagram")
	}
}

// TestRelayBetweenAllocations: two clients of one relay reach each other
// through their allocations in process (the relayed socket reads nothing
// from the network), from the sender's relayed address.
func TestRelayBetweenAllocations(t *testing.T) {
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"alice": "secret"}, AllowPeers: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, ra, err := turnClient(t, s.Addr(), "alice", "secret")
	if err != nil {
		t.Fatal(err)
	}
	_, rb, err := turnClient(t, s.Addr(), "alice", "secret")
	if err != nil {
		t.Fatal(err)
	}
	// Permissions both ways (pion's client makes one on its first write).
	rb.WriteTo([]byte("open"), ra.LocalAddr())
	buf := make([]byte, 100)
	var n int
	var from net.Addr
	for i := 0; ; i++ {
		if i == 50 {
			t.Fatal("nothing relayed from a to b")
		}
		ra.WriteTo([]byte("hello b"), rb.LocalAddr())
		rb.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if n, from, err = rb.ReadFrom(buf); err == nil {
			break
		}
	}
	if string(buf[:n]) != "hello b" || from.String() != ra.LocalAddr().String() {
		t.Fatalf("b got %q from %v, want from %v", buf[:n], from, ra.LocalAddr())
	}
	ap, _ := addrPort(rb.LocalAddr())
	v, ok := s.local.Load(ap)
	if !ok {
		t.Fatalf("the server does not know %v as its own", ap)
	}
	if st := v.(*relayedConn).bc.c.Stats(); st.DatagramsIn != 0 {
		t.Fatalf("b's relayed socket read %d datagrams from the network", st.DatagramsIn)
	}
	if st := s.Stats(); st.PacketsToPeers == 0 || st.PacketsFromPeers == 0 {
		t.Fatalf("stats %+v", st)
	}
	// A closed allocation is forgotten.
	rb.Close()
	for i := 0; ; i++ {
		if _, ok := s.local.Load(ap); !ok {
			break
		}
		if i == 500 {
			t.Fatal("a closed allocation's address is still known")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitingNow reports whether the reader waits on the socket.
func (c *batchConn) waitingNow() bool {
	c.inbox.Lock()
	defer c.inbox.Unlock()
	return c.inbox.waiting
}
