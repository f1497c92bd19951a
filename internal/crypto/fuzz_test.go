package crypto_test

import (
	"testing"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
)

// FuzzVerifyPeer: any certificate and crypt info bytes give a peer or an
// error with an end reason, never a panic.
func FuzzVerifyPeer(f *testing.F) {
	v := loadSession(f)
	for _, d := range v.Datagrams {
		if d.Kind == "ConnectRequest" || d.Kind == "ConnectOK" {
			_, m, err := pb.ParseControl(h(f, d.Hex))
			if err != nil {
				f.Fatal(err)
			}
			switch m := m.(type) {
			case *pb.UDPConnectRequest:
				f.Add(m.Cert.Cert, m.Crypt.Info, m.Crypt.Signature)
			case *pb.UDPConnectOK:
				f.Add(m.Cert.Cert, m.Crypt.Info, m.Crypt.Signature)
			}
		}
	}
	f.Fuzz(func(t *testing.T, cert, info, sig []byte) {
		p := &crypto.PeerPolicy{AllowUnsigned: true, ParseIdentity: parseIdentity}
		_, err := crypto.VerifyPeer(p, &pb.CertificateSigned{Cert: cert}, &pb.SessionCryptInfoSigned{Info: info, Signature: sig})
		if err != nil && crypto.EndReasonOf(err) == 0 {
			t.Fatalf("error without end reason: %v", err)
		}
	})
}

// FuzzOpen: Open never panics and never accepts a forgery of a known packet.
func FuzzOpen(f *testing.F) {
	c, _ := crypto.NewPacketCipher(pb.Cipher_CIPHER_AES_256_GCM, [32]byte{1}, [12]byte{2})
	good := c.Seal(nil, []byte("payload"), 9)
	f.Add(good, uint64(9))
	f.Add([]byte{}, uint64(0))
	f.Fuzz(func(t *testing.T, b []byte, n uint64) {
		in := append([]byte(nil), b...)
		out, err := c.Open(in, n)
		if err == nil && string(out) != "payload" {
			t.Fatalf("forgery accepted: %x", b)
		}
	})
}
