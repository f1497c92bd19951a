// Package signaling carries the rendezvous blobs of P2P connections
// between peers that know each other only by identity, before (and while)
// ICE connects them: GNS's "connection signaling", in Go.
//
// A netmsg Host uses a Conn: Send a blob to an identity, Recv the blobs
// sent to ours. Delivery is best effort (a signal may be dropped,
// duplicated or reordered); the P2P layer retries and acknowledges.
// Three kinds of Conn are built in:
//
//   - Hub: in memory, for tests and the demo, with seeded loss,
//     duplication, reordering and delay (runs on testing/synctest's clock).
//   - DialTrivial: GNS's trivial signaling protocol over TCP
//     (examples/trivial_signaling_client.cpp and trivial_signaling_server.py
//     in GNS), so netmsg and GNS peers can share a server.
//   - Dial: netmsg's authenticated protocol over TCP, below.
//
// Server serves both protocols on one port (`netmsg signal`).
//
// # The trivial protocol (GNS)
//
// The client sends its identity and a newline. After that each signal is
// one line, "<identity> <lowercase hex of the blob>\n": from a client the
// identity is the destination; the server forwards the line to the
// destination with the sender's identity instead. The server takes a
// client's identity on trust; a later registration of the same identity
// replaces the earlier one; a signal to an identity nobody holds, or a
// malformed line, is dropped.
//
// # The authenticated protocol (netmsg)
//
//	C: NETMSG-SIGNAL/1 <identity> <hex of the certificate>\n
//	S: CHALLENGE <hex of 32 random bytes>\n
//	C: PROOF <hex of an Ed25519 signature>\n
//	S: OK\n            (or ERR <reason>\n, then close)
//
// then signal lines exactly as in the trivial protocol. The certificate is
// GNS's serialized CertificateSigned (what a Host's Config.Certificate
// holds and `netmsg cert issue` writes); the server checks it as a GNS
// peer checks a handshake certificate (a trusted CA's signature, or
// unsigned when ServerConfig.AllowUnsigned; expiry; app ID) and that it
// names the identity claimed. The signature is over "netmsg-signal/1",
// a zero byte, the identity, a zero byte and the challenge, made with the
// key the certificate names: so a client registers only identities whose
// keys it holds, and a proof cannot be replayed (fresh challenge) or used
// with another server (other challenge) or as anything else (domain tag).
// An identity held by an authenticated client cannot be taken by a
// trivial one; with ServerConfig.NoTrivial the server speaks only this
// protocol.
//
// # Limits
//
// Blobs up to MaxBlobSize, identities up to MaxIdentityLen (longer lines
// close the client), a bounded queue of signals per client on both ends
// (excess dropped and counted), a per-client rate limit on the server
// (token bucket), a client limit, and a registration timeout.
package signaling
