package paths

import (
	"crypto/rand"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netmsg-go/netmsg/internal/ice"
)

// TURNServer is a relay the owner may allocate an address on (GNS's
// P2P_TURN_ServerList with its user and password lists).
type TURNServer struct {
	Addr               netip.AddrPort
	Username, Password string
	// Realm of the credentials; empty takes the server's.
	Realm string
}

// Config configures Paths. The zero value works: no STUN server, no TURN
// server, every kind of candidate allowed.
type Config struct {
	// Base is the address of the shared socket: the base of every local
	// candidate. An unspecified IP (a socket bound to every interface)
	// offers each interface's address (HostAddrs).
	Base netip.AddrPort
	// HostAddrs, if set, returns the host candidates' addresses in place
	// of Base or the interfaces' (tests).
	HostAddrs func() []netip.AddrPort
	// STUNServers are asked for the socket's server-reflexive address
	// (never a default: nothing is contacted unless listed). Asked only
	// with ice.EnablePublic in Allow, once the first Route is made.
	STUNServers []netip.AddrPort
	// TURNServers are allocated on, once the first Route is made, with
	// ice.EnableRelay in Allow. The first allocation made is the one used.
	// One found gone (CheckRelay) is replaced by a new one, on another
	// server first.
	TURNServers []TURNServer
	// Allow is GNS's P2P_Transport_ICE_Enable: which local candidates
	// Routes share. Zero means ice.EnableAll. Without EnablePrivate and
	// EnablePublic, Routes check only pairs through the relay.
	Allow ice.Enable
	// Rand draws ICE passwords and STUN transaction ids; nil means
	// crypto/rand.
	Rand io.Reader
	// Logger receives the package's logs; nil means slog.Default().
	Logger *slog.Logger
	// Send writes one datagram on the shared socket for pion's TURN
	// client. It is called from the package's goroutines holding none of
	// its locks, concurrently with the owner's own writes, which it must
	// serialize with. Required with TURNServers.
	Send func(to netip.AddrPort, b []byte) error
	// Deliver hands the owner a datagram that arrived through the TURN
	// allocation and that HandleDatagram did not return (what pion's
	// client read from its relayed address): Input.Relayed is set. It is
	// called from a goroutine of the package holding none of its locks;
	// b is valid until it returns. nil drops them.
	Deliver func(Input)
	// Notify tells the owner that Events has news (an allocation was
	// made). It is called from a goroutine of the package holding none
	// of its locks. nil: the owner polls Events.
	Notify func()
}

// Limits and tuning (netmsg's choices).
const (
	// PionQueue bounds the datagrams waiting for pion's client.
	PionQueue = 256
	// RelayQueue bounds the datagrams waiting for the relay writer.
	RelayQueue = 1024
	// MaxChannels bounds the channels remembered per allocation (TURN
	// numbers them 0x4000-0x4fff; a server names only those our client
	// bound).
	MaxChannels = ChannelMax - ChannelMin + 1
	// maxEvents bounds the events waiting in Events (and in a Route's):
	// beyond, the oldest are dropped.
	maxEvents = 64
	// maxDatagram is the largest datagram handled.
	maxDatagram = 2048
)

// ErrTURNNeedsSend is returned by New for TURNServers without Config.Send.
var ErrTURNNeedsSend = errors.New("paths: TURN servers need Config.Send")

// ErrClosed is returned by NewRoute after Close.
var ErrClosed = errors.New("paths: closed")

// Disposition says what HandleDatagram did with a datagram.
type Disposition uint8

const (
	// Taken: the package took it (a STUN server's answer, a TURN
	// server's message for pion's client). Nothing for the owner.
	Taken Disposition = iota
	// Dropped: malformed, for no Route, or a queue was full; counted in
	// Stats. Nothing for the owner but its own count.
	Dropped
	// Check: an ICE connectivity check (or its answer) for Input.Route,
	// the Route of connection Input.Conn: give it to Route.HandleSTUN
	// under that connection's lock.
	Check
	// GNS: a GNS datagram (Input.B) from Input.From for the owner's
	// connections; Input.Kind says control or data.
	GNS
)

// Input is a classified datagram.
type Input struct {
	Disposition Disposition
	Kind        Kind
	// From is the sender: the peer's address (behind the relay when
	// Relayed).
	From netip.AddrPort
	// B is the datagram (for ChannelData, its payload); it aliases the
	// buffer given to HandleDatagram.
	B []byte
	// Relayed reports that it came through our TURN allocation.
	Relayed bool
	// Route and Conn (the connection id it was made with), for Check.
	Route *Route
	Conn  uint32
}

