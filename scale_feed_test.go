package netmsg

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netmsg-go/netmsg/internal/conn"
	"github.com/netmsg-go/netmsg/internal/snp"
	"github.com/netmsg-go/netmsg/transport"
)

// scaleFeed is the in-process network of BenchmarkHostScale's via=mem
// runs: a transport.PacketConn for the Host under test whose peers are
// bare client connections in the same process. They connect through it
// (their handshake runs inside WriteBatch), then make all their datagrams
// ahead of time (conn.Prebuild); from then on ReadBatch hands the Host
// those datagrams, a few from each sender in turn, as a socket would,
// keeping at most window messages ahead of the count the application has
// received. A datagram costs the feed one copy, so the process's CPU is
// the Host's (and its application's).
type scaleFeed struct {
	addr    netip.AddrPort
	window  int64
	recvd   *atomic.Int64 // messages the application received
	kick    chan struct{} // signalled when recvd grows while waiting is set (cap 1)
	waiting atomic.Bool   // ReadBatch waits for the window
	done    chan struct{}

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []transport.Packet // handshake datagrams for the Host
	clients map[netip.AddrPort]*conn.Conn
	closed  bool

	// The data phase (set by start): each sender's datagrams, the next
	// to hand out, and the messages they carry, read by ReadBatch alone.
	data    []feedData
	next    []int
	perDg   []float64 // messages per datagram of each sender
	handed  float64   // messages handed to the Host
	running atomic.Bool
	cur     int // the sender ReadBatch takes from next
}

func newScaleFeed(window int64, recvd *atomic.Int64) *scaleFeed {
	f := &scaleFeed{
		addr:    netip.MustParseAddrPort("10.0.0.1:27015"),
		window:  window,
		recvd:   recvd,
		kick:    make(chan struct{}, 1),
		done:    make(chan struct{}),
		clients: map[netip.AddrPort]*conn.Conn{},
	}
	f.cond = sync.NewCond(&f.mu)
	return f
}

func (f *scaleFeed) LocalAddr() netip.AddrPort { return f.addr }

func (f *scaleFeed) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.done)
		f.cond.Broadcast()
	}
	return nil
}

// dial connects count clients to the Host and returns them once every
// one is connected.
func (f *scaleFeed) dial(count int) ([]*conn.Conn, error) {
	var cs []*conn.Conn
	f.mu.Lock()
	for i := range count {
		_, key, _ := ed25519.GenerateKey(nil)
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 1)
		id := uint32(i+1) * 7919
		cfg := conn.Config{Identity: fmt.Sprintf("str:sender%d", id), Key: key, SNP: snp.Config{SendBufferSize: 4 << 20, SendRateMax: 1 << 30}}
		c, err := conn.Dial(cfg, time.Now(), id, f.addr)
		if err != nil {
			f.mu.Unlock()
			return nil, err
		}
		f.clients[from] = c
		cs = append(cs, c)
		f.pollLocked(from, c)
	}
	f.mu.Unlock()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(time.Millisecond) {
		f.mu.Lock()
		up := 0
		for _, c := range cs {
			if c.State() == conn.StateConnected {
				up++
			}
		}
		f.mu.Unlock()
		if up == count {
			return cs, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%d of %d senders connected", up, count)
		}
	}
}

// pollLocked queues what client c (at from) has to send to the Host.
func (f *scaleFeed) pollLocked(from netip.AddrPort, c *conn.Conn) {
	for {
		d, ok := c.Poll(time.Now(), nil)
		if !ok {
			break
		}
		f.queue = append(f.queue, transport.Packet{Buf: append([]byte(nil), d...), N: len(d), Addr: from})
	}
	f.cond.Broadcast()
}

