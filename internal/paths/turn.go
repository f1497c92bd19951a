package paths

import (
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

	"github.com/netmsg-go/netmsg/internal/ice"
)

// turnAlloc is the state for one TURN server: pion's client on a virtual
// socket (turnSock) whose reads come from HandleDatagram through in, and,
// once made, the allocation. Fields after mu-guarded are guarded by
// Paths.mu.
type turnAlloc struct {
	srv   TURNServer
	index int
	in    chan []byte // for pion's client (turn-in goroutine); bounded
	sock  *turnSock

	// Guarded by Paths.mu.
	failed  bool // no allocation: the client or the allocation failed (its goroutines ended)
	client  *turn.Client
	relayed net.PacketConn
	addr    netip.AddrPort // the relayed address, once allocated
	// The channels pion's client bound, learnt from the ChannelData the
	// server sends us: data to and from those peers then goes as
	// ChannelData straight through the owner's socket (pion still makes
	// and refreshes the bindings and permissions).
	byChan map[uint16]netip.AddrPort
	byPeer map[netip.AddrPort]uint16
}

// candidate is the allocation's relay candidate.
func (ta *turnAlloc) candidate(base netip.AddrPort) ice.Candidate {
	return ice.NewCandidate(ice.Relay, ta.addr, base)
}

// channelFinder is what pion's relayed connection offers to map a channel
// number to its peer.
type channelFinder interface {
	FindAddrByChannelNumber(uint16) (net.Addr, bool)
}

type relayDatagram struct {
	to netip.AddrPort
	b  []byte
}

// startTURNLocked starts the TURN clients (once); mu is held. It calls
// nothing of pion: the goroutines do.
func (p *Paths) startTURNLocked() {
	if p.turns != nil || len(p.turnSet) == 0 || p.closed {
		return
	}
	p.relayOut = make(chan relayDatagram, RelayQueue)
	for i, srv := range p.cfg.TURNServers {
		if p.turnSet[unmap(srv.Addr)] != i {
			continue // invalid or a duplicate
		}
		srv.Addr = unmap(srv.Addr)
		ta := p.newTurnAllocLocked(srv, i)
		p.turns = append(p.turns, ta)
		p.wg.Add(1)
		go p.runTURN(ta)
	}
	p.turnOn.Store(true)
}

// newTurnAllocLocked returns the state for server srv, cfg.TURNServers[i];
// mu is held.
func (p *Paths) newTurnAllocLocked(srv TURNServer, i int) *turnAlloc {
	ta := &turnAlloc{srv: srv, index: i, in: make(chan []byte, PionQueue),
		byChan: map[uint16]netip.AddrPort{}, byPeer: map[netip.AddrPort]uint16{}}
	ta.sock = &turnSock{p: p, done: make(chan struct{})}
	return ta
}

// turnFailed records that ta made no allocation, and ends its client and
// its "turn-in" goroutine (SetTURNServers may start another with new
// credentials).
func (p *Paths) turnFailed(ta *turnAlloc) {
	p.mu.Lock()
	ta.failed = true
	client := ta.client
	ta.client = nil
	p.mu.Unlock()
	if client != nil {
		client.Close()
	}
	ta.sock.Close()
}

// runTURN is the "turn" goroutine of one server: it makes pion's client,
// starts the "turn-in" goroutine that feeds it, allocates, and then reads
// what peers send to the relayed address.
func (p *Paths) runTURN(ta *turnAlloc) {
	defer p.wg.Done()
	client, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: ta.srv.Addr.String(), TURNServerAddr: ta.srv.Addr.String(),
		Username: ta.srv.Username, Password: ta.srv.Password, Realm: ta.srv.Realm,
		Conn: ta.sock, LoggerFactory: quietPion{},
	})
	if err != nil {
		p.log.Warn("paths: TURN client", "server", ta.srv.Addr, "err", err)
		p.turnFailed(ta)
		return
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		client.Close()
		return
	}
	ta.client = client
	p.mu.Unlock()
	p.wg.Add(1)
	go p.feedTURN(ta, client)

	relayed, err := client.Allocate()
	if err != nil {
		select {
		case <-p.done:
		default:
			p.log.Warn("paths: TURN allocation failed", "server", ta.srv.Addr, "why", turnFailure(err), "err", err)
		}
		p.turnFailed(ta)
		return
	}
	ra, _ := netip.ParseAddrPort(relayed.LocalAddr().String())
	p.mu.Lock()
	if p.closed || p.alloc != nil {
		p.mu.Unlock()
		relayed.Close() // closing, or another server's allocation is in use
		return
	}
	ta.relayed, ta.addr = relayed, unmap(ra)
	p.alloc = ta
	if p.cfg.Allow&ice.EnableRelay != 0 {
		p.eventLocked(Event{Kind: EventLocalCandidate, Candidate: ta.candidate(p.cfg.Base)})
	}
	p.mu.Unlock()
	p.wg.Add(1)
	go p.writeRelay(relayed)
	if p.cfg.Notify != nil {
		p.cfg.Notify()
	}

	buf := make([]byte, maxDatagram)
	for {
		n, from, err := relayed.ReadFrom(buf)
		if err != nil {
			return
		}
		ap, err := netip.ParseAddrPort(from.String())
		if err != nil {
			continue
		}
		p.mu.Lock()
		p.stats.RelayedIn++
		in := p.classifyRelayedLocked(unmap(ap), buf[:n])
		p.mu.Unlock()
		if in.Disposition != Dropped && p.cfg.Deliver != nil {
			p.cfg.Deliver(in)
		}
	}
}

