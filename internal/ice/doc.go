// Package ice is GameNetworkingSockets-compatible ICE (GNS's "native ICE",
// steamnetworkingsockets_ice_client.cpp and steamnetworkingsockets_p2p_ice.cpp)
// as a pure state machine on pion/stun's STUN messages: no goroutines,
// sockets or clocks; every call takes the time, Poll returns the datagrams
// to send and NextWake when to call again.
//
// The facts it follows, checked against testdata/vectors/p2p_signaling.json
// where captured:
//
//   - Credentials: a connection's ufrag is never signaled; both sides derive
//     it from the connection id (Ufrag). The password is 5 characters from 30
//     random bits (NewPassword), signaled in the rendezvous ICE auth.
//   - Candidates are RFC 5245 attribute strings with the "candidate:"
//     prefix and component 0, with RFC 8445 priorities computed for
//     component 1 (ParseCandidate, Candidate.String). Local preferences
//     count down from 65535 per interface (AddHostCandidates); foundations
//     follow GNS's formula over the base and STUN server (Foundation).
//     Our parser is our own: pion/ice writes candidates without the prefix
//     GNS requires, and would pull its whole agent in.
//   - Which local candidates are shared: GNS's P2P_Transport_ICE_Enable
//     bitmask (Enable, Config.Allow): relay; private host addresses (RFC
//     1918, link-local, ULA); public host addresses and reflexive
//     candidates. GNS refuses loopback candidates; netmsg counts them as
//     private so its tests can run on loopback.
//   - Checks carry USERNAME "<receiver ufrag>:<sender ufrag>", PRIORITY
//     (peer-reflexive), ICE-CONTROLLING or ICE-CONTROLLED with a tiebreaker,
//     USE-CANDIDATE when the controlling side nominates, MESSAGE-INTEGRITY
//     keyed with the receiver's password, and FINGERPRINT; responses carry
//     XOR-MAPPED-ADDRESS, the request's USERNAME, MESSAGE-INTEGRITY with the
//     same key, and FINGERPRINT. Our encoder writes GNS's captured checks and
//     responses byte for byte.
//   - Roles: the side that accepted the connection (sent connect OK)
//     controls, the reverse of RFC 8445's initiator rule. Role conflicts are
//     settled as RFC 8445 says (487, the larger tiebreaker controls).
//   - Nomination: the controlling side nominates the first pair that works
//     and later any better one that works (GNS's route upgrade); the
//     controlled side selects a nominated pair once its own check on it
//     succeeded.
//   - Binding requests to STUN servers carry a MAPPED-ADDRESS with the
//     local address and a FINGERPRINT, no credentials (BindingRequestFrom,
//     byte for byte as captured), retransmitted on GNS's schedule (400 ms,
//     growing 1.5 times, 5 sends, about 5.3 s) and repeated every 15 s
//     (Gatherer).
//
// Where netmsg differs: its checks are retransmitted faster (100 ms,
// doubling, 7 sends: a pair fails after about 6.3 s, still inside GNS's
// 10 s initial connection timeout) and paced per base, every 10 ms for
// the pairs from the socket and every 10 ms for those through the TURN
// allocation, side by side (GNS thinks every 50 ms and starts one check
// per think; RFC 8445 sets 5 ms as the floor of an agent's average, which
// the two lanes together keep), so a relayed path is not found only after
// every direct pair was tried; and the selected pair is checked every
// 2.5 s (consent). Every check is still a binding request as GNS writes
// them, and the controlling side still nominates with a USE-CANDIDATE
// check on a pair that worked (regular nomination), so a GNS peer sees
// nothing new, only checks that come sooner.
//
// Why not pion/ice's Agent: it refuses local passwords under 128 bits, and
// GNS's are 30 bits, so a GNS-compatible agent needs its own checklist. A
// netmsg Host also serves every connection from one socket, so all local
// candidates share one base and the checklist is one pair per remote
// candidate (and one more through the Host's TURN allocation, if any).
// Demux (or Route) tells the Host which connection a STUN datagram is for.
package ice
