package netmsg

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/netsim"
)

// Certificates between Hosts, over the in-memory network, and the
// certificate and key files of certs.go.
//
// What GNS does with a certificate it refuses depends on the side:
//
//   - a server that refuses a client's certificate drops the connect
//     request without an answer (CSteamNetworkListenSocketDirectUDP::
//     Received_ConnectRequest: BBeginAccept fails, the connection is
//     destroyed, nothing is sent). The client goes on retrying until
//     TimeoutInitial and ends in ProblemDetectedLocally with 5003
//     (Misc_Timeout), never 4003: it is not told why;
//   - a client that refuses a server's certificate ends in
//     ProblemDetectedLocally with 4003 (Remote_BadCert) and sends the
//     server a connection closed with 4003, which the server reports as
//     ClosedByPeer.
//
// So each refusal below is tested both ways.

// testKey returns a deterministic Ed25519 key.
func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

// certSpec describes a certificate to issue in a test.
type certSpec struct {
	ca       ed25519.PrivateKey // nil: unsigned
	identity string
	key      ed25519.PrivateKey
	apps     []uint32
	created  time.Time
	expiry   time.Time
}

// issue returns the serialized CertificateSigned for s (what
// Config.Certificate holds).
func (s certSpec) issue(t testing.TB) []byte {
	t.Helper()
	id, err := ParseIdentity(s.identity)
	if err != nil {
		t.Fatal(err)
	}
	c, err := crypto.NewCert(crypto.CertTemplate{
		PublicKey: s.key.Public().(ed25519.PublicKey),
		Identity:  id,
		AppIDs:    s.apps,
		Created:   s.created,
		Expiry:    s.expiry,
	})
	if err != nil {
		t.Fatal(err)
	}
	var cs *pb.CertificateSigned
	if s.ca != nil {
		cs, err = crypto.SignCert(c, s.ca)
	} else {
		cs, err = crypto.UnsignedCert(c)
	}
	if err != nil {
		t.Fatal(err)
	}
	b, err := pb.Marshal(cs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// certHostConfig returns a Config for identity with a certificate issued
// per s (whose identity and key it fills), trusting trusted.
func certHostConfig(t *testing.T, s certSpec, app uint32, trusted ...ed25519.PrivateKey) Config {
	t.Helper()
	id, err := ParseIdentity(s.identity)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Identity: id, PrivateKey: s.key, AppID: app, presentExpired: true}
	if s.ca != nil {
		cfg.Certificate = s.issue(t)
	}
	for _, ca := range trusted {
		cfg.TrustedCAs = append(cfg.TrustedCAs, ca.Public().(ed25519.PublicKey))
	}
	return cfg
}

// certPair opens a client and a listening server Host with the given
// configurations over a fresh in-memory network.
func certPair(t *testing.T, cliCfg, srvCfg Config) (cli, srv *testPeer, nw *netsim.Network) {
	t.Helper()
	nw, ea, eb := netsimEndpoints(t, netsim.LinkConfig{Delay: 10 * time.Millisecond})
	cliCfg.PacketConn, srvCfg.PacketConn = ea, eb
	cli = newTestPeer(t, cliCfg, false)
	srv = newTestPeer(t, srvCfg, true)
	return cli, srv, nw
}

const (
	certTestApp  = 480
	certOtherApp = 570
)

// TestHostCertSigned: two Hosts with certificates signed by a CA both
// trust connect, and each knows the other by its certificate's identity.
func TestHostCertSigned(t *testing.T) {
	bubble(t, func(t *testing.T) {
		ca := testKey(1)
		now := time.Now()
		alice := certSpec{ca: ca, identity: "str:alice", key: testKey(2), apps: []uint32{certTestApp, certOtherApp}, created: now, expiry: now.Add(time.Hour)}
		bob := certSpec{ca: ca, identity: "str:bob", key: testKey(3), apps: []uint32{certTestApp}, created: now, expiry: now.Add(time.Hour)}
		cli, srv, nw := certPair(t, certHostConfig(t, alice, certTestApp, ca), certHostConfig(t, bob, certTestApp, ca))
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		c, err := cli.Connect(srv.LocalAddr())
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "client connected", func() bool { st, _ := cli.lastState(c); return st == StateConnected })
		s := serverConn(t, srv)
		waitFor(t, time.Minute, "server connected", func() bool { st, _ := srv.lastState(s); return st == StateConnected })
		if info, _ := cli.ConnectionInfo(c); info.Identity.String() != "str:bob" {
			t.Errorf("client sees the server as %v, want str:bob", info.Identity)
		}
		if info, _ := srv.ConnectionInfo(s); info.Identity.String() != "str:alice" {
			t.Errorf("server sees the client as %v, want str:alice", info.Identity)
		}
		if _, err := cli.SendMessageToConnection(c, []byte("hello"), SendReliable); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "the message", func() bool {
			ms := srv.ReceiveMessagesOnConnection(s, 1)
			return len(ms) == 1 && string(ms[0].Payload) == "hello"
		})
	})
}

