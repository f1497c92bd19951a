// Package netmsg is Steam-style Networking Messages in pure Go: send a
// message to a peer named by an identity, on a numbered channel, reliable
// or unreliable, and receive messages per channel. Sessions are made on
// demand, encrypted, and carried directly over UDP, through NATs (ICE) or
// through a TURN relay. The wire protocol is that of Valve's
// GameNetworkingSockets (GNS), so a Go peer talks to a C++ GNS peer.
//
// From a Host to a message received:
//
//	h, err := netmsg.NewHost(netmsg.Config{ListenAddr: netip.MustParseAddrPort("0.0.0.0:27015")})
//	err = h.Messages().SendMessageToUser(peer, []byte("hello"), netmsg.SendReliable, 0)
//	m, err := h.Messages().Receive(ctx, 0) // m.Payload, m.Identity; then m.Release()
//
// A peer is an Identity: "ip:1.2.3.4:27015" reaches a Host at that address
// directly; any other kind ("str:alice", "steamid:...") is found through
// the signaling service in Config.Signaling (package signaling: an
// in-memory hub, GNS's trivial protocol, or netmsg's authenticated one) and
// reached with ICE, using Config.STUNServers and Config.TURNServers. A Host
// is told of a new peer's session by Config.OnSessionRequest and takes it
// with AcceptSessionWithUser.
//
// Beneath the Messages API is GNS's connection API on the same Host:
// Listen, Connect, AcceptConnection, SendMessageToConnection, Receive and
// CloseConnection. Certificates: a Host presents an unsigned certificate
// unless Config.Certificate holds one issued by a certificate authority
// (NewCAKey, IssueCertificate, LoadCertificate; the netmsg cert command),
// and with Config.TrustedCAs it requires its peers to present one.
//
// The examples show the Messages API over UDP (ExampleNewHost) and over
// P2P (Example_p2p), the connection API (ExampleHost_Connect), and a
// signaling server with a relay (Example_servers). The names follow the
// seed API as GodotSteam documents it; where a Go value stands for a
// GodotSteam dictionary key, its doc comment names the key.
package netmsg
