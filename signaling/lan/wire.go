package lan

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/netmsg-go/netmsg/signaling"
)

// Wire constants of the LAN protocol (ours; see doc.go).
const (
	// magic starts every datagram: "NMLN", then the version.
	magic   = "NMLN"
	version = 1

	// headerLen is magic, version, kind and flags.
	headerLen = len(magic) + 3

	// flagSigned: the datagram ends with a 64-byte Ed25519 signature.
	flagSigned = 1

	// sigDomain is prepended to what a signature covers, so a signature
	// made for this protocol means nothing elsewhere.
	sigDomain = "netmsg-lan/1\x00"

	// maxCertLen bounds the certificate an announcement carries (a GNS
	// certificate is about 150 bytes).
	maxCertLen = 2048

	// maxDatagram is the longest datagram the protocol makes: a signal
	// with the largest blob, two identities and a signature.
	maxDatagram = headerLen + 8 + 8 + 2*(1+signaling.MaxIdentityLen) + 2 + signaling.MaxBlobSize + ed25519.SignatureSize
)

// kind is a datagram's kind.
type kind uint8

const (
	// kindAnnounce: a peer's identity, where it listens and for how long
	// to keep it; TTL 0 says the peer leaves.
	kindAnnounce kind = 1
	// kindQuery asks the holder of an identity to announce itself to the
	// sender.
	kindQuery kind = 2
	// kindSignal carries a signaling blob from one identity to another.
	kindSignal kind = 3
)

// errMalformed is wrapped by every parse error.
var errMalformed = errors.New("lan: malformed datagram")

// announcement is a kindAnnounce datagram.
type announcement struct {
	Instance uint64 // random per Conn: tells a restart from a replay
	Seq      uint64 // counts the instance's announcements from 1
	TimeMs   int64  // sender's clock, Unix milliseconds
	TTLms    uint32 // keep the entry this long; 0: the peer leaves
	Port     uint16 // the sender's unicast port (signals go there)
	ID       string
	Cert     []byte // GNS CertificateSigned; present iff signed
	Sig      []byte // over sigDomain and every byte before it
}

// query is a kindQuery datagram.
type query struct {
	Instance uint64
	From     string // the asker (informative)
	Target   string
}

// signal is a kindSignal datagram.
type signal struct {
	Instance uint64
	TimeMs   int64
	From, To string
	Blob     []byte
	Sig      []byte // present iff signed
}

// appendHeader appends magic, version, k and flags.
func appendHeader(b []byte, k kind, signed bool) []byte {
	var f byte
	if signed {
		f = flagSigned
	}
	b = append(b, magic...)
	return append(b, version, byte(k), f)
}

func appendID(b []byte, id string) []byte {
	b = append(b, byte(len(id)))
	return append(b, id...)
}

// appendAnnouncement appends a without its signature; sign appends that.
func appendAnnouncement(b []byte, a *announcement) []byte {
	b = appendHeader(b, kindAnnounce, len(a.Cert) > 0)
	b = binary.BigEndian.AppendUint64(b, a.Instance)
	b = binary.BigEndian.AppendUint64(b, a.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(a.TimeMs))
	b = binary.BigEndian.AppendUint32(b, a.TTLms)
	b = binary.BigEndian.AppendUint16(b, a.Port)
	b = appendID(b, a.ID)
	b = binary.BigEndian.AppendUint16(b, uint16(len(a.Cert)))
	return append(b, a.Cert...)
}

func appendQuery(b []byte, q *query) []byte {
	b = appendHeader(b, kindQuery, false)
	b = binary.BigEndian.AppendUint64(b, q.Instance)
	b = appendID(b, q.From)
	return appendID(b, q.Target)
}

// appendSignal appends s without its signature; signed says whether one
// will follow.
func appendSignal(b []byte, s *signal, signed bool) []byte {
	b = appendHeader(b, kindSignal, signed)
	b = binary.BigEndian.AppendUint64(b, s.Instance)
	b = binary.BigEndian.AppendUint64(b, uint64(s.TimeMs))
	b = appendID(b, s.From)
	b = appendID(b, s.To)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Blob)))
	return append(b, s.Blob...)
}

// signedMessage is what a signature covers: the domain, then the datagram
// up to the signature.
func signedMessage(body []byte) []byte {
	return append([]byte(sigDomain), body...)
}

