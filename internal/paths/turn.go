package paths

import (
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/stun/v4"
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
	// delay is how long the "turn" goroutine waits before it allocates;
	// retry, that a failed allocation is tried again (after twice the
	// delay, within reallocFirst-reallocMax) while none is in use: both
	// set when the allocation in use was lost (relayLost).
	delay time.Duration
	retry bool
	kick  <-chan struct{} // closed when a new Route wants relaying: the delay is cut short

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
	if p.turnKick == nil {
		p.turnKick = make(chan struct{})
	}
	ta := &turnAlloc{srv: srv, index: i, in: make(chan []byte, PionQueue), kick: p.turnKick,
		byChan: map[uint16]netip.AddrPort{}, byPeer: map[netip.AddrPort]uint16{}}
	ta.sock = &turnSock{p: p, done: make(chan struct{})}
	return ta
}

// turnFailed records that ta made no allocation, and ends its client and
// its "turn-in" goroutine (SetTURNServers may start another with new
// credentials). After a lost allocation (ta.retry), another attempt on
// the same server follows while no allocation is in use.
func (p *Paths) turnFailed(ta *turnAlloc) {
	p.mu.Lock()
	ta.failed = true
	client := ta.client
	ta.client = nil
	if ta.retry && !p.closed && p.alloc == nil && p.turnAt(ta.index) == ta {
		nta := p.newTurnAllocLocked(p.turnServerLocked(ta.index), ta.index)
		nta.retry = true
		nta.delay = min(max(2*ta.delay, reallocFirst), reallocMax)
		p.turns[slices.Index(p.turns, ta)] = nta
		p.wg.Add(1)
		go p.runTURN(nta)
	}
	p.mu.Unlock()
	if client != nil {
		client.Close()
	}
	ta.sock.Close()
}

// turnServerLocked is cfg.TURNServers[i] with its address unmapped; mu
// is held.
func (p *Paths) turnServerLocked(i int) TURNServer {
	s := p.cfg.TURNServers[i]
	s.Addr = unmap(s.Addr)
	return s
}

// Recovery from a lost allocation (netmsg's choices).
const (
	// probeTimeout bounds the check of the allocation in use (CheckRelay):
	// no answer within it (a server that is down, or restarted and forgot
	// the allocation: pion's server does not answer then) means it is
	// gone. pion retransmits the request at 200 and 600 ms.
	probeTimeout = 1500 * time.Millisecond
	// probeEvery: at most one check this often.
	probeEvery = 5 * time.Second
	// reallocFirst is how long the server whose allocation was lost waits
	// before it is asked again when other servers are configured (they
	// are asked at once, so the session moves to another relay); a server
	// that fails waits twice as long each time, up to reallocMax, while
	// no allocation is in use. A new Route cuts the wait short.
	reallocFirst = time.Second
	reallocMax   = 15 * time.Second
)

// CheckRelay checks the allocation in use, at most once per probeEvery,
// in the background: a path through it was lost (a route's consent
// checks went unanswered), which a TURN server that restarted or went
// away also causes. When the server denies the allocation (437) or does
// not answer within probeTimeout, the allocation is dropped and every
// configured server is asked for a new one (the others at once, that one
// after reallocFirst); the new relayed candidate then arrives as an
// Event, for the owner to signal to its peers. Safe for concurrent use.
func (p *Paths) CheckRelay(now time.Time) {
	p.mu.Lock()
	ta := p.alloc
	if p.closed || ta == nil || ta.client == nil || p.probing || (!p.probeAt.IsZero() && now.Before(p.probeAt.Add(probeEvery))) {
		p.mu.Unlock()
		return
	}
	p.probing, p.probeAt = true, now
	p.stats.RelayChecks++
	client, addr := ta.client, ta.addr
	p.wg.Add(2)
	p.mu.Unlock()
	res := make(chan error, 1)
	go func() {
		// A CreatePermission for our own relayed address: any answer but
		// 437 (allocation mismatch) says the server has the allocation.
		// A stale nonce (a restarted server) is answered with a new one,
		// and pion asks for the request to be sent again.
		defer p.wg.Done()
		var err error
		for range 3 {
			if err = client.CreatePermission(net.UDPAddrFromAddrPort(addr)); err == nil || err.Error() != "try again" {
				break
			}
		}
		res <- err
	}()
	go func() {
		defer p.wg.Done()
		alive := false
		select {
		case err := <-res:
			var te *stun.TurnError
			alive = err == nil || (errors.As(err, &te) && te.ErrorCodeAttr.Code != stun.CodeAllocMismatch)
		case <-time.After(probeTimeout):
		case <-p.done:
			return
		}
		p.mu.Lock()
		p.probing = false
		p.mu.Unlock()
		if !alive {
			p.relayLost(ta)
		}
	}()
}

