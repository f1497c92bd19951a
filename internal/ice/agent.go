package ice

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/pion/stun/v4"
)

// Timing and limits of the checks.
const (
	// pacing is Ta, per base: at most one ordinary check from the
	// socket and one through the TURN allocation this often (see
	// Agent.think).
	pacing = 10 * time.Millisecond
	// checkRTO is the first retransmission timeout of a check; it doubles.
	checkRTO = 100 * time.Millisecond
	// checkTries is how many times a check is sent before its pair fails.
	checkTries = 7
	// consentTries is checkTries for the selected pair's keepalive (its
	// consent): unanswered this many times (3.1 s), the pair is dropped
	// and another that works takes over, well within a connection's
	// 10 s timeout.
	consentTries = 5
	// keepaliveEvery is how often the selected pair is checked again
	// (consent), which also keeps NAT bindings open.
	keepaliveEvery = 2500 * time.Millisecond
	// MaxRemoteCandidates bounds the remote candidates of one agent; its
	// pairs are at most twice as many (direct and through the relay), each
	// with at most one check in flight, which bounds its transactions.
	MaxRemoteCandidates = 32
	// MaxLocalCandidates bounds the local candidates of one agent.
	MaxLocalCandidates = 16
	// maxOut bounds the datagrams waiting for Poll; more are dropped.
	maxOut = 128
	// maxEvents bounds the events waiting for Events; more are dropped.
	maxEvents = 64
	// maxSTUNSize is the largest STUN datagram taken, well above the 576
	// bytes GNS writes at most.
	maxSTUNSize = 1024
)

var cryptoRand = rand.Reader

// Errors HandleSTUN returns for input it drops (count them).
var (
	ErrNotSTUN     = errors.New("ice: not a STUN message")
	ErrIntegrity   = errors.New("ice: message integrity check failed")
	ErrUsername    = errors.New("ice: unexpected username")
	ErrUnsolicited = errors.New("ice: response to no check of ours")
	ErrNoPassword  = errors.New("ice: remote credentials not known yet")
	ErrTooLarge    = errors.New("ice: STUN datagram too large")
)

// Config configures an Agent.
type Config struct {
	// LocalUfrag and LocalPwd are our credentials (Ufrag of our connection
	// id, and the password we signal).
	LocalUfrag, LocalPwd string
	// Controlling is our role: in GNS the side that accepted the
	// connection (sent connect OK) controls and nominates.
	Controlling bool
	// Tiebreaker settles role conflicts; 0 draws one from Rand.
	Tiebreaker uint64
	// Rand is the source of transaction ids; nil means crypto/rand.
	Rand io.Reader
	// OnlyRelay checks only pairs through our TURN allocation (GNS's
	// relay-only ICE setting; for tests and strict networks).
	OnlyRelay bool
	// Persistent, while no pair is selected, checks failed pairs again
	// every RetryFailed, so a lossy path (a relay under heavy loss) is
	// found late rather than never; the caller ends the attempt by its
	// own deadline. Without it the agent gives up once every pair failed.
	Persistent bool
	// Allow is GNS's P2P_Transport_ICE_Enable: which local candidates
	// AddLocalCandidate takes (and so which are signaled). Zero means
	// EnableAll; GNS's EnableDisable means no agent at all.
	Allow Enable
	// Base is the address of the Host's socket, the base of every local
	// candidate: server-reflexive candidates name it as their related
	// address and binding requests to STUN servers carry it.
	Base netip.AddrPort
	// STUNServers are queried for server-reflexive candidates (never a
	// default: nothing public is contacted unless the caller says so).
	// Ignored unless Allow has EnablePublic, and with OnlyRelay.
	STUNServers []netip.AddrPort
}

// RetryFailed is how often a Persistent agent checks failed pairs again.
const RetryFailed = 2 * time.Second

type pairState uint8

const (
	waiting pairState = iota
	inProgress
	succeeded
	failed
)

type pair struct {
	remote    Candidate
	relay     bool // through our TURN allocation (else from our socket)
	state     pairState
	nominated bool // USE-CANDIDATE seen (controlled) or our nomination succeeded (controlling)
	txID      [stun.TransactionIDSize]byte
	pending   bool   // a check is in flight (txID)
	useCand   bool   // the check in flight carries USE-CANDIDATE
	trig      uint64 // waiting for a triggered check (its turn: lower first); 0: none
	tries     int
	nextAt    time.Time // retransmission or keepalive
}

