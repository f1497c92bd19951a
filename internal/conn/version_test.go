package conn

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/internal/snp"
)

// rewriteReplyVersion makes the server's challenge reply claim version v.
func rewriteReplyVersion(v uint32) func(string, []byte) bool {
	return func(dir string, d []byte) bool {
		if dir != "s2c" || d[0] != leadChallengeReply {
			return false
		}
		_, m, _ := pb.ParseControl(d)
		r := m.(*pb.UDPChallengeReply)
		r.ProtocolVersion = proto.Uint32(v)
		b, _ := pb.AppendControl(nil, pb.UDPMsgID_UDP_MSG_CHALLENGE_REPLY, r)
		copy(d, b) // same length: the varint of 7 or 12 is one byte, like 13's
		return false
	}
}

func TestOldServerRefused(t *testing.T) {
	p := newPair(t, testConfig("str:client"), testConfig("str:server"))
	p.drop = rewriteReplyVersion(7)
	p.run(100 * time.Millisecond)
	if p.client.State() != StateProblemDetectedLocally || p.client.EndReason() != EndMiscGeneric {
		t.Fatalf("client %d %d %q", p.client.State(), p.client.EndReason(), p.client.EndDebug())
	}
}

func TestProtocolVersionChanged(t *testing.T) {
	p := newPair(t, testConfig("str:client"), testConfig("str:server"))
	p.drop = rewriteReplyVersion(12)
	p.run(100 * time.Millisecond)
	if p.client.State() != StateProblemDetectedLocally || p.client.EndReason() != EndRemoteBadProtocolVersion {
		t.Fatalf("client %d %d %q", p.client.State(), p.client.EndReason(), p.client.EndDebug())
	}
	if p.server.EndReason() != EndRemoteBadProtocolVersion {
		t.Errorf("server told %d", p.server.EndReason())
	}
}

// TestPacketNumbersByVersion: from protocol version 10 the handshake is
// packet 1, so data starts at 2 both ways; before it, at 1.
func TestPacketNumbersByVersion(t *testing.T) {
	for _, tc := range []struct {
		version uint32
		first   int64
	}{{8, 1}, {9, 1}, {10, 2}, {13, 2}} {
		loc, err := prepare(testConfig("str:x"))
		if err != nil {
			t.Fatal(err)
		}
		c := newConn(loc, t0, 1, serverAddr, false)
		c.remoteID = 2
		keys := &crypto.SessionKeys{Cipher: pb.Cipher_CIPHER_AES_256_GCM}
		peer := &crypto.Peer{Crypt: &pb.SessionCryptInfo{ProtocolVersion: proto.Uint32(tc.version)}}
		if err := c.connected(t0, peer, keys); err != nil {
			t.Fatal(err)
		}
		c.Send(t0, 0, []byte("x"), snp.Reliable|snp.NoNagle)
		d, ok := c.Poll(t0, nil)
		if !ok {
			t.Fatal("nothing sent")
		}
		h, _, _ := parseDataHeader(d)
		if int64(h.WirePktNum) != tc.first {
			t.Errorf("v%d: first packet %d, want %d", tc.version, h.WirePktNum, tc.first)
		}
		if n, v := c.win.expand(uint16(tc.first)); v != pktOK || n != tc.first {
			t.Errorf("v%d: peer's first packet %d refused (%d)", tc.version, tc.first, v)
		}
		if tc.first == 2 {
			if _, v := c.win.expand(1); v == pktOK {
				t.Errorf("v%d: packet 1 accepted", tc.version)
			}
		}
	}
}

// TestLanesNeedVersion11: more than one lane with a peer older than 11 is
// refused with 4006.
func TestLanesNeedVersion11(t *testing.T) {
	loc, _ := prepare(Config{Identity: "str:x", Key: testKey("x"), SNP: snp.Config{Lanes: []snp.Lane{{}, {}}}})
	c := newConn(loc, t0, 1, serverAddr, false)
	err := c.checkLanes(&crypto.Peer{Crypt: &pb.SessionCryptInfo{ProtocolVersion: proto.Uint32(10)}})
	if crypto.EndReasonOf(err) != EndRemoteBadProtocolVersion {
		t.Errorf("%v", err)
	}
	if err := c.checkLanes(&crypto.Peer{Crypt: &pb.SessionCryptInfo{ProtocolVersion: proto.Uint32(11)}}); err != nil {
		t.Error(err)
	}
}
