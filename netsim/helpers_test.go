package netsim

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/netmsg-go/netmsg/transport"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// ap parses an address or panics.
func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// listen opens an endpoint or fails the test.
func listen(t testing.TB, n *Network, addr string) *Endpoint {
	t.Helper()
	var a netip.AddrPort
	if addr != "" {
		a = ap(addr)
	}
	e, err := n.Listen(a)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// payload returns a datagram of size bytes (at least 16) carrying index i
// and the send time.
func payload(i uint64, size int) []byte {
	b := make([]byte, max(size, 16))
	binary.BigEndian.PutUint64(b, i)
	binary.BigEndian.PutUint64(b[8:], uint64(time.Now().UnixNano()))
	return b
}

// send writes one datagram or fails the test.
func send(t testing.TB, e *Endpoint, to netip.AddrPort, b []byte) {
	t.Helper()
	if _, err := e.WriteBatch([]transport.Packet{{Buf: b, N: len(b), Addr: to}}); err != nil {
		t.Fatal(err)
	}
}

// rxd is a received datagram.
type rxd struct {
	idx     uint64
	latency time.Duration // arrival - send time written in the payload
	at      time.Time
	from    netip.AddrPort
	size    int
}

// collector reads from an endpoint in a goroutine until it is closed.
type collector struct {
	mu   sync.Mutex
	got  []rxd
	done chan struct{}
	err  error
}

func collect(e *Endpoint) *collector {
	c := &collector{done: make(chan struct{})}
	go func() {
		defer close(c.done)
		pkts := make([]transport.Packet, 8)
		for i := range pkts {
			pkts[i].Buf = make([]byte, transport.MaxDatagram)
		}
		for {
			n, err := e.ReadBatch(pkts)
			if err != nil {
				if !errors.Is(err, transport.ErrClosed) {
					c.err = err
				}
				return
			}
			now := time.Now()
			c.mu.Lock()
			for _, p := range pkts[:n] {
				b := p.Bytes()
				sent := time.Unix(0, int64(binary.BigEndian.Uint64(b[8:])))
				c.got = append(c.got, rxd{
					idx:     binary.BigEndian.Uint64(b),
					latency: now.Sub(sent),
					at:      now,
					from:    p.Addr,
					size:    p.N,
				})
			}
			c.mu.Unlock()
		}
	}()
	return c
}

// snapshot returns what was received so far.
func (c *collector) snapshot() []rxd {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]rxd(nil), c.got...)
}

// stop waits for the reader to end (its endpoint must be closed) and
// returns what it received.
func (c *collector) stop(t testing.TB) []rxd {
	t.Helper()
	<-c.done
	if c.err != nil {
		t.Fatal(c.err)
	}
	return c.got
}

// mustNew returns New(cfg) or fails the test.
func mustNew(tb testing.TB, cfg Config) *Network {
	tb.Helper()
	n, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
