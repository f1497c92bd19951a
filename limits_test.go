package netmsg

import (
	"context"
	"crypto/ed25519"
	"errors"
	"net/netip"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestMessagesPayloadLimit: 512 KiB of payload exactly goes through the
// Messages API (its 5-byte header is not counted against it); one byte more
// is refused at once with ResultInvalidParam.
func TestMessagesPayloadLimit(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	alice, bob := udpMsgPair(t, nil)
	openSession(t, alice, bob)
	big := make([]byte, 512*1024)
	for i := range big {
		big[i] = byte(i * 7)
	}
	if err := alice.m.SendMessageToUser(bob.id, big[:len(big)-1], SendReliable, 1); err != nil {
		t.Fatalf("one byte under the limit: %v", err)
	}
	// The send buffer (512 KiB) holds the first until it is acked: wait
	// for room, as a sender does on ResultLimitExceeded.
	waitFor(t, time.Minute, "room for the second message", func() bool {
		err := alice.m.SendMessageToUser(bob.id, big, SendReliable, 1)
		if err != nil && !errors.Is(err, ResultLimitExceeded) {
			t.Fatalf("at the limit: %v", err)
		}
		return err == nil
	})
	if err := alice.m.SendMessageToUser(bob.id, append(big, 0), SendReliable, 1); !errors.Is(err, ResultInvalidParam) {
		t.Fatalf("one byte over: %v, want ResultInvalidParam", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, want := range []int{len(big) - 1, len(big)} {
		m, err := bob.m.Receive(ctx, 1)
		if err != nil {
			t.Fatal(err)
		}
		if m.Size != want || string(m.Payload) != string(big[:want]) {
			t.Fatalf("got %d bytes, want %d intact", m.Size, want)
		}
		m.Release()
	}
}

// TestConnPayloadLimit: the connection API takes 512 KiB exactly and
// refuses one byte more.
func TestConnPayloadLimit(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	srv := newTestPeer(t, Config{}, true)
	defer srv.Close()
	if _, err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	cli := newTestPeer(t, Config{}, false)
	defer cli.Close()
	c, err := cli.Connect(srv.LocalAddr())
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 512*1024)
	if _, err := cli.SendMessageToConnection(c, append(big, 0), SendReliable); !errors.Is(err, ResultInvalidParam) {
		t.Fatalf("one byte over: %v, want ResultInvalidParam", err)
	}
	if _, err := cli.SendMessageToConnection(c, big, SendReliable); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	var sc ConnHandle
	waitFor(t, time.Minute, "the server's connection", func() bool {
		for _, ev := range srv.seen() {
			if ev.Info.State == StateConnected {
				sc = ev.Conn
				return true
			}
		}
		return false
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ms, err := srv.ReceiveBatch(ctx, sc, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ms[0].Size != len(big) {
		t.Fatalf("got %d bytes, want %d", ms[0].Size, len(big))
	}
	ms[0].Release()
}

// TestSendToUnroutable: a send to an ip: identity no socket can have fails
// at once with ResultInvalidParam, on both APIs, and makes no session.
func TestSendToUnroutable(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) })
	alice, _ := udpMsgPair(t, nil)
	for _, s := range []string{"ip:0.0.0.0:27015", "ip:127.0.0.1:0", "ip:255.255.255.255:27015", "ip:224.0.0.1:27015", "ip:[ff02::1]:27015", "ip:[::]:27015"} {
		id, err := ParseIdentity(s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		start := time.Now()
		if err := alice.m.SendMessageToUser(id, []byte("x"), SendReliable, 0); !errors.Is(err, ResultInvalidParam) || !errors.Is(err, ErrUnroutable) {
			t.Errorf("%s: %v, want ResultInvalidParam and ErrUnroutable", s, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: refused after %v, want at once", s, d)
		}
		if st, _, _ := alice.m.GetSessionConnectionInfo(id); st != StateNone {
			t.Errorf("%s: a session in state %v", s, st)
		}
		if ap, ok := id.Addr(); ok {
			if _, err := alice.Connect(ap); !errors.Is(err, ResultInvalidParam) {
				t.Errorf("Connect(%v): %v, want ResultInvalidParam", ap, err)
			}
		}
	}
	if err := alice.m.SendMessageToUser(Identity{}, []byte("x"), SendReliable, 0); !errors.Is(err, ResultInvalidParam) {
		t.Errorf("invalid identity: %v", err)
	}
}

// TestNewHostRefusesExpiredCertificate: a Host does not start with an
// expired certificate of its own (GNS will not present one; peers would
// refuse it), and says so.
func TestNewHostRefusesExpiredCertificate(t *testing.T) {
	_, caKey, _ := ed25519.GenerateKey(nil)
	pub, key, _ := ed25519.GenerateKey(nil)
	id, _ := ParseIdentity("str:expired")
	cert, err := IssueCertificate(caKey, CertTemplate{Identity: id, PublicKey: pub, Created: time.Now().Add(-48 * time.Hour), Lifetime: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	h, err := NewHost(Config{Certificate: cert, PrivateKey: key, ListenAddr: netip.MustParseAddrPort("127.0.0.1:0")})
	if err == nil {
		h.Close()
		t.Fatal("NewHost took an expired certificate")
	}
	if !errors.Is(err, ErrCertExpired) {
		t.Fatalf("error %v does not match ErrCertExpired", err)
	}
	good, err := IssueCertificate(caKey, CertTemplate{Identity: id, PublicKey: pub})
	if err != nil {
		t.Fatal(err)
	}
	h, err = NewHost(Config{Certificate: good, PrivateKey: key, ListenAddr: netip.MustParseAddrPort("127.0.0.1:0")})
	if err != nil {
		t.Fatalf("a valid certificate: %v", err)
	}
	h.Close()
}
