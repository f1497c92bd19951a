package lan

import (
	"crypto/ed25519"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/transport"
)

// credentials is a key and a certificate for an identity, signed by ca.
type credentials struct {
	key  ed25519.PrivateKey
	cert []byte
}

func issue(t *testing.T, ca ed25519.PrivateKey, id string, seed byte) credentials {
	t.Helper()
	ident, err := netmsg.ParseIdentity(id)
	if err != nil {
		t.Fatal(err)
	}
	key := ed25519.NewKeyFromSeed(append(make([]byte, 31), seed))
	cert, err := netmsg.IssueCertificate(ca, netmsg.CertTemplate{Identity: ident, PublicKey: key.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	return credentials{key, cert}
}

// authed sets a Conn's and a Host's credentials, trusting ca.
func authed(cr credentials, ca ed25519.PrivateKey) (netmsg.Config, func(*Config)) {
	pub := ca.Public().(ed25519.PublicKey)
	return netmsg.Config{PrivateKey: cr.key, Certificate: cr.cert, TrustedCAs: []ed25519.PublicKey{pub}},
		func(c *Config) {
			c.Key, c.Certificate, c.TrustedCAs = cr.key, cr.cert, []ed25519.PublicKey{pub}
		}
}

// readOne reads one datagram from e.
func readOne(t *testing.T, e *netsim.Endpoint) ([]byte, netip.AddrPort) {
	t.Helper()
	p := []transport.Packet{{Buf: make([]byte, maxDatagram)}}
	if _, err := e.ReadBatch(p); err != nil {
		t.Fatal(err)
	}
	return p[0].Bytes(), p[0].Addr
}

// TestForgedAnnouncementRefused: with certificates on, alice and bob
// (CA-signed) find each other, and everything mallory forges on the LAN
// to take alice's identity is refused and counted: an unsigned
// announcement, one with a certificate from a CA bob does not trust, one
// with alice's certificate but mallory's signature, a replay of alice's
// own announcement from mallory's address, and signals claiming to come
// from alice. bob's entry for alice keeps her address, and their Hosts
// make a session as before.
func TestForgedAnnouncementRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: time.Millisecond}})
		defer nw.Close()
		ca := ed25519.NewKeyFromSeed(make([]byte, 32))
		evilCA := ed25519.NewKeyFromSeed(append(make([]byte, 31), 0xca))
		alice := issue(t, ca, "str:alice", 1)
		hcA, mA := authed(alice, ca)
		hcB, mB := authed(issue(t, ca, "str:bob", 2), ca)

		// mallory listens to the group first, to capture alice's
		// announcements.
		spy, _ := nw.Listen(netip.MustParseAddrPort("10.0.0.9:" + itoa(DefaultPort)))
		spy.JoinGroup(DefaultGroup.Addr())
		mal, _ := nw.Listen(netip.MustParseAddrPort("10.0.0.9:4000"))

		ha, ca1 := hostPeer(t, nw, "10.0.0.1", "str:alice", hcA, mA)
		captured, _ := readOne(t, spy)
		t.Logf("a signed announcement of str:alice with a CA-signed certificate: %d bytes of UDP payload", len(captured))
		hb, cb := hostPeer(t, nw, "10.0.0.2", "str:bob", hcB, mB)
		time.Sleep(100 * time.Millisecond)
		ps := cb.Peers()
		if len(ps) != 1 || ps[0].Identity != "str:alice" || !ps[0].Authenticated || !ps[0].CASigned {
			t.Fatalf("bob's table: %+v", ps)
		}
		aliceAddr := ps[0].Addr

		now := time.Now().UnixMilli()
		base := announcement{Instance: 7, Seq: 100, TimeMs: now, TTLms: 60000, Port: 4000, ID: "str:alice"}
		// 1. Unsigned (the trivial protocol's trust).
		writeTo(t, mal, appendAnnouncement(nil, &base), DefaultGroup)
		// 2. mallory's key, certified by a CA bob does not trust.
		evil := issue(t, evilCA, "str:alice", 9)
		a2 := base
		a2.Cert = evil.cert
		writeTo(t, mal, sign(appendAnnouncement(nil, &a2), evil.key), DefaultGroup)
		// 3. alice's certificate, mallory's signature.
		a3 := base
		a3.Cert = alice.cert
		writeTo(t, mal, sign(appendAnnouncement(nil, &a3), evil.key), DefaultGroup)
		// 4. alice's own announcement, replayed from mallory's address.
		writeTo(t, mal, captured, DefaultGroup)
		// 5. Signals "from alice" to bob: unsigned, and signed by mallory.
		s := signal{Instance: 7, TimeMs: now, From: "str:alice", To: "str:bob", Blob: []byte("evil")}
		writeTo(t, mal, appendSignal(nil, &s, false), cb.LocalAddr())
		writeTo(t, mal, sign(appendSignal(nil, &s, true), evil.key), cb.LocalAddr())
		time.Sleep(10 * time.Millisecond)

		st := cb.Stats()
		if st.Unsigned != 2 || st.BadSignature != 3 || st.Stale < 1 || st.SignalsReceived != 0 {
			t.Fatalf("bob's counters: %+v", st)
		}
		if ps := cb.Peers(); len(ps) != 1 || ps[0].Addr != aliceAddr {
			t.Fatalf("bob's table after the forgeries: %+v (alice is at %v)", ps, aliceAddr)
		}
		// The Hosts still talk, alice's messages from alice.
		exchange(t, []*netmsg.Host{ha, hb})
		if st := ca1.Stats(); st.BadSignature != 0 || st.Unsigned != 0 {
			t.Fatalf("alice refused something of bob's: %+v", st)
		}
	})
}

