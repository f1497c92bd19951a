package netmsg

import (
	"crypto/ed25519"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
)

// TestIssueCertificateVerifies issues a certificate with the library and
// checks it with the verification path peers use (internal/crypto).
func TestIssueCertificateVerifies(t *testing.T) {
	ca, err := NewCAKey()
	if err != nil {
		t.Fatal(err)
	}
	holder, _ := crypto.GenerateIdentityKey(nil)
	id, _ := ParseIdentity("str:alice")
	created := time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)
	cert, err := IssueCertificate(ca, CertTemplate{
		Identity: id, PublicKey: holder.Public().(ed25519.PublicKey),
		AppIDs: []uint32{480, 7}, DataCenterIDs: []uint32{0x736561}, Created: created, Lifetime: 48 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	var cs pb.CertificateSigned
	if err := proto.Unmarshal(cert, &cs); err != nil {
		t.Fatal(err)
	}
	trust, err := crypto.NewTrustStore(crypto.CA{PublicKey: ca.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	policy := &crypto.PeerPolicy{
		Trust: trust, AppID: 480, Now: created.Add(time.Hour), ExpectedIdentity: "str:alice",
		ParseIdentity: func(s string) (crypto.Identity, error) { return ParseIdentity(s) },
	}
	msg := []byte("proof")
	sig := ed25519.Sign(holder, msg)
	got, signed, err := crypto.VerifyProof(policy, &cs, msg, sig)
	if err != nil || got != "str:alice" || !signed {
		t.Fatalf("VerifyProof = %q, %v, %v; want str:alice, CA-signed", got, signed, err)
	}
	if cs.GetCaKeyId() != CAKeyID(ca.Public().(ed25519.PublicKey)) || CAKeyID(ca.Public().(ed25519.PublicKey)) == 0 {
		t.Errorf("ca_key_id %d, CAKeyID %d", cs.GetCaKeyId(), CAKeyID(ca.Public().(ed25519.PublicKey)))
	}

	// The fields as given, times in whole seconds.
	var c pb.Certificate
	if err := proto.Unmarshal(cs.GetCert(), &c); err != nil {
		t.Fatal(err)
	}
	if c.GetTimeCreated() != uint32(created.Unix()) || c.GetTimeExpiry() != uint32(created.Unix()+48*3600) {
		t.Errorf("times %d..%d, want %d..%d", c.GetTimeCreated(), c.GetTimeExpiry(), created.Unix(), created.Unix()+48*3600)
	}
	if !slices.Equal(c.AppIds, []uint32{480, 7}) || !slices.Equal(c.GameserverDatacenterIds, []uint32{0x736561}) {
		t.Errorf("app IDs %v, data centers %v", c.AppIds, c.GameserverDatacenterIds)
	}

	// Peers refuse it under another CA, for another app, once expired.
	other, _ := NewCAKey()
	otherTrust, _ := crypto.NewTrustStore(crypto.CA{PublicKey: other.Public().(ed25519.PublicKey)})
	for name, c := range map[string]struct {
		p    crypto.PeerPolicy
		want error
	}{
		"other CA":  {crypto.PeerPolicy{Trust: otherTrust, AppID: 480, Now: policy.Now}, crypto.ErrCAUnknown},
		"other app": {crypto.PeerPolicy{Trust: trust, AppID: 1, Now: policy.Now}, crypto.ErrCertAppID},
		"expired":   {crypto.PeerPolicy{Trust: trust, AppID: 480, Now: created.Add(49 * time.Hour)}, crypto.ErrCertExpired},
	} {
		if _, _, err := crypto.VerifyProof(&c.p, &cs, msg, sig); !errors.Is(err, c.want) {
			t.Errorf("%s: VerifyProof err = %v, want %v", name, err, c.want)
		}
	}

	// A Host takes it with the holder's key, and so do the file forms.
	if gotID, _, err := ownCertificate(Identity{}, holder, 480, cert); err != nil || gotID != id {
		t.Errorf("ownCertificate = %v, %v; want %v", gotID, err, id)
	}
	back, key, err := LoadCertificate(MarshalCertificatePEM(cert), MarshalPrivateKey(holder, "x"))
	if err != nil || !slices.Equal(back, cert) || !key.Equal(holder) {
		t.Errorf("LoadCertificate round trip: %v", err)
	}
	if got, err := CertificateIdentity(cert); err != nil || got != id {
		t.Errorf("CertificateIdentity = %v, %v; want %v", got, err, id)
	}
	if _, err := CertificateIdentity([]byte("junk")); !errors.Is(err, ErrBadCertFile) {
		t.Errorf("CertificateIdentity(junk) err = %v, want ErrBadCertFile", err)
	}
	if err := CheckCertificateTime(cert, created.Add(time.Hour)); err != nil {
		t.Errorf("CheckCertificateTime within its lifetime: %v", err)
	}
}

func TestIssueCertificateDefaults(t *testing.T) {
	ca, _ := NewCAKey()
	holder, _ := crypto.GenerateIdentityKey(nil)
	id, _ := ParseIdentity("steamid:76561197960287930")
	before := time.Now().Truncate(time.Second)
	cert, err := IssueCertificate(ca, CertTemplate{Identity: id, PublicKey: holder.Public().(ed25519.PublicKey)})
	if err != nil {
		t.Fatal(err)
	}
	var cs pb.CertificateSigned
	var c pb.Certificate
	if err := proto.Unmarshal(cert, &cs); err != nil {
		t.Fatal(err)
	}
	if err := proto.Unmarshal(cs.GetCert(), &c); err != nil {
		t.Fatal(err)
	}
	cr := time.Unix(int64(c.GetTimeCreated()), 0)
	if cr.Before(before) || cr.After(time.Now()) {
		t.Errorf("created %v, want now", cr)
	}
	if d := time.Duration(c.GetTimeExpiry()-c.GetTimeCreated()) * time.Second; d != DefaultCertLifetime {
		t.Errorf("lifetime %v, want %v", d, DefaultCertLifetime)
	}
	if !slices.Equal(c.AppIds, []uint32{0}) || len(c.GameserverDatacenterIds) != 0 {
		t.Errorf("app IDs %v, data centers %v; want [0] and none", c.AppIds, c.GameserverDatacenterIds)
	}
	if c.GetLegacySteamId() != 76561197960287930 {
		t.Errorf("legacy_steam_id %d", c.GetLegacySteamId())
	}
}

func TestIssueCertificateRefuses(t *testing.T) {
	ca, _ := NewCAKey()
	holder, _ := crypto.GenerateIdentityKey(nil)
	pub := holder.Public().(ed25519.PublicKey)
	alice, _ := ParseIdentity("str:alice")
	for name, c := range map[string]struct {
		ca ed25519.PrivateKey
		t  CertTemplate
	}{
		"no CA":         {nil, CertTemplate{Identity: alice, PublicKey: pub}},
		"no key":        {ca, CertTemplate{Identity: alice}},
		"no identity":   {ca, CertTemplate{PublicKey: pub}},
		"localhost":     {ca, CertTemplate{Identity: IdentityLocalhost(), PublicKey: pub}},
		"negative life": {ca, CertTemplate{Identity: alice, PublicKey: pub, Lifetime: -time.Hour}},
		"beyond 2106":   {ca, CertTemplate{Identity: alice, PublicKey: pub, Lifetime: 200 * 365 * 24 * time.Hour}},
		"before 1970":   {ca, CertTemplate{Identity: alice, PublicKey: pub, Created: time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)}},
		"short pub key": {ca, CertTemplate{Identity: alice, PublicKey: pub[:31]}},
		"short CA key":  {ca[:32], CertTemplate{Identity: alice, PublicKey: pub}},
	} {
		if _, err := IssueCertificate(c.ca, c.t); !errors.Is(err, ResultInvalidParam) {
			t.Errorf("%s: err = %v, want ResultInvalidParam", name, err)
		} else if strings.Count(err.Error(), "netmsg:") != 1 {
			t.Errorf("%s: error %q repeats its prefix", name, err)
		}
	}
}

func TestCheckCertificateTime(t *testing.T) {
	ca, _ := NewCAKey()
	holder, _ := crypto.GenerateIdentityKey(nil)
	alice, _ := ParseIdentity("str:alice")
	created := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	cert, err := IssueCertificate(ca, CertTemplate{Identity: alice, PublicKey: holder.Public().(ed25519.PublicKey), Created: created, Lifetime: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	expiry := created.Add(24 * time.Hour)
	for _, c := range []struct {
		name string
		now  time.Time
		want error
		text string
	}{
		{"at creation", created, nil, ""},
		{"a second before expiry", expiry.Add(-time.Second), nil, ""},
		{"created a little ahead of our clock", created.Add(-certClockSkew), nil, ""},
		{"at expiry", expiry, ErrCertExpired, "str:alice expired at 2030-06-02 12:00:00 UTC (0s ago)"},
		{"three days after", expiry.Add(72 * time.Hour), ErrCertExpired, "(72h0m0s ago)"},
		{"created far ahead of our clock", created.Add(-certClockSkew - time.Second), ErrCertNotYetValid, "created at 2030-06-01 12:00:00 UTC, 5m1s from now"},
	} {
		err := CheckCertificateTime(cert, c.now)
		if !errors.Is(err, c.want) || (c.want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", c.name, err, c.want)
			continue
		}
		if err != nil && (!strings.Contains(err.Error(), c.text) || strings.Count(err.Error(), "netmsg:") != 1) {
			t.Errorf("%s: error %q, want one prefix and %q", c.name, err, c.text)
		}
	}

	// What a Host makes for itself has no times and is always valid.
	unsigned, err := UnsignedCertificate(alice, holder, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckCertificateTime(unsigned, time.Now()); err != nil {
		t.Errorf("unsigned certificate: %v", err)
	}
	// A signed certificate without an expiry is expired to GNS peers.
	c, _ := crypto.NewCert(crypto.CertTemplate{PublicKey: holder.Public().(ed25519.PublicKey), Identity: alice, AppIDs: []uint32{0}})
	cs, _ := crypto.SignCert(c, ca)
	noExpiry, _ := pb.Marshal(cs)
	if err := CheckCertificateTime(noExpiry, time.Now()); !errors.Is(err, ErrCertExpired) {
		t.Errorf("signed without expiry: err = %v, want ErrCertExpired", err)
	}
	for _, b := range [][]byte{nil, []byte("junk"), {0x0a, 0x01, 0xff}} {
		if err := CheckCertificateTime(b, time.Now()); !errors.Is(err, ErrBadCertFile) {
			t.Errorf("CheckCertificateTime(%x) = %v, want ErrBadCertFile", b, err)
		}
	}
}
