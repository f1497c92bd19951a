package conn

import (
	"bytes"
	"encoding/hex"
	"net/netip"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/internal/snp"
	"github.com/netmsg-go/netmsg/internal/vectors"
)

type vecSession struct {
	Client struct {
		Identity  string `json:"identity"`
		Seed      string `json:"ed25519_private_seed_hex"`
		X25519    string `json:"x25519_ephemeral_private_hex"`
		NonceLE   string `json:"nonce_le_bytes_hex"`
		ConnID    uint32 `json:"connection_id"`
		CertHex   string `json:"cert_bytes_hex"`
		CryptHex  string `json:"crypt_info_bytes_hex"`
		CryptSig  string `json:"crypt_info_signature_hex"`
		Identity2 string `json:"-"`
	} `json:"client"`
	Server struct {
		ConnID   uint32 `json:"connection_id"`
		Identity string `json:"identity_in_cert"`
	} `json:"server"`
	KeyDerivation struct {
		C2SKey string `json:"c2s_key_hex"`
		S2CKey string `json:"s2c_key_hex"`
	} `json:"key_derivation"`
	Datagrams []struct {
		Index int     `json:"index"`
		TMs   float64 `json:"t_ms"`
		Dir   string  `json:"dir"`
		Kind  string  `json:"kind"`
		Hex   string  `json:"hex"`
		Data  *struct {
			Header struct {
				Lead      string `json:"lead"`
				Stats     bool   `json:"flag_inline_stats"`
				TSP       bool   `json:"flag_time_since_prev"`
				To        uint32 `json:"to_connection_id"`
				Wire      uint16 `json:"wire_pkt_num"`
				StatsBlob string `json:"stats_blob_hex"`
				HeaderLen int    `json:"header_len"`
			} `json:"header"`
			PktNum    int64  `json:"pkt_num"`
			Plaintext string `json:"plaintext_hex"`
			Cipher    string `json:"ciphertext_hex"`
			Tag       string `json:"tag_hex"`
		} `json:"data"`
		Control *struct {
			Fields map[string]any `json:"fields"`
		} `json:"control"`
	} `json:"datagrams"`
	Reliable struct {
		S2C []struct {
			Text    string `json:"text"`
			DataHex string `json:"data_hex"`
		} `json:"s2c"`
	} `json:"reliable_messages"`
}

