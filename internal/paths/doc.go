// Package paths owns how a Host's datagrams reach its peers over the one
// socket it shares among all its connections: it sorts what the socket
// receives (STUN, TURN ChannelData, GNS control and data) by its first
// bytes, runs the STUN client that finds the socket's server-reflexive
// address, keeps the Host's TURN allocation (pion's TURN client on a virtual
// socket fed by the Host's reader), frames ChannelData, and gives each P2P
// connection a Route: its ICE agent (package ice), the demultiplexing of its
// connectivity checks by ufrag, the path selected (direct, or through which
// relay) and sending on it.
//
// # Division of work with the owner
//
// The owner (the Host) reads the socket and hands every datagram to
// Paths.HandleDatagram, which classifies it once and returns an Input: taken
// by the package (a STUN server's answer, TURN traffic for pion's client),
// dropped (counted in Stats), a connectivity check for a Route, or a GNS
// datagram (straight from the socket, or unwrapped from ChannelData) for the
// owner's connections. The owner calls Paths.Tick when Paths.NextWake comes,
// drains Paths.Events (new local candidates to signal to every peer), and
// for each Route feeds it checks, polls it, drains its RouteEvents (a path
// selected, changed or lost) and sends on it. Everything the package sends
// while the owner calls it goes through the owner's Writer (its batch).
//
// # Goroutines
//
// Paths starts goroutines only for TURN, and only once a Route asks for
// relayed candidates (Config.TURNServers not empty, Config.Allow with
// ice.EnableRelay). For each TURN server:
//
//   - "turn": makes pion's client, allocates (pion runs the transactions),
//     then reads what peers send to the relayed address and hands each
//     datagram to Config.Deliver;
//   - "turn-in": feeds pion's client what the server sent us (STUN
//     responses, data indications, ChannelData on a channel not yet known),
//     taken from a bounded queue that HandleDatagram fills (full: dropped
//     and counted in Stats.PionQueueDrops);
//
// and, for the allocation in use, "relay-out": writes what Routes send
// through the relay on a channel not bound yet (pion's relayed connection,
// which may block while it makes permissions), from a bounded queue (full:
// dropped and counted in Stats.RelayQueueDrops). pion's client starts its own
// timers (refreshes of the allocation, permissions and channel bindings).
// CheckRelay starts two short-lived ones, "check" (a CreatePermission
// through pion) and its timer, which drop an allocation the server no
// longer has and start new "turn" goroutines (each may first wait its
// retry delay). Close ends them all and waits for them.
//
// # Locks
//
// Paths.mu guards the Route table, the STUN client, the events and the TURN
// allocations' channel tables. It is a leaf: taken after any lock of the
// owner, and never held while the package calls out (pion, Config.Send,
// Config.Deliver, Config.Notify, a Writer). A Route is not safe for
// concurrent use: its owner guards it (with the connection's lock) and the
// Route takes Paths.mu briefly after it. The package's goroutines call
// Config.Send, Config.Deliver and Config.Notify holding none of its locks,
// so the owner may take its own there; so the owner must not hold those
// locks while it calls Close, which waits for the goroutines.
package paths
