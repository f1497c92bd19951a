package paths

import (
	"net/netip"
	"time"

	"github.com/netmsg-go/netmsg/internal/ice"
)

// Route is the paths of one P2P connection: its ICE agent, filed in its
// Paths under its ufrag so connectivity checks find it, and the path the
// agent selected. A Route is not safe for concurrent use: the owner guards
// it (with the connection's lock); it takes its Paths' lock briefly, after
// the owner's.
type Route struct {
	p     *Paths
	id    uint32
	ufrag string
	pwd   string
	agent *ice.Agent

	sel     Path // the path in use (Path.Valid false: none)
	events  []RouteEvent
	dropped uint64 // events dropped because the owner did not take them
	closed  bool
}

// Path is the route a connection's datagrams take.
type Path struct {
	Valid bool
	// Remote is the peer's address on the path (behind the relay when
	// Relayed).
	Remote netip.AddrPort
	// Relayed: through our TURN allocation. PeerRelay: to the peer's
	// TURN allocation (its relay candidate), from our socket.
	Relayed, PeerRelay bool
}

// RouteEventKind says what a RouteEvent reports.
type RouteEventKind uint8

const (
	// RouteSelected: a path was selected where there was none.
	RouteSelected RouteEventKind = iota + 1
	// RouteChanged: another path replaced the one in use (direct to
	// relayed or back, or another address).
	RouteChanged
	// RouteLost: the path in use was dropped (an ICE restart); none is
	// selected until a RouteSelected.
	RouteLost
)

func (k RouteEventKind) String() string {
	switch k {
	case RouteSelected:
		return "selected"
	case RouteChanged:
		return "changed"
	case RouteLost:
		return "lost"
	}
	return "unknown"
}

// RouteEvent reports a change of a Route's path.
type RouteEvent struct {
	Kind RouteEventKind
	Path Path // the new path (Valid false for RouteLost)
	Old  Path // the path before
}

// NewRoute makes the Route of connection id (its ICE ufrag is
// ice.Ufrag(id)), with a fresh ICE password, in the role given
// (controlling: the side that accepted the connection, in GNS). The first
// Route starts the STUN client and the TURN allocations Config allows; the
// owner should then Tick at NextWake. It returns ErrClosed after Close, and
// ice.ErrUfragInUse when another Route has the same ufrag.
func (p *Paths) NewRoute(now time.Time, id uint32, controlling bool) (*Route, error) {
	pwd, err := ice.NewPassword(p.rand)
	if err != nil {
		return nil, err
	}
	allow := p.cfg.Allow
	r := &Route{p: p, id: id, ufrag: ice.Ufrag(id), pwd: pwd}
	r.agent, err = ice.NewAgent(ice.Config{LocalUfrag: r.ufrag, LocalPwd: pwd, Controlling: controlling, Rand: p.rand,
		OnlyRelay: allow&(ice.EnablePrivate|ice.EnablePublic) == 0, Allow: allow, Persistent: true})
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if p.routes[r.ufrag] != nil {
		return nil, ice.ErrUfragInUse
	}
	p.routes[r.ufrag] = r
	if allow&ice.EnablePublic != 0 {
		p.stun.start(now)
	}
	if allow&ice.EnableRelay != 0 {
		p.startTURNLocked()
		if p.alloc != nil {
			r.agent.SetRelayBase()
		} else if p.turnKick != nil {
			// An allocation lost and being retried: now, for this Route.
			close(p.turnKick)
			p.turnKick = make(chan struct{})
		}
	}
	return r, nil
}

// Close forgets the Route (checks for it are dropped from now on).
func (r *Route) Close() {
	if r.closed {
		return
	}
	r.closed = true
	r.p.mu.Lock()
	if r.p.routes[r.ufrag] == r {
		delete(r.p.routes, r.ufrag)
	}
	r.p.mu.Unlock()
}

// Ufrag is the Route's local ICE ufrag; Password its current password (to
// signal in the ICE auth).
func (r *Route) Ufrag() string    { return r.ufrag }
func (r *Route) Password() string { return r.pwd }

// LocalCandidates returns the local candidates to signal to the peer now:
// host, server-reflexive and relayed ones, as Config.Allow lets it share.
// A relayed one makes the agent check pairs through the relay too.
func (r *Route) LocalCandidates() []ice.Candidate {
	r.p.mu.Lock()
	cs := r.p.localCandidatesLocked()
	r.p.mu.Unlock()
	for _, c := range cs {
		if c.Type == ice.Relay {
			r.agent.SetRelayBase()
		}
	}
	return cs
}