func loadVec(t testing.TB) vecSession {
	var v vecSession
	vectors.Load(t, "direct_session.json", &v)
	if len(v.Datagrams) == 0 {
		t.Fatal("no datagrams")
	}
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

// TestVectorClassify classifies every datagram of the recorded session and
// parses every data header.
func TestVectorClassify(t *testing.T) {
	v := loadVec(t)
	kinds := map[string]Kind{
		"ChallengeRequest": KindChallengeRequest, "ChallengeReply": KindChallengeReply,
		"ConnectRequest": KindConnectRequest, "ConnectOK": KindConnectOK,
		"ConnectionClosed": KindConnectionClosed, "NoConnection": KindNoConnection, "data": KindData,
	}
	for _, d := range v.Datagrams {
		b := unhex(t, d.Hex)
		k, id := Classify(b)
		if k != kinds[d.Kind] {
			t.Errorf("#%d: kind %v, want %s", d.Index, k, d.Kind)
		}
		// The id the receiver routes by is always its own.
		want := v.Client.ConnID
		if d.Dir == "c2s" {
			want = v.Server.ConnID
			if d.Kind == "ChallengeRequest" || d.Kind == "ConnectRequest" {
				want = v.Client.ConnID // the server keys these by the client's id
			}
		}
		if id != want {
			t.Errorf("#%d %s: id %d, want %d", d.Index, d.Kind, id, want)
		}
		if d.Data == nil {
			continue
		}
		h, n, err := parseDataHeader(b)
		if err != nil {
			t.Fatalf("#%d: %v", d.Index, err)
		}
		hd := d.Data.Header
		if h.ToConnID != hd.To || h.WirePktNum != hd.Wire || n != hd.HeaderLen ||
			(h.Stats != nil) != hd.Stats || h.HasTimeSincePrev != hd.TSP ||
			hex.EncodeToString(h.Stats) != hd.StatsBlob {
			t.Errorf("#%d: header %+v n=%d, want %+v", d.Index, h, n, hd)
		}
		if !bytes.Equal(appendDataHeader(nil, &h), b[:n]) {
			t.Errorf("#%d: header does not re-encode", d.Index)
		}
		if got := hex.EncodeToString(b[n:]); got != d.Data.Cipher+d.Data.Tag {
			t.Errorf("#%d: payload is not ciphertext||tag", d.Index)
		}
	}
}

// seqReader yields b, then fails.
type seqReader struct{ b []byte }

func (r *seqReader) Read(p []byte) (int, error) {
	n := copy(p, r.b)
	r.b = r.b[n:]
	if n == 0 {
		return 0, bytes.ErrTooLarge
	}
	return n, nil
}

// TestVectorClientReplay replays the recorded session from our client's
// side: from the recorded keys our client produces the recorded challenge
// request and connect request byte for byte, accepts GNS's connect OK,
// decrypts every data packet GNS sent to the recorded plaintext, encrypts
// the recorded client plaintexts to the recorded ciphertexts, delivers
// GNS's messages and closes as recorded.
func TestVectorClientReplay(t *testing.T) {
	v := loadVec(t)
	dg := func(i int) []byte { return unhex(t, v.Datagrams[i].Hex) }
	at := func(usec int64) time.Time { return time.UnixMicro(usec) }

	cert, err := pb.Marshal(&pb.CertificateSigned{Cert: unhex(t, v.Client.CertHex)})
	if err != nil {
		t.Fatal(err)
	}
	rnd := append(unhex(t, v.Client.X25519), unhex(t, v.Client.NonceLE)...)
	cfg := Config{
		Identity: v.Client.Identity,
		Key:      unhex(t, v.Client.Seed),
		Cert:     cert,
		Rand:     &seqReader{rnd},
	}
	server := netip.MustParseAddrPort("[::1]:27020")
	c, err := Dial(cfg, at(1_000_000), v.Client.ConnID, server)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 0, 2048)

	// 1. Challenge request, byte for byte.
	got, ok := c.Poll(at(1_000_000), buf)
	if !ok || !bytes.Equal(got, dg(0)) {
		t.Fatalf("challenge request:\n got %x\nwant %x", got, dg(0))
	}
	if _, ok := c.Poll(at(1_000_000), buf); ok {
		t.Fatal("a second datagram at once")
	}

	// 2. Challenge reply in, connect request out. The recorded client sent
	// no ping estimate; GNS (and we) send the round trip measured from the
	// echoed time stamp, here 1 ms. Apart from that field the bytes match.
	if err := c.HandleDatagram(at(1_001_000), server, dg(1)); err != nil {
		t.Fatal(err)
	}
	got, ok = c.Poll(at(1_001_000), buf)
	if !ok {
		t.Fatal("no connect request")
	}
	var req pb.UDPConnectRequest
	if err := proto.Unmarshal(got[1:], &req); err != nil || got[0] != 0x22 {
		t.Fatalf("connect request does not parse: %v", err)
	}
	if req.GetPingEstMs() != 1 {
		t.Errorf("ping_est_ms %d, want 1", req.GetPingEstMs())
	}
	req.PingEstMs = nil
	re, _ := pb.Marshal(&req)
	if want := dg(2); !bytes.Equal(append([]byte{0x22}, re...), want) {
		t.Fatalf("connect request:\n got %x\nwant %x", append([]byte{0x22}, re...), want)
	}

	// 3. Connect OK: verified, keys derived, connected.
	if err := c.HandleDatagram(at(1_003_424), server, dg(3)); err != nil {
		t.Fatal(err)
	}
	if c.State() != StateConnected || c.RemoteID() != v.Server.ConnID {
		t.Fatalf("state %d remote id %d after connect OK; end %d %q", c.State(), c.RemoteID(), c.EndReason(), c.EndDebug())
	}
	// The server's certificate names the anonymous localhost identity
	// ("ip:::1"), which GNS replaces by the peer's address.
	if c.RemoteIdentity() != "ip:[::1]:27020" {
		t.Errorf("remote identity %q", c.RemoteIdentity())
	}
	if c.PeerProtocolVersion() != 13 {
		t.Errorf("peer version %d", c.PeerProtocolVersion())
	}

	// 4. Every data packet of both directions against our keys: GNS's
	// packets open to the recorded plaintext; the recorded client
	// plaintexts seal to the recorded bytes.
	for _, d := range v.Datagrams {
		if d.Data == nil {
			continue
		}
		b := unhex(t, d.Hex)
		h, n, _ := parseDataHeader(b)
		if d.Dir == "s2c" {
			pt, err := c.recvC.Open(append([]byte(nil), b[n:]...), uint64(d.Data.PktNum))
			if err != nil || hex.EncodeToString(pt) != d.Data.Plaintext {
				t.Errorf("#%d: open: %v %x", d.Index, err, pt)
			}
		} else {
			ct := c.sendC.Seal(nil, unhex(t, d.Data.Plaintext), uint64(d.Data.PktNum))
			if !bytes.Equal(ct, b[n:]) {
				t.Errorf("#%d: seal differs", d.Index)
			}
			if h.ToConnID != v.Server.ConnID {
				t.Errorf("#%d: to %d", d.Index, h.ToConnID)
			}
		}
	}

	// 5. GNS's data packets through HandleDatagram, in order, with our
	// client sending in between as many packets as the recorded client had
	// when each arrived (GNS's acks name them; acking a packet never sent
	// is a protocol violation).
	now := at(1_011_000)
	sendUntil := func(next int64) {
		t.Helper()
		for c.eng != nil && c.eng.Stats(now).PacketsSent+2 < next {
			if _, err := c.Send(now, 0, []byte("x"), snp.NoNagle); err != nil {
				t.Fatal(err)
			}
			for {
				if _, ok := c.Poll(now, buf); !ok {
					break
				}
			}
			now = now.Add(time.Millisecond)
		}
	}
	var texts []string
	for _, i := range []int{4, 7, 10, 12} {
		sendUntil(map[int]int64{4: 2, 7: 4, 10: 7, 12: 8}[i])
		if err := c.HandleDatagram(now, server, dg(i)); err != nil {
			t.Fatalf("#%d: %v (state %d, %d %q)", i, err, c.State(), c.EndReason(), c.EndDebug())
		}
		for _, m := range recvAll(c) {
			texts = append(texts, string(m.Data))
		}
		now = now.Add(time.Millisecond)
	}
	if len(texts) != len(v.Reliable.S2C) {
		t.Fatalf("delivered %q", texts)
	}
	for i, m := range v.Reliable.S2C {
		if texts[i] != m.Text {
			t.Errorf("message %d: %q, want %q", i, texts[i], m.Text)
		}
	}
	if texts[1] != "Thou art utterly alone." {
		t.Errorf("message 2 is %q", texts[1])
	}
	if c.State() != StateConnected {
		t.Fatalf("state %d", c.State())
	}

	// 6. Replays of GNS's packets are refused before they reach the engine.
	before := c.ConnStats().Replayed
	for _, i := range []int{4, 7, 10, 12} {
		if err := c.HandleDatagram(now, server, dg(i)); err == nil {
			t.Errorf("#%d replay accepted", i)
		}
	}
	if c.ConnStats().Replayed != before+4 {
		t.Errorf("replays counted %d", c.ConnStats().Replayed-before)
	}

	// 7. Close as the recorded client did; GNS's no connection answers it.
	c.Close(now, 1000, "vec done", false)
	got, ok = c.Poll(now, buf)
	if !ok || got[0] != 0x24 || len(got) != 512 {
		t.Fatalf("no padded connection closed: %x", got)
	}
	_, cl, err := pb.ParseControl(got)
	if err != nil {
		t.Fatal(err)
	}
	// The recorded client (Python) wrote this body in declaration order
	// (4, 5, 2, 3); GNS, like protobuf-go, writes field-number order. Same
	// fields, same padding, other order.
	_, rec, err := pb.ParseControl(dg(15))
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(cl, rec) || len(got) != len(dg(15)) {
		t.Errorf("connection closed %v, want %v", cl, rec)
	}
	if err := c.HandleDatagram(now, server, dg(16)); err != nil {
		t.Fatal(err)
	}
	if c.State() != StateFinWait {
		t.Errorf("state %d after no connection", c.State())
	}
	c.Poll(now.Add(finWaitTimeout), buf)
	if c.State() != StateDead {
		t.Errorf("state %d after fin wait", c.State())
	}
}
