// Package p2p is the signaling side of one P2P connection as GNS runs it
// (steamnetworkingsockets_p2p.cpp, steamnetworkingsockets_p2p_ice.cpp): the
// rendezvous messages (internal/pb's P2PRendezvous, GNS's
// CMsgSteamNetworkingP2PRendezvous) that two peers exchange as opaque blobs
// through a signaling service, and the small reliable stream inside them
// that carries the ICE password and candidates.
//
// A Session is the rendezvous state of one connection. Its owner (the host)
// queues ICE items and the handshake messages that internal/conn makes,
// calls Build (or NextBlob) when NextWake comes and sends the result
// through signaling, and gives every received rendezvous to Receive (or
// ReceiveBlob), which says what arrived: the peer's connect request, connect
// OK or connection closed, and the new reliable items, in order, once each.
// Everything is pure: no goroutines, sockets or clocks; every method takes
// the time.
//
// The rules, from GNS and checked against testdata/vectors/p2p_signaling.json:
//
//   - Every rendezvous carries from_identity, from_connection_id and
//     to_identity; to_connection_id once the peer's id is known, except in
//     a connect request (GNS leaves it out there, even when it knows it).
//   - A connecting client puts connect_request (certificate, signed crypt
//     info, virtual ports) in every rendezvous and sends one at least every
//     500 ms until the connect OK arrives. The accepting side sends nothing
//     before the application accepts; then it sends connect_ok once, and
//     again each time a (repeated) connect request arrives.
//   - Reliable messages are numbered from 1. A rendezvous carries
//     first_reliable_msg and the messages from the first one whose 1 s
//     retransmission timer ran out (from the first unacknowledged one in a
//     connect request or connect OK) to the last; every rendezvous but a
//     connection closed carries ack_reliable_msg, the last number received
//     in order. A receiver takes messages only in order: a rendezvous that
//     starts past the next expected number is dropped whole, and numbers
//     already taken are skipped, so each message is taken exactly once.
//   - Receiving reliable messages asks for a rendezvous within 10 ms (the
//     ack); besides connect requests, GNS keeps rendezvous at least 100 ms
//     apart (Session.MinInterval, off by default, says why).
//   - connection_closed (reason, debug) carries no ack and no reliable
//     messages; it is answered by a "no connection" closed (reason 9999,
//     which itself is never answered), and a closed connection answers
//     every later rendezvous with its closed again.
//   - When both peers asked at once (symmetric connect), CompareSymmetric
//     says which one accepts the other's request, from its own connection
//     id.
//
// Application messages inside rendezvous (GNS sends them only when an
// option asks for it) are taken and returned, never sent.
package p2p