// AddLocalCandidate offers c, from an EventLocalCandidate, to the Route. It
// reports whether c should be signaled to the peer (Config.Allow lets it
// be shared).
func (r *Route) AddLocalCandidate(c ice.Candidate) bool {
	if !r.p.cfg.Allow.Allows(c) {
		return false
	}
	if c.Type == ice.Relay {
		r.agent.SetRelayBase()
	}
	return true
}

// SetRemoteCredentials takes the peer's ICE ufrag (derived from its
// connection id) and password (from its signaled ICE auth).
func (r *Route) SetRemoteCredentials(ufrag, pwd string) { r.agent.SetRemoteCredentials(ufrag, pwd) }

// AddRemoteCandidate takes a candidate string the peer signaled.
func (r *Route) AddRemoteCandidate(s string) error {
	c, err := ice.ParseCandidate(s)
	if err != nil {
		return err
	}
	r.agent.AddRemoteCandidate(c)
	return nil
}

// SetControlling changes the role.
func (r *Route) SetControlling(c bool) { r.agent.SetControlling(c) }

// Restart starts ICE over with a new password and role (symmetric connect
// turned the connection around): the path in use is lost (a RouteLost
// event follows at the next Poll) and checks start over once the peer's
// new credentials come. It returns the new password to signal.
func (r *Route) Restart(controlling bool) (string, error) {
	pwd, err := ice.NewPassword(r.p.rand)
	if err != nil {
		return "", err
	}
	if err := r.agent.Restart(pwd, controlling); err != nil {
		return "", err
	}
	r.pwd = pwd
	return pwd, nil
}

// HandleSTUN takes a connectivity check (or its answer) that
// HandleDatagram or Config.Deliver returned for this Route. It returns an
// error for one it drops (count it).
func (r *Route) HandleSTUN(now time.Time, in Input) error {
	return r.agent.HandleSTUNVia(now, in.From, in.Relayed, in.B)
}

// Poll sends the agent's checks due at now through w (those through the
// relay through the allocation), and notes a change of the selected path
// as a RouteEvent.
func (r *Route) Poll(now time.Time, w Writer) {
	for {
		d, ok := r.agent.Poll(now)
		if !ok {
			break
		}
		if d.Relay {
			r.p.relaySend(w, d.To, d.B)
		} else {
			w.WriteTo(d.To, nil, d.B)
		}
	}
	if !r.agent.SelectedChanged() {
		return
	}
	var np Path
	if a, ok := r.agent.Selected(); ok {
		np = Path{Valid: true, Remote: a, Relayed: r.agent.SelectedRelay(), PeerRelay: r.agent.SelectedPeerRelay()}
	}
	old := r.sel
	if np == old {
		return
	}
	r.sel = np
	ev := RouteEvent{Path: np, Old: old}
	switch {
	case np.Valid && !old.Valid:
		ev.Kind = RouteSelected
	case np.Valid:
		ev.Kind = RouteChanged
	default:
		ev.Kind = RouteLost
	}
	if len(r.events) == maxEvents {
		r.events = r.events[1:]
		r.dropped++
	}
	r.events = append(r.events, ev)
}

// Events returns (and forgets) the path changes since the last call.
func (r *Route) Events() []RouteEvent {
	ev := r.events
	r.events = nil
	return ev
}

// Selected returns the path in use.
func (r *Route) Selected() Path { return r.sel }

// Send sends b to the peer on the selected path: from the socket through
// w, or through our TURN allocation. It reports false when there is no
// path, or the relay's queue is full (b is dropped).
func (r *Route) Send(w Writer, b []byte) bool {
	switch {
	case !r.sel.Valid:
		return false
	case r.sel.Relayed:
		return r.p.relaySend(w, r.sel.Remote, b)
	default:
		w.WriteTo(r.sel.Remote, nil, b)
		return true
	}
}

// NextWake returns when Poll has something to do next (zero: nothing
// until new input).
func (r *Route) NextWake() time.Time { return r.agent.NextWake() }

// Stats returns the agent's counters.
func (r *Route) Stats() ice.Stats { return r.agent.Stats() }
