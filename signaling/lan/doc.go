// Package lan is signaling without a server, for peers on one LAN: each
// Conn announces its identity by UDP multicast, learns the others'
// identities and addresses from their announcements, and sends the
// rendezvous blobs of P2P connections straight to the peer's announced
// address. A netmsg Host configured with a Conn (Config.Signaling) and a
// str: identity makes Messages sessions with the other Hosts of its LAN
// by the usual GNS handshake over ICE host candidates, with no signaling
// server, STUN or TURN anywhere.
//
// It lives beside the in-memory Hub and the TCP clients of package
// signaling because it is one more way to carry signals (a signaling.Conn),
// not a service of its own.
//
// # Discovery
//
// A Conn has two UDP sockets: a unicast one on an ephemeral port, which
// sends everything and receives signals and replies, and a discovery one
// on the group's port (shared by every process of the machine), which
// receives what is sent to the group. It announces itself at start, 500
// ms and 1 s later, then every Config.Interval (5 s, ±10% jitter), to the
// group on every interface that multicasts, and to the IPv4 broadcast
// address of every interface that does not (of all, with
// Config.Broadcast), with a multicast TTL of 1. An announcement carries the
// identity, the unicast port, a TTL (how long to keep the entry: 3
// intervals and a second), the sender's instance number (random per
// Conn), a sequence number and the sender's clock. A peer's address is
// the announcement's source IP and its announced port.
//
// A Conn that hears a new peer unicasts its own announcement to it, so a
// newcomer learns the whole LAN within one round trip of its first
// announcement. A signal to an identity not heard yet waits (at most
// Config.PendingLen signals, each Config.PendingTimeout) while the Conn
// multicasts a query for it, at most once a second per identity; the
// holder answers with a unicast announcement, and the waiting signals
// follow. Close multicasts a goodbye (an announcement with TTL 0) and
// unicasts it to each known peer, so they drop the entry at once; a peer
// that vanishes expires after its TTL.
//
// The default group, 239.255.77.77:29017 (DefaultGroup), is in the IPv4
// Local Scope, 239.255.0.0/16 (RFC 2365): administratively scoped
// addresses meant for a site's own use, which need no assignment and
// which routers at the site's border do not forward. The link-local
// block 224.0.0.0/24 would stay on the link by definition, but its
// addresses are assigned by IANA to named protocols; the TTL of 1 keeps
// ours on the link anyway. IPv6 is not used.
//
// # Trust
//
// Without certificates (Config.Key and Config.Certificate unset), the
// trust is that of GNS's trivial signaling protocol: anyone on the LAN
// can announce any identity, and signals name their sender on trust. A
// peer that announces the identity of a running peer takes its signals
// until the real one announces again (each announcement of either moves
// the entry). The P2P handshake's certificates remain the end-to-end
// check of who a peer is: an impostor can disrupt the signals of an
// identity, not make a session as it when the Hosts require CA-signed
// certificates.
//
// With certificates, the Conn signs each announcement and signal (Ed25519
// over "netmsg-lan/1", a zero byte and the datagram) with Config.Key and
// sends its certificate in its announcements. A peer checks a certificate
// as the authenticated signaling server does (package signaling): signed
// by a trusted CA (Config.TrustedCAs), or unsigned only with
// Config.AllowUnsigned; not expired; listing the app ID if it lists any;
// naming the identity announced; and the signature made with the key it
// names. A signed datagram's clock must be within Config.MaxSkew (5
// minutes) of ours. Such a Conn refuses unsigned announcements and
// signals, and a signal whose sender's announcement it has not verified.
// Who holds an identity follows the server's rules: an unauthenticated
// entry yields to any verified announcement; an authenticated one only to
// a CA-signed certificate or to the same key. An announcement of an
// instance must carry a higher sequence number than the last one taken,
// and one of another instance a later clock, so a recorded announcement
// replayed from another address is refused. What remains: an attacker on
// the LAN who records a signed announcement can replay it, within
// MaxSkew, after its peer has left, holding the entry for its TTL
// (signals then go nowhere; nobody without the key can answer them), and
// can always drop or delay datagrams, as on any LAN.
//
// # Limits
//
// Every datagram is at most one signal (blob up to signaling.MaxBlobSize)
// with two identities and a signature; anything not of this protocol is
// counted and dropped. The table holds at most Config.MaxPeers entries (a
// newcomer beyond is refused); entries expire after their TTL, clamped to
// [1 s, 10 min]. At most Config.Rate announcements and signed signals per
// second (burst Config.Burst) are checked, the rest dropped, so a flood
// costs bounded CPU; the Conn unicasts at most 20 announcements a second
// in reply (to newcomers and queries), so it cannot be made to send much
// for what it receives. Received signals wait for Recv in a queue of
// Config.QueueLen; signals for unknown peers in one of Config.PendingLen.
// Stats counts each refusal by its reason.
//
// # Wire format
//
// Big-endian; identities are a length byte and that many bytes; a
// signature, when the header's flag says so, is the last 64 bytes.
//
//	header:       "NMLN" | version 1 | kind | flags (1: signed)
//	announcement: header (kind 1) | instance u64 | seq u64 | time ms i64 |
//	              TTL ms u32 | port u16 | identity | cert length u16 | cert | [signature]
//	query:        header (kind 2) | instance u64 | asker's identity | identity sought
//	signal:       header (kind 3) | instance u64 | time ms i64 | from | to |
//	              blob length u16 | blob | [signature]
//
// An announcement is signed exactly when it carries a certificate.
package lan
