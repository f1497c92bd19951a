package lan

import (
	"bytes"
	"crypto/ed25519"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func sampleDatagrams() [][]byte {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	a := announcement{Instance: 1, Seq: 2, TimeMs: 3, TTLms: 4, Port: 5, ID: "str:alice"}
	signed := a
	signed.Cert = []byte("certificate bytes")
	s := signal{Instance: 9, TimeMs: 8, From: "str:alice", To: "str:bob", Blob: []byte("blob")}
	return [][]byte{
		appendAnnouncement(nil, &a),
		sign(appendAnnouncement(nil, &signed), key),
		appendQuery(nil, &query{Instance: 3, From: "str:alice", Target: "str:bob"}),
		appendSignal(nil, &s, false),
		sign(appendSignal(nil, &s, true), key),
	}
}

// TestWireRoundTrip: each datagram parses back to what was appended, and
// every truncated prefix (and one extra byte) is an error.
func TestWireRoundTrip(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	a := announcement{Instance: 1, Seq: 2, TimeMs: 3, TTLms: 4, Port: 5, ID: "str:alice", Cert: []byte("c")}
	b := sign(appendAnnouncement(nil, &a), key)
	got, body, err := parseAnnouncement(b)
	if err != nil {
		t.Fatal(err)
	}
	a.Sig = b[len(b)-ed25519.SignatureSize:]
	if !reflect.DeepEqual(got, a) || !ed25519.Verify(key.Public().(ed25519.PublicKey), signedMessage(body), got.Sig) {
		t.Fatalf("got %+v", got)
	}
	s := signal{Instance: 9, TimeMs: -8, From: "str:alice", To: "str:bob", Blob: []byte("blob")}
	gs, _, err := parseSignal(appendSignal(nil, &s, false))
	if err != nil || !reflect.DeepEqual(gs, s) {
		t.Fatalf("signal %+v %v", gs, err)
	}
	q := query{Instance: 3, From: "str:alice", Target: "str:bob"}
	if gq, err := parseQuery(appendQuery(nil, &q)); err != nil || gq != q {
		t.Fatalf("query %+v %v", gq, err)
	}
	for _, d := range sampleDatagrams() {
		for n := range len(d) {
			if parseAny(d[:n]) == nil {
				t.Errorf("prefix of %d of %d bytes parsed: %x", n, len(d), d[:n])
			}
		}
		if err := parseAny(d); err != nil {
			t.Errorf("%x: %v", d, err)
		}
		if parseAny(append(bytes.Clone(d), 0)) == nil && d[len(magic)+2]&flagSigned == 0 {
			t.Errorf("an extra byte parsed: %x", d)
		}
	}
}

// parseAny parses a datagram of any kind.
func parseAny(b []byte) error {
	k, _, _, err := parseHeader(b)
	if err != nil {
		return err
	}
	switch k {
	case kindAnnounce:
		_, _, err = parseAnnouncement(b)
	case kindQuery:
		_, err = parseQuery(b)
	case kindSignal:
		_, _, err = parseSignal(b)
	default:
		err = errMalformed
	}
	return err
}

// FuzzParse: no input panics, and what parses appends back to the same
// bytes.
func FuzzParse(f *testing.F) {
	for _, d := range sampleDatagrams() {
		f.Add(d)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		k, signed, _, err := parseHeader(b)
		if err != nil {
			return
		}
		var again []byte
		switch k {
		case kindAnnounce:
			a, _, err := parseAnnouncement(b)
			if err != nil {
				return
			}
			again = append(appendAnnouncement(nil, &a), a.Sig...)
		case kindQuery:
			q, err := parseQuery(b)
			if err != nil {
				return
			}
			again = appendQuery(nil, &q)
		case kindSignal:
			s, _, err := parseSignal(b)
			if err != nil {
				return
			}
			again = append(appendSignal(nil, &s, signed), s.Sig...)
		default:
			return
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip:\n%x\n%x", b, again)
		}
	})
}

// TestTable: the table's rules on its own clock: growing sequence numbers
// per instance, a restart (new instance) later by the sender's clock,
// goodbye, the size bound, TTL clamps and expiry, and who may take an
// identity over.
func TestTable(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tab := newTable(2, time.Second, time.Minute)
	addr := netip.MustParseAddrPort("10.0.0.1:5")
	ann := func(id string, inst, seq uint64, ms int64, ttl uint32) *announcement {
		return &announcement{ID: id, Instance: inst, Seq: seq, TimeMs: ms, TTLms: ttl}
	}
	check := func(want verdict, a *announcement, h holder) {
		t.Helper()
		if v, _ := tab.update(t0, a, addr, h); v != want {
			t.Fatalf("%+v: verdict %d, want %d", a, v, want)
		}
	}
	check(vAdded, ann("str:a", 1, 1, 100, 100), holder{}) // TTL clamped up to 1 s
	check(vStale, ann("str:a", 1, 1, 100, 5000), holder{})
	check(vRefreshed, ann("str:a", 1, 2, 100, 5000), holder{})
	check(vStale, ann("str:a", 2, 1, 100, 5000), holder{})     // another instance, not later
	check(vRefreshed, ann("str:a", 2, 1, 101, 5000), holder{}) // restarted
	check(vAdded, ann("str:b", 1, 1, 1, 999999999), holder{key: "k1"})
	check(vFull, ann("str:c", 1, 1, 1, 5000), holder{})
	check(vTakeover, ann("str:b", 2, 1, 2, 5000), holder{})                           // unauthenticated
	check(vTakeover, ann("str:b", 2, 1, 2, 5000), holder{key: "k2"})                  // another unsigned key
	check(vRefreshed, ann("str:b", 1, 2, 2, 5000), holder{key: "k1"})                 // same key
	check(vRefreshed, ann("str:a", 2, 2, 101, 5000), holder{key: "k3"})               // a trivial holder yields
	check(vRefreshed, ann("str:b", 3, 1, 3, 5000), holder{caSigned: true, key: "k4"}) // CA-signed beats unsigned
	check(vTakeover, ann("str:b", 3, 2, 3, 5000), holder{key: "k1"})
	check(vLeft, ann("str:b", 3, 2, 3, 0), holder{caSigned: true, key: "k4"})
	check(vIgnored, ann("str:b", 3, 3, 3, 0), holder{})
	if w := tab.next(); !w.Equal(t0.Add(5 * time.Second)) {
		t.Fatalf("next expiry %v", w)
	}
	if gone := tab.expire(t0.Add(5 * time.Second)); len(gone) != 1 || len(tab.m) != 0 {
		t.Fatalf("expired %d, left %d", len(gone), len(tab.m))
	}
	check(vAdded, ann("str:x", 1, 1, 1, 999999999), holder{})
	if e := tab.m["str:x"]; !e.expires.Equal(t0.Add(time.Minute)) {
		t.Fatalf("TTL not clamped down: %v", e.expires)
	}
}
