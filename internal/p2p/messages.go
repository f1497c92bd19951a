package p2p

import (
	"bytes"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
)

// ParseRendezvous decodes a rendezvous from a signal. It refuses one larger
// than MaxRendezvousSize, one that does not parse, and one that does not
// name its sender (from_identity and from_connection_id: GNS drops those
// too).
func ParseRendezvous(b []byte) (*pb.P2PRendezvous, error) {
	if len(b) > MaxRendezvousSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	rv := new(pb.P2PRendezvous)
	if err := proto.Unmarshal(b, rv); err != nil {
		return nil, errors.Join(ErrMalformed, err)
	}
	if rv.GetFromIdentity() == "" || rv.GetFromConnectionId() == 0 {
		return nil, fmt.Errorf("%w: no sender", ErrMalformed)
	}
	return rv, nil
}

// MarshalRendezvous encodes rv as GNS does (fields in number order, so
// the same message always gives the same bytes).
func MarshalRendezvous(rv *pb.P2PRendezvous) ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(rv)
}

// ICEAuth returns the reliable message that carries our ICE password
// (GNS's pwd_frag: 5 characters).
func ICEAuth(pwd string) *pb.P2PRendezvous_ReliableMessage {
	return &pb.P2PRendezvous_ReliableMessage{Ice: &pb.ICERendezvous{Auth: &pb.ICERendezvous_Auth{PwdFrag: proto.String(pwd)}}}
}

// ICECandidate returns the reliable message that carries one of our
// candidates, an RFC 5245 candidate attribute with its "candidate:"
// prefix, as GNS writes them.
func ICECandidate(c string) *pb.P2PRendezvous_ReliableMessage {
	return &pb.P2PRendezvous_ReliableMessage{Ice: &pb.ICERendezvous{AddCandidate: &pb.ICECandidate{Candidate: proto.String(c)}}}
}

// ICEItem is what one reliable message told about the peer's ICE: its
// password, or one of its candidates (or both, or neither: GNS would not
// send such, but it parses).
type ICEItem struct {
	Password  string // pwd_frag ("" if absent)
	Candidate string // the candidate attribute ("" if absent)
}

// ICEItems returns the ICE items of reliable messages, in order; messages
// without ICE content are left out.
func ICEItems(msgs []*pb.P2PRendezvous_ReliableMessage) []ICEItem {
	var out []ICEItem
	for _, m := range msgs {
		ie := m.GetIce()
		it := ICEItem{Password: ie.GetAuth().GetPwdFrag(), Candidate: ie.GetAddCandidate().GetCandidate()}
		if it != (ICEItem{}) {
			out = append(out, it)
		}
	}
	return out
}

// ConnectionClosed returns the connection_closed part of a rendezvous
// (reason and debug text, clipped to GNS's 127 bytes).
func ConnectionClosed(reason int, debug string) *pb.P2PRendezvous_ConnectionClosed {
	if len(debug) > maxDebugLen {
		debug = debug[:maxDebugLen]
	}
	m := &pb.P2PRendezvous_ConnectionClosed{ReasonCode: proto.Uint32(uint32(reason))}
	if debug != "" {
		m.Debug = proto.String(debug)
	}
	return m
}

// CompareSymmetric is GNS's role rule for a symmetric connect, seen from
// our connection (CompareSymmetricConnections,
// steamnetworkingsockets_p2p.cpp): when our client connection ours and the
// peer's client connection theirs asked each other at once, a result <= 0
// means ours stays the client (drop their request, wait for their connect
// OK); > 0 means ours changes role and accepts their request, from the
// same connection id. The lower id would be the client, but the result
// flips when the low bits of the two ids differ, so that every id is as
// likely to win and nobody can choose a role by choosing an id. Equal ids
// (odds 1 in 2^32) are told apart by the certificates' bytes.
func CompareSymmetric(ours uint32, ourCert []byte, theirs uint32, theirCert []byte) int {
	r := 0
	switch {
	case ours < theirs:
		r = -1
	case ours > theirs:
		r = 1
	default:
		n := min(len(ourCert), len(theirCert))
		r = bytes.Compare(ourCert[:n], theirCert[:n])
	}
	if (ours^theirs)&1 != 0 {
		r = -r
	}
	return r
}