// Datagram is a STUN message the agent wants sent to To: from the
// Host's socket, or through its TURN allocation when Relay is set.
type Datagram struct {
	To    netip.AddrPort
	B     []byte
	Relay bool
}

// Stats counts an agent's traffic.
type Stats struct {
	ChecksSent, ResponsesSent, Succeeded uint64
	// Dropped counts STUN datagrams refused (not STUN, bad integrity or
	// fingerprint, wrong username, unsolicited, too large).
	Dropped uint64
	// QueueFull counts datagrams and events dropped because the caller
	// did not take them (Poll, Events) fast enough.
	QueueFull uint64
	// ConsentLost counts selected pairs dropped because their keepalives
	// went unanswered.
	ConsentLost uint64
}

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventLocalCandidate: a local candidate to signal to the peer
	// (Event.Candidate; its String is what GNS signals).
	EventLocalCandidate EventKind = iota + 1
	// EventSelected: the selected pair changed (Event.Remote, Event.Relay).
	EventSelected
	// EventFailed: every pair failed; a Persistent agent keeps trying.
	EventFailed
)

// Event is something the caller acts on, from Events.
type Event struct {
	Kind      EventKind
	Candidate Candidate      // EventLocalCandidate
	Remote    netip.AddrPort // EventSelected: the selected pair's remote address
	Relay     bool           // EventSelected: the pair goes through our TURN allocation
}

// Agent runs ICE connectivity checks for one connection, GNS's way, from
// the Host's one socket (so every local candidate shares one base). It is
// pure: the caller feeds it STUN datagrams and the time, and sends what
// Poll returns.
type Agent struct {
	cfg           Config
	remoteUfrag   string
	remotePwd     string
	pairs         []*pair
	selected      *pair
	out           []Datagram
	nextCheck     [2]time.Time // per base (lane): when its next ordinary check may go
	trigSeq       uint64       // orders triggered checks (pair.trig)
	nominating    *pair
	st            Stats
	selectChanged bool
	relayBase     bool        // we have a TURN allocation: pairs through it too
	onlyRelay     bool        // Config.OnlyRelay
	remotes       []Candidate // every remote candidate signaled, for pairs made later
	retryAt       time.Time   // Persistent: when failed pairs are checked again
	locals        []Candidate // local candidates taken by AddLocalCandidate
	gatherer      *Gatherer   // server-reflexive gathering (Config.STUNServers)
	events        []Event
	failedSent    bool // EventFailed was queued for the current failure
}

// NewAgent returns an agent with no remote candidates yet.
func NewAgent(cfg Config) (*Agent, error) {
	if cfg.LocalUfrag == "" || cfg.LocalPwd == "" {
		return nil, errors.New("ice: local credentials required")
	}
	if cfg.Rand == nil {
		cfg.Rand = cryptoRand
	}
	if cfg.Tiebreaker == 0 {
		var b [8]byte
		if _, err := io.ReadFull(cfg.Rand, b[:]); err != nil {
			return nil, err
		}
		cfg.Tiebreaker = binary.BigEndian.Uint64(b[:])
	}
	if cfg.Allow == 0 {
		cfg.Allow = EnableAll
	}
	a := &Agent{cfg: cfg, onlyRelay: cfg.OnlyRelay}
	if len(cfg.STUNServers) > 0 && cfg.Allow&EnablePublic != 0 && !cfg.OnlyRelay {
		a.gatherer = NewGatherer(cfg.Base, cfg.STUNServers, cfg.Rand)
	}
	return a, nil
}

// LocalUfrag returns our ufrag (what a Demux files the agent under).
func (a *Agent) LocalUfrag() string { return a.cfg.LocalUfrag }

// AddLocalCandidate takes a local candidate to signal: it is refused (false)
// when Config.Allow does not let it be shared (with OnlyRelay only relayed
// ones are), when one at its address is known already, or beyond
// MaxLocalCandidates. A taken one is reported by an EventLocalCandidate.
// Relayed candidates also make the agent check pairs through the relay
// (SetRelayBase).
func (a *Agent) AddLocalCandidate(c Candidate) bool {
	c.Addr = unmapAP(c.Addr)
	if !a.cfg.Allow.Allows(c) || (a.onlyRelay && c.Type != Relay) || len(a.locals) >= MaxLocalCandidates {
		return false
	}
	for _, l := range a.locals {
		if l.Addr == c.Addr {
			return false
		}
	}
	a.locals = append(a.locals, c)
	a.event(Event{Kind: EventLocalCandidate, Candidate: c})
	if c.Type == Relay {
		a.SetRelayBase()
	}
	return true
}