// feedTURN is the "turn-in" goroutine of one server: it gives pion's
// client what the server sent us, and learns the channel of ChannelData
// on a channel not known yet.
func (p *Paths) feedTURN(ta *turnAlloc, client *turn.Client) {
	defer p.wg.Done()
	from := net.UDPAddrFromAddrPort(ta.srv.Addr)
	for {
		select {
		case <-p.done:
			return
		case <-ta.sock.done:
			return
		case b := <-ta.in:
			if cd, _, err := ParseChannelData(b); err == nil {
				p.learnChannel(ta, cd.Channel)
			}
			client.HandleInbound(b, from)
		}
	}
}

// learnChannel asks pion's relayed connection which peer channel ch is
// bound to, and remembers it for the fast path (no lock held while pion
// is asked).
func (p *Paths) learnChannel(ta *turnAlloc, ch uint16) {
	p.mu.Lock()
	_, known := ta.byChan[ch]
	relayed := ta.relayed
	full := len(ta.byChan) >= MaxChannels
	p.mu.Unlock()
	f, ok := relayed.(channelFinder)
	if known || full || !ok {
		return
	}
	a, found := f.FindAddrByChannelNumber(ch)
	if !found {
		return
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return
	}
	peer := unmap(ap)
	p.mu.Lock()
	if _, known := ta.byChan[ch]; !known && len(ta.byChan) < MaxChannels {
		ta.byChan[ch] = peer
		ta.byPeer[peer] = ch
	}
	p.mu.Unlock()
}

// writeRelay is the "relay-out" goroutine: it writes through pion's
// relayed connection what Routes send to peers on a channel not bound
// yet (which may block while pion makes the permission and binding).
func (p *Paths) writeRelay(relayed net.PacketConn) {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case d := <-p.relayOut:
			if _, err := relayed.WriteTo(d.b, net.UDPAddrFromAddrPort(d.to)); err != nil {
				p.log.Debug("paths: TURN send", "to", d.to, "err", err)
				continue
			}
			p.mu.Lock()
			p.stats.RelayedOut++
			p.mu.Unlock()
		}
	}
}

// relaySend sends b to peer through the allocation in use: as ChannelData
// through w when the channel is known, else through the relay writer's
// queue (full: dropped and counted). It reports whether b went or was
// queued.
func (p *Paths) relaySend(w Writer, peer netip.AddrPort, b []byte) bool {
	p.mu.Lock()
	ta := p.alloc
	if ta == nil || len(b) > 0xffff {
		p.mu.Unlock()
		return false
	}
	if ch, ok := ta.byPeer[peer]; ok {
		p.stats.ChannelDataOut++
		srv := ta.srv.Addr
		p.mu.Unlock()
		hdr := channelHeader(ch, len(b))
		w.WriteTo(srv, hdr[:], b)
		return true
	}
	select {
	case p.relayOut <- relayDatagram{peer, append([]byte(nil), b...)}:
		p.mu.Unlock()
		return true
	default:
		p.stats.RelayQueueDrops++
		p.mu.Unlock()
		return false
	}
}

// close ends the server's client and allocation (Close, without mu held).
func (ta *turnAlloc) close(p *Paths) {
	p.mu.Lock()
	client, relayed := ta.client, ta.relayed
	p.mu.Unlock()
	if relayed != nil {
		relayed.Close()
	}
	if client != nil {
		client.Close()
	}
	ta.sock.Close()
}

// turnSock is the net.PacketConn pion's TURN client uses: writes go out of
// the owner's socket through Config.Send; reads never happen (the
// "turn-in" goroutine feeds the client with HandleInbound).
type turnSock struct {
	p    *Paths
	done chan struct{}
	once sync.Once
}

func (s *turnSock) WriteTo(b []byte, addr net.Addr) (int, error) {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return 0, err
	}
	select {
	case <-s.done:
		return 0, net.ErrClosed
	default:
	}
	if err := s.p.cfg.Send(unmap(ap), b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (s *turnSock) ReadFrom([]byte) (int, net.Addr, error) {
	<-s.done
	return 0, nil, net.ErrClosed
}

func (s *turnSock) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *turnSock) LocalAddr() net.Addr {
	return net.UDPAddrFromAddrPort(s.p.cfg.Base)
}

func (s *turnSock) SetDeadline(time.Time) error      { return nil }
func (s *turnSock) SetReadDeadline(time.Time) error  { return nil }
func (s *turnSock) SetWriteDeadline(time.Time) error { return nil }

// quietPion keeps pion's logs out of the application's.
type quietPion struct{}

func (quietPion) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("", logging.LogLevelDisabled, discard{})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// turnFailure says in words why a TURN server refused an allocation, from
// pion's error (which reads "Allocate error response (error 400: )" for a
// wrong password: pion answers the second, authenticated request's refusal
// so).
func turnFailure(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "error 400"), strings.Contains(msg, "error 401"), strings.Contains(msg, "Unauthorized"):
		return "the server refused the credentials: check the TURN username and password (or that a REST credential has not expired)"
	case strings.Contains(msg, "error 486"):
		return "the server's allocation quota for this user or address is reached"
	case strings.Contains(msg, "error 508"):
		return "the server has no relay ports left"
	case strings.Contains(msg, "timeout"), strings.Contains(msg, "i/o timeout"):
		return "no answer from the server: check its address and that UDP reaches it"
	}
	return "the server refused the allocation"
}
