package p2p

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
)

var t0 = time.Unix(1000, 0)

func req() *pb.P2PRendezvous_ConnectRequest {
	return &pb.P2PRendezvous_ConnectRequest{ToVirtualPort: proto.Uint32(0x7fffffff), FromVirtualPort: proto.Uint32(0x7fffffff)}
}

func okMsg() *pb.P2PRendezvous_ConnectOK {
	return &pb.P2PRendezvous_ConnectOK{Cert: &pb.CertificateSigned{Cert: []byte("c")}}
}

// sendAll builds everything due at now.
func sendAll(t *testing.T, s *Session, now time.Time) []*pb.P2PRendezvous {
	t.Helper()
	var out []*pb.P2PRendezvous
	for range 10 {
		b := s.NextBlob(now)
		if b == nil {
			return out
		}
		rv, err := ParseRendezvous(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rv)
	}
	t.Fatal("Build does not stop")
	return nil
}

// TestClientTiming: a connecting client sends its request at once, then
// every 500 ms (GNS's connect retry), each with every unacked reliable
// message from the first; the connect OK ends that; the ack follows
// within 10 ms; later resends wait 1 s (no backoff) and signals are at
// least 100 ms apart.
func TestClientTiming(t *testing.T) {
	c := NewSession("str:a", 11, "str:b", 0)
	c.MinInterval = MinSendInterval
	c.QueueReliable(t0, ICEAuth("abcde"))
	c.QueueReliable(t0, ICECandidate("candidate:1 0 udp 2130706431 10.0.0.1 5000 typ host"))
	c.SetConnectRequest(t0, req())
	var times []time.Duration
	now := t0
	for now.Before(t0.Add(1600 * time.Millisecond)) {
		for _, rv := range sendAll(t, c, now) {
			if rv.ConnectRequest == nil || rv.ToConnectionId != nil || len(rv.ReliableMessages) != 2 || rv.GetFirstReliableMsg() != 1 {
				t.Fatalf("request signal %v", rv)
			}
			times = append(times, now.Sub(t0))
		}
		now = c.NextWake()
	}
	if fmt.Sprint(times) != "[0s 500ms 1s 1.5s]" {
		t.Fatalf("requests at %v", times)
	}
	// The connect OK arrives, acking the first message.
	now = t0.Add(1550 * time.Millisecond)
	rec, err := c.Receive(now, &pb.P2PRendezvous{FromIdentity: proto.String("str:b"), FromConnectionId: proto.Uint32(22),
		ToConnectionId: proto.Uint32(11), ConnectOk: okMsg(), AckReliableMsg: proto.Uint32(1),
		FirstReliableMsg: proto.Uint32(1), ReliableMessages: []*pb.P2PRendezvous_ReliableMessage{ICEAuth("fghij")}})
	if err != nil || rec.ConnectOK == nil || len(rec.ICE) != 1 || rec.ICE[0].Password != "fghij" || c.RemoteID != 22 || c.Unacked() != 1 {
		t.Fatalf("connect OK: %+v %v, remote %d, unacked %d", rec, err, c.RemoteID, c.Unacked())
	}
	// Ack in 10 ms, but not closer than 100 ms to the last request (1.5 s).
	if w := c.NextWake(); !w.Equal(t0.Add(1600 * time.Millisecond)) {
		t.Fatalf("ack at %v", w.Sub(t0))
	}
	rvs := sendAll(t, c, t0.Add(1600*time.Millisecond))
	if len(rvs) != 1 || rvs[0].ConnectRequest != nil || rvs[0].GetAckReliableMsg() != 1 || len(rvs[0].ReliableMessages) != 0 || rvs[0].GetToConnectionId() != 22 {
		t.Fatalf("ack signal %v", rvs)
	}
	// The candidate was last sent at 1.5 s: again at 2.5 s, 3.5 s, ...
	if w := c.NextWake(); !w.Equal(t0.Add(2500 * time.Millisecond)) {
		t.Fatalf("resend at %v", w.Sub(t0))
	}
	rvs = sendAll(t, c, t0.Add(2500*time.Millisecond))
	if len(rvs) != 1 || rvs[0].GetFirstReliableMsg() != 2 || len(rvs[0].ReliableMessages) != 1 {
		t.Fatalf("resend %v", rvs)
	}
	if w := c.NextWake(); !w.Equal(t0.Add(3500 * time.Millisecond)) {
		t.Fatalf("second resend at %v", w.Sub(t0))
	}
	st := c.Stats()
	if st.ReliableSent != 2 || st.ReliableResent != 7 || st.SignalsSent != 6 || st.ReliableTaken != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestServerQuietUntilAccepted: the accepting side sends nothing (not
// even acks) before SetConnectOK; then connect OK goes once, with every
// reliable message, and again only when the client repeats its request.
func TestServerQuietUntilAccepted(t *testing.T) {
	s := NewSession("str:b", 22, "str:a", 11)
	s.MinInterval = MinSendInterval
	s.QueueReliable(t0, ICEAuth("fghij"))
	rec, err := s.Receive(t0, &pb.P2PRendezvous{FromIdentity: proto.String("str:a"), FromConnectionId: proto.Uint32(11),
		ConnectRequest: req(), FirstReliableMsg: proto.Uint32(1), ReliableMessages: []*pb.P2PRendezvous_ReliableMessage{ICEAuth("abcde")}})
	if err != nil || rec.ConnectRequest == nil || len(rec.Reliable) != 1 {
		t.Fatalf("%+v %v", rec, err)
	}
	if w := s.NextWake(); !w.IsZero() {
		t.Fatalf("unaccepted server wakes at %v", w)
	}
	now := t0.Add(3 * time.Second)
	s.SetConnectOK(now, okMsg())
	rvs := sendAll(t, s, now)
	if len(rvs) != 1 || rvs[0].ConnectOk == nil || rvs[0].GetAckReliableMsg() != 1 || rvs[0].GetFirstReliableMsg() != 1 || rvs[0].GetToConnectionId() != 11 {
		t.Fatalf("connect OK signal %v", rvs)
	}
	// The resend 1 s later carries no connect OK.
	now = now.Add(time.Second)
	if rvs = sendAll(t, s, now); len(rvs) != 1 || rvs[0].ConnectOk != nil || len(rvs[0].ReliableMessages) != 1 {
		t.Fatalf("resend %v", rvs)
	}
	// A repeated request (our OK was lost) brings it back within 10 ms,
	// spaced 100 ms from the last.
	now = now.Add(50 * time.Millisecond)
	s.Receive(now, &pb.P2PRendezvous{FromIdentity: proto.String("str:a"), FromConnectionId: proto.Uint32(11), ConnectRequest: req(), AckReliableMsg: proto.Uint32(1)})
	if w := s.NextWake(); !w.Equal(now.Add(50 * time.Millisecond)) {
		t.Fatalf("OK again at %v", w.Sub(now))
	}
	if rvs = sendAll(t, s, now.Add(50*time.Millisecond)); len(rvs) != 1 || rvs[0].ConnectOk == nil || len(rvs[0].ReliableMessages) != 0 {
		t.Fatalf("OK again: %v", rvs)
	}
	if !s.NextWake().IsZero() {
		t.Fatal("not quiet after everything was acked")
	}
	// A connect OK sent to the server is ignored and counted.
	if rec, _ := s.Receive(now, &pb.P2PRendezvous{FromIdentity: proto.String("str:a"), FromConnectionId: proto.Uint32(11), ConnectOk: okMsg()}); rec.ConnectOK != nil || s.Stats().UnexpectedConnectOK != 1 {
		t.Fatal("connect OK on the accepting side")
	}
}

// TestClose: a closed goes out once at once, carries no ack or reliable
// messages, is repeated only in answer to the peer's rendezvous (spaced),
// and a closed from the peer is answered by "no connection", which is
// never answered.
func TestClose(t *testing.T) {
	a := NewSession("str:a", 11, "str:b", 22)
	a.SetConnectOK(t0, okMsg())
	a.QueueReliable(t0, ICEAuth("x"))
	sendAll(t, a, t0)
	now := t0.Add(20 * time.Millisecond)
	a.Close(now, 1001, "bye")
	if err := a.QueueReliable(now, ICEAuth("y")); !errors.Is(err, ErrBacklog) {
		t.Fatalf("queue after close: %v", err)
	}
	rvs := sendAll(t, a, now)
	if len(rvs) != 1 || rvs[0].GetConnectionClosed().GetReasonCode() != 1001 || rvs[0].GetConnectionClosed().GetDebug() != "bye" ||
		rvs[0].AckReliableMsg != nil || len(rvs[0].ReliableMessages) != 0 || !rvs[0].GetIceEnabled() || rvs[0].GetToConnectionId() != 22 {
		t.Fatalf("closed %v", rvs)
	}
	if !a.NextWake().IsZero() {
		t.Fatal("a closed session repeats on its own")
	}
	peer := &pb.P2PRendezvous{FromIdentity: proto.String("str:b"), FromConnectionId: proto.Uint32(22), AckReliableMsg: proto.Uint32(0)}
	a.Receive(now, peer)
	if w := a.NextWake(); !w.Equal(now.Add(MinSendInterval)) {
		t.Fatalf("answer at %v", w.Sub(now))
	}
	a.Receive(now, peer) // one answer at a time
	if rvs = sendAll(t, a, now.Add(MinSendInterval)); len(rvs) != 1 || rvs[0].GetConnectionClosed().GetReasonCode() != 1001 {
		t.Fatalf("answer %v", rvs)
	}
	if a.Stats().AfterClose != 2 {
		t.Fatalf("stats %+v", a.Stats())
	}

	// The peer closes b: b answers "no connection" (GNS at once; we keep
	// answers MinSendInterval apart, so that a peer cannot make us
	// signal faster than it does).
	b := NewSession("str:b", 22, "str:a", 0)
	b.SetConnectRequest(t0, req())
	sendAll(t, b, t0)
	rec, err := b.Receive(now, &pb.P2PRendezvous{FromIdentity: proto.String("str:a"), FromConnectionId: proto.Uint32(11), ToConnectionId: proto.Uint32(22),
		ConnectionClosed: ConnectionClosed(1001, "bye")})
	if err != nil || rec.Closed.GetReasonCode() != 1001 || !b.Closed() {
		t.Fatalf("%+v %v", rec, err)
	}
	if w := b.NextWake(); !w.Equal(t0.Add(MinSendInterval)) { // spaced from b's request
		t.Fatalf("no connection at %v", w.Sub(t0))
	}
	rvs = sendAll(t, b, t0.Add(MinSendInterval))
	if len(rvs) != 1 || rvs[0].GetConnectionClosed().GetReasonCode() != ReasonNoConnection || rvs[0].ConnectRequest != nil {
		t.Fatalf("no connection %v", rvs)
	}
	b.Close(now, 1000, "") // closing after the peer did says nothing more
	// A "no connection" is not answered.
	b.Receive(now.Add(time.Second), &pb.P2PRendezvous{FromIdentity: proto.String("str:a"), FromConnectionId: proto.Uint32(11),
		ConnectionClosed: ConnectionClosed(ReasonNoConnection, "")})
	if w := b.NextWake(); !w.IsZero() {
		t.Fatalf("answered a no connection at %v", w)
	}
}

// TestReliableStream: under 40% loss, 50% duplication and reordering of
// signals, the connect request / OK exchange completes and each side's
// reliable messages (trickling in, as candidates do) reach the other
// exactly once and in order; then both
// go quiet. Paced as GNS, never more than one signal per 100 ms (plus
// connect requests).
func TestReliableStream(t *testing.T) {
	for seed := range uint64(8) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 1))
			now := t0
			a := NewSession("str:alice", 11, "str:bob", 0)
			pace := time.Duration(seed%2) * MinSendInterval // half the runs paced as GNS
			a.MinInterval = pace
			var b *Session // made by the first connect request, as a host does
			const n = 40
			for i := range 4 {
				a.QueueReliable(now, ICECandidate(fmt.Sprintf("a%d", i)))
			}
			na, nb := 4, 0 // queued so far
			a.SetConnectRequest(now, req())
			type inflight struct {
				at   time.Time
				toB  bool
				blob []byte
			}
			var net []inflight
			got := map[bool][]string{} // by "is b"
			gotOK := false
			sent := map[bool]int{}
			end := t0.Add(60 * time.Second)
			for ; now.Before(end); now = now.Add(5 * time.Millisecond) {
				// Candidates trickle in over the first 10 s on both sides.
				if na < n && r.IntN(40) == 0 {
					if err := a.QueueReliable(now, ICECandidate(fmt.Sprintf("a%d", na))); err != nil {
						t.Fatal(err)
					}
					na++
				}
				if b != nil && b.connectOK != nil && nb < n && r.IntN(40) == 0 {
					if err := b.QueueReliable(now, ICEAuth(fmt.Sprintf("b%d", nb))); err != nil {
						t.Fatal(err)
					}
					nb++
				}
				for _, s := range []*Session{a, b} {
					if s == nil {
						continue
					}
					for {
						blob := s.NextBlob(now)
						if blob == nil {
							break
						}
						sent[s == b]++
						copies := 1 + r.IntN(2)
						for range copies {
							if r.IntN(10) < 4 {
								continue
							}
							net = append(net, inflight{now.Add(time.Duration(r.IntN(300)) * time.Millisecond), s == a, blob})
						}
					}
				}
				keep := net[:0]
				for _, f := range net {
					if now.Before(f.at) {
						keep = append(keep, f)
						continue
					}
					to := a
					if f.toB {
						if b == nil {
							rv, _ := ParseRendezvous(f.blob)
							b = NewSession("str:bob", 22, "str:alice", rv.GetFromConnectionId())
							b.MinInterval = pace
						}
						to = b
					}
					rec, err := to.ReceiveBlob(now, map[bool]string{true: "str:alice", false: "str:bob"}[f.toB], f.blob)
					if err != nil {
						t.Fatal(err)
					}
					if rec.ConnectRequest != nil && to == b && b.connectOK == nil {
						b.SetConnectOK(now, okMsg())
					}
					if rec.ConnectOK != nil {
						gotOK = true
					}
					for _, it := range rec.ICE {
						got[to == b] = append(got[to == b], it.Candidate+it.Password)
					}
				}
				net = keep
			}
			if !gotOK || a.RemoteID != 22 || b.RemoteID != 11 {
				t.Fatalf("handshake: ok %v, ids %d %d", gotOK, a.RemoteID, b.RemoteID)
			}
			for isB, prefix := range map[bool]string{true: "a", false: "b"} {
				if len(got[isB]) != n {
					t.Fatalf("%v: %d messages, want %d", isB, len(got[isB]), n)
				}
				for i, s := range got[isB] {
					if s != fmt.Sprintf("%s%d", prefix, i) {
						t.Fatalf("message %d is %q", i, s)
					}
				}
			}
			if !a.NextWake().IsZero() || !b.NextWake().IsZero() || a.Unacked() != 0 || b.Unacked() != 0 {
				t.Fatalf("not quiet: %v %v, %d %d unacked", a.NextWake(), b.NextWake(), a.Unacked(), b.Unacked())
			}
			if pace > 0 && max(sent[false], sent[true]) > 60*10+20 {
				t.Fatalf("signals sent %v in 60 s", sent)
			}
			t.Logf("signals sent a %d b %d; a %+v; b %+v", sent[false], sent[true], a.Stats(), b.Stats())
		})
	}
}

