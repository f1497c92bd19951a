package crypto

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/internal/vectors"
)

type sessionVectors struct {
	Client struct {
		Seed         string `json:"ed25519_private_seed_hex"`
		Public       string `json:"ed25519_public_hex"`
		X25519       string `json:"x25519_ephemeral_private_hex"`
		X25519Public string `json:"x25519_ephemeral_public_hex"`
		Nonce        string `json:"nonce"`
		ConnID       uint32 `json:"connection_id"`
		Cert         string `json:"cert_bytes_hex"`
		Crypt        string `json:"crypt_info_bytes_hex"`
		Sig          string `json:"crypt_info_signature_hex"`
	} `json:"client"`
	Server struct {
		ConnID uint32 `json:"connection_id"`
		Cert   string `json:"cert_bytes_hex"`
		Crypt  string `json:"crypt_info_bytes_hex"`
		Sig    string `json:"crypt_info_signature_hex"`
	} `json:"server"`
	KD        map[string]string `json:"key_derivation"`
	Datagrams []struct {
		Index int    `json:"index"`
		Dir   string `json:"dir"`
		Kind  string `json:"kind"`
		Hex   string `json:"hex"`
		Data  *struct {
			PktNum    uint64 `json:"pkt_num"`
			Nonce     string `json:"gcm_nonce_hex"`
			Cipher    string `json:"ciphertext_hex"`
			Tag       string `json:"tag_hex"`
			Plaintext string `json:"plaintext_hex"`
		} `json:"data"`
	} `json:"datagrams"`
}

