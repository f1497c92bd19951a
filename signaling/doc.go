// Package signaling carries the rendezvous blobs of P2P connections
// between peers that know each other only by identity, before (and while)
// ICE connects them: GNS's "connection signaling"
// (include/steam/steamnetworkingcustomsignaling.h: the application sends a
// connection's signals to the peer by any means, and hands the signals it
// receives back to the library), in Go.
//
// A netmsg Host uses a Conn: Send a blob to an identity (GNS's identity
// string form, "str:alice", "ip:192.0.2.1:27015", "steamid:..."), Recv the
// blobs sent to ours. Delivery is best effort, as GNS assumes: a signal
// may be dropped, duplicated or reordered, and the P2P layer retries and
// acknowledges. Send never waits for the network; every queue is bounded
// and reports or counts what it drops. Three kinds of Conn are built in:
//
//   - Hub: in memory, for tests and the demo, with seeded loss,
//     duplication, reordering and delay. Its delays are runtime timers, so
//     a Hub made inside a testing/synctest bubble runs on the bubble's
//     fake clock, and a seed gives the same faults every run.
//   - DialTrivial: GNS's trivial signaling protocol over TCP
//     (examples/trivial_signaling_client.cpp and
//     examples/trivial_signaling_server.py in GNS), so netmsg and GNS
//     peers can share a server.
//   - Dial: netmsg's authenticated protocol over TCP, below.
//
// Both clients also go over WebSocket: the server's address is a URL
// whose scheme picks the transport ("tcp://host:port", "ws://host/path",
// "wss://host/path"; a plain "host:port" is TCP), and DialURL takes
// either protocol's configuration with a TLS configuration. Over
// WebSocket each line is one text message without its newline;
// Server.ListenWS and Server.WebSocketHandler serve both protocols there
// with the limits and counters of the TCP port.
//
// Both clients reconnect by themselves, with jittered exponential
// backoff (100 ms to 5 s), when the server drops them; Send returns
// ErrNotUp meanwhile and ErrQueueFull when the server does not read.
//
// Server serves both protocols on one port (`netmsg signal`); the first
// line tells them apart.
//
// # The trivial protocol (GNS)
//
// Text lines ending in "\n". The client sends its identity. After that
// each signal is one line, "<identity> <lowercase hex of the blob>": from
// a client the identity is the destination; the server forwards the line
// to the destination with the sender's identity instead, and sends
// nothing else. GNS's server takes a client's identity on trust (the
// first line, whitespace stripped); a later registration of the same
// identity replaces and closes the earlier connection; a signal to an
// identity nobody holds, or a line without a space, is ignored. Our
// server does the same, and also ignores (and counts) lines whose
// identity is not a valid identity string or whose payload is not hex of
// at most MaxBlobSize bytes, where GNS's server would forward anything.
// What it forwards is byte for byte what GNS's server forwards for GNS's
// client (checked against the captured session in testdata/vectors).
//
// # The authenticated protocol (netmsg)
//
// The same line framing; C is the client, S the server:
//
//	C: NETMSG-SIGNAL/1 <identity> <hex of the certificate>
//	S: CHALLENGE <hex of 32 random bytes>
//	C: PROOF <hex of a 64-byte Ed25519 signature>
//	S: OK                 (or "ERR <reason>", then the server closes)
//
// then "WANT ice" from the client (it takes TURN credentials: see
// TURNConfig; an older server drops the line as malformed), then signal
// lines exactly as in the trivial protocol, both ways, plus
// empty lines as keepalives from the client (every 30 s of silence) and,
// from the server, "ERR replaced" when a newer authenticated connection
// took the identity over: that client stops (ErrReplaced) rather than
// take it back. A server with TURN configured also sends "ICE ..."
// lines with TURN credentials to clients that asked (the Conn of Dial is
// an ICEProvider, and also offers them in standard types,
// ICEServerStrings and ICEServersChanged, which a netmsg Host given the
// Conn as its Config.Signaling uses when its Config names no STUN or
// TURN server). "NETMSG-SIGNAL/1", "ERR", "ICE" and "WANT" contain no
// ':', so they never collide with an identity.
//
// The certificate is GNS's serialized CertificateSigned (what a Host's
// Config.Certificate holds and `netmsg cert issue` writes). The server
// checks it as a GNS peer checks a handshake certificate: signed by a
// trusted CA (ServerConfig.TrustedCAs), or unsigned when
// ServerConfig.AllowUnsigned; not expired; listing the app ID if it lists
// any; naming the identity claimed. The signature is over
// "netmsg-signal/1", a zero byte, the identity, a zero byte and the
// challenge, made with the key the certificate names: so a client
// registers only identities whose keys it holds, a proof cannot be
// replayed (each connection gets a fresh challenge) or used with another
// server (another challenge) or as anything else (the domain tag). A
// signal forwarded from an authenticated client carries the identity it
// proved.
//
// # Who holds an identity
//
//   - A trivial registration replaces a trivial holder (as GNS's server
//     does), never an authenticated one.
//   - An authenticated registration replaces a trivial holder, and an
//     authenticated one when it may: a CA-signed certificate always may;
//     an unsigned one only with the same key as the holder. The latest
//     such connection wins; the replaced one is told.
//   - When a holder with a CA-signed certificate disconnects, its
//     identity stays reserved (ServerConfig.ReserveFor, default 24 h):
//     meanwhile only a CA-signed certificate registers it, no trivial
//     client or unsigned certificate. An identity held with an unsigned
//     certificate is bound to its key only while connected (so a peer
//     restarted with a fresh key, as `netmsg ping --auth` makes, gets its
//     identity back).
//   - Trivial and authenticated clients signal each other by default, so
//     GNS peers reach netmsg peers; ServerConfig.IsolateTrivial keeps
//     them apart, so that every sender an authenticated client hears from
//     was verified. ServerConfig.NoTrivial refuses the trivial protocol.
//
// A trivial client can still claim any identity no authenticated client
// holds or reserved: that is the trivial protocol. The P2P handshake's
// certificates are the end-to-end check of who a peer is; the server's
// checks keep an attacker from intercepting or disrupting the signals of
// authenticated peers.
//
// # Clusters
//
// With ServerConfig.Cluster, any number of servers (nodes) share one
// identity space through NATS, and NATS carries everything between them;
// the subjects start with ClusterConfig.Prefix ("netmsg.signal"):
//
//   - "<prefix>.dir": a node announces each registration it accepts
//     (claim: the identity, the node, the time, and for an authenticated
//     client its key and whether a CA signed it), each departure
//     (release, with the reservation of a CA-signed identity), and a
//     refusal of another node's claim (deny). Every node keeps the
//     directory of who holds what where, and applies the rules of one
//     server to it: a registration is checked against holders and
//     reservations on every node; of two claims, the later wins, except
//     that an authenticated holder refuses a claim that could not take
//     it on one server (the claimer then drops its client). So an
//     identity bound to a key stays bound cluster-wide, and a client
//     that reconnects to another node takes its identity over (its old
//     connection, if still there, is told "ERR replaced").
//   - "<prefix>.node.<node>": signals for a client on that node, in the
//     order the sender's node read them; the recipient's node applies
//     its queue limits and IsolateTrivial. Signals to an identity held
//     nowhere are counted and charged to the sender's source (absent
//     budget) on the sender's node, without crossing NATS.
//   - "<prefix>.hb": heartbeats (ClusterConfig.Heartbeat, 1 s). A node
//     unheard of for DeadAfter (3 s) is dead to the others, which
//     release its identities; a node heard of for the first time (new,
//     or back after NATS came back) is asked for its holders on
//     "<prefix>.list.<node>", and what it no longer holds is dropped. A
//     node that reconnects to NATS asks every node again, so releases it
//     missed meanwhile are put right at once.
//
// A claim's time is the claiming node's clock: nodes should keep their
// clocks in step (NTP) for takeovers within a second of each other to go
// to the later one.
//
// # Limits
//
// Blobs up to MaxBlobSize, identities up to MaxIdentityLen; a line longer
// than the longest valid signal closes the client, a malformed one is
// dropped and counted. The server's defaults are meant for a public
// address (ServerConfig documents each):
//
//   - a connection registers within 5 s; at most 16 connections still
//     registering per source (an IPv4 address or an IPv6 /64) and 1,024
//     in all, a newer one closing the oldest, so silent connections
//     (slowloris) cannot keep registering clients out;
//   - at most 128 connections per source and 10,000 in all;
//   - a registered client with no traffic either way for 5 min is
//     dropped (GNS's trivial clients are silent when idle and reconnect
//     when dropped; netmsg's clients send keepalives); dead peers are
//     found sooner by TCP keepalive, as GNS's server sets it;
//   - per client: a token bucket on lines (200/s, 400 at once), a budget
//     of signals to identities nobody holds (20/s, 100 at once; a client
//     over it is disconnected), a bounded queue of signals waiting to be
//     written (the rest dropped), and WriteTimeout for a client that does
//     not read.
//
// A connection the server will not serve is told why before it is
// closed: one line "ERR <reason>" ("server full", "too many connections
// from your address", "too many registrations in progress from your
// address", "too many signals to absent identities", "trivial protocol
// refused"; "shutdown" to authenticated clients when the server stops).
// GNS's trivial client ignores the line (no identity has no ':'); netmsg's
// clients report it (ErrRefused with the reason, from Dial or from Send
// while they retry). Every refusal and drop is counted in ServerStats and
// logged, each kind rate-limited to a few lines a second with a count of
// those suppressed. On the clients: bounded send and receive queues.
package signaling