// AddHostCandidates offers a host candidate for each address the Host's
// socket is reachable at (its interfaces' addresses with the socket's
// port), with GNS's local preferences (65535 for the first, one less for
// each next one) and foundations. It returns the candidates taken.
func (a *Agent) AddHostCandidates(addrs []netip.AddrPort) []Candidate {
	var out []Candidate
	pref := uint16(65535)
	for _, ap := range addrs {
		ap = unmapAP(ap)
		c := Candidate{Foundation: Foundation(Host, ap, netip.AddrPort{}), Priority: PriorityPref(Host, pref), Addr: ap, Type: Host}
		if a.AddLocalCandidate(c) {
			out = append(out, c)
			pref--
		}
	}
	return out
}

// LocalCandidates returns the local candidates taken so far.
func (a *Agent) LocalCandidates() []Candidate { return append([]Candidate(nil), a.locals...) }

// Events returns (and forgets) what happened since the last call.
func (a *Agent) Events() []Event {
	e := a.events
	a.events = nil
	return e
}

func (a *Agent) event(e Event) {
	if len(a.events) >= maxEvents {
		a.st.QueueFull++
		return
	}
	a.events = append(a.events, e)
}

// Restart is an ICE restart: new local credentials (pwd; our ufrag stays,
// it is the connection id's) and role, as when a symmetric connect turns
// the connection around. Checks start over once SetRemoteCredentials gives
// the peer's new password; remote candidates learnt from checks are
// forgotten, signaled ones are checked again, and the selected pair is
// dropped (an EventSelected with no Remote says so).
func (a *Agent) Restart(pwd string, controlling bool) error {
	if pwd == "" {
		return errors.New("ice: restart needs a password")
	}
	a.cfg.LocalPwd, a.cfg.Controlling = pwd, controlling
	a.remotePwd = ""
	a.pairs = a.pairs[:0]
	a.nominating, a.retryAt, a.nextCheck, a.failedSent = nil, time.Time{}, [2]time.Time{}, false
	if a.selected != nil {
		a.selected = nil
		a.selectChanged = true
		a.event(Event{Kind: EventSelected})
	}
	for _, c := range a.remotes {
		if !a.onlyRelay {
			a.addPair(c, false)
		}
		if a.relayBase {
			a.addPair(c, true)
		}
	}
	return nil
}

// SetRelayBase tells the agent the Host has a TURN allocation: every
// remote candidate is then also checked through it (at a lower priority
// than any direct pair).
func (a *Agent) SetRelayBase() {
	if a.relayBase {
		return
	}
	a.relayBase = true
	for _, c := range a.remotes {
		a.addPair(c, true)
	}
}

func (a *Agent) addPair(c Candidate, relay bool) *pair {
	if a.pairFor(c.Addr, relay) != nil || len(a.pairs) >= 2*MaxRemoteCandidates {
		return nil
	}
	p := &pair{remote: c, relay: relay}
	a.pairs = append(a.pairs, p)
	return p
}

// prio orders pairs: direct ones first, by the remote candidate's priority.
func (p *pair) prio() int64 {
	v := int64(p.remote.Priority)
	if p.relay {
		v -= 1 << 32
	}
	return v
}

// SetRemoteCredentials sets the peer's ufrag (derived from its connection
// id) and password (from its signaled ICE auth).
func (a *Agent) SetRemoteCredentials(ufrag, pwd string) {
	a.remoteUfrag, a.remotePwd = ufrag, pwd
}

// Controlling reports our role.
func (a *Agent) Controlling() bool { return a.cfg.Controlling }

// SetControlling changes our role (symmetric connect settles it after the
// agent was made).
func (a *Agent) SetControlling(c bool) { a.cfg.Controlling = c }