func h(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func u64(t testing.TB, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// clientSide rebuilds the vectors' client: identity key, crypt info, and the
// verified server handshake.
func clientSide(t testing.TB) (sessionVectors, *LocalCrypt, *Peer) {
	var v sessionVectors
	vectors.Load(t, "direct_session.json", &v)
	idKey := ed25519.NewKeyFromSeed(h(t, v.Client.Seed))
	x, err := ecdh.X25519().NewPrivateKey(h(t, v.Client.X25519))
	if err != nil {
		t.Fatal(err)
	}
	local, err := NewLocalCryptFromKey(x, u64(t, v.Client.Nonce), idKey, DefaultCiphers)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := VerifyPeer(&PeerPolicy{AllowUnsigned: true},
		&pb.CertificateSigned{Cert: h(t, v.Server.Cert)},
		&pb.SessionCryptInfoSigned{Info: h(t, v.Server.Crypt), Signature: h(t, v.Server.Sig)})
	if err != nil {
		t.Fatal(err)
	}
	return v, local, peer
}

func TestKeyDerivationVectors(t *testing.T) {
	v, local, peer := clientSide(t)
	kd := v.KD
	if got := hex.EncodeToString(local.Signed.Info); got != v.Client.Crypt {
		t.Fatalf("client crypt info %s, want %s", got, v.Client.Crypt)
	}
	if got := hex.EncodeToString(local.Signed.Signature); got != v.Client.Sig {
		t.Fatalf("client signature %s, want %s", got, v.Client.Sig)
	}
	pub, _ := ecdh.X25519().NewPublicKey(peer.Crypt.GetKeyData())
	shared, err := local.priv.ECDH(pub)
	if err != nil {
		t.Fatal(err)
	}
	d := derivation{shared: shared}
	d.run(sideValues{v.Client.ConnID, local.Info.GetNonce(), h(t, v.Client.Cert), local.Signed.Info},
		sideValues{v.Server.ConnID, peer.Crypt.GetNonce(), peer.CertBytes, peer.CryptBytes})
	for _, c := range []struct {
		name string
		got  []byte
	}{
		{"x25519_shared_secret_hex", d.shared},
		{"premaster_hex", d.premaster[:]},
		{"salt_hex", d.salt[:]},
		{"prk_hex", d.prk[:]},
		{"info_hex", d.info},
		{"T1_hex", d.t[0][:]}, {"T2_hex", d.t[1][:]}, {"T3_hex", d.t[2][:]}, {"T4_hex", d.t[3][:]},
	} {
		if hex.EncodeToString(c.got) != kd[c.name] {
			t.Errorf("%s: got %x, want %s", c.name, c.got, kd[c.name])
		}
	}

	k, err := DeriveKeys(KeyParams{LocalConnID: v.Client.ConnID, RemoteConnID: v.Server.ConnID,
		LocalCert: h(t, v.Client.Cert), Local: local, Peer: peer, Cipher: pb.Cipher_CIPHER_AES_256_GCM})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		got  []byte
	}{
		{"c2s_key_hex", k.SendKey[:]}, {"s2c_key_hex", k.RecvKey[:]},
		{"c2s_iv_hex", k.SendIV[:]}, {"s2c_iv_hex", k.RecvIV[:]},
	} {
		if hex.EncodeToString(c.got) != kd[c.name] {
			t.Errorf("%s: got %x, want %s", c.name, c.got, kd[c.name])
		}
	}
}

// dataHeader splits a data datagram as data_packet_layout says.
func dataHeader(t testing.TB, b []byte) (wire uint16, body []byte) {
	t.Helper()
	if b[0]&0x80 == 0 {
		t.Fatalf("lead 0x%02x", b[0])
	}
	wire = binary.LittleEndian.Uint16(b[5:7])
	rest := b[7:]
	if b[0]&1 != 0 {
		n, k := binary.Uvarint(rest)
		if k <= 0 {
			t.Fatal("stats varint")
		}
		rest = rest[k+int(n):]
	}
	if b[0]&2 != 0 {
		rest = rest[2:]
	}
	return wire, rest
}

// expand returns the packet number with low 16 bits wire nearest to ref.
func expand(wire uint16, ref uint64) uint64 {
	return uint64(int64(ref) + int64(int16(wire-uint16(ref))))
}

func TestDataPacketVectors(t *testing.T) {
	v, local, peer := clientSide(t)
	k, err := DeriveKeys(KeyParams{LocalConnID: v.Client.ConnID, RemoteConnID: v.Server.ConnID,
		LocalCert: h(t, v.Client.Cert), Local: local, Peer: peer, Cipher: pb.Cipher_CIPHER_AES_256_GCM})
	if err != nil {
		t.Fatal(err)
	}
	// The vectors are from the client's view: c2s is what it sends.
	ciphers := map[string]*PacketCipher{}
	ciphers["c2s"], _ = k.SendCipher()
	ciphers["s2c"], _ = k.RecvCipher()
	highest := map[string]uint64{"c2s": 1, "s2c": 1} // packet 1 is the handshake
	n := 0
	for _, d := range v.Datagrams {
		if d.Kind != "data" {
			continue
		}
		n++
		pkt := h(t, d.Hex)
		wire, body := dataHeader(t, pkt)
		num := expand(wire, highest[d.Dir])
		if num != d.Data.PktNum {
			t.Fatalf("datagram %d: packet number %d, want %d", d.Index, num, d.Data.PktNum)
		}
		highest[d.Dir] = max(highest[d.Dir], num)
		c := ciphers[d.Dir]
		c.setNonce(num)
		if hex.EncodeToString(c.nonce[:]) != d.Data.Nonce {
			t.Fatalf("datagram %d: nonce %x, want %s", d.Index, c.nonce, d.Data.Nonce)
		}
		want := append(h(t, d.Data.Cipher), h(t, d.Data.Tag)...)
		if !bytes.Equal(body, want) {
			t.Fatalf("datagram %d: body split wrong", d.Index)
		}
		plain, err := c.Open(bytes.Clone(body), num)
		if err != nil {
			t.Fatalf("datagram %d: %v", d.Index, err)
		}
		if hex.EncodeToString(plain) != d.Data.Plaintext {
			t.Fatalf("datagram %d: plaintext %x", d.Index, plain)
		}
		if sealed := c.Seal(nil, plain, num); !bytes.Equal(sealed, want) {
			t.Fatalf("datagram %d: seal %x, want %x", d.Index, sealed, want)
		}
		if _, err := c.Open(bytes.Clone(body), num+1); err != ErrPacketAuth {
			t.Fatalf("datagram %d: wrong packet number opened: %v", d.Index, err)
		}
	}
	if n != 11 {
		t.Fatalf("%d data datagrams", n)
	}
}

func TestSNPPacketVectors(t *testing.T) {
	var v struct {
		PacketVectors []struct {
			ID        string  `json:"id"`
			Key       string  `json:"key_hex"`
			IV        string  `json:"iv_hex"`
			PktNum    uint64  `json:"pkt_num"`
			Highest   *uint64 `json:"highest_pkt_num_received_before_by_gns"`
			Datagram  string  `json:"datagram_hex"`
			Nonce     string  `json:"gcm_nonce_hex"`
			Cipher    string  `json:"ciphertext_hex"`
			Tag       string  `json:"tag_hex"`
			Plaintext string  `json:"plaintext_hex"`
		} `json:"packet_vectors"`
	}
	vectors.Load(t, "snp_frames.json", &v)
	if len(v.PacketVectors) != 10 {
		t.Fatalf("%d packet vectors", len(v.PacketVectors))
	}
	for _, p := range v.PacketVectors {
		c, err := NewPacketCipher(pb.Cipher_CIPHER_AES_256_GCM, [32]byte(h(t, p.Key)), [12]byte(h(t, p.IV)))
		if err != nil {
			t.Fatal(err)
		}
		wire, body := dataHeader(t, h(t, p.Datagram))
		ref := p.PktNum
		if p.Highest != nil {
			ref = *p.Highest
		}
		num := expand(wire, ref)
		if num != p.PktNum {
			t.Fatalf("%s: packet number %d, want %d", p.ID, num, p.PktNum)
		}
		c.setNonce(num)
		if hex.EncodeToString(c.nonce[:]) != p.Nonce {
			t.Fatalf("%s: nonce %x, want %s", p.ID, c.nonce, p.Nonce)
		}
		plain, err := c.Open(bytes.Clone(body), num)
		if err != nil || hex.EncodeToString(plain) != p.Plaintext {
			t.Fatalf("%s: %x %v", p.ID, plain, err)
		}
		want := append(h(t, p.Cipher), h(t, p.Tag)...)
		if sealed := c.Seal(nil, plain, num); !bytes.Equal(sealed, want) {
			t.Fatalf("%s: seal differs", p.ID)
		}
	}
}

func TestNonceWraps(t *testing.T) {
	iv := [12]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4}
	c, _ := NewPacketCipher(pb.Cipher_CIPHER_AES_256_GCM, [32]byte{}, iv)
	c.setNonce(2)
	if want := []byte{1, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4}; !bytes.Equal(c.nonce[:], want) {
		t.Fatalf("nonce %x", c.nonce)
	}
}

