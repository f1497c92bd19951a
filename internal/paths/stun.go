package paths

import (
	crand "crypto/rand"
	"io"
	"net/netip"
	"time"

	"github.com/netmsg-go/netmsg/internal/ice"
)

// Timing of the binding requests to STUN servers, GNS's schedule
// (steamnetworkingsockets_stun.cpp): a request is sent up to stunSends
// times, the first retransmission after stunRTO and each later one after
// stunBackoff times the previous wait; a server that answered is asked again
// every stunRefresh, which keeps the NAT's mapping open and notices a new
// one.
const (
	stunRTO     = 400 * time.Millisecond
	stunBackoff = 1.5
	stunSends   = 5
	stunRefresh = 15 * time.Second
)

// stunAskAgainMin is how soon after an answer AskAgain may ask a server
// again (netmsg's choice: many routes that lose their path at once make
// one transaction per server, not one each).
const stunAskAgainMin = time.Second

// stunRetryLater is how long a server that never answered rests before it
// is asked again (netmsg's choice: GNS gives it up for the session; a
// server that was briefly unreachable is then found again).
const stunRetryLater = stunRefresh

// stunServer is the client's state for one server.
//
//	idle --start--> asking --answer--> answered --stunRefresh--> asking
//	                asking --stunSends unanswered--> resting --stunRetryLater--> asking
type stunServer struct {
	addr   netip.AddrPort
	tx     [12]byte
	asking bool          // a transaction is in flight (tx is valid)
	sends  int           // requests sent in this transaction
	wait   time.Duration // before the next retransmission
	nextAt time.Time     // when to send next (zero: idle)
	mapped netip.AddrPort
	ansAt  time.Time // when it last answered
}

// stunClient asks STUN servers for the address the socket has as seen from
// outside (a server-reflexive candidate), with GNS's retransmissions and
// refreshes. It is a pure state machine: poll returns what to send, it is
// given the time, and it starts no goroutine. It is not safe for concurrent
// use (Paths guards it with mu).
type stunClient struct {
	servers []*stunServer
	rand    io.Reader
	started bool
	sent    uint64 // requests sent
	answers uint64 // answers taken
}

// newSTUNClient returns a client for servers (at most ice.MaxSTUNServers;
// invalid and duplicate ones skipped); rand draws transaction ids, nil
// meaning crypto/rand.
func newSTUNClient(servers []netip.AddrPort, rand io.Reader) *stunClient {
	if rand == nil {
		rand = crand.Reader
	}
	c := &stunClient{rand: rand}
	for _, a := range servers {
		if !a.IsValid() || len(c.servers) == ice.MaxSTUNServers {
			continue
		}
		a = unmap(a)
		dup := false
		for _, s := range c.servers {
			dup = dup || s.addr == a
		}
		if !dup {
			c.servers = append(c.servers, &stunServer{addr: a})
		}
	}
	return c
}

// start begins asking every server (once).
func (c *stunClient) start(now time.Time) {
	if c.started {
		return
	}
	c.started = true
	for _, s := range c.servers {
		s.nextAt = now
	}
}

// askAgain moves the next refresh of every server that answered before
// to now (at most once per stunAskAgainMin after its answer): the NAT in
// front of the socket may have given it a new public address. It reports
// whether a request is now due.
func (c *stunClient) askAgain(now time.Time) bool {
	due := false
	for _, s := range c.servers {
		if !c.started || s.asking || !s.mapped.IsValid() || now.Before(s.ansAt.Add(stunAskAgainMin)) {
			continue
		}
		if s.nextAt.After(now) {
			s.nextAt = now
		}
		due = true
	}
	return due
}

// poll returns the next binding request due at now, if any.
func (c *stunClient) poll(now time.Time) (to netip.AddrPort, b []byte, ok bool) {
	for _, s := range c.servers {
		if s.nextAt.IsZero() || now.Before(s.nextAt) {
			continue
		}
		if s.asking && s.sends >= stunSends {
			// Given up: rest, then a new transaction.
			s.asking, s.sends = false, 0
			s.nextAt = now.Add(stunRetryLater)
			continue
		}
		if !s.asking {
			if _, err := io.ReadFull(c.rand, s.tx[:]); err != nil {
				s.nextAt = now.Add(stunRetryLater)
				continue
			}
			s.asking, s.sends, s.wait = true, 0, stunRTO
		}
		s.sends++
		s.nextAt = now.Add(s.wait)
		s.wait = time.Duration(float64(s.wait) * stunBackoff)
		c.sent++
		return s.addr, ice.BindingRequest(s.tx), true
	}
	return netip.AddrPort{}, nil, false
}

// nextWake returns when poll has something to do next (zero: nothing).
func (c *stunClient) nextWake() time.Time {
	var w time.Time
	for _, s := range c.servers {
		if !s.nextAt.IsZero() && (w.IsZero() || s.nextAt.Before(w)) {
			w = s.nextAt
		}
	}
	return w
}

// handleResponse takes a datagram from from. taken reports whether it was
// the answer to our request in flight to that server; changed, whether it
// reports a mapped address this server had not reported before.
func (c *stunClient) handleResponse(now time.Time, from netip.AddrPort, b []byte) (mapped netip.AddrPort, changed, taken bool) {
	if len(c.servers) == 0 {
		return netip.AddrPort{}, false, false
	}
	tx, m, ok := ice.ParseBindingResponse(b)
	if !ok {
		return netip.AddrPort{}, false, false
	}
	for _, s := range c.servers {
		if !s.asking || s.tx != tx || s.addr != from {
			continue
		}
		c.answers++
		s.asking, s.sends = false, 0
		s.nextAt = now.Add(stunRefresh)
		s.ansAt = now
		m = unmap(m)
		if m == s.mapped {
			return m, false, true
		}
		s.mapped = m
		return m, true, true
	}
	return netip.AddrPort{}, false, false
}

// mappedAddrs returns the distinct addresses the servers reported.
func (c *stunClient) mappedAddrs() []netip.AddrPort {
	var out []netip.AddrPort
	for _, s := range c.servers {
		if !s.mapped.IsValid() {
			continue
		}
		dup := false
		for _, a := range out {
			dup = dup || a == s.mapped
		}
		if !dup {
			out = append(out, s.mapped)
		}
	}
	return out
}

// unmap turns an IPv4-mapped IPv6 address into IPv4.
func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
