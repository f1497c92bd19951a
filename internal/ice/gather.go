package ice

import (
	"io"
	"net/netip"
	"time"

	"github.com/pion/stun/v4"
)

// Timing of the binding requests to STUN servers, GNS's schedule: a
// request is sent up to stunSends times, the first retransmission after
// stunRTO and each later one after 1.5 times the previous wait, and the
// server is given up after the last wait (about 5.3 s in all). A server
// that answered is asked again every stunRefresh, which keeps the NAT
// binding open and notices a new mapping.
const (
	stunSends   = 5
	stunRTO     = 400 * time.Millisecond
	stunRefresh = 15 * time.Second
	// MaxSTUNServers bounds the servers one Gatherer (or Agent) queries.
	MaxSTUNServers = 8
)

type stunQuery struct {
	server  netip.AddrPort
	tx      [stun.TransactionIDSize]byte
	pending bool
	sends   int
	wait    time.Duration
	nextAt  time.Time // next (re)transmission, give-up or refresh
	failed  bool
	mapped  netip.AddrPort
}

// Gatherer finds server-reflexive candidates for the socket at Base by
// binding requests to STUN servers, as GNS sends them (a MAPPED-ADDRESS
// with the local address, a FINGERPRINT, no credentials), with GNS's
// retransmissions, and refreshes them. Like Agent it is pure: Poll
// returns what to send, HandleResponse takes the answers.
type Gatherer struct {
	base    netip.AddrPort
	rand    io.Reader
	queries []*stunQuery
	out     []Datagram
	found   []Candidate // new candidates not yet taken by Candidates
}

// NewGatherer returns a gatherer for the socket at base (its address goes
// into each request's MAPPED-ADDRESS as GNS writes it; the zero AddrPort
// leaves the attribute out) querying servers (at most MaxSTUNServers;
// invalid and duplicate ones are skipped). rand draws transaction ids;
// nil means crypto/rand.
func NewGatherer(base netip.AddrPort, servers []netip.AddrPort, rand io.Reader) *Gatherer {
	if rand == nil {
		rand = cryptoRand
	}
	g := &Gatherer{base: base, rand: rand}
	for _, s := range servers {
		s = unmapAP(s)
		if !s.IsValid() || s.Port() == 0 || len(g.queries) >= MaxSTUNServers || g.query(s) != nil {
			continue
		}
		g.queries = append(g.queries, &stunQuery{server: s})
	}
	return g
}

func (g *Gatherer) query(server netip.AddrPort) *stunQuery {
	for _, q := range g.queries {
		if q.server == server {
			return q
		}
	}
	return nil
}

func (g *Gatherer) send(now time.Time, q *stunQuery) {
	if q.sends == 0 {
		io.ReadFull(g.rand, q.tx[:])
		q.wait = stunRTO
	} else {
		q.wait = q.wait * 3 / 2
	}
	q.pending = true
	q.sends++
	q.nextAt = now.Add(q.wait)
	g.out = append(g.out, Datagram{To: q.server, B: BindingRequestFrom(q.tx, g.base)})
}

// Poll returns the next binding request to send now, if any.
func (g *Gatherer) Poll(now time.Time) (Datagram, bool) {
	if len(g.out) == 0 {
		g.think(now)
	}
	if len(g.out) == 0 {
		return Datagram{}, false
	}
	d := g.out[0]
	g.out[0] = Datagram{}
	g.out = g.out[1:]
	return d, true
}

func (g *Gatherer) think(now time.Time) {
	for _, q := range g.queries {
		switch {
		case q.failed:
		case !q.pending && q.nextAt.IsZero():
			g.send(now, q) // the first request
		case q.pending && !now.Before(q.nextAt):
			if q.sends >= stunSends {
				q.pending, q.sends = false, 0
				if !q.mapped.IsValid() {
					q.failed = true
					continue
				}
				// A refresh went unanswered: keep the candidate (the
				// binding may still be open), ask again later.
				q.nextAt = now.Add(stunRefresh)
				continue
			}
			g.send(now, q)
		case !q.pending && !now.Before(q.nextAt):
			q.sends = 0
			g.send(now, q)
		}
	}
}

