// Package netsim is an in-memory datagram network for tests and benchmarks.
//
// A Network holds endpoints, each with an address, that implement
// transport.PacketConn, so code written against that interface runs over
// netsim exactly as it runs over a real UDP socket. Each direction between
// two addresses (a link) has conditions (LinkConfig): delay, jitter, random
// loss, a deterministic drop filter, reordering, duplication, a rate limit
// with a bounded queue, and an MTU. Conditions can be changed while traffic
// flows. Counters (Stats) say what happened to every datagram.
//
// # Fake time
//
// netsim keeps time with the time package only (time.Now and one
// time.AfterFunc timer per Network) and blocks only on channels, so it works
// inside a testing/synctest bubble: create the Network and its endpoints
// inside the bubble, and delays then pass in fake time, so that hours of
// simulated traffic take seconds. A goroutine blocked in ReadBatch is
// durably blocked. Outside a bubble the same code runs in real time.
//
// # Determinism
//
// All randomness comes from math/rand/v2 generators seeded from
// Config.Seed, one per direction. Given the same seed, the same conditions
// and the same sequence of datagrams written on a direction at the same
// (fake) times, the same datagrams are dropped, delayed, reordered and
// duplicated in the same way. Ports chosen for port 0 and addresses chosen
// for an unspecified IP depend only on the order of Listen calls.
//
// # Addresses
//
// A datagram is routed by its destination address alone, and the receiver
// sees the sender's LocalAddr as its source, unless a NAT (Network.AddNAT,
// nat.go) stands between them: a NAT translates at the two points where
// an address is used, the source written in WriteBatch and the
// destination looked up on delivery. A datagram to a multicast group
// reaches the endpoints that joined it (Endpoint.JoinGroup) at that port,
// and one to LimitedBroadcast every IPv4 endpoint at that port, each copy
// on its own direction.
//
// # Cost
//
// One mutex per Network guards all its state; datagrams in flight sit in one
// heap ordered by delivery time, served by one timer. No goroutine is
// started per datagram or per endpoint. A datagram due now (zero delay, no
// rate limit) is put straight into the receive queue by WriteBatch.
// Datagram buffers are pooled.
package netsim

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"

	"github.com/netmsg-go/netmsg/internal/schedheap"
	"github.com/netmsg-go/netmsg/transport"
)

// ErrAddrInUse is returned by Listen when an open endpoint already has the
// address.
var ErrAddrInUse = errors.New("netsim: address already in use")

// ErrInvalidConfig is wrapped by the error New and the Set methods return for
// an invalid Config or LinkConfig.
var ErrInvalidConfig = errors.New("netsim: invalid config")

// ephemeralPortFirst is where Listen starts looking for a free port when
// asked for port 0 (the IANA dynamic range starts at 49152).
const ephemeralPortFirst = 49152

// Network is an in-memory datagram network. Create it with New; the zero
// Network is not usable. All methods are safe for concurrent use.
//
// A Network created inside a testing/synctest bubble must be used only
// inside that bubble.
type Network struct {
	seed      uint64
	recvQueue int
	epoch     time.Time // time zero of the scheduler's clock
	timer     *time.Timer
	pool      sync.Pool // of *datagram

	// mu guards every field below, and the fields of the links and the
	// "guarded by Network.mu" fields of the endpoints. It is the only lock
	// of the package: nothing blocks while holding it (sends into receive
	// queues do not wait).
	mu        sync.Mutex
	closed    bool
	def       LinkConfig                     // Config.Link, or as set by SetDefault
	pair      map[linkKey]*LinkConfig        // per-direction conditions
	egress    map[netip.AddrPort]*LinkConfig // per-source conditions
	ingress   map[netip.AddrPort]*LinkConfig // per-destination conditions
	cfgGen    uint64                         // bumped on every condition change
	endpoints map[netip.AddrPort]*Endpoint   // open endpoints
	links     map[linkKey]*link
	nats      []*NAT                    // NAT boxes (nat.go)
	nextHost  uint32                    // last host number given to an unspecified IP
	nextPort  map[netip.Addr]uint16     // last port given for port 0, per IP
	sched     schedheap.Heap[*datagram] // datagrams in flight
	order     uint64                    // ties between equal delivery times
	armed     bool                      // timer set to fire at armedAt
	armedAt   time.Duration             // since epoch
}

// linkKey names one direction.
type linkKey struct {
	from, to netip.AddrPort
}

