package pb

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"reflect"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/netmsg-go/netmsg/internal/vectors"
)

type controlVector struct {
	Index   int    `json:"index"`
	Dir     string `json:"dir"`
	Kind    string `json:"kind"`
	Hex     string `json:"hex"`
	Control *struct {
		MsgID   int            `json:"msg_id"`
		Padded  bool           `json:"padded"`
		BodyLen int            `json:"body_len"`
		BodyHex string         `json:"body_hex"`
		Fields  map[string]any `json:"fields"`
	} `json:"control"`
	Data *struct {
		Header struct {
			StatsBlobHex string         `json:"stats_blob_hex"`
			Stats        map[string]any `json:"stats"`
		} `json:"header"`
	} `json:"data"`
}

type directSession struct {
	Datagrams []controlVector `json:"datagrams"`
}

func loadSession(t testing.TB) directSession {
	var v directSession
	vectors.Load(t, "direct_session.json", &v)
	return v
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// toVectorForm renders m as the vectors write decoded protobufs: GNS field
// names, 64-bit integers as decimal strings, bytes as hex, enums as numbers,
// and the serialized certificate and crypt info also decoded under
// "<field>_decoded".
func toVectorForm(t testing.TB, m protoreflect.Message) map[string]any {
	t.Helper()
	out := map[string]any{}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := string(fd.Name())
		if fd.IsList() {
			l := v.List()
			var vals []any
			for i := 0; i < l.Len(); i++ {
				vals = append(vals, scalar(t, fd, l.Get(i)))
			}
			out[name] = vals
			return true
		}
		out[name] = scalar(t, fd, v)
		var inner proto.Message
		switch {
		case m.Descriptor().FullName() == "netmsg.gns.CertificateSigned" && name == "cert":
			inner = new(Certificate)
		case m.Descriptor().FullName() == "netmsg.gns.SessionCryptInfoSigned" && name == "info":
			inner = new(SessionCryptInfo)
		}
		if inner != nil {
			if err := proto.Unmarshal(v.Bytes(), inner); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			out[name+"_decoded"] = toVectorForm(t, inner.ProtoReflect())
		}
		return true
	})
	return out
}

func scalar(t testing.TB, fd protoreflect.FieldDescriptor, v protoreflect.Value) any {
	switch fd.Kind() {
	case protoreflect.MessageKind:
		return toVectorForm(t, v.Message())
	case protoreflect.BytesKind:
		return hex.EncodeToString(v.Bytes())
	case protoreflect.StringKind:
		return v.String()
	case protoreflect.EnumKind:
		return float64(v.Enum())
	case protoreflect.Fixed64Kind, protoreflect.Uint64Kind:
		return strconv.FormatUint(v.Uint(), 10)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return float64(v.Uint())
	case protoreflect.BoolKind:
		return v.Bool()
	}
	t.Fatalf("field %s: unexpected kind %v", fd.FullName(), fd.Kind())
	return nil
}