// relayLost drops ta, the allocation in use that its server no longer
// has, and starts allocating anew on every configured server (ta's own
// after reallocFirst when there are others), retrying with backoff until
// one allocation is made.
func (p *Paths) relayLost(ta *turnAlloc) {
	p.mu.Lock()
	if p.closed || p.alloc != ta {
		p.mu.Unlock()
		return
	}
	p.alloc = nil
	p.stats.AllocationsLost++
	old := p.turns
	p.turns = nil
	for _, o := range old {
		nta := p.newTurnAllocLocked(p.turnServerLocked(o.index), o.index)
		nta.retry = true
		if o.index == ta.index && len(old) > 1 {
			nta.delay = reallocFirst
		}
		p.turns = append(p.turns, nta)
		p.wg.Add(1)
		go p.runTURN(nta)
	}
	p.mu.Unlock()
	p.log.Warn("paths: TURN allocation lost (the server forgot it or is gone): allocating again", "server", ta.srv.Addr)
	for _, o := range old {
		o.close(p)
	}
}

// runTURN is the "turn" goroutine of one server: it makes pion's client,
// starts the "turn-in" goroutine that feeds it, allocates, and then reads
// what peers send to the relayed address.
func (p *Paths) runTURN(ta *turnAlloc) {
	defer p.wg.Done()
	if ta.delay > 0 {
		select {
		case <-time.After(ta.delay):
		case <-ta.kick:
		case <-p.done:
			return
		case <-ta.sock.done:
			return
		}
	}
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
	if p.closed || p.turnAt(ta.index) != ta {
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
		case <-ta.sock.done: // replaced (relayLost)
		default:
			p.log.Warn("paths: TURN allocation failed", "server", ta.srv.Addr, "why", turnFailure(err), "err", err)
		}
		p.turnFailed(ta)
		return
	}
	ra, _ := netip.ParseAddrPort(relayed.LocalAddr().String())
	p.mu.Lock()
	if p.closed || p.alloc != nil || p.turnAt(ta.index) != ta {
		p.mu.Unlock()
		relayed.Close() // closing, replaced, or another server's allocation is in use
		return
	}
	ta.relayed, ta.addr = relayed, unmap(ra)
	if ta.retry {
		p.stats.Reallocations++
	}
	p.alloc = ta
	if p.cfg.Allow&ice.EnableRelay != 0 {
		p.eventLocked(Event{Kind: EventLocalCandidate, Candidate: ta.candidate(p.cfg.Base)})
	}
	p.mu.Unlock()
	p.wg.Add(1)
	go p.writeRelay(ta, relayed)
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

// writeRelay is the "relay-out" goroutine of the allocation in use, ta:
// it writes through pion's relayed connection what Routes send to peers
// on a channel not bound yet (which may block while pion makes the
// permission and binding), until ta is closed.
func (p *Paths) writeRelay(ta *turnAlloc, relayed net.PacketConn) {
	defer p.wg.Done()
	for {
		select {
		case <-p.done:
			return
		case <-ta.sock.done:
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
