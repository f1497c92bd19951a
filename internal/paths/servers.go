package paths

import (
	"net/netip"
	"slices"
	"time"

	"github.com/netmsg-go/netmsg/internal/ice"
)

// SetSTUNServers replaces the STUN servers (Config.STUNServers): when the
// list differs from the current one, the new servers are asked from now
// on if a Route was made already (the owner should then Tick at
// NextWake), else when the first one is. Safe for concurrent use.
func (p *Paths) SetSTUNServers(now time.Time, servers []netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || slices.Equal(servers, p.cfg.STUNServers) {
		return
	}
	p.cfg.STUNServers = slices.Clone(servers)
	started := p.stun.started
	p.stun = newSTUNClient(p.cfg.STUNServers, p.rand)
	if started {
		p.stun.start(now)
	}
}

// SetTURNServers gives the TURN servers (Config.TURNServers) or fresh
// credentials for them, for owners that learn them after New (from a
// signaling service handing out short-lived credentials). Before TURN
// has started, servers replaces the list, and TURN starts at once if a
// Route that allows relaying was made already (its relayed candidate
// then arrives as an Event). Once started, the list of servers is fixed:
// servers only brings new credentials for the servers already listed,
// which a server whose allocation failed (credentials refused or
// expired) retries with at once when no allocation is in use, and which
// later allocations use. An allocation in use keeps the credentials it
// was made with (the server checks them when it allocates). It returns
// ErrTURNNeedsSend for servers without Config.Send. Safe for concurrent
// use.
func (p *Paths) SetTURNServers(servers []TURNServer) error {
	if len(servers) > 0 && p.cfg.Send == nil {
		return ErrTURNNeedsSend
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	if p.turns == nil {
		// Not started: HandleDatagram reads turnSet only once turnOn is
		// set, which startTURNLocked does after this.
		p.cfg.TURNServers = slices.Clone(servers)
		p.turnSet = map[netip.AddrPort]int{}
		for i, s := range p.cfg.TURNServers {
			a := unmap(s.Addr)
			if _, dup := p.turnSet[a]; !dup && a.IsValid() {
				p.turnSet[a] = i
			}
		}
		if len(p.routes) > 0 && p.cfg.Allow&ice.EnableRelay != 0 {
			p.startTURNLocked()
		}
		return nil
	}
	for _, s := range servers {
		i, ok := p.turnSet[unmap(s.Addr)]
		if !ok {
			continue
		}
		s.Addr = unmap(s.Addr)
		p.cfg.TURNServers[i] = s
		ta := p.turnAt(i)
		if ta == nil || !ta.failed || p.alloc != nil {
			continue
		}
		// A failed allocation tries again with the new credentials.
		nta := p.newTurnAllocLocked(s, i)
		nta.retry = ta.retry
		p.turns[slices.Index(p.turns, ta)] = nta
		p.wg.Add(1)
		go p.runTURN(nta)
	}
	return nil
}
