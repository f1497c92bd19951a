package pb

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/proto"
)

func seedControl(f *testing.F) {
	for _, d := range loadSession(f).Datagrams {
		if d.Kind != "data" {
			f.Add(unhex(f, d.Hex))
		}
	}
}

// FuzzParseControl: no panic on any input; whatever parses re-encodes to a
// datagram that parses to an equal message, and re-encodes to itself.
func FuzzParseControl(f *testing.F) {
	seedControl(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		id, m, err := ParseControl(b)
		if err != nil {
			return
		}
		out, err := AppendControl(nil, id, m)
		if err != nil {
			// A body that only fits because the received datagram was
			// longer than we would ever send is the one allowed failure.
			return
		}
		id2, m2, err := ParseControl(out)
		if err != nil {
			if id.IsPadded() && proto.Size(m) == 0 {
				return // GNS rejects an empty padded body; so do we
			}
			t.Fatalf("re-encoding does not parse: %v", err)
		}
		if id2 != id || !proto.Equal(m, m2) {
			t.Fatal("round trip changed the message")
		}
		out2, err := AppendControl(nil, id2, m2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatal("encoding is not stable")
		}
	})
}

// FuzzParseStats: the inline stats blob of a data packet.
func FuzzParseStats(f *testing.F) {
	f.Add([]byte{0x18, 0x02})
	f.Add([]byte{0x0a, 0x0c, 0x0a, 0x0a, 0x08, 0x00, 0x10, 0x00, 0x18, 0x00, 0x20, 0x00, 0x28, 0x06})
	f.Fuzz(func(t *testing.T, b []byte) {
		m := new(UDPStats)
		if proto.Unmarshal(b, m) != nil {
			return
		}
		out, err := Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2 := new(UDPStats)
		if err := proto.Unmarshal(out, m2); err != nil || !proto.Equal(m, m2) {
			t.Fatalf("round trip: %v", err)
		}
	})
}

// FuzzParseCertificate covers the two messages whose exact bytes are signed.
func FuzzParseCertificate(f *testing.F) {
	for _, d := range loadSession(f).Datagrams {
		if d.Kind == "ConnectRequest" || d.Kind == "ConnectOK" {
			_, m, err := ParseControl(unhex(f, d.Hex))
			if err != nil {
				f.Fatal(err)
			}
			switch m := m.(type) {
			case *UDPConnectRequest:
				f.Add(m.GetCert().GetCert(), m.GetCrypt().GetInfo())
			case *UDPConnectOK:
				f.Add(m.GetCert().GetCert(), m.GetCrypt().GetInfo())
			}
		}
	}
	f.Fuzz(func(t *testing.T, cert, info []byte) {
		for _, m := range []proto.Message{new(Certificate), new(SessionCryptInfo)} {
			b := cert
			if _, ok := m.(*SessionCryptInfo); ok {
				b = info
			}
			if proto.Unmarshal(b, m) != nil {
				continue
			}
			out, err := Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			m2 := m.ProtoReflect().New().Interface()
			if err := proto.Unmarshal(out, m2); err != nil || !proto.Equal(m, m2) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}
