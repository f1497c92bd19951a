package conn

import (
	"encoding/binary"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/netmsg-go/netmsg/internal/pb"
)

// Lead bytes of control datagrams (GNS ESteamNetworkingUDPMsgID).
const (
	leadChallengeRequest = byte(pb.UDPMsgID_UDP_MSG_CHALLENGE_REQUEST)
	leadChallengeReply   = byte(pb.UDPMsgID_UDP_MSG_CHALLENGE_REPLY)
	leadConnectRequest   = byte(pb.UDPMsgID_UDP_MSG_CONNECT_REQUEST)
	leadConnectOK        = byte(pb.UDPMsgID_UDP_MSG_CONNECT_OK)
	leadConnectionClosed = byte(pb.UDPMsgID_UDP_MSG_CONNECTION_CLOSED)
	leadNoConnection     = byte(pb.UDPMsgID_UDP_MSG_NO_CONNECTION)
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindChallengeRequest:
		return "ChallengeRequest"
	case KindChallengeReply:
		return "ChallengeReply"
	case KindConnectRequest:
		return "ConnectRequest"
	case KindConnectOK:
		return "ConnectOK"
	case KindConnectionClosed:
		return "ConnectionClosed"
	case KindNoConnection:
		return "NoConnection"
	case KindData:
		return "data"
	}
	return "invalid"
}

// classify implements Classify. Datagrams shorter than 5 bytes are invalid,
// as GNS drops them unread; a data packet needs its whole 7-byte header; a
// padded control message (challenge request, connection closed) must be
// padded to 512 bytes. The connection id field of a control message is
// read straight from its protobuf body without decoding the rest; a body
// that does not scan as protobuf is invalid.
func classify(b []byte) (Kind, uint32) {
	if len(b) < minDatagram || len(b) > pb.MaxUDPPacketSize {
		return KindInvalid, 0
	}
	lead := b[0]
	if lead&0x80 != 0 {
		if lead > dataLead|flagInlineStats|flagTimeSincePrev || len(b) < dataHeaderSize {
			return KindInvalid, 0
		}
		return KindData, binary.LittleEndian.Uint32(b[1:5])
	}
	var k Kind
	var field protowire.Number
	switch lead {
	case leadChallengeRequest:
		k, field = KindChallengeRequest, 1
	case leadChallengeReply:
		k, field = KindChallengeReply, 1
	case leadConnectRequest:
		k, field = KindConnectRequest, 1
	case leadConnectOK:
		k, field = KindConnectOK, 1
	case leadConnectionClosed:
		k, field = KindConnectionClosed, 4
	case leadNoConnection:
		k, field = KindNoConnection, 3
	default:
		return KindInvalid, 0
	}
	_, body, err := pb.SplitControl(b)
	if err != nil {
		return KindInvalid, 0
	}
	id, ok := scanFixed32(body, field)
	if !ok {
		return KindInvalid, 0
	}
	return k, id
}

// scanFixed32 returns the last value of fixed32 field num in the protobuf
// message b (0 when absent, as protobuf reads an absent field), and false if
// b does not scan as protobuf or the field has another wire type.
func scanFixed32(b []byte, num protowire.Number) (uint32, bool) {
	var v uint32
	for len(b) > 0 {
		n, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return 0, false
		}
		b = b[l:]
		if n == num {
			if typ != protowire.Fixed32Type {
				return 0, false
			}
			x, l := protowire.ConsumeFixed32(b)
			if l < 0 {
				return 0, false
			}
			v = x
			b = b[l:]
			continue
		}
		l = protowire.ConsumeFieldValue(n, typ, b)
		if l < 0 {
			return 0, false
		}
		b = b[l:]
	}
	return v, true
}
