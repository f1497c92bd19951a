package crypto_test

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/internal/vectors"
)

func h(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func ident(t testing.TB, s string) crypto.Identity {
	t.Helper()
	id, err := parseIdentity(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

type session struct {
	Client struct {
		Seed   string `json:"ed25519_private_seed_hex"`
		Public string `json:"ed25519_public_hex"`
		X25519 string `json:"x25519_ephemeral_private_hex"`
		Nonce  string `json:"nonce"`
		Cert   string `json:"cert_bytes_hex"`
	} `json:"client"`
	Server struct {
		Public string `json:"ed25519_public_hex"`
		Cert   string `json:"cert_bytes_hex"`
	} `json:"server"`
	Datagrams []struct {
		Kind string `json:"kind"`
		Hex  string `json:"hex"`
	} `json:"datagrams"`
}

func loadSession(t testing.TB) session {
	var v session
	vectors.Load(t, "direct_session.json", &v)
	return v
}

// TestServerCertAsGNSBuildsIt rebuilds the GNS server's unsigned certificate
// from its public key and identity: the legacy binary form, the string and
// app ID 0, byte for byte.
func TestServerCertAsGNSBuildsIt(t *testing.T) {
	v := loadSession(t)
	c, err := crypto.NewCert(crypto.CertTemplate{
		PublicKey: h(t, v.Server.Public),
		Identity:  ident(t, "ip:::1"),
		AppIDs:    []uint32{0},
	})
	if err != nil {
		t.Fatal(err)
	}
	s, err := crypto.UnsignedCert(c)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(s.Cert); got != v.Server.Cert {
		t.Fatalf("cert\n got %s\nwant %s", got, v.Server.Cert)
	}
}

// TestConnectRequestReproduced: from the client seed and ephemeral key, our
// ConnectRequest (cert, crypt info, signature, and the whole datagram given
// the recorded header fields) equals the recorded bytes.
func TestConnectRequestReproduced(t *testing.T) {
	v := loadSession(t)
	idKey := ed25519.NewKeyFromSeed(h(t, v.Client.Seed))
	if hex.EncodeToString(idKey.Public().(ed25519.PublicKey)) != v.Client.Public {
		t.Fatal("public key")
	}
	c, err := crypto.NewCert(crypto.CertTemplate{
		PublicKey:        idKey.Public().(ed25519.PublicKey),
		Identity:         ident(t, "str:vecclient"),
		NoLegacyIdentity: true, // the vectors' client omits it; GNS writes it
		AppIDs:           []uint32{0},
	})
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := crypto.UnsignedCert(c)
	if hex.EncodeToString(cert.Cert) != v.Client.Cert {
		t.Fatalf("cert %x", cert.Cert)
	}
	x, _ := ecdh.X25519().NewPrivateKey(h(t, v.Client.X25519))
	nonce, _ := strconv.ParseUint(v.Client.Nonce, 10, 64)
	local, err := crypto.NewLocalCryptFromKey(x, nonce, idKey, crypto.DefaultCiphers)
	if err != nil {
		t.Fatal(err)
	}
	var recorded []byte
	for _, d := range v.Datagrams {
		if d.Kind == "ConnectRequest" {
			recorded = h(t, d.Hex)
		}
	}
	_, m, err := pb.ParseControl(recorded)
	if err != nil {
		t.Fatal(err)
	}
	rec := m.(*pb.UDPConnectRequest)
	req := &pb.UDPConnectRequest{
		ClientConnectionId: rec.ClientConnectionId,
		Challenge:          rec.Challenge,
		MyTimestamp:        rec.MyTimestamp,
		Cert:               cert,
		Crypt:              local.Signed,
	}
	out, err := pb.AppendControl(nil, pb.UDPMsgID_UDP_MSG_CONNECT_REQUEST, req)
	if err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(out) != hex.EncodeToString(recorded) {
		t.Fatalf("datagram\n got %x\nwant %x", out, recorded)
	}
}

// TestGNSStyleCertFields checks the legacy identity forms GNS writes for
// each identity type.
func TestGNSStyleCertFields(t *testing.T) {
	pub := make([]byte, 32)
	for _, tc := range []struct {
		id   string
		want *pb.IdentityLegacyBinary
		sid  bool
	}{
		{"str:alice", &pb.IdentityLegacyBinary{GenericString: proto.String("alice")}, false},
		{"gen:0102", &pb.IdentityLegacyBinary{GenericBytes: []byte{1, 2}}, false},
		{"steamid:76561197960287930", &pb.IdentityLegacyBinary{SteamId: proto.Uint64(76561197960287930)}, true},
		{"ip:1.2.3.4:27015", &pb.IdentityLegacyBinary{Ipv6AndPort: h(t, "00000000000000000000ffff010203046987")}, false},
		{"psn:42", &pb.IdentityLegacyBinary{}, false},
	} {
		c, err := crypto.NewCert(crypto.CertTemplate{PublicKey: pub, Identity: ident(t, tc.id)})
		if err != nil {
			t.Fatal(err)
		}
		if !proto.Equal(c.LegacyIdentityBinary, tc.want) || c.LegacyIdentityBinary == nil {
			t.Errorf("%s: legacy %v, want %v", tc.id, c.LegacyIdentityBinary, tc.want)
		}
		if (c.LegacySteamId != nil) != tc.sid || c.GetIdentityString() != ident(t, tc.id).String() {
			t.Errorf("%s: steam id %v, string %q", tc.id, c.LegacySteamId, c.GetIdentityString())
		}
		// The identity reads back from the legacy form alone.
		c.IdentityString = nil
		if got, ok, err := crypto.CertIdentity(c); tc.id != "psn:42" && (!ok || err != nil || got != ident(t, tc.id).String()) {
			t.Errorf("%s: legacy reads back as %q %v %v", tc.id, got, ok, err)
		}
	}
}

func TestKeyID(t *testing.T) {
	// ID of the vectors' client key: SHA-256, first 8 bytes, little-endian.
	pub := h(t, "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8")
	if got := crypto.KeyID(pub); got == 0 || crypto.KeyID(pub[:31]) != 0 {
		t.Fatalf("KeyID %d", got)
	}
}

// peerFixture is a peer with an identity key, a certificate and crypt info.
type peerFixture struct {
	key   ed25519.PrivateKey
	cert  *pb.CertificateSigned
	crypt *crypto.LocalCrypt
}

func newPeer(t testing.TB, tmpl crypto.CertTemplate, ca ed25519.PrivateKey) peerFixture {
	k, _ := crypto.GenerateIdentityKey(nil)
	tmpl.PublicKey = k.Public().(ed25519.PublicKey)
	c, err := crypto.NewCert(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	var s *pb.CertificateSigned
	if ca != nil {
		s, err = crypto.SignCert(c, ca)
	} else {
		s, err = crypto.UnsignedCert(c)
	}
	if err != nil {
		t.Fatal(err)
	}
	lc, err := crypto.NewLocalCrypt(nil, k, crypto.DefaultCiphers)
	if err != nil {
		t.Fatal(err)
	}
	return peerFixture{k, s, lc}
}

func TestVerifyPeer(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	caKey, _ := crypto.GenerateIdentityKey(nil)
	otherCA, _ := crypto.GenerateIdentityKey(nil)
	trust, err := crypto.NewTrustStore(crypto.CA{PublicKey: caKey.Public().(ed25519.PublicKey), AppIDs: []uint32{480, 570}})
	if err != nil {
		t.Fatal(err)
	}
	good := crypto.CertTemplate{Identity: ident(t, "str:bob"), AppIDs: []uint32{480}, Created: now.Add(-time.Hour), Expiry: now.Add(time.Hour)}
	policy := func() *crypto.PeerPolicy {
		return &crypto.PeerPolicy{Trust: trust, AppID: 480, Now: now, ExpectedIdentity: "str:bob", ParseIdentity: parseIdentity}
	}
	with := func(f func(*crypto.CertTemplate)) crypto.CertTemplate { c := good; f(&c); return c }

	p := newPeer(t, good, caKey)
	peer, err := crypto.VerifyPeer(policy(), p.cert, p.crypt.Signed)
	if err != nil {
		t.Fatal(err)
	}
	if !peer.CASigned || peer.CAKeyID != crypto.KeyID(caKey.Public().(ed25519.PublicKey)) || peer.Identity != "str:bob" {
		t.Fatalf("peer %+v", peer)
	}

	type check struct {
		name   string
		p      peerFixture
		policy func(*crypto.PeerPolicy)
		mutate func(*pb.CertificateSigned, *pb.SessionCryptInfoSigned)
		want   error
		reason int
	}
	tampered := newPeer(t, good, caKey)
	tampered.cert.Cert = append([]byte(nil), tampered.cert.Cert...)
	tampered.cert.Cert[len(tampered.cert.Cert)-1] ^= 1
	for _, c := range []check{
		{name: "unknown CA", p: newPeer(t, good, otherCA), want: crypto.ErrCAUnknown, reason: 4003},
		{name: "CA signature", p: tampered, want: crypto.ErrCASignature, reason: 4003},
		{name: "expired", p: newPeer(t, with(func(c *crypto.CertTemplate) { c.Expiry = now.Add(-time.Second) }), caKey), want: crypto.ErrCertExpired, reason: 4003},
		{name: "CA expired", p: p, policy: func(pp *crypto.PeerPolicy) {
			pp.Trust, _ = crypto.NewTrustStore(crypto.CA{PublicKey: caKey.Public().(ed25519.PublicKey), Expiry: now.Add(-time.Second)})
		}, want: crypto.ErrCAExpired, reason: 4003},
		{name: "wrong identity", p: p, policy: func(pp *crypto.PeerPolicy) { pp.ExpectedIdentity = "str:carol" }, want: crypto.ErrIdentityMismatch, reason: 4003},
		{name: "app ID", p: p, policy: func(pp *crypto.PeerPolicy) { pp.AppID = 570 }, want: crypto.ErrCertAppID, reason: 4003},
		{name: "CA app scope", p: newPeer(t, with(func(c *crypto.CertTemplate) { c.AppIDs = []uint32{730} }), caKey), policy: func(pp *crypto.PeerPolicy) { pp.AppID = 730 }, want: crypto.ErrCertAppID, reason: 4003},
		{name: "no app ID", p: newPeer(t, with(func(c *crypto.CertTemplate) { c.AppIDs = nil }), caKey), want: crypto.ErrCertNoAppID, reason: 4003},
		{name: "signed without identity", p: newPeer(t, with(func(c *crypto.CertTemplate) { c.Identity = nil }), caKey), want: crypto.ErrCertNoIdentity, reason: 4003},
		{name: "unsigned refused", p: newPeer(t, good, nil), want: crypto.ErrUnsignedCert, reason: 4003},
		{name: "missing crypt", p: p, mutate: func(_ *pb.CertificateSigned, s *pb.SessionCryptInfoSigned) { s.Info = nil }, want: crypto.ErrMissingCertOrCrypt, reason: 4002},
		{name: "crypt signature", p: p, mutate: func(_ *pb.CertificateSigned, s *pb.SessionCryptInfoSigned) { s.Signature[0] ^= 1 }, want: crypto.ErrCryptSignature, reason: 4002},
		{name: "no crypt signature", p: p, mutate: func(_ *pb.CertificateSigned, s *pb.SessionCryptInfoSigned) { s.Signature = nil }, want: crypto.ErrCryptSignature, reason: 4002},
		{name: "cert garbage", p: newPeer(t, good, nil), policy: func(pp *crypto.PeerPolicy) { pp.AllowUnsigned = true },
			mutate: func(c *pb.CertificateSigned, _ *pb.SessionCryptInfoSigned) { c.Cert = []byte{0xff} }, want: crypto.ErrCertParse, reason: 4002},
		{name: "protocol changed", p: p, policy: func(pp *crypto.PeerPolicy) { pp.EarlierProtocolVersion = 12 }, want: crypto.ErrProtocolChanged, reason: 4006},
	} {
		t.Run(c.name, func(t *testing.T) {
			pp := policy()
			if c.policy != nil {
				c.policy(pp)
			}
			cert := proto.Clone(c.p.cert).(*pb.CertificateSigned)
			crypt := proto.Clone(c.p.crypt.Signed).(*pb.SessionCryptInfoSigned)
			if c.mutate != nil {
				c.mutate(cert, crypt)
			}
			_, err := crypto.VerifyPeer(pp, cert, crypt)
			if !errors.Is(err, c.want) || crypto.EndReasonOf(err) != c.reason {
				t.Fatalf("err %v (reason %d), want %v (%d)", err, crypto.EndReasonOf(err), c.want, c.reason)
			}
		})
	}

	// With AllowUnsigned, a bad CA signature demotes to unsigned.
	pp := policy()
	pp.AllowUnsigned = true
	peer, err = crypto.VerifyPeer(pp, newPeer(t, good, otherCA).cert, newPeer(t, good, otherCA).crypt.Signed)
	if !errors.Is(err, crypto.ErrCryptSignature) {
		t.Fatalf("mismatched crypt: %v", err)
	}
	q := newPeer(t, good, otherCA)
	if peer, err = crypto.VerifyPeer(pp, q.cert, q.crypt.Signed); err != nil || peer.CASigned {
		t.Fatalf("demoted: %v %+v", err, peer)
	}
	// A localhost identity is never matched against the expected one.
	l := newPeer(t, crypto.CertTemplate{Identity: ident(t, "ip:127.0.0.1:27020")}, nil)
	pp.ExpectedIdentity = "str:someone"
	if peer, err = crypto.VerifyPeer(pp, l.cert, l.crypt.Signed); err != nil || !peer.IdentityIsLocalhost {
		t.Fatalf("localhost: %v", err)
	}
	// An old protocol version is 4006.
	old := proto.Clone(l.crypt.Info).(*pb.SessionCryptInfo)
	old.ProtocolVersion = proto.Uint32(7)
	b, _ := pb.Marshal(old)
	_, err = crypto.VerifyPeer(pp, l.cert, &pb.SessionCryptInfoSigned{Info: b, Signature: ed25519.Sign(l.key, b)})
	if !errors.Is(err, crypto.ErrOldProtocol) || crypto.EndReasonOf(err) != 4006 {
		t.Fatalf("old version: %v", err)
	}
}

// TestVerifyVectorsHandshake verifies both recorded handshakes as GNS's
// open-source build does (unsigned certificates allowed).
func TestVerifyVectorsHandshake(t *testing.T) {
	v := loadSession(t)
	for _, d := range v.Datagrams {
		if d.Kind != "ConnectRequest" && d.Kind != "ConnectOK" {
			continue
		}
		_, m, err := pb.ParseControl(h(t, d.Hex))
		if err != nil {
			t.Fatal(err)
		}
		var cert *pb.CertificateSigned
		var crypt *pb.SessionCryptInfoSigned
		switch m := m.(type) {
		case *pb.UDPConnectRequest:
			cert, crypt = m.Cert, m.Crypt
		case *pb.UDPConnectOK:
			cert, crypt = m.Cert, m.Crypt
		}
		p, err := crypto.VerifyPeer(&crypto.PeerPolicy{AllowUnsigned: true, ParseIdentity: parseIdentity, EarlierProtocolVersion: 13}, cert, crypt)
		if err != nil {
			t.Fatalf("%s: %v", d.Kind, err)
		}
		if _, err := crypto.VerifyPeer(&crypto.PeerPolicy{}, cert, crypt); !errors.Is(err, crypto.ErrUnsignedCert) {
			t.Fatalf("%s: unsigned accepted by the zero policy: %v", d.Kind, err)
		}
		t.Logf("%s: identity %s localhost=%v", d.Kind, p.Identity, p.IdentityIsLocalhost)
	}
}