// AddRemoteCandidate adds a candidate the peer signaled. Duplicates and
// candidates beyond MaxRemoteCandidates are ignored. A peer-reflexive
// candidate at the same address (a check that came before the signal)
// takes the signaled type, so that a pair to the peer's relay candidate
// is known as one whichever came first; its pairs keep their state and
// priority.
func (a *Agent) AddRemoteCandidate(c Candidate) {
	if !c.Addr.IsValid() || c.Addr.Port() == 0 {
		return
	}
	c.Addr = netip.AddrPortFrom(c.Addr.Addr().Unmap(), c.Addr.Port())
	for _, p := range a.pairs {
		if p.remote.Addr == c.Addr && p.remote.Type == PeerReflexive {
			p.remote.Type, p.remote.Related, p.remote.Foundation = c.Type, c.Related, c.Foundation
			if p == a.selected {
				a.selectChanged = true // what the selected path is changed
			}
		}
	}
	for _, r := range a.remotes {
		if r.Addr == c.Addr {
			return
		}
	}
	if len(a.remotes) >= MaxRemoteCandidates {
		return
	}
	a.remotes = append(a.remotes, c)
	if !a.onlyRelay {
		a.addPair(c, false)
	}
	if a.relayBase {
		a.addPair(c, true)
	}
}

// Selected returns the remote address of the selected pair.
func (a *Agent) Selected() (netip.AddrPort, bool) {
	if a.selected == nil {
		return netip.AddrPort{}, false
	}
	return a.selected.remote.Addr, true
}

// SelectedRelay reports whether the selected pair goes through our TURN
// allocation.
func (a *Agent) SelectedRelay() bool { return a.selected != nil && a.selected.relay }

// SelectedPeerRelay reports whether the selected pair's remote end is the
// peer's TURN allocation (its relay candidate).
func (a *Agent) SelectedPeerRelay() bool { return a.selected != nil && a.selected.remote.Type == Relay }

// SelectedChanged reports (once) that the selected pair changed since the
// last call.
func (a *Agent) SelectedChanged() bool {
	c := a.selectChanged
	a.selectChanged = false
	return c
}

// Failed reports whether every pair failed (and there is at least one).
func (a *Agent) Failed() bool {
	if len(a.pairs) == 0 || a.selected != nil {
		return false
	}
	for _, p := range a.pairs {
		if p.state != failed {
			return false
		}
	}
	return true
}

// Stats returns the counters.
func (a *Agent) Stats() Stats { return a.st }

func (a *Agent) newTxID() (id [stun.TransactionIDSize]byte) {
	io.ReadFull(a.cfg.Rand, id[:])
	return id
}

// HandleSTUN takes a STUN datagram from the peer. It returns an error for
// one it drops.
func (a *Agent) HandleSTUN(now time.Time, from netip.AddrPort, b []byte) error {
	return a.HandleSTUNVia(now, from, false, b)
}