// EventKind says what an Event reports.
type EventKind uint8

const (
	// EventLocalCandidate: a new local candidate (server-reflexive or
	// relayed) to offer on every Route (Route.AddLocalCandidate), which
	// says whether to signal it to that Route's peer.
	EventLocalCandidate EventKind = iota + 1
)

// Event is something the owner acts on, from Events.
type Event struct {
	Kind      EventKind
	Candidate ice.Candidate
}

// Stats counts what Paths did. Counters only grow.
type Stats struct {
	STUNSent, STUNAnswers uint64 // binding requests to STUN servers, and answers taken
	// Dropped counts datagrams dropped by HandleDatagram: unknown lead
	// bytes, malformed or unknown STUN, malformed ChannelData.
	Dropped uint64
	// NoRoute counts connectivity checks for no Route (also in Dropped).
	NoRoute         uint64
	PionQueueDrops  uint64 // datagrams for pion's client dropped: its queue was full
	RelayQueueDrops uint64 // datagrams to send through the relay dropped: its queue was full
	ChannelDataIn   uint64 // datagrams from peers that came as ChannelData on the fast path
	ChannelDataOut  uint64 // datagrams to peers sent as ChannelData on the fast path
	RelayedIn       uint64 // datagrams from peers that came through pion's relayed connection
	RelayedOut      uint64 // datagrams to peers written through pion's relayed connection
	EventsDropped   uint64 // events dropped because the owner did not take them
	RelayChecks     uint64 // checks of the allocation in use (CheckRelay)
	AllocationsLost uint64 // allocations in use found gone and dropped
	Reallocations   uint64 // allocations made after one was lost
}

// Writer is how the package sends while the owner calls it: the owner
// queues header followed by b to to (into its batch) and writes it later.
// Both slices are reused once WriteTo returns; b may lie inside the
// owner's own next free buffer.
type Writer interface {
	WriteTo(to netip.AddrPort, header, b []byte)
}

// Paths is the demultiplexer, STUN client, TURN allocations and Route table
// of one shared socket. Its methods are safe for concurrent use.
type Paths struct {
	cfg     Config
	rand    io.Reader
	log     *slog.Logger
	turnSet map[netip.AddrPort]int // TURN server address -> index in cfg.TURNServers; read-only once TURN started

	turnOn atomic.Bool // the TURN clients are started (HandleDatagram looks at turnSet only then)

	mu       sync.Mutex // guards the following fields; a leaf lock
	closed   bool
	routes   map[string]*Route // by local ufrag
	stun     *stunClient
	turns    []*turnAlloc  // one per TURN server, once started
	alloc    *turnAlloc    // the allocation in use, once made
	turnKick chan struct{} // closed (and replaced) to cut the waits of allocations retried
	probing  bool          // CheckRelay's check is out
	probeAt  time.Time     // when CheckRelay last checked
	events   []Event
	relayOut chan relayDatagram
	stats    Stats
	wg       sync.WaitGroup
	done     chan struct{}
}

// New returns Paths for the socket at cfg.Base. It starts no goroutine.
func New(cfg Config) (*Paths, error) {
	if len(cfg.TURNServers) > 0 && cfg.Send == nil {
		return nil, ErrTURNNeedsSend
	}
	if cfg.Allow == 0 {
		cfg.Allow = ice.EnableAll
	}
	p := &Paths{cfg: cfg, rand: cfg.Rand, log: cfg.Logger, routes: map[string]*Route{}, done: make(chan struct{}),
		turnSet: map[netip.AddrPort]int{}}
	if p.rand == nil {
		p.rand = rand.Reader
	}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.stun = newSTUNClient(cfg.STUNServers, p.rand)
	for i, s := range cfg.TURNServers {
		a := unmap(s.Addr)
		if _, dup := p.turnSet[a]; !dup && a.IsValid() {
			p.turnSet[a] = i
		}
	}
	return p, nil
}