// TestHostCertRefused: a certificate the peer must refuse, presented by
// the client to a server that requires the CA and by the server to a
// client that requires it; see the top of this file for what each side
// sees.
func TestHostCertRefused(t *testing.T) {
	ca, otherCA := testKey(1), testKey(9)
	cases := []struct {
		name   string
		bad    func(now time.Time, s certSpec) certSpec
		badApp uint32 // the bad side's own AppID (its certificate must allow it); 0: certTestApp
	}{
		{"unsigned", func(now time.Time, s certSpec) certSpec { s.ca = nil; return s }, 0},
		{"other CA", func(now time.Time, s certSpec) certSpec { s.ca = otherCA; return s }, 0},
		{"expired", func(now time.Time, s certSpec) certSpec {
			s.created, s.expiry = now.Add(-48*time.Hour), now.Add(-time.Second)
			return s
		}, 0},
		{"wrong app", func(now time.Time, s certSpec) certSpec { s.apps = []uint32{certOtherApp}; return s }, certOtherApp},
	}
	for _, tc := range cases {
		if tc.badApp == 0 {
			tc.badApp = certTestApp
		}
		t.Run(tc.name+"/client cert", func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				now := time.Now()
				alice := tc.bad(now, certSpec{ca: ca, identity: "str:alice", key: testKey(2), apps: []uint32{certTestApp}, created: now, expiry: now.Add(time.Hour)})
				bob := certSpec{ca: ca, identity: "str:bob", key: testKey(3), apps: []uint32{certTestApp}, created: now, expiry: now.Add(time.Hour)}
				cli, srv, nw := certPair(t, certHostConfig(t, alice, tc.badApp, ca), certHostConfig(t, bob, certTestApp, ca))
				defer nw.Close()
				defer srv.Close()
				defer cli.Close()
				c, err := cli.Connect(srv.LocalAddr())
				if err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				waitFor(t, time.Minute, "the client to give up", func() bool {
					st, _ := cli.lastState(c)
					return st == StateProblemDetectedLocally || st == StateClosedByPeer
				})
				st, info := cli.lastState(c)
				if st != StateProblemDetectedLocally || info.EndReason != EndMiscTimeout {
					t.Errorf("client ended %v with %v %q, want %v with %v (GNS's server drops a refused connect request)",
						st, info.EndReason, info.EndDebug, StateProblemDetectedLocally, EndMiscTimeout)
				}
				if el := time.Since(start); el < 10*time.Second {
					t.Errorf("client gave up after %v, before TimeoutInitial (10 s)", el)
				}
				if n := srv.Stats().ConnectsRefused; n == 0 {
					t.Errorf("server refused no connect request")
				}
				for _, ev := range srv.seen() {
					t.Errorf("server reported a connection: %+v", ev)
				}
			})
		})
		if tc.badApp != certTestApp {
			// Hosts of two different apps refuse each other's
			// certificates; the server drops the connect request first,
			// which the client-cert case above already shows.
			continue
		}
		t.Run(tc.name+"/server cert", func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				now := time.Now()
				alice := certSpec{ca: ca, identity: "str:alice", key: testKey(2), apps: []uint32{certTestApp}, created: now, expiry: now.Add(time.Hour)}
				bob := tc.bad(now, certSpec{ca: ca, identity: "str:bob", key: testKey(3), apps: []uint32{certTestApp}, created: now, expiry: now.Add(time.Hour)})
				cli, srv, nw := certPair(t, certHostConfig(t, alice, certTestApp, ca), certHostConfig(t, bob, tc.badApp, ca))
				defer nw.Close()
				defer srv.Close()
				defer cli.Close()
				c, err := cli.Connect(srv.LocalAddr())
				if err != nil {
					t.Fatal(err)
				}
				waitFor(t, time.Minute, "the client to refuse", func() bool {
					st, _ := cli.lastState(c)
					return st == StateProblemDetectedLocally || st == StateClosedByPeer
				})
				st, info := cli.lastState(c)
				if st != StateProblemDetectedLocally || info.EndReason != EndRemoteBadCert {
					t.Errorf("client ended %v with %v %q, want %v with %v", st, info.EndReason, info.EndDebug, StateProblemDetectedLocally, EndRemoteBadCert)
				}
				s := serverConn(t, srv)
				waitFor(t, time.Minute, "the server to hear of it", func() bool { st, _ := srv.lastState(s); return st == StateClosedByPeer })
				if _, info := srv.lastState(s); info.EndReason != EndRemoteBadCert {
					t.Errorf("server saw end %v %q, want %v", info.EndReason, info.EndDebug, EndRemoteBadCert)
				}
			})
		})
	}
}