// NextWake returns when Poll has something to do next (zero: nothing
// until new input).
func (g *Gatherer) NextWake() time.Time {
	if len(g.out) > 0 {
		return time.Unix(0, 1)
	}
	var w time.Time
	for _, q := range g.queries {
		if q.failed {
			continue
		}
		if !q.pending && q.nextAt.IsZero() {
			return time.Unix(0, 1)
		}
		if w.IsZero() || q.nextAt.Before(w) {
			w = q.nextAt
		}
	}
	return w
}

// owns reports whether tx is a request of ours in flight.
func (g *Gatherer) owns(tx [stun.TransactionIDSize]byte) bool {
	for _, q := range g.queries {
		if q.pending && q.tx == tx {
			return true
		}
	}
	return false
}

// HandleResponse takes a datagram from from. It reports whether it was the
// answer to one of our requests (from that server, with its transaction
// id); a new mapped address becomes a candidate for Candidates.
func (g *Gatherer) HandleResponse(now time.Time, from netip.AddrPort, b []byte) bool {
	tx, mapped, ok := ParseBindingResponse(b)
	if !ok {
		return false
	}
	return g.handle(now, unmapAP(from), tx, mapped)
}

func (g *Gatherer) handle(now time.Time, from netip.AddrPort, tx [stun.TransactionIDSize]byte, mapped netip.AddrPort) bool {
	for _, q := range g.queries {
		if !q.pending || q.tx != tx || q.server != from {
			continue
		}
		q.pending, q.sends = false, 0
		q.nextAt = now.Add(stunRefresh)
		if usableMapped(mapped) && mapped != q.mapped {
			q.mapped = mapped
			if !g.known(mapped) {
				c := NewCandidate(ServerReflexive, mapped, g.base)
				c.Foundation = Foundation(ServerReflexive, g.base, q.server)
				g.found = append(g.found, c)
			}
		}
		return true
	}
	return false
}

// known reports whether a candidate at addr was already reported (two
// servers behind the same NAT see the same mapping).
func (g *Gatherer) known(addr netip.AddrPort) bool {
	n := 0
	for _, q := range g.queries {
		if q.mapped == addr {
			n++
		}
	}
	return n > 1
}

// Candidates returns the server-reflexive candidates found since the last
// call.
func (g *Gatherer) Candidates() []Candidate {
	c := g.found
	g.found = nil
	return c
}

// Done reports whether every server either answered or was given up.
func (g *Gatherer) Done() bool {
	for _, q := range g.queries {
		if !q.failed && !q.mapped.IsValid() {
			return false
		}
	}
	return true
}

// Mapped returns the addresses the servers reported, one per server that
// answered.
func (g *Gatherer) Mapped() []netip.AddrPort {
	var out []netip.AddrPort
	for _, q := range g.queries {
		if q.mapped.IsValid() {
			out = append(out, q.mapped)
		}
	}
	return out
}

// usableMapped reports whether a STUN server's answer names an address a
// peer could send to.
func usableMapped(a netip.AddrPort) bool {
	ip := a.Addr()
	return ip.IsValid() && a.Port() != 0 && !ip.IsUnspecified() && !ip.IsMulticast()
}

func unmapAP(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// BindingRequestFrom is a binding request to a STUN server exactly as GNS
// writes one from the socket at local: a MAPPED-ADDRESS holding local
// (GNS's habit, harmless to servers), then FINGERPRINT; no credentials.
// The zero local leaves MAPPED-ADDRESS out (BindingRequest).
func BindingRequestFrom(tx [stun.TransactionIDSize]byte, local netip.AddrPort) []byte {
	m := new(stun.Message)
	m.SetType(stun.BindingRequest)
	m.TransactionID = tx
	m.WriteHeader()
	if local.IsValid() {
		(&stun.MappedAddress{IP: local.Addr().Unmap().AsSlice(), Port: int(local.Port())}).AddTo(m)
	}
	stun.Fingerprint.AddTo(m)
	return m.Raw
}