// sign appends the signature of body (which b ends with) by key.
func sign(body []byte, key ed25519.PrivateKey) []byte {
	return append(body, ed25519.Sign(key, signedMessage(body))...)
}

// reader reads the fields of a datagram; the first shortage sets bad.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if r.bad || n > len(r.b) {
		r.bad = true
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) u8() uint8 {
	if v := r.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.BigEndian.Uint32(v)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if v := r.take(8); v != nil {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// id reads a length-prefixed identity and checks it is one.
func (r *reader) id() string {
	s := string(r.take(int(r.u8())))
	if !r.bad && signaling.CheckIdentity(s) != nil {
		r.bad = true
	}
	return s
}

// parseHeader returns a datagram's kind and whether it is signed, and the
// rest after the header.
func parseHeader(b []byte) (k kind, signed bool, rest []byte, err error) {
	if len(b) < headerLen || string(b[:len(magic)]) != magic {
		return 0, false, nil, fmt.Errorf("%w: not a netmsg LAN datagram", errMalformed)
	}
	if b[len(magic)] != version {
		return 0, false, nil, fmt.Errorf("%w: version %d", errMalformed, b[len(magic)])
	}
	f := b[len(magic)+2]
	if f&^flagSigned != 0 {
		return 0, false, nil, fmt.Errorf("%w: flags %#x", errMalformed, f)
	}
	return kind(b[len(magic)+1]), f&flagSigned != 0, b[headerLen:], nil
}

// splitSig splits a signed datagram into its body (what the signature
// covers) and the signature.
func splitSig(b []byte, signed bool) (body, sig []byte, err error) {
	if !signed {
		return b, nil, nil
	}
	if len(b) < headerLen+ed25519.SignatureSize {
		return nil, nil, fmt.Errorf("%w: no room for a signature", errMalformed)
	}
	n := len(b) - ed25519.SignatureSize
	return b[:n], b[n:], nil
}

// parseAnnouncement parses a kindAnnounce datagram (the whole of it). A
// is valid only while b is: its Cert and Sig alias b.
func parseAnnouncement(b []byte) (a announcement, body []byte, err error) {
	_, signed, _, err := parseHeader(b)
	if err != nil {
		return a, nil, err
	}
	body, a.Sig, err = splitSig(b, signed)
	if err != nil {
		return a, nil, err
	}
	r := reader{b: body[headerLen:]}
	a.Instance = r.u64()
	a.Seq = r.u64()
	a.TimeMs = int64(r.u64())
	a.TTLms = r.u32()
	a.Port = r.u16()
	a.ID = r.id()
	n := int(r.u16())
	if n > maxCertLen {
		r.bad = true
	}
	a.Cert = r.take(n)
	switch {
	case r.bad || len(r.b) != 0:
		return a, nil, fmt.Errorf("%w: bad announcement", errMalformed)
	case signed != (len(a.Cert) > 0):
		return a, nil, fmt.Errorf("%w: a certificate without a signature, or the reverse", errMalformed)
	}
	return a, body, nil
}

func parseQuery(b []byte) (q query, err error) {
	_, signed, rest, err := parseHeader(b)
	if err != nil {
		return q, err
	}
	r := reader{b: rest}
	q.Instance = r.u64()
	q.From = r.id()
	q.Target = r.id()
	if signed || r.bad || len(r.b) != 0 {
		return q, fmt.Errorf("%w: bad query", errMalformed)
	}
	return q, nil
}

// parseSignal parses a kindSignal datagram; s.Blob and s.Sig alias b.
func parseSignal(b []byte) (s signal, body []byte, err error) {
	_, signed, _, err := parseHeader(b)
	if err != nil {
		return s, nil, err
	}
	body, s.Sig, err = splitSig(b, signed)
	if err != nil {
		return s, nil, err
	}
	r := reader{b: body[headerLen:]}
	s.Instance = r.u64()
	s.TimeMs = int64(r.u64())
	s.From = r.id()
	s.To = r.id()
	n := int(r.u16())
	if n > signaling.MaxBlobSize {
		r.bad = true
	}
	s.Blob = r.take(n)
	if r.bad || len(r.b) != 0 {
		return s, nil, fmt.Errorf("%w: bad signal", errMalformed)
	}
	return s, body, nil
}