// TestHostCertNotOurs: a Host refuses a certificate that is not its own.
func TestHostCertNotOurs(t *testing.T) {
	ca := testKey(1)
	now := time.Now()
	alice := certSpec{ca: ca, identity: "str:alice", key: testKey(2), apps: []uint32{certTestApp}, created: now, expiry: now.Add(time.Hour)}
	cert := alice.issue(t)
	t.Run("key", func(t *testing.T) {
		h, err := NewHost(Config{Identity: mustIdentity(t, "str:alice"), PrivateKey: testKey(3), Certificate: cert, ListenAddr: netip.MustParseAddrPort("127.0.0.1:0")})
		if err == nil {
			h.Close()
			t.Fatal("NewHost took a certificate for another key")
		}
		if !errors.Is(err, ErrBadConfig) && !strings.Contains(err.Error(), "not for Key") {
			t.Errorf("error %v", err)
		}
	})
	t.Run("identity", func(t *testing.T) {
		// GNS's SetCertificate refuses a certificate for another identity
		// ("Cert is for identity '%s'.  We are '%s'") and, for a host
		// without an identity (or localhost), takes the certificate's.
		h, err := NewHost(Config{Identity: mustIdentity(t, "str:bob"), PrivateKey: testKey(2), Certificate: cert, AppID: certTestApp, ListenAddr: netip.MustParseAddrPort("127.0.0.1:0")})
		if err == nil {
			h.Close()
			t.Fatal("NewHost took a certificate issued to str:alice for str:bob")
		}
		if !errors.Is(err, ErrBadConfig) {
			t.Errorf("error %v does not wrap ErrBadConfig", err)
		}
		h, err = NewHost(Config{PrivateKey: testKey(2), Certificate: cert, AppID: certTestApp, ListenAddr: netip.MustParseAddrPort("127.0.0.1:0")})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if h.Identity().String() != "str:alice" {
			t.Errorf("a Host without an identity is %v, want its certificate's str:alice", h.Identity())
		}
	})
}

