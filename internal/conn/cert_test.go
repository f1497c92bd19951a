package conn

import (
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
)

// signedCert returns a serialized CertificateSigned for identity's test key,
// signed by ca, optionally spoiled by tamper.
func signedCert(t *testing.T, identity string, ca ed25519.PrivateKey, tamper func(*pb.CertificateSigned)) []byte {
	t.Helper()
	id, err := parseIdentityBasic(identity)
	if err != nil {
		t.Fatal(err)
	}
	c, err := crypto.NewCert(crypto.CertTemplate{
		PublicKey: testKey(identity).Public().(ed25519.PublicKey),
		Identity:  id,
		AppIDs:    []uint32{0},
		Created:   t0.Add(-time.Hour),
		Expiry:    t0.Add(24 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := crypto.SignCert(c, ca)
	if err != nil {
		t.Fatal(err)
	}
	if tamper != nil {
		tamper(cs)
	}
	b, err := pb.Marshal(cs)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func caPub(name string) []byte { return testKey(name).Public().(ed25519.PublicKey) }

// TestBadServerCert: the client refuses the server's certificate with 4003
// (ProblemDetectedLocally) and tells the server with a connection closed
// carrying the reason, as GNS does.
func TestBadServerCert(t *testing.T) {
	for _, tc := range []struct {
		name   string
		client func(*Config)
		server func(*Config)
		want   int
	}{
		{"untrusted CA", func(c *Config) { c.TrustedCAs = [][]byte{caPub("ca-good")} },
			func(c *Config) { c.Cert = signedCert(t, "str:server", testKey("ca-evil"), nil) }, EndRemoteBadCert},
		{"bad CA signature", func(c *Config) { c.TrustedCAs = [][]byte{caPub("ca-good")} },
			func(c *Config) {
				c.Cert = signedCert(t, "str:server", testKey("ca-good"), func(cs *pb.CertificateSigned) { cs.CaSignature[0] ^= 1 })
			}, EndRemoteBadCert},
		{"unsigned with CA required", func(c *Config) { c.TrustedCAs = [][]byte{caPub("ca-good")} },
			func(c *Config) {}, EndRemoteBadCert},
		{"identity mismatch", func(c *Config) { c.RemoteIdentity = "str:someone-else" },
			func(c *Config) {}, EndRemoteBadCert},
		{"wrong app id", func(c *Config) {},
			func(c *Config) { c.Cert = unsignedCertForApp(t, "str:server", 480) }, EndRemoteBadCert},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ccfg, scfg := testConfig("str:client"), testConfig("str:server")
			tc.client(&ccfg)
			tc.server(&scfg)
			p := newPair(t, ccfg, scfg)
			p.run(100 * time.Millisecond)
			if p.client.State() != StateProblemDetectedLocally || p.client.EndReason() != tc.want {
				t.Fatalf("client %d %d %q", p.client.State(), p.client.EndReason(), p.client.EndDebug())
			}
			if p.server == nil || p.server.State() != StateClosedByPeer || p.server.EndReason() != tc.want {
				t.Fatalf("server %+v", p.server)
			}
			t.Logf("%d %q", p.client.EndReason(), p.client.EndDebug())
		})
	}
}

// TestGoodSignedCerts: both sides require a CA and present certificates it
// signed.
func TestGoodSignedCerts(t *testing.T) {
	ccfg, scfg := testConfig("str:client"), testConfig("str:server")
	ccfg.TrustedCAs = [][]byte{caPub("ca-good")}
	scfg.TrustedCAs = ccfg.TrustedCAs
	ccfg.Cert = signedCert(t, "str:client", testKey("ca-good"), nil)
	scfg.Cert = signedCert(t, "str:server", testKey("ca-good"), nil)
	ccfg.RemoteIdentity = "str:server"
	p := newPair(t, ccfg, scfg)
	p.now = t0
	p.run(100 * time.Millisecond)
	if p.client.State() != StateConnected || p.server.State() != StateConnected {
		t.Fatalf("client %d %d %q", p.client.State(), p.client.EndReason(), p.client.EndDebug())
	}
}

// TestBadClientCert: the server refuses silently, as GNS does (no answer
// to a connect request it will not take); the client times out with 5003.
func TestBadClientCert(t *testing.T) {
	ccfg, scfg := testConfig("str:client"), testConfig("str:server")
	scfg.TrustedCAs = [][]byte{caPub("ca-good")}
	ccfg.Cert = signedCert(t, "str:client", testKey("ca-evil"), nil)
	p := newPair(t, ccfg, scfg)
	p.run(11 * time.Second)
	if p.server != nil {
		t.Fatalf("server took the connection")
	}
	if p.lis.Stats().Handshake == 0 {
		t.Error("refusal not counted")
	}
	if p.client.State() != StateProblemDetectedLocally || p.client.EndReason() != EndMiscTimeout {
		t.Errorf("client %d %d %q", p.client.State(), p.client.EndReason(), p.client.EndDebug())
	}
}

func TestConfigErrors(t *testing.T) {
	if _, err := Dial(Config{}, t0, 1, serverAddr); err == nil {
		t.Error("zero config accepted")
	}
	cfg := testConfig("str:a")
	cfg.Cert = signedCert(t, "str:b", testKey("ca"), nil) // not for Key
	if _, err := Dial(cfg, t0, 1, serverAddr); err == nil {
		t.Error("certificate for another key accepted")
	}
	if _, err := NewListener(testConfig("str:a"), []byte("short")); err == nil {
		t.Error("short secret accepted")
	}
}

func unsignedCertForApp(t *testing.T, identity string, app uint32) []byte {
	t.Helper()
	id, _ := parseIdentityBasic(identity)
	c, err := crypto.NewCert(crypto.CertTemplate{
		PublicKey: testKey(identity).Public().(ed25519.PublicKey),
		Identity:  id,
		AppIDs:    []uint32{app},
	})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := crypto.UnsignedCert(c)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pb.Marshal(cs)
	return b
}