// TestHostile: rendezvous for other connections or breaking the format
// are refused, counted, and change nothing; the session's queues are
// bounded.
func TestHostile(t *testing.T) {
	s := NewSession("str:a", 1, "str:b", 0)
	s.QueueReliable(t0, ICEAuth("abcde"))
	s.SetConnectRequest(t0, req())
	sendAll(t, s, t0)
	ok := func() *pb.P2PRendezvous {
		return &pb.P2PRendezvous{FromIdentity: proto.String("str:b"), FromConnectionId: proto.Uint32(2), ToConnectionId: proto.Uint32(1), ToIdentity: proto.String("str:a")}
	}
	if _, err := s.Receive(t0, ok()); err != nil { // learns remote id 2
		t.Fatal(err)
	}
	bad := map[string]func(*pb.P2PRendezvous){
		"no sender id":      func(rv *pb.P2PRendezvous) { rv.FromConnectionId = nil },
		"no sender":         func(rv *pb.P2PRendezvous) { rv.FromIdentity = nil },
		"other remote conn": func(rv *pb.P2PRendezvous) { rv.FromConnectionId = proto.Uint32(3) },
		"other local conn":  func(rv *pb.P2PRendezvous) { rv.ToConnectionId = proto.Uint32(9) },
		"other sender":      func(rv *pb.P2PRendezvous) { rv.FromIdentity = proto.String("str:c") },
		"other recipient":   func(rv *pb.P2PRendezvous) { rv.ToIdentity = proto.String("str:c") },
		"no first number": func(rv *pb.P2PRendezvous) {
			rv.ReliableMessages = []*pb.P2PRendezvous_ReliableMessage{ICEAuth("x")}
		},
		"first number 0": func(rv *pb.P2PRendezvous) {
			rv.FirstReliableMsg = proto.Uint32(0)
			rv.ReliableMessages = []*pb.P2PRendezvous_ReliableMessage{ICEAuth("x")}
		},
		"numbers wrap": func(rv *pb.P2PRendezvous) {
			rv.FirstReliableMsg = proto.Uint32(0xffffffff)
			rv.ReliableMessages = []*pb.P2PRendezvous_ReliableMessage{ICEAuth("x"), ICEAuth("y")}
		},
		"too many": func(rv *pb.P2PRendezvous) {
			rv.FirstReliableMsg = proto.Uint32(1)
			for range MaxReliablePerSignal + 1 {
				rv.ReliableMessages = append(rv.ReliableMessages, ICEAuth("x"))
			}
		},
	}
	before := s.Stats()
	for name, f := range bad {
		rv := ok()
		rv.AckReliableMsg = proto.Uint32(1) // would ack: must not
		rv.ConnectOk = okMsg()
		f(rv)
		if rec, err := s.Receive(t0, rv); err == nil || rec.ConnectOK != nil {
			t.Errorf("%s: taken (%v)", name, err)
		}
	}
	st := s.Stats()
	if st.Malformed+st.WrongConnection-before.Malformed-before.WrongConnection != int64(len(bad)) || s.Unacked() != 1 || s.connectRequest == nil {
		t.Fatalf("stats %+v, unacked %d", st, s.Unacked())
	}
	// Blobs: garbage, oversized, signaled by someone else.
	for _, b := range [][]byte{{0x0a, 0x05}, make([]byte, MaxRendezvousSize+1), {0xff}} {
		if _, err := s.ReceiveBlob(t0, "str:b", b); !errors.Is(err, ErrMalformed) {
			t.Errorf("blob %x: %v", b[:min(len(b), 4)], err)
		}
	}
	good, _ := MarshalRendezvous(ok())
	if _, err := s.ReceiveBlob(t0, "str:c", good); !errors.Is(err, ErrWrongConnection) {
		t.Errorf("relayed by another identity: %v", err)
	}
	// An ack beyond what we sent is counted and acks everything.
	rv := ok()
	rv.AckReliableMsg = proto.Uint32(1000)
	if _, err := s.Receive(t0, rv); err != nil || s.Unacked() != 0 || s.Stats().BadAcks != 1 {
		t.Fatalf("bad ack: %v, %d unacked, %+v", err, s.Unacked(), s.Stats())
	}
	// A gap drops the lot; a replay is skipped.
	rv = ok()
	rv.FirstReliableMsg, rv.ReliableMessages = proto.Uint32(2), []*pb.P2PRendezvous_ReliableMessage{ICEAuth("x")}
	if rec, _ := s.Receive(t0, rv); len(rec.Reliable) != 0 || s.Stats().ReliableGap != 1 {
		t.Fatal("gap taken")
	}
	rv.FirstReliableMsg = proto.Uint32(1)
	for range 3 {
		s.Receive(t0, rv)
	}
	if st := s.Stats(); st.ReliableTaken != 1 || st.ReliableDuplicate != 2 {
		t.Fatalf("replays: %+v", st)
	}
	// Bounded queue, by count and by bytes.
	q := NewSession("str:a", 1, "str:b", 0)
	for range MaxUnacked {
		if err := q.QueueReliable(t0, ICEAuth("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.QueueReliable(t0, ICEAuth("x")); !errors.Is(err, ErrBacklog) {
		t.Errorf("count backlog: %v", err)
	}
	q = NewSession("str:a", 1, "str:b", 0)
	big := ICECandidate(string(make([]byte, 1000)))
	var i int
	for i = 0; q.QueueReliable(t0, big) == nil; i++ {
	}
	if i*proto.Size(big) > MaxUnackedBytes || q.Stats().ReliableRefused != 1 {
		t.Errorf("%d big messages queued", i)
	}
	q.SetConnectRequest(t0, req())
	if b := q.NextBlob(t0); len(b) > MaxRendezvousSize {
		t.Errorf("rendezvous of %d bytes", len(b))
	}
}

// TestCompareSymmetric: GNS's role rule on the ids of the captured runs
// (alice accepts in both; in the second the low bits differ and flip the
// order), and its antisymmetry.
func TestCompareSymmetric(t *testing.T) {
	for _, run := range loadRuns(t) {
		a, b := run.ConnectionIDs["str:alice"], run.ConnectionIDs["str:bob"]
		if CompareSymmetric(a, nil, b, nil) <= 0 || CompareSymmetric(b, nil, a, nil) > 0 {
			t.Errorf("%s: alice %d, bob %d: alice should accept", run.Name, a, b)
		}
	}
	if CompareSymmetric(2, nil, 4, nil) >= 0 || CompareSymmetric(2, nil, 5, nil) <= 0 {
		t.Error("low-bit flip")
	}
	if CompareSymmetric(7, []byte("aa"), 7, []byte("ab")) >= 0 || CompareSymmetric(7, []byte("ab"), 7, []byte("aa")) <= 0 {
		t.Error("tie break")
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		x, y := r.Uint32(), r.Uint32()
		if x != y && CompareSymmetric(x, nil, y, nil) != -CompareSymmetric(y, nil, x, nil) {
			t.Fatalf("%d %d not antisymmetric", x, y)
		}
	}
}

// FuzzRendezvous: any blob either is refused or parses, re-encodes to
// something that parses the same, and goes through a session (twice, as a
// replay would) and its next Build without panic.
func FuzzRendezvous(f *testing.F) {
	for _, run := range loadRuns(f) {
		for _, sig := range run.Signaling {
			if sig.Kind == "rendezvous" {
				f.Add(sig.blob(f))
			}
		}
	}
	s := NewSession("str:a", 1, "str:b", 0)
	s.QueueReliable(t0, ICEAuth("abcde"))
	s.SetConnectRequest(t0, req())
	f.Add(s.NextBlob(t0))
	c, _ := MarshalRendezvous(&pb.P2PRendezvous{FromIdentity: proto.String("str:a"), FromConnectionId: proto.Uint32(1), ConnectionClosed: ConnectionClosed(ReasonNoConnection, "")})
	f.Add(c)
	f.Fuzz(func(t *testing.T, b []byte) {
		rv, err := ParseRendezvous(b)
		if err != nil {
			return
		}
		enc, err := MarshalRendezvous(rv)
		if err != nil {
			t.Fatal(err)
		}
		rv2, err := ParseRendezvous(enc)
		if err != nil || !proto.Equal(rv, rv2) {
			t.Fatalf("round trip: %v", err)
		}
		for _, remote := range []uint32{0, rv.GetFromConnectionId()} {
			s := NewSession("str:b", 2, rv.GetFromIdentity(), remote)
			s.QueueReliable(t0, ICEAuth("x"))
			s.Receive(t0, rv)
			s.Receive(t0.Add(time.Millisecond), rv)
			s.SetConnectOK(t0, okMsg())
			for range 3 {
				if b := s.NextBlob(t0.Add(time.Second)); len(b) > MaxRendezvousSize {
					t.Fatalf("built %d bytes", len(b))
				}
			}
		}
	})
}

// FuzzSubStream drives two sessions over a channel the fuzzer controls
// (each byte: queue, deliver, drop, duplicate, reorder or let time pass):
// whatever it does, each side takes a prefix of what the other queued, in
// order, each once, and the queues stay bounded.
func FuzzSubStream(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 3, 3, 7, 7, 7})
	f.Add([]byte{0, 0, 0, 7, 7, 3, 5, 3, 1, 7, 7, 7, 7, 3, 3, 3})
	f.Fuzz(func(t *testing.T, ops []byte) {
		now := t0
		a := NewSession("str:a", 1, "str:b", 0)
		b := NewSession("str:b", 2, "str:a", 1)
		a.SetConnectRequest(now, req())
		b.SetConnectOK(now, okMsg())
		sessions := [2]*Session{a, b}
		var queued, taken [2][]string
		var wire [2][][]byte // wire[i]: blobs on their way to sessions[i]
		for _, op := range ops {
			i := int(op>>3) & 1
			switch op & 7 {
			case 0, 1: // queue a message on side i
				m := fmt.Sprintf("%d-%d", i, len(queued[i]))
				if sessions[i].QueueReliable(now, ICECandidate(m)) == nil {
					queued[i] = append(queued[i], m)
				}
			case 2: // send what is due from side i
				for range 4 {
					blob := sessions[i].NextBlob(now)
					if blob == nil {
						break
					}
					wire[1-i] = append(wire[1-i], blob)
				}
			case 3, 4: // deliver the oldest blob to side i (4: keep a copy)
				if len(wire[i]) == 0 {
					continue
				}
				blob := wire[i][0]
				if op&7 == 3 {
					wire[i] = wire[i][1:]
				}
				rec, err := sessions[i].ReceiveBlob(now, sessions[1-i].LocalIdentity, blob)
				if err != nil {
					t.Fatal(err)
				}
				for _, it := range rec.ICE {
					taken[i] = append(taken[i], it.Candidate)
				}
			case 5: // drop the oldest blob to side i
				if len(wire[i]) > 0 {
					wire[i] = wire[i][1:]
				}
			case 6: // reorder: oldest to the back
				if len(wire[i]) > 1 {
					wire[i] = append(wire[i][1:], wire[i][0])
				}
			case 7:
				now = now.Add(time.Duration(op>>4+1) * 100 * time.Millisecond)
			}
			if len(wire[i]) > 64 {
				wire[i] = wire[i][1:]
			}
		}
		for i := range 2 {
			// Side i took a prefix of what side 1-i queued, in order.
			if len(taken[i]) > len(queued[1-i]) {
				t.Fatalf("side %d took %d of %d", i, len(taken[i]), len(queued[1-i]))
			}
			for k, m := range taken[i] {
				if m != queued[1-i][k] {
					t.Fatalf("side %d took %q as message %d, want %q", i, m, k, queued[1-i][k])
				}
			}
			if sessions[i].Unacked() > MaxUnacked {
				t.Fatalf("%d unacked", sessions[i].Unacked())
			}
		}
	})
}
