//go:build !linux

package lan

import (
	"fmt"
	"net"
)

// openSockets opens the unicast socket and a discovery socket joined to
// the group on the system's default multicast interface (the standard
// library's; Config.Interfaces is not used here).
func openSockets(cfg Config) (uni, disc packetConn, ann announcer, err error) {
	u, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("lan: %w", err)
	}
	d, err := net.ListenMulticastUDP("udp4", nil, net.UDPAddrFromAddrPort(cfg.Group))
	if err != nil {
		u.Close()
		return nil, nil, nil, fmt.Errorf("lan: discovery socket: %w", err)
	}
	uc := udpConn{u}
	return uc, udpConn{d}, &groupAnnouncer{uni: uc, group: cfg.Group, broadcast: cfg.Broadcast}, nil
}
