package crypto

import (
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/netmsg-go/netmsg/internal/pb"
)

// KeyParams is the input of DeriveKeys, from one end's point of view.
type KeyParams struct {
	// IsServer is set on the end that received the ConnectRequest.
	IsServer bool
	// LocalConnID and RemoteConnID are the two connection IDs.
	LocalConnID, RemoteConnID uint32
	// LocalCert is our serialized certificate (CertificateSigned.Cert)
	// exactly as sent.
	LocalCert []byte
	// Local is our crypt info; Peer the verified peer handshake.
	Local *LocalCrypt
	Peer  *Peer
	// Cipher is the negotiated cipher (NegotiateCipher).
	Cipher pb.Cipher
}

// SessionKeys are the keys of one connection, from one end's point of view.
type SessionKeys struct {
	Cipher           pb.Cipher
	SendKey, RecvKey [KeySize]byte
	SendIV, RecvIV   [IVSize]byte
}

// DeriveKeys computes the session keys exactly as GNS does:
//
//	shared   = X25519(our ephemeral key, peer's key_data)
//	premaster = SHA-256(shared)
//	salt     = server nonce (u64 LE) || client nonce (u64 LE)
//	prk      = HMAC-SHA256(key = premaster, message = salt)
//	info     = client conn ID (u32 LE) || server conn ID (u32 LE) ||
//	           "Steam datagram" || server cert || client cert ||
//	           server crypt info || client crypt info
//	T(i)     = HMAC-SHA256(key = prk, message = T(i-1) || info || byte(i))
//
// with T(0) empty; client-to-server key T1, server-to-client key T2,
// client-to-server IV T3[:12], server-to-client IV T4[:12]. The certificate
// and crypt info bytes are the inner serialized messages as they travelled.
// A peer key that is not CURVE25519 with 32 valid bytes, or that yields the
// all-zero secret, is ErrKeyExchange (4002).
func DeriveKeys(p KeyParams) (*SessionKeys, error) {
	if p.Local == nil || p.Local.priv == nil || p.Peer == nil || p.Peer.Crypt == nil {
		return nil, fmt.Errorf("crypto: DeriveKeys needs local crypt and a verified peer")
	}
	pc := p.Peer.Crypt
	if pc.GetKeyType() != pb.SessionCryptInfo_CURVE25519 {
		return nil, fmt.Errorf("%w: key type %d", ErrKeyExchange, pc.GetKeyType())
	}
	pub, err := ecdh.X25519().NewPublicKey(pc.GetKeyData())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyExchange, err)
	}
	shared, err := p.Local.priv.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrKeyExchange, err)
	}
	d := derivation{shared: shared}
	client, server := sideValues{p.LocalConnID, p.Local.Info.GetNonce(), p.LocalCert, p.Local.Signed.GetInfo()},
		sideValues{p.RemoteConnID, pc.GetNonce(), p.Peer.CertBytes, p.Peer.CryptBytes}
	if p.IsServer {
		client, server = server, client
	}
	d.run(client, server)
	k := &SessionKeys{Cipher: p.Cipher}
	if p.IsServer {
		k.SendKey, k.RecvKey = d.t[1], d.t[0]
		copy(k.SendIV[:], d.t[3][:IVSize])
		copy(k.RecvIV[:], d.t[2][:IVSize])
	} else {
		k.SendKey, k.RecvKey = d.t[0], d.t[1]
		copy(k.SendIV[:], d.t[2][:IVSize])
		copy(k.RecvIV[:], d.t[3][:IVSize])
	}
	clear(d.t[:])
	clear(d.premaster[:])
	clear(d.prk[:])
	clear(shared)
	return k, nil
}

// sideValues are one end's contributions to the derivation.
type sideValues struct {
	connID uint32
	nonce  uint64
	cert   []byte
	crypt  []byte
}

// derivation holds every intermediate value, so tests can check each.
type derivation struct {
	shared    []byte
	premaster [32]byte
	salt      [16]byte
	prk       [32]byte
	info      []byte
	t         [4][32]byte
}

func (d *derivation) run(client, server sideValues) {
	d.premaster = sha256.Sum256(d.shared)
	binary.LittleEndian.PutUint64(d.salt[:8], server.nonce)
	binary.LittleEndian.PutUint64(d.salt[8:], client.nonce)
	m := hmac.New(sha256.New, d.premaster[:])
	m.Write(d.salt[:])
	m.Sum(d.prk[:0])

	d.info = binary.LittleEndian.AppendUint32(d.info, client.connID)
	d.info = binary.LittleEndian.AppendUint32(d.info, server.connID)
	d.info = append(d.info, "Steam datagram"...)
	for _, b := range [][]byte{server.cert, client.cert, server.crypt, client.crypt} {
		d.info = append(d.info, b...)
	}
	m = hmac.New(sha256.New, d.prk[:])
	for i := range d.t {
		m.Reset()
		if i > 0 {
			m.Write(d.t[i-1][:])
		}
		m.Write(d.info)
		m.Write([]byte{byte(i + 1)})
		m.Sum(d.t[i][:0])
	}
}
