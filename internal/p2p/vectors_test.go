package p2p

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/internal/vectors"
)

type vecSignal struct {
	TMs       float64 `json:"t_ms"`
	Direction string  `json:"direction"`
	Client    string  `json:"client"`
	Kind      string  `json:"kind"`
	Line      string  `json:"line"`
}

type vecRun struct {
	Name          string            `json:"name"`
	ConnectionIDs map[string]uint32 `json:"connection_ids"`
	Controlling   []string          `json:"controlling"`
	Signaling     []vecSignal       `json:"signaling"`
}

func loadRuns(t testing.TB) []vecRun {
	var v struct {
		Runs []vecRun `json:"runs"`
	}
	vectors.Load(t, "p2p_signaling.json", &v)
	if len(v.Runs) == 0 {
		t.Fatal("no runs")
	}
	return v.Runs
}

// blob returns the rendezvous bytes of a trivial-signaling line.
func (s vecSignal) blob(t testing.TB) []byte {
	_, hx, ok := strings.Cut(s.Line, " ")
	if !ok {
		t.Fatalf("line %q", s.Line)
	}
	b, err := hex.DecodeString(hx)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestReplayVectors replays both captured symmetric connects between two
// GNS peers with two Sessions: each rendezvous a Session builds is
// byte for byte the one GNS sent, at about the same time (GNS's think
// granularity and the capture clock leave a few ms), and what each Session
// takes from the other's is what GNS took.
//
// The test follows GNS where the Host does better: the side that changes
// role does not take the reliable messages of the connect request it
// accepts (GNS does not process that rendezvous further; the Host does,
// so its connect OK acks them at once).
func TestReplayVectors(t *testing.T) {
	const tolerance = 15 * time.Millisecond
	for _, run := range loadRuns(t) {
		t.Run(run.Name, func(t *testing.T) {
			base := time.Unix(1000, 0)
			at := func(ms float64) time.Time { return base.Add(time.Duration(ms * float64(time.Millisecond))) }
			sess := map[string]*Session{}
			peerOf := map[string]string{"str:alice": "str:bob", "str:bob": "str:alice"}
			certOf := map[string][]byte{}
			taken := map[string][]ICEItem{}
			var accepted string
			var offs []string
			sends := 0
			// Both applications connect at once: each Session starts as a
			// client at its first rendezvous (GNS's connection exists a
			// little earlier: bob receives alice's request before he sends
			// his own).
			for _, sig := range run.Signaling {
				who := sig.Client
				if sig.Kind != "rendezvous" || sig.Direction != "client->server" || sess[who] != nil {
					continue
				}
				rv, err := ParseRendezvous(sig.blob(t))
				if err != nil || rv.ConnectRequest == nil {
					t.Fatalf("first rendezvous of %s: %v %v", who, rv, err)
				}
				s := NewSession(who, run.ConnectionIDs[who], peerOf[who], 0)
				s.MinInterval = MinSendInterval // GNS's pacing
				for _, m := range rv.ReliableMessages {
					if err := s.QueueReliable(at(sig.TMs), m); err != nil {
						t.Fatal(err)
					}
				}
				s.SetConnectRequest(at(sig.TMs), rv.ConnectRequest)
				sess[who] = s
				certOf[who] = rv.ConnectRequest.GetCert().GetCert()
			}
			for i, sig := range run.Signaling {
				if sig.Kind != "rendezvous" {
					continue
				}
				b := sig.blob(t)
				rv, err := ParseRendezvous(b)
				if err != nil {
					t.Fatalf("line %d: %v", i, err)
				}
				if sig.Direction == "client->server" {
					// sig.Client sent b: our Session must build the same.
					who := sig.Client
					s := sess[who]
					w := s.NextWake()
					if w.IsZero() {
						t.Fatalf("line %d: %s has nothing to send", i, who)
					}
					d := w.Sub(at(sig.TMs))
					offs = append(offs, d.Round(100*time.Microsecond).String())
					if d > tolerance || d < -tolerance {
						t.Errorf("line %d: %s sends at %v, GNS at %v ms (off by %v)", i, who, w.Sub(base), sig.TMs, d)
					}
					got := s.NextBlob(w)
					if !bytes.Equal(got, b) {
						g, _ := ParseRendezvous(got)
						t.Fatalf("line %d: %s built\n%v\nGNS sent\n%v", i, who, g, rv)
					}
					if s.NextBlob(w) != nil {
						t.Fatalf("line %d: a second rendezvous at once", i)
					}
					sends++
					continue
				}
				// Delivered to sig.Client.
				who := sig.Client
				s := sess[who]
				now := at(sig.TMs)
				if s == nil {
					t.Fatalf("line %d: %s has no connection yet", i, who)
				}
				if req := rv.ConnectRequest; req != nil && s.connectRequest != nil {
					// Both asked: GNS's role rule.
					cmp := CompareSymmetric(s.LocalID, certOf[who], rv.GetFromConnectionId(), req.GetCert().GetCert())
					if cmp <= 0 {
						continue // we stay the client: theirs is dropped
					}
					accepted = who
					s.BecomeServer(rv.GetFromConnectionId())
					// GNS restarts ICE on the role change: a new password
					// and candidate follow the first ones. Take them from
					// the connect OK it sent.
					var ok *pb.P2PRendezvous
					for _, later := range run.Signaling[i:] {
						if later.Kind == "rendezvous" && later.Client == who && later.Direction == "client->server" {
							ok, _ = ParseRendezvous(later.blob(t))
							break
						}
					}
					if ok == nil || ok.ConnectOk == nil {
						t.Fatalf("line %d: no connect OK from %s follows", i, who)
					}
					for _, m := range ok.ReliableMessages[s.Unacked():] {
						s.QueueReliable(now, m)
					}
					s.SetConnectOK(now, ok.ConnectOk)
					continue
				}
				rec, err := s.Receive(now, rv)
				if err != nil {
					t.Fatalf("line %d: %v", i, err)
				}
				if rv.ConnectOk != nil && rec.ConnectOK == nil {
					t.Fatalf("line %d: connect OK not taken", i)
				}
				taken[who] = append(taken[who], rec.ICE...)
			}
			t.Logf("send times minus GNS's: %v", offs)
			if sends < 6 {
				t.Fatalf("only %d sends replayed", sends)
			}
			if len(run.Controlling) != 1 || accepted != run.Controlling[0] {
				t.Fatalf("%q accepted, GNS's controlling side is %v", accepted, run.Controlling)
			}
			// Each side took the other's password and candidates, once.
			for who, items := range taken {
				var pw int
				for _, it := range items {
					if it.Password != "" {
						pw++
					}
				}
				if pw == 0 || len(items) < 2 {
					t.Errorf("%s took %v", who, items)
				}
			}
			for who, s := range sess {
				if s.Unacked() != 0 {
					t.Errorf("%s: %d unacked at the end", who, s.Unacked())
				}
			}
		})
	}
}

// TestVectorsParse: every captured rendezvous parses and is routed to the
// right session: ids and identities as GNS put them.
func TestVectorsParse(t *testing.T) {
	for _, run := range loadRuns(t) {
		for _, sig := range run.Signaling {
			if sig.Kind != "rendezvous" {
				continue
			}
			rv, err := ParseRendezvous(sig.blob(t))
			if err != nil {
				t.Fatal(err)
			}
			from := rv.GetFromIdentity()
			if rv.GetFromConnectionId() != run.ConnectionIDs[from] {
				t.Fatalf("from id %d, %s's is %d", rv.GetFromConnectionId(), from, run.ConnectionIDs[from])
			}
			if rv.ConnectRequest != nil && rv.ToConnectionId != nil {
				t.Fatal("a connect request names the peer's connection")
			}
			if rv.ConnectRequest == nil && rv.GetToConnectionId() != run.ConnectionIDs[rv.GetToIdentity()] {
				t.Fatalf("to id %d for %s", rv.GetToConnectionId(), rv.GetToIdentity())
			}
			if !rv.GetIceEnabled() || rv.AckReliableMsg == nil {
				t.Fatal("ice_enabled and ack_reliable_msg are in every rendezvous GNS sent")
			}
			if b, _ := MarshalRendezvous(rv); !bytes.Equal(b, sig.blob(t)) {
				t.Fatal("re-encoding differs")
			}
			_ = proto.Size(rv)
		}
	}
}