// start makes each client's count messages of size bytes ahead of time
// and begins handing them to the Host.
func (f *scaleFeed) start(cs []*conn.Conn, size, count int) error {
	msg := make([]byte, size)
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, c := range cs {
		ds, err := c.Prebuild(time.Now(), count, func(i int) []byte {
			binary.LittleEndian.PutUint64(msg, uint64(i))
			return msg
		}, snp.Reliable)
		if err != nil {
			return err
		}
		f.data = append(f.data, newFeedData(ds))
		f.perDg = append(f.perDg, float64(count)/float64(len(ds)))
	}
	f.next = make([]int, len(cs))
	runtime.GC()    // the datagrams as Prebuild made them: garbage now
	f.clients = nil // the Host's answers from now on are acks: not needed
	f.running.Store(true)
	f.cond.Broadcast()
	return nil
}

// feedRun is how many datagrams of one sender ReadBatch hands over in a
// row before it turns to the next.
const feedRun = 8

func (f *scaleFeed) ReadBatch(pkts []transport.Packet) (int, error) {
	f.mu.Lock()
	for !f.closed && len(f.queue) == 0 && !f.running.Load() {
		f.cond.Wait()
	}
	if f.closed {
		f.mu.Unlock()
		return 0, transport.ErrClosed
	}
	if len(f.queue) > 0 {
		n := 0
		for n < len(pkts) && n < len(f.queue) {
			p := f.queue[n]
			pkts[n].N = copy(pkts[n].Buf, p.Buf[:p.N])
			pkts[n].Addr = p.Addr
			n++
		}
		f.queue = f.queue[n:]
		f.mu.Unlock()
		return n, nil
	}
	f.mu.Unlock()
	// The data phase: only this goroutine (the Host's reader) reads the
	// senders' datagrams.
	for f.handed-float64(f.recvd.Load()) > float64(f.window) {
		f.waiting.Store(true)
		if f.handed-float64(f.recvd.Load()) <= float64(f.window) {
			f.waiting.Store(false)
			break
		}
		select {
		case <-f.kick:
		case <-f.done:
			return 0, transport.ErrClosed
		}
		f.waiting.Store(false)
	}
	n := 0
	for tries := 0; n < len(pkts) && tries < len(f.data); {
		s := f.cur
		f.cur = (f.cur + 1) % len(f.data)
		run := 0
		for n < len(pkts) && run < feedRun && f.next[s] < f.data[s].len() {
			d := f.data[s].at(f.next[s])
			f.next[s]++
			pkts[n].N = copy(pkts[n].Buf, d)
			pkts[n].Addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(s >> 8), byte(s)}), 1)
			f.handed += f.perDg[s]
			n++
			run++
		}
		if run == 0 {
			tries++
		} else {
			tries = 0
		}
	}
	if n == 0 {
		<-f.done // every datagram handed out
		return 0, transport.ErrClosed
	}
	return n, nil
}

// feedData is one sender's datagrams in one block of memory (a single
// pointer-free object, which the garbage collector neither scans nor
// sweeps by the datagram).
type feedData struct {
	b    []byte
	ends []int // datagram i is b[ends[i-1]:ends[i]]
}

func newFeedData(ds [][]byte) feedData {
	var fd feedData
	n := 0
	for _, d := range ds {
		n += len(d)
	}
	fd.b = make([]byte, 0, n)
	for _, d := range ds {
		fd.b = append(fd.b, d...)
		fd.ends = append(fd.ends, len(fd.b))
	}
	return fd
}

func (fd *feedData) len() int { return len(fd.ends) }

func (fd *feedData) at(i int) []byte {
	start := 0
	if i > 0 {
		start = fd.ends[i-1]
	}
	return fd.b[start:fd.ends[i]]
}

func (f *scaleFeed) WriteBatch(pkts []transport.Packet) (int, error) {
	if f.running.Load() {
		return len(pkts), nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range pkts {
		if c := f.clients[p.Addr]; c != nil {
			c.HandleDatagram(time.Now(), f.addr, p.Buf[:p.N])
			f.pollLocked(p.Addr, c)
		}
	}
	return len(pkts), nil
}