// TestHandshakeBothSides derives keys on a client and a server of our own
// and checks that they agree crosswise and carry data both ways.
func TestHandshakeBothSides(t *testing.T) {
	mk := func() (ed25519.PrivateKey, *pb.CertificateSigned) {
		k, err := GenerateIdentityKey(nil)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := NewCert(CertTemplate{PublicKey: k.Public().(ed25519.PublicKey), AppIDs: []uint32{0}})
		s, _ := UnsignedCert(c)
		return k, s
	}
	ck, ccert := mk()
	sk, scert := mk()
	policy := &PeerPolicy{AllowUnsigned: true}
	clientCrypt, err := NewLocalCrypt(nil, ck, []pb.Cipher{pb.Cipher_CIPHER_AES_256_GCM, pb.Cipher_CIPHER_NULL})
	if err != nil {
		t.Fatal(err)
	}
	// Server receives ConnectRequest.
	cpeer, err := VerifyPeer(policy, ccert, clientCrypt.Signed)
	if err != nil {
		t.Fatal(err)
	}
	chosen, err := NegotiateCipher(DefaultCiphers, cpeer.Crypt.Ciphers, false)
	if err != nil {
		t.Fatal(err)
	}
	serverCrypt, err := NewLocalCrypt(nil, sk, []pb.Cipher{chosen})
	if err != nil {
		t.Fatal(err)
	}
	sKeys, err := DeriveKeys(KeyParams{IsServer: true, LocalConnID: 2, RemoteConnID: 1, LocalCert: scert.Cert, Local: serverCrypt, Peer: cpeer, Cipher: chosen})
	if err != nil {
		t.Fatal(err)
	}
	// Client receives ConnectOK.
	speer, err := VerifyPeer(policy, scert, serverCrypt.Signed)
	if err != nil {
		t.Fatal(err)
	}
	chosen2, err := NegotiateCipher(clientCrypt.Info.Ciphers, speer.Crypt.Ciphers, true)
	if err != nil || chosen2 != chosen {
		t.Fatalf("client cipher %v %v", chosen2, err)
	}
	cKeys, err := DeriveKeys(KeyParams{LocalConnID: 1, RemoteConnID: 2, LocalCert: ccert.Cert, Local: clientCrypt, Peer: speer, Cipher: chosen2})
	if err != nil {
		t.Fatal(err)
	}
	if cKeys.SendKey != sKeys.RecvKey || cKeys.RecvKey != sKeys.SendKey || cKeys.SendIV != sKeys.RecvIV || cKeys.RecvIV != sKeys.SendIV {
		t.Fatal("keys disagree")
	}
	cs, _ := cKeys.SendCipher()
	sr, _ := sKeys.RecvCipher()
	msg := []byte("hello")
	if out, err := sr.Open(cs.Seal(nil, msg, 77), 77); err != nil || !bytes.Equal(out, msg) {
		t.Fatalf("c2s: %q %v", out, err)
	}
	// A server must choose one cipher.
	if _, err := NegotiateCipher(DefaultCiphers, []pb.Cipher{2, 1}, true); EndReasonOf(err) != EndRemoteBadCrypt {
		t.Fatalf("two ciphers from server: %v", err)
	}
	if _, err := NegotiateCipher(DefaultCiphers, []pb.Cipher{pb.Cipher_CIPHER_NULL}, false); EndReasonOf(err) != EndRemoteBadCrypt {
		t.Fatalf("no common cipher: %v", err)
	}
	if c, err := NegotiateCipher(DefaultCiphers, nil, false); err != nil || c != pb.Cipher_CIPHER_AES_256_GCM {
		t.Fatalf("legacy empty list: %v %v", c, err)
	}
	// A bad key-exchange key is a crypt failure.
	bad := proto.Clone(speer.Crypt).(*pb.SessionCryptInfo)
	bad.KeyData = make([]byte, 32) // the all-zero point gives the all-zero secret
	_, err = DeriveKeys(KeyParams{Local: clientCrypt, Peer: &Peer{Crypt: bad}})
	if EndReasonOf(err) != EndRemoteBadCrypt {
		t.Fatalf("zero key: %v", err)
	}
}