// HandleSTUNVia is HandleSTUN for a datagram that arrived from the socket
// (relay false) or through our TURN allocation (relay true).
func (a *Agent) HandleSTUNVia(now time.Time, from netip.AddrPort, relay bool, b []byte) error {
	from = unmapAP(from)
	if len(b) > maxSTUNSize {
		a.st.Dropped++
		return ErrTooLarge
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if err := m.Decode(); err != nil {
		a.st.Dropped++
		return fmt.Errorf("%w: %v", ErrNotSTUN, err)
	}
	if g := a.gatherer; g != nil && m.Type.Class != stun.ClassRequest && g.owns(m.TransactionID) {
		// A STUN server's answer (no FINGERPRINT needed: the captured
		// server sends none).
		_, mapped, _ := ParseBindingResponse(b)
		if !g.handle(now, from, m.TransactionID, mapped) {
			a.st.Dropped++
			return ErrUnsolicited
		}
		for _, c := range g.Candidates() {
			a.AddLocalCandidate(c)
		}
		return nil
	}
	if err := stun.Fingerprint.Check(m); err != nil {
		a.st.Dropped++
		return fmt.Errorf("%w: fingerprint: %v", ErrIntegrity, err)
	}
	switch m.Type {
	case stun.BindingRequest:
		return a.request(now, from, relay, m)
	case stun.BindingSuccess:
		return a.response(now, from, m)
	case stun.BindingError:
		return a.errorResponse(now, m)
	}
	a.st.Dropped++
	return fmt.Errorf("%w: type %v", ErrNotSTUN, m.Type)
}

func (a *Agent) request(now time.Time, from netip.AddrPort, relay bool, m *stun.Message) error {
	var user stun.Username
	if err := user.GetFrom(m); err != nil || !strings.HasPrefix(user.String(), a.cfg.LocalUfrag+":") {
		a.st.Dropped++
		return ErrUsername
	}
	if err := stun.NewShortTermIntegrity(a.cfg.LocalPwd).Check(m); err != nil {
		a.st.Dropped++
		return ErrIntegrity
	}
	// Role conflict (RFC 8445 7.3.1.1): the larger tiebreaker controls.
	theirs, errControlling := m.Get(stun.AttrICEControlling)
	theyControl := errControlling == nil
	if !theyControl {
		theirs, _ = m.Get(stun.AttrICEControlled)
	}
	if len(theirs) == 8 {
		tb := binary.BigEndian.Uint64(theirs)
		if theyControl == a.cfg.Controlling {
			if (a.cfg.Tiebreaker >= tb) == a.cfg.Controlling {
				a.queue(from, relay, a.buildError(m, 487, "Role Conflict"))
				return nil
			}
			a.cfg.Controlling = !a.cfg.Controlling
		}
	}
	a.queue(from, relay, a.buildResponse(m, from, user))
	a.st.ResponsesSent++

	// The peer reached us from from: a pair to check (a peer-reflexive
	// candidate if we did not know that address), with a triggered check.
	p := a.pairFor(from, relay)
	if p == nil {
		prio := Priority(PeerReflexive)
		if v, err := m.Get(stun.AttrPriority); err == nil && len(v) == 4 {
			prio = binary.BigEndian.Uint32(v)
		}
		c := NewCandidate(PeerReflexive, from, netip.AddrPort{})
		c.Priority = prio
		if p = a.addPair(c, relay); p == nil {
			return nil
		}
	}
	if m.Contains(stun.AttrUseCandidate) && !a.cfg.Controlling {
		p.nominated = true
		if p.state == succeeded {
			a.selectPair(p)
		}
	}
	switch {
	case p.state == waiting || p.state == failed:
		p.state, p.tries, p.nextAt = waiting, 0, time.Time{}
		a.trigger(now, p)
	case p.pending && p.state == inProgress && p.tries > 0:
		// Our check on this pair is out but unanswered: the peer's
		// request shows the path works now (our first check may have met
		// a NAT or a TURN permission not open yet), so send it again at
		// once rather than at its retransmission timer (RFC 8445
		// 7.3.1.4).
		p.nextAt = now
	}
	return nil
}

func (a *Agent) response(now time.Time, from netip.AddrPort, m *stun.Message) error {
	var p *pair
	for _, q := range a.pairs {
		if q.pending && q.txID == m.TransactionID {
			p = q
			break
		}
	}
	if p == nil {
		a.st.Dropped++
		return ErrUnsolicited
	}
	if err := stun.NewShortTermIntegrity(a.remotePwd).Check(m); err != nil {
		a.st.Dropped++
		return ErrIntegrity
	}
	p.pending, p.tries = false, 0
	if p.state != succeeded {
		p.state = succeeded
		a.st.Succeeded++
	}
	p.nextAt = now.Add(keepaliveEvery)
	switch {
	case a.cfg.Controlling && p.useCand:
		p.nominated = true
		a.selectPair(p)
	case a.cfg.Controlling && a.selected == nil && (a.nominating == nil || p.prio() > a.nominating.prio()):
		// Nomination of the first pair that works (or of a better one
		// that works while that nomination is out, as the relay's and
		// the socket's checks run side by side): check it again with
		// USE-CANDIDATE.
		a.nominating = p
		p.useCand = true
		a.sendCheck(now, p)
	case a.cfg.Controlling && a.selected != nil && p != a.selected && p.prio() > a.selected.prio():
		// A better pair works after one was selected: nominate it too,
		// and the route moves to it (GNS's upgrade).
		p.useCand = true
		a.sendCheck(now, p)
	case !a.cfg.Controlling && p.nominated:
		a.selectPair(p)
	}
	return nil
}

func (a *Agent) errorResponse(now time.Time, m *stun.Message) error {
	for _, p := range a.pairs {
		if p.pending && p.txID == m.TransactionID {
			p.pending = false
			var code stun.ErrorCodeAttribute
			if code.GetFrom(m) == nil && code.Code == 487 {
				a.cfg.Controlling = !a.cfg.Controlling
				p.state, p.tries = waiting, 0
				a.trigger(now, p)
				return nil
			}
			p.state = failed
			return nil
		}
	}
	a.st.Dropped++
	return ErrUnsolicited
}

// selectPair makes p the selected pair, replacing a worse one (a route
// upgrade) but never a better one.
func (a *Agent) selectPair(p *pair) {
	if a.selected == p {
		return
	}
	if a.selected != nil && a.selected.prio() > p.prio() {
		return
	}
	a.selected = p
	a.selectChanged = true
	a.failedSent = false
	a.event(Event{Kind: EventSelected, Remote: p.remote.Addr, Relay: p.relay})
}

func (a *Agent) pairFor(addr netip.AddrPort, relay bool) *pair {
	for _, p := range a.pairs {
		if p.remote.Addr == addr && p.relay == relay {
			return p
		}
	}
	return nil
}

func (a *Agent) queue(to netip.AddrPort, relay bool, b []byte) {
	if b == nil {
		return
	}
	if len(a.out) >= maxOut {
		a.st.QueueFull++
		return
	}
	a.out = append(a.out, Datagram{to, b, relay})
}

// owns reports whether tx is a check or STUN server query of ours in
// flight.
func (a *Agent) owns(tx [stun.TransactionIDSize]byte) bool {
	for _, p := range a.pairs {
		if p.pending && p.txID == tx {
			return true
		}
	}
	return a.gatherer != nil && a.gatherer.owns(tx)
}

// sendCheck queues a connectivity check on p.
func (a *Agent) sendCheck(now time.Time, p *pair) {
	if a.remotePwd == "" {
		return
	}
	if p.state != succeeded {
		p.state = inProgress
	}
	p.txID = a.newTxID()
	p.tries, p.trig = 0, 0
	a.transmit(now, p)
}

// transmit sends p's check (again: a retransmission keeps its transaction
// id, so an answer to any transmission of it counts) and sets its timer.
func (a *Agent) transmit(now time.Time, p *pair) {
	p.pending = true
	p.tries++
	p.nextAt = now.Add(checkRTO << min(p.tries-1, 4))
	a.queue(p.remote.Addr, p.relay, a.buildRequest(p))
	a.st.ChecksSent++
}

// Poll returns the next datagram to send now, if any.
func (a *Agent) Poll(now time.Time) (Datagram, bool) {
	if g := a.gatherer; g != nil {
		if d, ok := g.Poll(now); ok {
			return d, true
		}
	}
	if len(a.out) == 0 {
		a.think(now)
	}
	if len(a.out) == 0 {
		return Datagram{}, false
	}
	d := a.out[0]
	a.out[0] = Datagram{}
	a.out = a.out[1:]
	return d, true
}

// think starts the next checks if pacing allows, retransmits checks whose
// timers ran out and sends keepalives on the selected pair.
//
// Pacing (Ta) is per base: the pairs from the Host's socket and the pairs
// through its TURN allocation are two lanes, each starting at most one
// ordinary check per pacing interval, its highest-priority waiting pair
// (a triggered one first). So the relay's first check goes as soon as
// the allocation and a remote candidate are known, rather than behind
// every direct pair (which, where direct paths are blocked, only time
// out). The relay lane's checks all go to the TURN server, over the one
// NAT binding the allocation already holds, so running it beside the
// socket's makes no new bindings on our NAT; the two lanes together
// start at most two checks per pacing interval, whatever the number of
// pairs.
func (a *Agent) think(now time.Time) {
	if a.remotePwd == "" {
		return
	}
	for _, p := range a.pairs {
		if p.pending && !now.Before(p.nextAt) {
			if p == a.selected && p.tries >= consentTries {
				a.consentLost(now, p)
				continue
			}
			if p.tries >= checkTries {
				p.pending, p.tries = false, 0
				if p.state == inProgress {
					p.state = failed
				}
				if a.nominating == p {
					a.nominating = nil
				}
				continue
			}
			a.transmit(now, p)
		}
	}
	if s := a.selected; s != nil && !s.pending && !now.Before(s.nextAt) {
		s.useCand = a.cfg.Controlling
		a.sendCheck(now, s)
	}
	if a.cfg.Persistent && a.selected == nil && len(a.pairs) > 0 {
		if a.retryAt.IsZero() {
			a.retryAt = now.Add(RetryFailed)
		} else if !now.Before(a.retryAt) {
			for _, p := range a.pairs {
				if p.state == failed {
					p.state, p.tries = waiting, 0
				}
			}
			a.retryAt = now.Add(RetryFailed)
		}
	}
	if !a.failedSent && a.Failed() {
		a.failedSent = true
		a.event(Event{Kind: EventFailed})
	}
	for l := range a.nextCheck {
		if now.Before(a.nextCheck[l]) {
			continue
		}
		if p := a.nextWaiting(l == laneRelay); p != nil {
			p.useCand = a.cfg.Controlling && a.nominating == p
			a.sendCheck(now, p)
			a.nextCheck[l] = now.Add(pacing)
		}
	}
}

// The pacing lanes (Agent.nextCheck): checks from the socket, checks
// through the TURN allocation.
const (
	laneSocket = 0
	laneRelay  = 1
)

func lane(relay bool) int {
	if relay {
		return laneRelay
	}
	return laneSocket
}

// trigger queues a triggered check on the waiting pair p (RFC 8445
// 7.3.1.4): it is its lane's next check, ahead of the lane's pacing;
// several go in the order they were triggered.
func (a *Agent) trigger(now time.Time, p *pair) {
	a.trigSeq++
	p.trig = a.trigSeq
	a.nextCheck[lane(p.relay)] = now
}

// consentLost drops the selected pair p, whose keepalives went
// unanswered (the path broke: a NAT mapping or a link gone): no pair is
// selected (an EventSelected with no Remote says so) and the pairs that
// worked are checked again, so that the controlling side nominates the
// first that still works (the relay, when the direct path broke) and the
// controlled side follows.
func (a *Agent) consentLost(now time.Time, p *pair) {
	p.pending, p.tries, p.state, p.nominated = false, 0, failed, false
	a.selected = nil
	a.selectChanged = true
	a.nominating = nil
	a.event(Event{Kind: EventSelected})
	for _, q := range a.pairs {
		if q.state == succeeded {
			q.state, q.tries, q.pending, q.nextAt = waiting, 0, false, time.Time{}
		}
	}
	a.nextCheck = [2]time.Time{now, now}
	a.st.ConsentLost++
}

// nextWaiting is the next waiting pair of a lane (through the relay or
// from the socket): the first triggered, else the one of highest priority.
func (a *Agent) nextWaiting(relay bool) *pair {
	var best *pair
	for _, p := range a.pairs {
		if p.state != waiting || p.relay != relay {
			continue
		}
		switch {
		case best == nil:
			best = p
		case best.trig != 0 || p.trig != 0:
			if p.trig != 0 && (best.trig == 0 || p.trig < best.trig) {
				best = p
			}
		case p.prio() > best.prio():
			best = p
		}
	}
	return best
}

// NextWake returns when Poll has something to do next (zero: nothing until
// new input).
func (a *Agent) NextWake() time.Time {
	if len(a.out) > 0 {
		return time.Unix(0, 1) // at once
	}
	var w time.Time
	at := func(t time.Time) {
		if !t.IsZero() && (w.IsZero() || t.Before(w)) {
			w = t
		}
	}
	if a.gatherer != nil {
		at(a.gatherer.NextWake())
	}
	if a.remotePwd == "" {
		return w
	}
	for _, p := range a.pairs {
		if p.pending || p == a.selected {
			at(p.nextAt)
		}
	}
	for l, next := range a.nextCheck {
		if a.nextWaiting(l == laneRelay) != nil {
			if next.IsZero() {
				return time.Unix(0, 1) // at once
			}
			at(next)
		}
	}
	if a.cfg.Persistent && a.selected == nil && len(a.pairs) > 0 {
		at(a.retryAt)
	}
	return w
}

// buildRequest is a connectivity check as GNS writes them: USERNAME
// "<their ufrag>:<our ufrag>", PRIORITY (peer-reflexive), ICE-CONTROLLING
// or ICE-CONTROLLED with our tiebreaker, USE-CANDIDATE when nominating,
// MESSAGE-INTEGRITY with their password, FINGERPRINT.
func (a *Agent) buildRequest(p *pair) []byte {
	var prio, tb [8]byte
	binary.BigEndian.PutUint32(prio[:4], Priority(PeerReflexive))
	binary.BigEndian.PutUint64(tb[:], a.cfg.Tiebreaker)
	role := stun.AttrICEControlled
	if a.cfg.Controlling {
		role = stun.AttrICEControlling
	}
	m := new(stun.Message)
	m.SetType(stun.BindingRequest)
	m.TransactionID = p.txID
	m.WriteHeader()
	stun.NewUsername(a.remoteUfrag + ":" + a.cfg.LocalUfrag).AddTo(m)
	m.Add(stun.AttrPriority, prio[:4])
	m.Add(role, tb[:])
	if p.useCand {
		m.Add(stun.AttrUseCandidate, nil)
	}
	stun.NewShortTermIntegrity(a.remotePwd).AddTo(m)
	stun.Fingerprint.AddTo(m)
	return m.Raw
}

// buildResponse answers a check: XOR-MAPPED-ADDRESS, the request's
// USERNAME, MESSAGE-INTEGRITY with our password, FINGERPRINT.
func (a *Agent) buildResponse(req *stun.Message, from netip.AddrPort, user stun.Username) []byte {
	m := new(stun.Message)
	m.SetType(stun.BindingSuccess)
	m.TransactionID = req.TransactionID
	m.WriteHeader()
	(&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())}).AddTo(m)
	user.AddTo(m)
	stun.NewShortTermIntegrity(a.cfg.LocalPwd).AddTo(m)
	stun.Fingerprint.AddTo(m)
	return m.Raw
}