// TestOwnCertificate: the checks GNS's SetCertificate makes of a host's
// own certificate.
func TestOwnCertificate(t *testing.T) {
	ca, key := testKey(1), testKey(2)
	now := time.Unix(1_700_000_000, 0)
	spec := certSpec{ca: ca, identity: "str:alice", key: key, apps: []uint32{certTestApp}, created: now, expiry: now.Add(time.Hour)}
	cert := spec.issue(t)
	alice, bob := mustIdentity(t, "str:alice"), mustIdentity(t, "str:bob")

	for _, id := range []Identity{alice, {}, IdentityLocalhost()} {
		gotID, gotKey, err := ownCertificate(id, key, certTestApp, cert)
		if err != nil || gotID != alice || !gotKey.Equal(key) {
			t.Errorf("identity %v: got %v, %v", id, gotID, err)
		}
	}
	var cs pb.CertificateSigned
	if err := proto.Unmarshal(cert, &cs); err != nil {
		t.Fatal(err)
	}
	cs.PrivateKeyData = key.Seed()
	withKey, _ := pb.Marshal(&cs)
	if _, gotKey, err := ownCertificate(alice, nil, certTestApp, withKey); err != nil || !gotKey.Equal(key) {
		t.Errorf("key from the certificate: %v", err)
	}
	for name, tc := range map[string]struct {
		id   Identity
		key  ed25519.PrivateKey
		app  uint32
		cert []byte
	}{
		"other identity":     {bob, key, certTestApp, cert},
		"no key":             {alice, nil, certTestApp, cert},
		"other key":          {alice, testKey(3), certTestApp, cert},
		"other embedded key": {alice, testKey(3), certTestApp, withKey},
		"app ID":             {alice, key, certOtherApp, cert},
		"garbage":            {alice, key, certTestApp, []byte("junk")},
	} {
		if _, _, err := ownCertificate(tc.id, tc.key, tc.app, tc.cert); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%s: %v, want ErrBadConfig", name, err)
		}
	}
}

