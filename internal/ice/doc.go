// Package ice is GameNetworkingSockets-compatible ICE (GNS's "native ICE",
// steamnetworkingsockets_ice_client.cpp and steamnetworkingsockets_p2p_ice.cpp)
// as a pure state machine on pion/stun's STUN messages.
//
// The facts it follows, all checked against ../shared/vectors/p2p_signaling.json:
//
//   - Credentials: a connection's ufrag is never signaled; both sides derive
//     it from the connection id (Ufrag). The password is 5 characters from 30
//     random bits (NewPassword), signaled in the rendezvous ICE auth.
//   - Checks carry USERNAME "<receiver ufrag>:<sender ufrag>", PRIORITY
//     (peer-reflexive), ICE-CONTROLLING or ICE-CONTROLLED with a tiebreaker,
//     USE-CANDIDATE when the controlling side nominates, MESSAGE-INTEGRITY
//     keyed with the receiver's password, and FINGERPRINT; responses carry
//     XOR-MAPPED-ADDRESS, the request's USERNAME, MESSAGE-INTEGRITY with the
//     same key, and FINGERPRINT. Our encoder writes GNS's captured checks and
//     responses byte for byte.
//   - Roles: the side that accepted the connection (sent connect OK)
//     controls, the reverse of RFC 8445's initiator rule.
//   - Candidates are RFC 5245 attribute strings with the "candidate:"
//     prefix and component 0, with RFC 8445 priorities computed for
//     component 1 (ParseCandidate, Candidate.String).
//
// Why not pion/ice's Agent: it refuses local passwords under 128 bits, and
// GNS's are 30 bits, so a GNS-compatible agent needs its own checklist. A
// netmsg Host also serves every connection from one socket, so all local
// candidates share one base and the checklist is one pair per remote
// candidate; Route tells the Host which connection a STUN datagram is for.
package ice
