package pb

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/vectors"
)

type p2pSignal struct {
	Direction string         `json:"direction"`
	Client    string         `json:"client"`
	Kind      string         `json:"kind"`
	Line      string         `json:"line"`
	PeerField string         `json:"peer_field"`
	Len       int            `json:"payload_len"`
	Decoded   map[string]any `json:"decoded"`
}

type p2pVectors struct {
	Runs []struct {
		Name      string      `json:"name"`
		Signaling []p2pSignal `json:"signaling"`
	} `json:"runs"`
}

// TestP2PRendezvousVectors decodes every rendezvous message two GNS peers
// exchanged through the trivial signaling server, compares every field
// with the recorded decoding, and re-encodes it byte for byte.
func TestP2PRendezvousVectors(t *testing.T) {
	var v p2pVectors
	vectors.Load(t, "p2p_signaling.json", &v)
	n := 0
	kinds := map[string]int{}
	for _, run := range v.Runs {
		for i, s := range run.Signaling {
			if s.Kind != "rendezvous" {
				continue
			}
			n++
			t.Run(fmt.Sprintf("%s_%d", run.Name, i), func(t *testing.T) {
				peer, hx, ok := strings.Cut(s.Line, " ")
				if !ok || peer != s.PeerField {
					t.Fatalf("line %q: peer %q", s.Line, s.PeerField)
				}
				b, err := hex.DecodeString(hx)
				if err != nil || len(b) != s.Len {
					t.Fatalf("hex: %v (%d bytes, want %d)", err, len(b), s.Len)
				}
				m := new(P2PRendezvous)
				if err := proto.Unmarshal(b, m); err != nil {
					t.Fatal(err)
				}
				if u := m.ProtoReflect().GetUnknown(); len(u) != 0 {
					t.Fatalf("unknown fields: %x", u)
				}
				got := normalize(t, toVectorForm(t, m.ProtoReflect()))
				want := normalize(t, s.Decoded)
				if !reflect.DeepEqual(got, want) {
					gj, _ := json.MarshalIndent(got, "", " ")
					wj, _ := json.MarshalIndent(want, "", " ")
					t.Fatalf("fields differ\n got %s\nwant %s", gj, wj)
				}
				enc, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(enc, b) {
					t.Fatalf("re-encoding\n got %x\nwant %x", enc, b)
				}
				switch {
				case m.ConnectRequest != nil:
					kinds["connect_request"]++
				case m.ConnectOk != nil:
					kinds["connect_ok"]++
				case m.ConnectionClosed != nil:
					kinds["connection_closed"]++
				default:
					kinds["other"]++
				}
			})
		}
	}
	if n < 10 {
		t.Fatalf("only %d rendezvous lines", n)
	}
	if kinds["connect_request"] == 0 || kinds["connect_ok"] == 0 {
		t.Fatalf("vectors cover %v: want connect requests and OKs", kinds)
	}
	t.Logf("%d rendezvous messages: %v", n, kinds)
}
