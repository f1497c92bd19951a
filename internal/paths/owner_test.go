package paths

import (
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/transport"
)

// owner is what a Host is to Paths, in miniature: it reads the endpoint,
// hands datagrams to Paths, gives checks to Routes under its lock, ticks
// and polls, and keeps the GNS datagrams and events it gets.
type owner struct {
	t    *testing.T
	ep   *netsim.Endpoint
	p    *Paths
	done chan struct{}
	wg   sync.WaitGroup

	mu       sync.Mutex // guards the following, and the Routes
	routes   map[uint32]*Route
	gns      []Input // GNS datagrams received (B copied)
	evs      []Event
	routeEvs map[uint32][]RouteEvent
}

// epWriter writes at once on the endpoint.
type epWriter struct{ ep *netsim.Endpoint }

func (w epWriter) WriteTo(to netip.AddrPort, header, b []byte) {
	d := append(append([]byte(nil), header...), b...)
	w.ep.WriteBatch([]transport.Packet{{Buf: d, N: len(d), Addr: to}})
}

func newOwner(t *testing.T, nw *netsim.Network, addr string, cfg Config) *owner {
	t.Helper()
	ep, err := nw.Listen(netip.MustParseAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	o := &owner{t: t, ep: ep, done: make(chan struct{}), routes: map[uint32]*Route{}, routeEvs: map[uint32][]RouteEvent{}}
	cfg.Base = ep.LocalAddr()
	cfg.Send = func(to netip.AddrPort, b []byte) error {
		_, err := ep.WriteBatch([]transport.Packet{{Buf: b, N: len(b), Addr: to}})
		return err
	}
	cfg.Deliver = func(in Input) {
		o.mu.Lock()
		defer o.mu.Unlock()
		o.takeLocked(time.Now(), in)
	}
	o.p, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	o.wg.Add(2)
	go o.read()
	go o.tick()
	return o
}

func (o *owner) takeLocked(now time.Time, in Input) {
	switch in.Disposition {
	case Check:
		if r := o.routes[in.Conn]; r == in.Route {
			r.HandleSTUN(now, in)
			r.Poll(now, epWriter{o.ep})
		}
	case GNS:
		in.B = append([]byte(nil), in.B...)
		o.gns = append(o.gns, in)
	}
}

func (o *owner) read() {
	defer o.wg.Done()
	pkts := []transport.Packet{{Buf: make([]byte, transport.MaxDatagram)}}
	for {
		n, err := o.ep.ReadBatch(pkts)
		if err != nil {
			return
		}
		o.mu.Lock()
		for _, pk := range pkts[:n] {
			o.takeLocked(time.Now(), o.p.HandleDatagram(time.Now(), pk.Addr, pk.Bytes()))
		}
		o.mu.Unlock()
	}
}

// tick runs Tick, the events and every Route's Poll each 10 ms.
func (o *owner) tick() {
	defer o.wg.Done()
	for {
		select {
		case <-o.done:
			return
		case <-time.After(10 * time.Millisecond):
		}
		now := time.Now()
		o.mu.Lock()
		o.p.Tick(now, epWriter{o.ep})
		o.evs = append(o.evs, o.p.Events()...)
		for id, r := range o.routes {
			r.Poll(now, epWriter{o.ep})
			o.routeEvs[id] = append(o.routeEvs[id], r.Events()...)
		}
		o.mu.Unlock()
	}
}

func (o *owner) newRoute(id uint32, controlling bool) *Route {
	o.t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	r, err := o.p.NewRoute(time.Now(), id, controlling)
	if err != nil {
		o.t.Fatal(err)
	}
	o.routes[id] = r
	return r
}

func (o *owner) events() []Event {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.evs
	o.evs = nil
	return e
}

func (o *owner) routeEvents(id uint32) []RouteEvent {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.routeEvs[id]
	o.routeEvs[id] = nil
	return e
}

func (o *owner) received() []Input {
	o.mu.Lock()
	defer o.mu.Unlock()
	g := o.gns
	o.gns = nil
	return g
}

func (o *owner) close() {
	close(o.done)
	o.p.Close()
	o.ep.Close()
	o.wg.Wait()
}
