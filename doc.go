// Package netmsg is a pure-Go implementation of Steam-style Networking
// Messages (ISteamNetworkingMessages): UDP-like, identity-addressed messages
// between peers, reliable or unreliable, on numbered channels, over sessions
// that are created on demand, encrypted, and carried directly, through NAT
// traversal (ICE) or through a relay. Its wire protocol is that of Valve's
// GameNetworkingSockets (GNS), so a Go peer can talk to a C++ GNS peer.
//
// This package holds the public vocabulary shared by the whole API: peer
// identities (Identity, ParseIdentity) and IP addresses in GNS's string
// forms, send flags, result codes (Result, which is an error), connection
// states and end reasons with GNS's numbers, the Message, ConnectionInfo and
// RealTimeStatus records, and the Config of a host. The names follow the
// seed API as GodotSteam documents it; where a Go value stands for a
// GodotSteam dictionary key, its doc comment names the key.
package netmsg