// link is the state of one direction. Its fields are guarded by Network.mu.
type link struct {
	linkKey
	rng       *rand.Rand
	cfg       *LinkConfig   // conditions in force, valid while cfgGen matches
	cfgGen    uint64        // Network.cfgGen when cfg was looked up; 0: never
	busyUntil time.Duration // when the rate limiter finishes its queue
	stats     Stats
}

// New returns a Network configured by cfg. It returns an error wrapping
// ErrInvalidConfig if cfg.Link has a negative duration, rate, queue or MTU,
// or a percentage outside [0, 100], or cfg.RecvQueue is negative. Close it
// to release its timer.
func New(cfg Config) (*Network, error) {
	if err := cfg.Link.validate(); err != nil {
		return nil, err
	}
	if cfg.RecvQueue < 0 {
		return nil, fmt.Errorf("%w: RecvQueue %d", ErrInvalidConfig, cfg.RecvQueue)
	}
	if cfg.RecvQueue <= 0 {
		cfg.RecvQueue = DefaultRecvQueue
	}
	n := &Network{
		seed:      cfg.Seed,
		recvQueue: cfg.RecvQueue,
		epoch:     time.Now(),
		def:       cfg.Link,
		pair:      make(map[linkKey]*LinkConfig),
		egress:    make(map[netip.AddrPort]*LinkConfig),
		ingress:   make(map[netip.AddrPort]*LinkConfig),
		cfgGen:    1,
		endpoints: make(map[netip.AddrPort]*Endpoint),
		links:     make(map[linkKey]*link),
		nextPort:  make(map[netip.Addr]uint16),
	}
	n.pool.New = func() any { return &datagram{b: make([]byte, 0, transport.MaxDatagram)} }
	n.timer = time.AfterFunc(time.Hour, n.fire)
	n.timer.Stop()
	return n, nil
}

// now returns the scheduler's clock: the time since the Network was made.
func (n *Network) now() time.Duration { return time.Since(n.epoch) }

// Listen opens an endpoint at addr.
//
// If addr's IP is invalid or unspecified (the zero AddrPort, 0.0.0.0, ::),
// the endpoint gets a fresh host address of its own: 10.0.x.y for IPv4 and
// the zero AddrPort, fd00::x for IPv6. If addr's port is 0, the endpoint
// gets the lowest free port from 49152 up on that IP. Both choices depend
// only on the order of Listen calls.
//
// Listen returns ErrAddrInUse if an open endpoint has the address, and
// transport.ErrClosed after Close.
func (n *Network) Listen(addr netip.AddrPort) (*Endpoint, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		return nil, transport.ErrClosed
	}
	ip := addr.Addr()
	if !ip.IsValid() || ip.IsUnspecified() {
		n.nextHost++
		h := n.nextHost
		if ip.Is6() {
			var b [16]byte
			b[0] = 0xfd
			binary.BigEndian.PutUint32(b[12:], h)
			ip = netip.AddrFrom16(b)
		} else {
			ip = netip.AddrFrom4([4]byte{10, byte(h >> 16), byte(h >> 8), byte(h)})
		}
	}
	port := addr.Port()
	if port == 0 {
		p, ok := n.freePortLocked(ip)
		if !ok {
			return nil, fmt.Errorf("netsim: no free port on %v", ip)
		}
		port = p
	}
	addr = netip.AddrPortFrom(ip, port)
	if _, ok := n.endpoints[addr]; ok {
		return nil, fmt.Errorf("%w: %v", ErrAddrInUse, addr)
	}
	e := &Endpoint{
		n:    n,
		addr: addr,
		q:    make(chan *datagram, n.recvQueue),
		done: make(chan struct{}),
		intr: make(chan struct{}, 1),
	}
	n.endpoints[addr] = e
	return e, nil
}

// freePortLocked returns the free ephemeral port on ip after the one it
// returned last, round robin from 49152 to 65535.
func (n *Network) freePortLocked(ip netip.Addr) (uint16, bool) {
	p := int(n.nextPort[ip])
	for range 65536 - ephemeralPortFirst {
		p++
		if p < ephemeralPortFirst || p > 65535 {
			p = ephemeralPortFirst
		}
		if _, used := n.endpoints[netip.AddrPortFrom(ip, uint16(p))]; !used {
			n.nextPort[ip] = uint16(p)
			return uint16(p), true
		}
	}
	return 0, false
}

// SetDefault sets the conditions of every direction that has no conditions
// of its own (SetLink, SetEgress, SetIngress). It applies to datagrams
// written from now on. It returns an error, and changes nothing, if c is invalid (see New).
func (n *Network) SetDefault(c LinkConfig) error {
	if err := c.validate(); err != nil {
		return err
	}
	n.mu.Lock()
	n.def = c
	n.cfgGen++
	n.mu.Unlock()
	return nil
}

