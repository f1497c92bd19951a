package relay

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"
	"github.com/pion/turn/v5"
)

// rawTURN is a TURN client that builds each request itself, for the
// requests a well-behaved client never makes (a ChannelBind to a refused
// peer, a Send indication without a permission, floods).
type rawTURN struct {
	t           testing.TB
	c           net.PacketConn
	srv         net.Addr
	user, realm string
	key         stun.MessageIntegrity
	nonce       stun.Nonce
	buf         []byte
	last        *stun.Message // the last successful answer of do
}

// newRawTURN binds a UDP socket at bind ("127.0.0.1:0") for a client of
// the server at srv.
func newRawTURN(t testing.TB, srv netip.AddrPort, bind, user, pass string) *rawTURN {
	t.Helper()
	c, err := net.ListenPacket("udp4", bind)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawTURN{t: t, c: c, srv: net.UDPAddrFromAddrPort(srv), user: user, realm: "netmsg",
		key: stun.MessageIntegrity(turn.GenerateAuthKey(user, "netmsg", pass)), buf: make([]byte, 1600)}
}

var attrRequestedTransportUDP = stun.RawAttribute{Type: stun.AttrRequestedTransport, Value: []byte{17, 0, 0, 0}}

func peerAttr(ap netip.AddrPort) stun.Setter {
	return xorPeer{stun.XORMappedAddress{IP: ap.Addr().AsSlice(), Port: int(ap.Port())}}
}

type xorPeer struct{ a stun.XORMappedAddress }

func (p xorPeer) AddTo(m *stun.Message) error { return p.a.AddToAs(m, stun.AttrXORPeerAddress) }

func channelAttr(n uint16) stun.Setter {
	return stun.RawAttribute{Type: stun.AttrChannelNumber, Value: []byte{byte(n >> 8), byte(n), 0, 0}}
}

// build makes an authenticated request (or indication) of method.
func (r *rawTURN) build(t stun.MessageType, attrs ...stun.Setter) *stun.Message {
	r.t.Helper()
	setters := append([]stun.Setter{stun.TransactionID, t}, attrs...)
	if t.Class == stun.ClassRequest {
		setters = append(setters, stun.NewUsername(r.user), stun.NewRealm(r.realm), r.nonce, r.key)
	}
	setters = append(setters, stun.Fingerprint)
	m, err := stun.Build(setters...)
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

// send writes m to the server without waiting for an answer.
func (r *rawTURN) send(m *stun.Message) {
	if _, err := r.c.WriteTo(m.Raw, r.srv); err != nil {
		r.t.Fatal(err)
	}
}

// read returns the answer to transaction id, or an error after d.
func (r *rawTURN) read(id [stun.TransactionIDSize]byte, d time.Duration) (*stun.Message, error) {
	deadline := time.Now().Add(d)
	for {
		r.c.SetReadDeadline(deadline)
		n, _, err := r.c.ReadFrom(r.buf)
		if err != nil {
			return nil, err
		}
		m := &stun.Message{Raw: append([]byte(nil), r.buf[:n]...)}
		if m.Decode() == nil && m.TransactionID == id {
			return m, nil
		}
	}
}

// do makes an authenticated request and returns the answer's error code
// (0 on success). It fetches a nonce first when it has none or when the
// server calls it stale.
func (r *rawTURN) do(method stun.Method, attrs ...stun.Setter) int {
	r.t.Helper()
	for range 3 {
		m := r.build(stun.NewType(method, stun.ClassRequest), attrs...)
		r.send(m)
		resp, err := r.read(m.TransactionID, 3*time.Second)
		if err != nil {
			r.t.Fatalf("%v: %v", method, err)
		}
		if resp.Type.Class == stun.ClassSuccessResponse {
			r.last = resp
			return 0
		}
		var code stun.ErrorCodeAttribute
		if err := code.GetFrom(resp); err != nil {
			r.t.Fatalf("%v: answer without an error code: %v", method, resp)
		}
		if code.Code == stun.CodeUnauthorized || code.Code == stun.CodeStaleNonce {
			var nonce stun.Nonce
			if nonce.GetFrom(resp) == nil {
				if len(r.nonce) > 0 && code.Code == stun.CodeUnauthorized {
					return int(code.Code)
				}
				r.nonce = nonce
				continue
			}
		}
		return int(code.Code)
	}
	r.t.Fatalf("%v: no nonce accepted", method)
	return -1
}

// allocate makes an Allocate request.
func (r *rawTURN) allocate() int { return r.do(stun.MethodAllocate, attrRequestedTransportUDP) }

// expectNothing checks that nothing reaches c for d.
func expectNothing(t *testing.T, c net.PacketConn, d time.Duration) {
	t.Helper()
	buf := make([]byte, 1600)
	c.SetReadDeadline(time.Now().Add(d))
	if n, from, err := c.ReadFrom(buf); !errors.Is(err, net.ErrClosed) && err == nil {
		t.Errorf("%d bytes from %v reached a refused peer", n, from)
	}
}