func (a *Agent) buildError(req *stun.Message, code int, reason string) []byte {
	m := new(stun.Message)
	m.SetType(stun.BindingError)
	m.TransactionID = req.TransactionID
	m.WriteHeader()
	(&stun.ErrorCodeAttribute{Code: stun.ErrorCode(code), Reason: []byte(reason)}).AddTo(m)
	stun.NewShortTermIntegrity(a.cfg.LocalPwd).AddTo(m)
	stun.Fingerprint.AddTo(m)
	return m.Raw
}

// IsSTUN reports whether b looks like a STUN message (the first two bits
// zero and the magic cookie), which is how the Host tells STUN apart from
// GNS's packets on its one socket.
func IsSTUN(b []byte) bool { return stun.IsMessage(b) }

// Route tells the Host which agent a STUN datagram is for: a request names
// our ufrag first in its USERNAME; a response from a netmsg or GNS peer
// echoes the request's USERNAME, which names our ufrag second. ok is false
// when b has no usable USERNAME.
func Route(b []byte) (localUfrag string, ok bool) {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil {
		return "", false
	}
	var user stun.Username
	if user.GetFrom(m) != nil {
		return "", false
	}
	first, second, found := strings.Cut(user.String(), ":")
	if !found {
		return "", false
	}
	if m.Type == stun.BindingRequest {
		return first, true
	}
	return second, true
}