// SetLink sets the conditions of the direction from one address to another,
// replacing (not adding to) any default, egress or ingress conditions for
// datagrams written from now on. Set both directions for a symmetric link.
// The addresses need not be open yet. It returns an error, and changes nothing, if c is invalid (see New).
func (n *Network) SetLink(from, to netip.AddrPort, c LinkConfig) error {
	if err := c.validate(); err != nil {
		return err
	}
	n.mu.Lock()
	n.pair[linkKey{from, to}] = &c
	n.cfgGen++
	n.mu.Unlock()
	return nil
}

// SetEgress sets the conditions of every direction from addr that has no
// SetLink conditions. They replace the default; they are not added to the
// destination's ingress conditions (egress wins). Each direction still has
// its own rate limiter: a Rate here limits each destination separately, not
// the sum. It returns an error, and changes nothing, if c is invalid (see New).
func (n *Network) SetEgress(addr netip.AddrPort, c LinkConfig) error {
	if err := c.validate(); err != nil {
		return err
	}
	n.mu.Lock()
	n.egress[addr] = &c
	n.cfgGen++
	n.mu.Unlock()
	return nil
}

// SetIngress sets the conditions of every direction to addr that has no
// SetLink or SetEgress conditions. Like SetEgress, each direction keeps its
// own rate limiter. It returns an error, and changes nothing, if c is invalid (see New).
func (n *Network) SetIngress(addr netip.AddrPort, c LinkConfig) error {
	if err := c.validate(); err != nil {
		return err
	}
	n.mu.Lock()
	n.ingress[addr] = &c
	n.cfgGen++
	n.mu.Unlock()
	return nil
}

// ClearLink removes the conditions set by SetLink for the direction from one
// address to another, so the egress, ingress or default conditions apply
// again.
func (n *Network) ClearLink(from, to netip.AddrPort) {
	n.mu.Lock()
	delete(n.pair, linkKey{from, to})
	n.cfgGen++
	n.mu.Unlock()
}

// Link returns the conditions in force for the direction from one address to
// another: those of SetLink, else SetEgress of from, else SetIngress of to,
// else the default.
func (n *Network) Link(from, to netip.AddrPort) LinkConfig {
	n.mu.Lock()
	defer n.mu.Unlock()
	return *n.lookupLocked(linkKey{from, to})
}

func (n *Network) lookupLocked(k linkKey) *LinkConfig {
	if c := n.pair[k]; c != nil {
		return c
	}
	if c := n.egress[k.from]; c != nil {
		return c
	}
	if c := n.ingress[k.to]; c != nil {
		return c
	}
	return &n.def
}

// linkLocked returns the state of a direction, creating it on first use.
func (n *Network) linkLocked(k linkKey) *link {
	l := n.links[k]
	if l == nil {
		h := fnv.New64a()
		b, _ := k.from.MarshalBinary()
		h.Write(b)
		b, _ = k.to.MarshalBinary()
		h.Write(b)
		l = &link{linkKey: k, rng: rand.New(rand.NewPCG(n.seed, h.Sum64()))}
		n.links[k] = l
	}
	return l
}

// LinkStats returns the counters of the direction from one address to
// another (zero if nothing was ever written on it).
func (n *Network) LinkStats(from, to netip.AddrPort) Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	if l := n.links[linkKey{from, to}]; l != nil {
		return l.stats
	}
	return Stats{}
}

// Stats returns the sum of the counters of every direction.
func (n *Network) Stats() Stats {
	n.mu.Lock()
	defer n.mu.Unlock()
	var s Stats
	for _, l := range n.links {
		s.add(&l.stats)
	}
	return s
}

// Close closes every endpoint and stops the network: datagrams in flight are
// dropped (counted in DroppedClosed) and Listen fails from then on. When
// Close returns, no goroutine of the network is left but, at most, a timer
// callback that has already fired and returns at once. Close is safe to
// call more than once; it always returns nil.
func (n *Network) Close() error {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return nil
	}
	n.closed = true
	n.timer.Stop()
	n.armed = false
	for _, d := range n.sched {
		d.l.stats.DroppedClosed++
	}
	n.sched = nil
	eps := make([]*Endpoint, 0, len(n.endpoints))
	for _, e := range n.endpoints {
		eps = append(eps, e)
	}
	n.mu.Unlock()
	for _, e := range eps {
		e.Close()
	}
	return nil
}
