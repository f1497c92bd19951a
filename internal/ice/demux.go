package ice

import (
	"errors"
	"net/netip"
	"strings"
	"time"

	"github.com/pion/stun/v4"
)

// ErrUfragInUse is returned by Demux.Add for a second agent with the same
// local ufrag (two connection ids equal in their low 30 bits).
var ErrUfragInUse = errors.New("ice: local ufrag in use")

// ErrNoAgent is returned by Demux.HandleSTUN for a datagram no agent
// claims.
var ErrNoAgent = errors.New("ice: STUN datagram for no agent")

// Demux finds the agent a STUN datagram arriving on the Host's one socket
// belongs to: a request by the local ufrag that opens its USERNAME, a
// response by the transaction id of a check (or STUN server query) in
// flight, and failing that by the ufrag that closes the USERNAME it
// echoes. It is not safe for concurrent use.
type Demux struct {
	agents  map[string]*Agent
	dropped uint64
}

// NewDemux returns an empty Demux.
func NewDemux() *Demux { return &Demux{agents: make(map[string]*Agent)} }

// Add files a under its local ufrag.
func (d *Demux) Add(a *Agent) error {
	u := a.LocalUfrag()
	if _, ok := d.agents[u]; ok {
		return ErrUfragInUse
	}
	d.agents[u] = a
	return nil
}

// Remove forgets a.
func (d *Demux) Remove(a *Agent) {
	if d.agents[a.LocalUfrag()] == a {
		delete(d.agents, a.LocalUfrag())
	}
}

// Len returns how many agents are filed.
func (d *Demux) Len() int { return len(d.agents) }

// Dropped counts datagrams no agent claimed.
func (d *Demux) Dropped() uint64 { return d.dropped }

// Lookup returns the agent b is for, or nil.
func (d *Demux) Lookup(b []byte) *Agent {
	if len(b) > maxSTUNSize || !stun.IsMessage(b) {
		return nil
	}
	m := &stun.Message{Raw: append([]byte(nil), b...)}
	if m.Decode() != nil {
		return nil
	}
	if m.Type.Class != stun.ClassRequest {
		for _, a := range d.agents {
			if a.owns(m.TransactionID) {
				return a
			}
		}
	}
	var user stun.Username
	if user.GetFrom(m) != nil {
		return nil
	}
	first, second, found := strings.Cut(user.String(), ":")
	if !found {
		return nil
	}
	if m.Type.Class == stun.ClassRequest {
		return d.agents[first]
	}
	return d.agents[second]
}

// HandleSTUN gives b, which arrived from from (through our TURN allocation
// when relay is set), to its agent. It returns ErrNoAgent (counted) when
// no agent claims it, or the agent's error.
func (d *Demux) HandleSTUN(now time.Time, from netip.AddrPort, relay bool, b []byte) error {
	a := d.Lookup(b)
	if a == nil {
		d.dropped++
		return ErrNoAgent
	}
	return a.HandleSTUNVia(now, from, relay, b)
}
