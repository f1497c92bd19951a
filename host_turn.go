package netmsg

import (
	"net/netip"

	"github.com/netmsg-go/netmsg/internal/paths"
)

// TURNServer is a relay a Host may allocate an address on, so P2P peers
// that cannot reach each other directly talk through it (GNS's
// P2P_TURN_ServerList, with its user and password lists).
type TURNServer struct {
	Addr               netip.AddrPort
	Username, Password string
	// Realm of the credentials; empty takes the server's.
	Realm string
}

// pathsTURN converts the TURN servers for package paths.
func pathsTURN(ss []TURNServer) []paths.TURNServer {
	out := make([]paths.TURNServer, len(ss))
	for i, s := range ss {
		out[i] = paths.TURNServer(s)
	}
	return out
}