// HandleDatagram classifies one datagram that arrived on the shared socket
// from from, and takes what is the package's own. The owner acts on the
// returned Input; b is not kept (what pion's client needs is copied).
// A GNS datagram straight from a peer costs no lock.
func (p *Paths) HandleDatagram(now time.Time, from netip.AddrPort, b []byte) Input {
	k := Classify(b)
	from = unmap(from)
	turnOn := p.turnOn.Load()
	if (k == KindGNSData || k == KindGNSControl) && !turnOn {
		return Input{Disposition: GNS, Kind: k, From: from, B: b}
	}
	if turnOn {
		if i, ok := p.turnSet[from]; ok {
			return p.fromTURNServer(now, i, from, k, b)
		}
	}
	switch k {
	case KindGNSData, KindGNSControl:
		return Input{Disposition: GNS, Kind: k, From: from, B: b}
	case KindSTUN:
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.stunAnswerLocked(now, from, b) {
			return Input{Disposition: Taken, Kind: k}
		}
		return p.checkLocked(from, b, false)
	}
	p.mu.Lock()
	p.stats.Dropped++
	p.mu.Unlock()
	return Input{Disposition: Dropped, Kind: k}
}

// fromTURNServer takes a datagram from the TURN server cfg.TURNServers[i]:
// our STUN client's answer (the server may be our STUN server too),
// ChannelData on a channel known (the fast path), or else, if STUN or
// ChannelData, pion's; anything else is dropped.
func (p *Paths) fromTURNServer(now time.Time, i int, from netip.AddrPort, k Kind, b []byte) Input {
	p.mu.Lock()
	defer p.mu.Unlock()
	if k == KindSTUN && p.stunAnswerLocked(now, from, b) {
		return Input{Disposition: Taken, Kind: k}
	}
	ta := p.turnAt(i)
	if ta == nil || (k != KindSTUN && k != KindChannelData) {
		p.stats.Dropped++
		return Input{Disposition: Dropped, Kind: k}
	}
	if k == KindChannelData {
		cd, _, err := ParseChannelData(b)
		if err != nil {
			p.stats.Dropped++
			return Input{Disposition: Dropped, Kind: k}
		}
		if peer, ok := ta.byChan[cd.Channel]; ok {
			p.stats.ChannelDataIn++
			return p.classifyRelayedLocked(peer, cd.Data)
		}
	}
	select {
	case ta.in <- append([]byte(nil), b...):
		return Input{Disposition: Taken, Kind: k}
	default:
		p.stats.PionQueueDrops++
		return Input{Disposition: Dropped, Kind: k}
	}
}

// turnAt returns the allocation state for cfg.TURNServers[i]; mu is held.
func (p *Paths) turnAt(i int) *turnAlloc {
	for _, ta := range p.turns {
		if ta.index == i {
			return ta
		}
	}
	return nil
}

// classifyRelayedLocked classifies a datagram a peer sent to our relayed
// address; mu is held.
func (p *Paths) classifyRelayedLocked(peer netip.AddrPort, b []byte) Input {
	switch k := Classify(b); k {
	case KindSTUN:
		return p.checkLocked(peer, b, true)
	case KindGNSData, KindGNSControl:
		return Input{Disposition: GNS, Kind: k, From: peer, B: b, Relayed: true}
	default:
		p.stats.Dropped++
		return Input{Disposition: Dropped, Kind: k}
	}
}

// checkLocked finds the Route a connectivity check is for; mu is held.
func (p *Paths) checkLocked(from netip.AddrPort, b []byte, relayed bool) Input {
	ufrag, ok := ice.Route(b)
	r := p.routes[ufrag]
	if !ok || r == nil {
		p.stats.Dropped++
		p.stats.NoRoute++
		return Input{Disposition: Dropped, Kind: KindSTUN}
	}
	return Input{Disposition: Check, Kind: KindSTUN, From: from, B: b, Relayed: relayed, Route: r, Conn: r.id}
}

// stunAnswerLocked takes our STUN client's answer; mu is held.
func (p *Paths) stunAnswerLocked(now time.Time, from netip.AddrPort, b []byte) bool {
	mapped, changed, taken := p.stun.handleResponse(now, from, b)
	if !taken {
		return false
	}
	p.stats.STUNAnswers++
	if changed && !p.isHostAddr(mapped) && p.cfg.Allow&ice.EnablePublic != 0 {
		p.eventLocked(Event{Kind: EventLocalCandidate, Candidate: p.srflxCandidate(mapped)})
	}
	return true
}

func (p *Paths) eventLocked(e Event) {
	if len(p.events) == maxEvents {
		p.events = p.events[1:]
		p.stats.EventsDropped++
	}
	p.events = append(p.events, e)
}

// Events returns (and forgets) what happened since the last call.
func (p *Paths) Events() []Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	ev := p.events
	p.events = nil
	return ev
}