// BindingRequest returns a STUN binding request to a STUN server (for a
// server-reflexive candidate) with transaction id tx: no credentials, a
// FINGERPRINT.
func BindingRequest(tx [12]byte) []byte {
	m := new(stun.Message)
	m.SetType(stun.BindingRequest)
	m.TransactionID = tx
	m.WriteHeader()
	stun.Fingerprint.AddTo(m)
	return m.Raw
}

// ParseBindingResponse returns the transaction id and the mapped address
// of a STUN binding success response (XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS
// from an old server). ok is false for anything else.
func ParseBindingResponse(b []byte) (tx [12]byte, mapped netip.AddrPort, ok bool) {
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil || m.Type != stun.BindingSuccess {
		return tx, mapped, false
	}
	var xa stun.XORMappedAddress
	if err := xa.GetFrom(m); err == nil {
		if a, ok := netip.AddrFromSlice(xa.IP); ok {
			return m.TransactionID, netip.AddrPortFrom(a.Unmap(), uint16(xa.Port)), true
		}
	}
	var ma stun.MappedAddress
	if err := ma.GetFrom(m); err == nil {
		if a, ok := netip.AddrFromSlice(ma.IP); ok {
			return m.TransactionID, netip.AddrPortFrom(a.Unmap(), uint16(ma.Port)), true
		}
	}
	return tx, mapped, false
}

// BindingResponse answers a binding request from a STUN client at from:
// what a STUN server sends (tests use it as one).
func BindingResponse(req []byte, from netip.AddrPort) ([]byte, bool) {
	m := &stun.Message{Raw: append([]byte(nil), req...)}
	if m.Decode() != nil || m.Type != stun.BindingRequest {
		return nil, false
	}
	r := new(stun.Message)
	r.SetType(stun.BindingSuccess)
	r.TransactionID = m.TransactionID
	r.WriteHeader()
	(&stun.XORMappedAddress{IP: from.Addr().AsSlice(), Port: int(from.Port())}).AddTo(r)
	stun.Fingerprint.AddTo(r)
	return r.Raw, true
}
