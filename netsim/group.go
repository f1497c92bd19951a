package netsim

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/netmsg-go/netmsg/transport"
)

// LimitedBroadcast is IPv4's limited broadcast address (255.255.255.255):
// a datagram written to it at some port reaches every open IPv4 endpoint
// with that port on the sender's network (see Endpoint.JoinGroup).
var LimitedBroadcast = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// JoinGroup makes e a member of the multicast group (an IPv4 address in
// 224.0.0.0/4 or an IPv6 one in ff00::/8): a datagram any endpoint writes
// to group:port, where port is e's port, then reaches e, with the
// sender's address as its source.
//
// Group and broadcast datagrams (to LimitedBroadcast) are copied once per
// receiver, and each copy travels on the direction from the sender to that
// receiver, under its conditions and counted in its Stats, as if the
// sender had written it to the receiver's address. The sender gets a copy
// too when it is a member itself (as a real socket does with
// IP_MULTICAST_LOOP, the default). They stay on the sender's network: with
// NAT boxes, only receivers behind the sender's NAT (or outside every NAT,
// for a sender outside every NAT) get them. Receivers are taken in address
// order, so the random choices stay reproducible.
//
// It returns an error if group is not a multicast address, and
// transport.ErrClosed after Close. Joining twice is allowed.
func (e *Endpoint) JoinGroup(group netip.Addr) error {
	if !group.IsMulticast() {
		return fmt.Errorf("%w: %v is not a multicast group", ErrInvalidConfig, group)
	}
	n := e.n
	n.mu.Lock()
	defer n.mu.Unlock()
	if e.closed {
		return transport.ErrClosed
	}
	if e.groups == nil {
		e.groups = make(map[netip.Addr]struct{})
	}
	e.groups[group] = struct{}{}
	return nil
}

// LeaveGroup ends e's membership of group, if any.
func (e *Endpoint) LeaveGroup(group netip.Addr) {
	n := e.n
	n.mu.Lock()
	delete(e.groups, group)
	n.mu.Unlock()
}

// isFanout reports whether a datagram to dst goes to a set of receivers.
func isFanout(dst netip.AddrPort) bool {
	a := dst.Addr()
	return a.IsMulticast() || a == LimitedBroadcast
}

// fanoutLocked returns the addresses of the endpoints a datagram from src
// to the group or broadcast address dst reaches, in address order.
func (n *Network) fanoutLocked(src, dst netip.AddrPort) []netip.AddrPort {
	var out []netip.AddrPort
	home := n.natFor(src.Addr())
	for a, e := range n.endpoints {
		if a.Port() != dst.Port() || (len(n.nats) > 0 && n.natFor(a.Addr()) != home) {
			continue
		}
		if dst.Addr() == LimitedBroadcast {
			if !a.Addr().Is4() {
				continue
			}
		} else if _, ok := e.groups[dst.Addr()]; !ok {
			continue
		}
		out = append(out, a)
	}
	slices.SortFunc(out, netip.AddrPort.Compare)
	return out
}