// normalize passes v through JSON so that it compares with decoded JSON.
func normalize(t testing.TB, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestControlVectors parses every control datagram of direct_session.json,
// compares every field with the recorded decoding and re-encodes it.
func TestControlVectors(t *testing.T) {
	v := loadSession(t)
	n := 0
	for _, d := range v.Datagrams {
		if d.Kind == "data" {
			continue
		}
		n++
		t.Run(strconv.Itoa(d.Index)+"_"+d.Kind, func(t *testing.T) {
			pkt := unhex(t, d.Hex)
			id, m, err := ParseControl(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if int(id) != d.Control.MsgID {
				t.Fatalf("id %d, want %d", id, d.Control.MsgID)
			}
			if id.IsPadded() != d.Control.Padded {
				t.Fatalf("padded %v, want %v", id.IsPadded(), d.Control.Padded)
			}
			wantName := map[string]string{
				"ChallengeRequest": "UDPChallengeRequest", "ChallengeReply": "UDPChallengeReply",
				"ConnectRequest": "UDPConnectRequest", "ConnectOK": "UDPConnectOK",
				"ConnectionClosed": "UDPConnectionClosed", "NoConnection": "UDPNoConnection",
			}[d.Kind]
			if got := string(m.ProtoReflect().Descriptor().Name()); got != wantName {
				t.Fatalf("parsed as %s, want %s", got, wantName)
			}
			if len(m.ProtoReflect().GetUnknown()) != 0 {
				t.Fatalf("unknown fields left: %x", m.ProtoReflect().GetUnknown())
			}
			got := normalize(t, toVectorForm(t, m.ProtoReflect()))
			want := normalize(t, d.Control.Fields)
			if !reflect.DeepEqual(got, want) {
				gj, _ := json.MarshalIndent(got, "", " ")
				wj, _ := json.MarshalIndent(want, "", " ")
				t.Fatalf("fields differ\n got %s\nwant %s", gj, wj)
			}

			body := unhex(t, d.Control.BodyHex)
			enc, err := Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			out, err := AppendControl(nil, id, m)
			if err != nil {
				t.Fatal(err)
			}
			if d.Kind == "ConnectionClosed" {
				// The Python client wrote this body in declaration order
				// (fields 4, 5, 2, 3). GNS, like any C++ protobuf, writes
				// field-number order (its ConnectOK here: 1, 3, 4, 5, 7, 8),
				// and so do we. Same fields, other order.
				if bytes.Equal(enc, body) {
					t.Fatal("expected the recorded body to be in declaration order")
				}
				m2 := new(UDPConnectionClosed)
				if err := proto.Unmarshal(body, m2); err != nil || !proto.Equal(m2, m) {
					t.Fatal("reordered body differs in content")
				}
				if want := "12087665632064" + "6f6e6518e807" + "257681dd5d2d4d3c2b1a"; hex.EncodeToString(enc) != want {
					t.Fatalf("encoding %x, want %s", enc, want)
				}
				if len(out) != len(pkt) || !bytes.Equal(out[:3], pkt[:3]) || !bytes.Equal(out[3+len(enc):], pkt[3+len(enc):]) {
					t.Fatal("framing differs")
				}
				return
			}
			if !bytes.Equal(enc, body) {
				t.Fatalf("re-encoding\n got %x\nwant %x", enc, body)
			}
			if !bytes.Equal(out, pkt) {
				t.Fatalf("datagram\n got %x\nwant %x", out, pkt)
			}
		})
	}
	if n != 7 {
		t.Fatalf("%d control datagrams, want 7", n)
	}
}

// TestInlineStatsVectors parses every inline stats blob of both vector files.
func TestInlineStatsVectors(t *testing.T) {
	type blob struct {
		hex   string
		stats map[string]any
	}
	var blobs []blob
	for _, d := range loadSession(t).Datagrams {
		if d.Data != nil && d.Data.Header.StatsBlobHex != "" {
			blobs = append(blobs, blob{d.Data.Header.StatsBlobHex, d.Data.Header.Stats})
		}
	}
	var frames struct {
		PacketVectors []struct {
			Header struct {
				StatsBlobHex string         `json:"stats_blob_hex"`
				Stats        map[string]any `json:"stats"`
			} `json:"header"`
		} `json:"packet_vectors"`
	}
	vectors.Load(t, "snp_frames.json", &frames)
	for _, p := range frames.PacketVectors {
		if p.Header.StatsBlobHex != "" {
			blobs = append(blobs, blob{p.Header.StatsBlobHex, p.Header.Stats})
		}
	}
	if len(blobs) < 4 {
		t.Fatalf("only %d stats blobs", len(blobs))
	}
	for _, b := range blobs {
		raw := unhex(t, b.hex)
		m := new(UDPStats)
		if err := proto.Unmarshal(raw, m); err != nil {
			t.Fatal(err)
		}
		got := normalize(t, toVectorForm(t, m.ProtoReflect()))
		if !reflect.DeepEqual(got, normalize(t, b.stats)) {
			t.Fatalf("%s: got %v, want %v", b.hex, got, b.stats)
		}
		enc, err := Marshal(m)
		if err != nil || !bytes.Equal(enc, raw) {
			t.Fatalf("%s: re-encoded %x (%v)", b.hex, enc, err)
		}
	}
}