// TestUnsignedCertificateHeld: with AllowUnsigned, an identity is bound
// to the key of its unsigned certificate while its holder announces it:
// another key's unsigned certificate for it is refused (takeover), and
// accepted once the holder has left.
func TestUnsignedCertificateHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: time.Millisecond}})
		defer nw.Close()
		unsigned := func(id string, seed byte) func(*Config) {
			key := ed25519.NewKeyFromSeed(append(make([]byte, 31), seed))
			ident, _ := netmsg.ParseIdentity(id)
			cert, err := netmsg.UnsignedCertificate(ident, key, 0)
			if err != nil {
				t.Fatal(err)
			}
			return func(c *Config) { c.Key, c.Certificate, c.AllowUnsigned = key, cert, true }
		}
		a := simPeer(t, nw, "10.0.0.1", "str:alice", unsigned("str:alice", 1))
		b := simPeer(t, nw, "10.0.0.2", "str:bob", unsigned("str:bob", 2))
		time.Sleep(100 * time.Millisecond)
		if ps := b.Peers(); len(ps) != 1 || !ps[0].Authenticated || ps[0].CASigned {
			t.Fatalf("bob's table: %+v", ps)
		}
		// Another alice, another key.
		a2 := simPeer(t, nw, "10.0.0.3", "str:alice", unsigned("str:alice", 3))
		time.Sleep(100 * time.Millisecond)
		if st := b.Stats(); st.Takeover == 0 || b.Peers()[0].Addr.Addr() != netip.MustParseAddr("10.0.0.1") {
			t.Fatalf("bob: %+v %+v", b.Peers(), st)
		}
		a.Close()
		time.Sleep(DefaultInterval + time.Second)
		if ps := b.Peers(); len(ps) != 1 || ps[0].Addr != a2.LocalAddr() {
			t.Fatalf("after alice left, bob's table: %+v (the other alice is at %v)", ps, a2.LocalAddr())
		}
	})
}

func itoa(n int) string {
	return netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(n)).String()[len("0.0.0.0:"):]
}