// Tick sends the STUN requests due at now through w and returns when it
// next needs to run (zero: not until something changes; NewRoute may
// change it).
func (p *Paths) Tick(now time.Time, w Writer) time.Time {
	type out struct {
		to netip.AddrPort
		b  []byte
	}
	var due []out
	p.mu.Lock()
	for {
		to, b, ok := p.stun.poll(now)
		if !ok {
			break
		}
		p.stats.STUNSent++
		due = append(due, out{to, b})
	}
	next := p.stun.nextWake()
	p.mu.Unlock()
	for _, d := range due {
		w.WriteTo(d.to, nil, d.b)
	}
	return next
}

// AskSTUNAgain has the STUN servers that answered before asked again at
// once rather than at their next refresh (at most once a second each),
// as when a Route lost its path: the NAT in front of the socket may have
// moved it to a new public port, which is then reported as a new
// server-reflexive candidate (an EventLocalCandidate) to signal to the
// peers. It reports whether a request is due: the owner should Tick.
func (p *Paths) AskSTUNAgain(now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.cfg.Allow&ice.EnablePublic == 0 {
		return false
	}
	return p.stun.askAgain(now)
}

// NextWake returns when Tick has something to do next (zero: nothing).
func (p *Paths) NextWake() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stun.nextWake()
}

// Stats returns the counters.
func (p *Paths) Stats() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stats
}

// HostCandidates returns the addresses peers may reach the shared socket
// at: Config.HostAddrs's, Base, or, when Base is unspecified, each
// interface's with Base's port (loopback and link-local ones left out, as
// GNS does).
func (p *Paths) HostCandidates() []netip.AddrPort {
	if p.cfg.HostAddrs != nil {
		return p.cfg.HostAddrs()
	}
	la := p.cfg.Base
	if !la.Addr().IsUnspecified() {
		return []netip.AddrPort{la}
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.AddrPort
	for _, a := range addrs {
		pfx, err := netip.ParsePrefix(a.String())
		if err != nil {
			continue
		}
		ip := pfx.Addr().Unmap()
		if ip.IsLoopback() || ip.IsLinkLocalUnicast() || (ip.Is6() && la.Addr().Is4()) {
			continue
		}
		out = append(out, netip.AddrPortFrom(ip, la.Port()))
	}
	return out
}

func (p *Paths) isHostAddr(a netip.AddrPort) bool {
	for _, c := range p.HostCandidates() {
		if c == a {
			return true
		}
	}
	return false
}

func (p *Paths) srflxCandidate(mapped netip.AddrPort) ice.Candidate {
	return ice.NewCandidate(ice.ServerReflexive, mapped, p.cfg.Base)
}

// localCandidatesLocked returns every local candidate Allow lets Routes
// share: host, server-reflexive and relayed; mu is held.
func (p *Paths) localCandidatesLocked() []ice.Candidate {
	allow := p.cfg.Allow
	var out []ice.Candidate
	for _, a := range p.HostCandidates() {
		if c := ice.NewCandidate(ice.Host, a, netip.AddrPort{}); allow.Allows(c) {
			out = append(out, c)
		}
	}
	if allow&ice.EnablePublic != 0 {
		for _, m := range p.stun.mappedAddrs() {
			if !p.isHostAddr(m) {
				out = append(out, p.srflxCandidate(m))
			}
		}
	}
	if p.alloc != nil && allow&ice.EnableRelay != 0 {
		out = append(out, p.alloc.candidate(p.cfg.Base))
	}
	return out
}

// Allocation describes the TURN allocation in use.
type Allocation struct {
	Server  netip.AddrPort // the TURN server
	Index   int            // in Config.TURNServers
	Relayed netip.AddrPort // our relayed address on it
}

// Allocation returns the TURN allocation in use, if one was made.
func (p *Paths) Allocation() (Allocation, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.alloc == nil {
		return Allocation{}, false
	}
	return Allocation{Server: p.alloc.srv.Addr, Index: p.alloc.index, Relayed: p.alloc.addr}, true
}

// Close ends the TURN allocations and every goroutine of the package, and
// waits for them. The owner must not hold a lock that Config.Send,
// Config.Deliver or Config.Notify take. It is safe to call more than once.
func (p *Paths) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	turns := p.turns
	p.mu.Unlock()
	close(p.done)
	for _, ta := range turns {
		ta.close(p)
	}
	p.wg.Wait()
	return nil
}
