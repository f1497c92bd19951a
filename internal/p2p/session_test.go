package p2p

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
)

// TestReliableStream: under 30% loss, 50% duplication and reordering of
// signals, each side's reliable messages reach the other exactly once and
// in order, and the connect request / OK exchange completes.
func TestReliableStream(t *testing.T) {
	for seed := range uint64(5) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 1))
			now := time.Unix(1000, 0)
			a := NewSession("str:alice", 11, "str:bob", 0)
			b := NewSession("str:bob", 22, "str:alice", 0)
			a.SetConnectRequest(now, &pb.P2PRendezvous_ConnectRequest{ToVirtualPort: proto.Uint32(7)})
			const n = 40
			for i := range n {
				a.QueueReliable(now, ICECandidate(fmt.Sprintf("a%d", i)))
			}
			type inflight struct {
				at   time.Time
				to   *Session
				blob []byte
			}
			var net []inflight
			got := map[*Session][]string{}
			gotOK, gotReq := false, 0
			for step := 0; step < 6000; step++ {
				for _, s := range []*Session{a, b} {
					if rv := s.Build(now); rv != nil {
						blob, _ := proto.Marshal(rv)
						to := b
						if s == b {
							to = a
						}
						copies := 1
						if r.IntN(2) == 0 {
							copies = 2
						}
						for range copies {
							if r.IntN(10) < 3 {
								continue
							}
							net = append(net, inflight{now.Add(time.Duration(r.IntN(80)) * time.Millisecond), to, blob})
						}
					}
				}
				keep := net[:0]
				for _, f := range net {
					if now.Before(f.at) {
						keep = append(keep, f)
						continue
					}
					rv, err := ParseRendezvous(f.blob)
					if err != nil {
						t.Fatal(err)
					}
					rec, err := f.to.Receive(now, rv)
					if err != nil {
						t.Fatal(err)
					}
					if rec.ConnectRequest != nil && f.to == b {
						gotReq++
						if b.connectOK == nil && gotReq == 1 {
							b.SetConnectOK(now, &pb.P2PRendezvous_ConnectOK{})
							for i := range n {
								b.QueueReliable(now, ICEAuth(fmt.Sprintf("b%d", i)))
							}
						}
					}
					if rec.ConnectOK != nil && f.to == a {
						gotOK = true
					}
					for _, m := range rec.Reliable {
						s := m.GetIce().GetAddCandidate().GetCandidate() + m.GetIce().GetAuth().GetPwdFrag()
						got[f.to] = append(got[f.to], s)
					}
				}
				net = keep
				now = now.Add(5 * time.Millisecond)
			}
			if !gotOK || a.RemoteID != 22 || b.RemoteID != 11 {
				t.Fatalf("handshake: ok %v, ids %d %d", gotOK, a.RemoteID, b.RemoteID)
			}
			for who, prefix := range map[*Session]string{b: "a", a: "b"} {
				if len(got[who]) != n {
					t.Fatalf("%s: %d messages, want %d", who.LocalIdentity, len(got[who]), n)
				}
				for i, s := range got[who] {
					if s != fmt.Sprintf("%s%d", prefix, i) {
						t.Fatalf("%s: message %d is %q", who.LocalIdentity, i, s)
					}
				}
			}
			// Everything acked: both go quiet.
			if !a.NextWake().IsZero() || !b.NextWake().IsZero() || len(a.out) != 0 || len(b.out) != 0 {
				t.Fatalf("not quiet: %v %v, %d %d unacked", a.NextWake(), b.NextWake(), len(a.out), len(b.out))
			}
		})
	}
}

func TestSessionHostile(t *testing.T) {
	now := time.Unix(1, 0)
	s := NewSession("str:a", 1, "str:b", 2)
	for _, rv := range []*pb.P2PRendezvous{
		{FromConnectionId: proto.Uint32(3)}, // another connection
		{FromConnectionId: proto.Uint32(2), ReliableMessages: []*pb.P2PRendezvous_ReliableMessage{{}}}, // no first number
	} {
		if _, err := s.Receive(now, rv); err == nil {
			t.Errorf("%v accepted", rv)
		}
	}
	if _, err := ParseRendezvous(make([]byte, MaxRendezvousSize+1)); err == nil {
		t.Error("oversized rendezvous parsed")
	}
	if _, err := ParseRendezvous([]byte{0x0a, 0x05}); err == nil {
		t.Error("garbage parsed")
	}
	for range MaxUnacked {
		s.QueueReliable(now, ICEAuth("x"))
	}
	if err := s.QueueReliable(now, ICEAuth("x")); err != ErrBacklog {
		t.Errorf("backlog: %v", err)
	}
}

func FuzzRendezvous(f *testing.F) {
	s := NewSession("str:a", 1, "str:b", 0)
	s.SetConnectRequest(time.Unix(1, 0), &pb.P2PRendezvous_ConnectRequest{})
	s.QueueReliable(time.Unix(1, 0), ICEAuth("abcde"))
	b, _ := proto.Marshal(s.Build(time.Unix(1, 0)))
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		rv, err := ParseRendezvous(b)
		if err != nil {
			return
		}
		s := NewSession("str:b", 2, "str:a", 0)
		s.Receive(time.Unix(1, 0), rv)
		s.Receive(time.Unix(1, 0), rv)
		s.Build(time.Unix(2, 0))
	})
}