func mustIdentity(t *testing.T, s string) Identity {
	t.Helper()
	id, err := ParseIdentity(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// TestCertFiles: the text forms round-trip, and LoadCertificate gives what
// a Host takes.
func TestCertFiles(t *testing.T) {
	key := testKey(2)
	pub := key.Public().(ed25519.PublicKey)
	now := time.Unix(1_700_000_000, 0)
	cert := certSpec{ca: testKey(1), identity: "str:alice", key: key, apps: []uint32{certTestApp}, created: now, expiry: now.Add(time.Hour)}.issue(t)

	certPEM := MarshalCertificatePEM(cert)
	keyPEM := MarshalPrivateKey(key, "ID1")
	got, gotKey, err := LoadCertificate(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, cert) || !gotKey.Equal(key) {
		t.Errorf("LoadCertificate did not round-trip")
	}
	// A combined file, key first, works too (GNS takes the two apart).
	if got, _, err := LoadCertificate(append(append([]byte{}, keyPEM...), certPEM...), keyPEM); err != nil || !bytes.Equal(got, cert) {
		t.Errorf("combined file: %v", err)
	}
	if line := MarshalAuthorizedKey(pub, "ID1"); !strings.HasPrefix(line, "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI") || !strings.HasSuffix(line, " ID1") {
		t.Errorf("authorized key %q", line)
	} else if p, err := ParseAuthorizedKey([]byte("# CA\n\n" + line + "\n")); err != nil || !p.Equal(pub) {
		t.Errorf("ParseAuthorizedKey: %v", err)
	}

	// The certificate block as GNS's tool writes it: header, base64 in
	// lines of 72, footer, each line ending in "\n".
	lines := strings.Split(strings.TrimSuffix(string(certPEM), "\n"), "\n")
	if lines[0] != "-----BEGIN STEAMDATAGRAM CERT-----" || lines[len(lines)-1] != "-----END STEAMDATAGRAM CERT-----" {
		t.Errorf("certificate block framing:\n%s", certPEM)
	}
	body := lines[1 : len(lines)-1]
	for i, l := range body {
		if len(l) != 72 && i != len(body)-1 || len(l) > 72 || len(l) == 0 {
			t.Errorf("certificate line %d is %d characters", i, len(l))
		}
	}
	if b, _ := base64.StdEncoding.DecodeString(strings.Join(body, "")); !bytes.Equal(b, cert) {
		t.Errorf("certificate block does not hold the certificate")
	}

	// The key embedded in the certificate (GNS's SetCertificate form).
	var cs pb.CertificateSigned
	if err := proto.Unmarshal(cert, &cs); err != nil {
		t.Fatal(err)
	}
	cs.PrivateKeyData = key.Seed()
	withKey, _ := pb.Marshal(&cs)
	if got, gotKey, err := LoadCertificate(MarshalCertificatePEM(withKey), nil); err != nil || !gotKey.Equal(key) || !bytes.Equal(got, cert) {
		t.Errorf("key in the certificate: %v", err)
	}
	if _, _, err := LoadCertificate(certPEM, nil); !errors.Is(err, ErrBadCertFile) {
		t.Errorf("no key anywhere: %v", err)
	}

	// Mismatches and missing fields.
	if _, _, err := LoadCertificate(certPEM, MarshalPrivateKey(testKey(3), "")); !errors.Is(err, ErrBadCertFile) {
		t.Errorf("another key: %v", err)
	}
	noExpiry := certSpec{ca: testKey(1), identity: "str:alice", key: key, apps: []uint32{certTestApp}}.issue(t)
	if _, _, err := LoadCertificate(MarshalCertificatePEM(noExpiry), keyPEM); !errors.Is(err, ErrBadCertFile) {
		t.Errorf("no expiry: %v", err)
	}
	for _, bad := range []string{"", "junk", "-----BEGIN STEAMDATAGRAM CERT-----\n!!\n-----END STEAMDATAGRAM CERT-----\n", string(keyPEM)} {
		if _, err := ParseCertificatePEM([]byte(bad)); !errors.Is(err, ErrBadCertFile) {
			t.Errorf("ParseCertificatePEM(%q): %v", bad, err)
		}
	}

	// The Host takes what LoadCertificate returns.
	h, err := NewHost(Config{presentExpired: true, Identity: mustIdentity(t, "str:alice"), PrivateKey: gotKey, Certificate: got, AppID: certTestApp, ListenAddr: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
}

// gnsPrivateKey writes key as GNS's CECSigningPrivateKey::GetAsPEM does:
// check words 0x12345678, no comment, no padding, base64 in lines of 72
// ending in "\r\n".
func gnsPrivateKey(key ed25519.PrivateKey) []byte {
	pub := key.Public().(ed25519.PublicKey)
	str := func(b []byte, s []byte) []byte { return append(binary.BigEndian.AppendUint32(b, uint32(len(s))), s...) }
	pubBlob := str(str(nil, []byte("ssh-ed25519")), pub)
	var priv []byte
	priv = binary.BigEndian.AppendUint32(priv, 0x12345678)
	priv = binary.BigEndian.AppendUint32(priv, 0x12345678)
	priv = str(priv, []byte("ssh-ed25519"))
	priv = str(priv, pub)
	priv = str(priv, key)
	b := []byte("openssh-key-v1\x00")
	b = str(b, []byte("none"))
	b = str(b, []byte("none"))
	b = str(b, nil)
	b = binary.BigEndian.AppendUint32(b, 1)
	b = str(b, pubBlob)
	b = str(b, priv)
	enc := base64.StdEncoding.EncodeToString(b)
	out := "-----BEGIN OPENSSH PRIVATE KEY-----\r\n"
	for len(enc) > 72 {
		out += enc[:72] + "\r\n"
		enc = enc[72:]
	}
	return []byte(out + enc + "\r\n-----END OPENSSH PRIVATE KEY-----\r\n")
}

// TestPrivateKeyFiles: keys written by GNS's tool, by ssh-keygen and by
// MarshalPrivateKey load; damaged ones fail without panicking.
func TestPrivateKeyFiles(t *testing.T) {
	key := testKey(7)
	if got, err := ParsePrivateKey(gnsPrivateKey(key)); err != nil || !got.Equal(key) {
		t.Errorf("GNS's form: %v", err)
	}
	ours := MarshalPrivateKey(key, "ID42")
	if got, err := ParsePrivateKey(ours); err != nil || !got.Equal(key) {
		t.Errorf("our form: %v", err)
	}
	// Every truncation of the key and every single-byte change that
	// breaks it is an error, never a panic.
	der, _ := findPEM(ours, privateKeyPEMType)
	for n := range len(der) {
		blob := appendPEM(nil, privateKeyPEMType, der[:n], keyLineLen)
		if _, err := ParsePrivateKey(blob); err == nil {
			t.Fatalf("truncated to %d bytes: no error", n)
		}
	}
	for i := range len(der) {
		d := bytes.Clone(der)
		d[i] ^= 0x40
		k, err := ParsePrivateKey(appendPEM(nil, privateKeyPEMType, d, keyLineLen))
		if err == nil && !k.Equal(key) {
			t.Fatalf("byte %d changed: loaded another key", i)
		}
	}

	ssh, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("no ssh-keygen")
	}
	dir := t.TempDir()
	// ssh-keygen reads ours...
	p := filepath.Join(dir, "ours")
	if err := os.WriteFile(p, ours, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ssh, "-y", "-f", p).Output()
	if err != nil {
		t.Fatalf("ssh-keygen -y: %v", err)
	}
	if pub, err := ParseAuthorizedKey(out); err != nil || !pub.Equal(key.Public()) {
		t.Errorf("ssh-keygen derived %q: %v", out, err)
	}
	// ...and we read its.
	p = filepath.Join(dir, "theirs")
	if out, err := exec.Command(ssh, "-q", "-t", "ed25519", "-N", "", "-C", "test", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	priv, _ := os.ReadFile(p)
	pubLine, _ := os.ReadFile(p + ".pub")
	k, err := ParsePrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	if pub, err := ParseAuthorizedKey(pubLine); err != nil || !pub.Equal(k.Public()) {
		t.Errorf("ssh-keygen's key pair does not match: %v", err)
	}
}

func FuzzParsePrivateKey(f *testing.F) {
	f.Add(MarshalPrivateKey(testKey(1), "ID1"))
	f.Add(gnsPrivateKey(testKey(2)))
	der, _ := findPEM(MarshalPrivateKey(testKey(3), ""), privateKeyPEMType)
	f.Add(der)
	f.Fuzz(func(t *testing.T, b []byte) {
		// Raw bytes are tried both as they are and as the body of a block.
		for _, in := range [][]byte{b, appendPEM(nil, privateKeyPEMType, b, keyLineLen)} {
			k, err := ParsePrivateKey(in)
			if err != nil {
				continue
			}
			again, err := ParsePrivateKey(MarshalPrivateKey(k, ""))
			if err != nil || !again.Equal(k) {
				t.Fatalf("a loaded key does not round-trip: %v", err)
			}
		}
	})
}

func FuzzParseCertificatePEM(f *testing.F) {
	now := time.Unix(1_700_000_000, 0)
	cert := certSpec{ca: testKey(1), identity: "str:alice", key: testKey(2), apps: []uint32{certTestApp}, created: now, expiry: now.Add(time.Hour)}.issue(f)
	f.Add(MarshalCertificatePEM(cert))
	f.Add(cert)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, in := range [][]byte{b, MarshalCertificatePEM(b)} {
			c, err := ParseCertificatePEM(in)
			if err != nil {
				continue
			}
			again, err := ParseCertificatePEM(MarshalCertificatePEM(c))
			if err != nil || !bytes.Equal(again, c) {
				t.Fatalf("a parsed certificate does not round-trip: %v", err)
			}
			LoadCertificate(in, nil) // must not panic
		}
	})
}
