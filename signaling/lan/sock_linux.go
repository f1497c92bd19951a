package lan

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// openSockets opens the unicast socket (an ephemeral port, multicast TTL
// 1, loopback of our multicast on, so peers on this machine hear us) and
// the discovery socket (Group's port on every address, SO_REUSEADDR so
// that several processes share it: each gets a copy of every group or
// broadcast datagram).
func openSockets(cfg Config) (uni, disc packetConn, ann announcer, err error) {
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("lan: %w", err)
	}
	if err := setsockopt(u, func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_TTL, 1); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_LOOP, 1); err != nil {
			return err
		}
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_BROADCAST, 1)
	}); err != nil {
		u.Close()
		return nil, nil, nil, fmt.Errorf("lan: unicast socket options: %w", err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", netip.AddrPortFrom(netip.IPv4Unspecified(), cfg.Group.Port()).String())
	if err != nil {
		u.Close()
		return nil, nil, nil, fmt.Errorf("lan: discovery socket: %w", err)
	}
	d := pc.(*net.UDPConn)
	a := &ifAnnouncer{uni: u, disc: d, group: cfg.Group, broadcast: cfg.Broadcast, names: cfg.Interfaces, joined: map[int]bool{}}
	if _, err := a.refresh(); err != nil {
		u.Close()
		d.Close()
		return nil, nil, nil, err
	}
	return udpConn{u}, udpConn{d}, a, nil
}

func setsockopt(c *net.UDPConn, f func(fd int) error) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var ferr error
	if err := rc.Control(func(fd uintptr) { ferr = f(int(fd)) }); err != nil {
		return err
	}
	return ferr
}

// ifAnnouncer announces on each interface: to the group on those that
// multicast, to their IPv4 broadcast addresses on those that do not (or
// on all, with broadcast). It joins the group on each multicast
// interface as it appears.
type ifAnnouncer struct {
	uni, disc *net.UDPConn
	group     netip.AddrPort
	broadcast bool
	names     []string

	mu     sync.Mutex // guards joined and the unicast socket's IP_MULTICAST_IF
	joined map[int]bool
}

// target is where one interface's announcements go.
type target struct {
	ifindex int
	mcast   bool
	bcasts  []netip.Addr
}

// refresh lists the interfaces, joins the group on new multicast ones and
// returns where to announce. mu is held.
func (a *ifAnnouncer) refresh() ([]target, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, fmt.Errorf("lan: interfaces: %w", err)
	}
	var out []target
	for _, ifi := range ifs {
		if a.names != nil {
			if !slices.Contains(a.names, ifi.Name) {
				continue
			}
		} else if ifi.Flags&net.FlagLoopback != 0 {
			continue
		}
		if ifi.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			continue
		}
		t := target{ifindex: ifi.Index, mcast: ifi.Flags&net.FlagMulticast != 0}
		var bcasts []netip.Addr
		has4 := false
		for _, ad := range addrs {
			p, err := netip.ParsePrefix(ad.String())
			if err != nil || !p.Addr().Is4() {
				continue
			}
			has4 = true
			if ifi.Flags&net.FlagBroadcast != 0 && p.Bits() < 31 {
				bcasts = append(bcasts, broadcastOf(p))
			}
		}
		if !has4 {
			continue
		}
		if t.mcast && !a.joined[ifi.Index] {
			mreq := &unix.IPMreqn{Multiaddr: a.group.Addr().As4(), Ifindex: int32(ifi.Index)}
			err := setsockopt(a.disc, func(fd int) error {
				return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_ADD_MEMBERSHIP, mreq)
			})
			if err == nil || errors.Is(err, unix.EADDRINUSE) {
				a.joined[ifi.Index] = true
			} else {
				t.mcast = false // broadcast there instead
			}
		}
		if a.broadcast || !t.mcast {
			t.bcasts = bcasts
		}
		out = append(out, t)
	}
	return out, nil
}

// broadcastOf returns the broadcast address of an IPv4 prefix.
func broadcastOf(p netip.Prefix) netip.Addr {
	b := p.Addr().As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(b)
}

func (a *ifAnnouncer) announce(b []byte) (int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	targets, err := a.refresh()
	if err != nil {
		return 0, err
	}
	n := 0
	var firstErr error
	note := func(err error) {
		if err == nil {
			n++
		} else if firstErr == nil {
			firstErr = err
		}
	}
	for _, t := range targets {
		if t.mcast {
			err := setsockopt(a.uni, func(fd int) error {
				return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(t.ifindex)})
			})
			if err == nil {
				_, err = a.uni.WriteToUDPAddrPort(b, a.group)
			}
			note(err)
		}
		for _, bc := range t.bcasts {
			_, err := a.uni.WriteToUDPAddrPort(b, netip.AddrPortFrom(bc, a.group.Port()))
			note(err)
		}
	}
	return n, firstErr
}
