package pb

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
)

func TestSplitControlRejects(t *testing.T) {
	closed, err := AppendControl(nil, UDPMsgID_UDP_MSG_CONNECTION_CLOSED, &UDPConnectionClosed{ReasonCode: proto.Uint32(1000)})
	if err != nil {
		t.Fatal(err)
	}
	if len(closed) != PaddedPacketSize {
		t.Fatalf("padded length %d", len(closed))
	}
	zeroLen := bytes.Clone(closed)
	zeroLen[1], zeroLen[2] = 0, 0
	longLen := bytes.Clone(closed)
	longLen[1], longLen[2] = 0xff, 0x01 // 511 > 512-3
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrTruncated},
		{"data lead byte", []byte{0x80, 1, 2, 3}, ErrUnknownMsg},
		{"0x26", []byte{0x26}, ErrUnknownMsg},
		{"padded short", closed[:PaddedPacketSize-1], ErrTruncated},
		{"padded id only", closed[:1], ErrTruncated},
		{"zero body length", zeroLen, ErrBadBody},
		{"body length beyond packet", longLen, ErrTruncated},
		{"oversized", append([]byte{0x21}, make([]byte, MaxUDPPacketSize)...), ErrOversized},
		{"garbage body", []byte{0x21, 0x0d, 0x01}, ErrBadBody},
		{"bad tag", []byte{0x25, 0x00}, ErrBadBody},
	} {
		_, _, err := ParseControl(tc.b)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
	// Every prefix of an unpadded datagram parses or fails without a panic
	// (a prefix ending on a field boundary is a valid, shorter message); no
	// prefix of a padded datagram parses.
	reply, _ := AppendControl(nil, UDPMsgID_UDP_MSG_CHALLENGE_REPLY, &UDPChallengeReply{ConnectionId: proto.Uint32(7), Challenge: proto.Uint64(9)})
	for i := range reply {
		_, _, _ = ParseControl(reply[:i])
	}
	for i := range closed {
		if _, _, err := ParseControl(closed[:i]); err == nil {
			t.Fatalf("padded prefix %d parsed", i)
		}
	}
}

func TestAppendControl(t *testing.T) {
	if _, err := AppendControl(nil, UDPMsgID_UDP_MSG_CONNECT_OK, &UDPNoConnection{}); err == nil {
		t.Fatal("type mismatch accepted")
	}
	if _, err := AppendControl(nil, 0x80, &UDPNoConnection{}); !errors.Is(err, ErrUnknownMsg) {
		t.Fatalf("bad id: %v", err)
	}
	big := &UDPConnectRequest{IdentityString: proto.String(string(make([]byte, MaxUDPPacketSize)))}
	prefix := []byte{1, 2, 3}
	out, err := AppendControl(prefix, UDPMsgID_UDP_MSG_CONNECT_REQUEST, big)
	if !errors.Is(err, ErrOversized) || !bytes.Equal(out, prefix) {
		t.Fatalf("oversized: %v %x", err, out)
	}
	// A padded body longer than the padding is sent as is.
	long := &UDPConnectionClosed{Debug: proto.String(string(bytes.Repeat([]byte{'x'}, 600)))}
	out, err = AppendControl(nil, UDPMsgID_UDP_MSG_CONNECTION_CLOSED, long)
	if err != nil || len(out) <= PaddedPacketSize {
		t.Fatalf("long padded: %v %d", err, len(out))
	}
	_, m, err := ParseControl(out)
	if err != nil || !proto.Equal(m, long) {
		t.Fatalf("long padded round trip: %v", err)
	}
}
