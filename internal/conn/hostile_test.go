package conn

import (
	"errors"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/snp"
)

// capturedPair returns a connected pair and a data datagram the server sent
// the client (already delivered).
func capturedPair(t *testing.T) (*pair, []byte) {
	p := connectedPair(t)
	var got []byte
	p.drop = func(dir string, d []byte) bool {
		if dir == "s2c" && d[0]&0x80 != 0 && got == nil {
			got = append([]byte(nil), d...)
		}
		return false
	}
	p.server.Send(p.now, 0, []byte("payload for the hostile tests"), snp.Reliable)
	p.run(100 * time.Millisecond)
	p.drop = nil
	if got == nil {
		t.Fatal("nothing captured")
	}
	recvAll(p.client)
	return p, got
}

func TestHostileData(t *testing.T) {
	p, d := capturedPair(t)
	c := p.client
	check := func(name string, b []byte, want error) {
		t.Helper()
		err := c.HandleDatagram(p.now, serverAddr, b)
		if want != nil && !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", name, err, want)
		}
		if err == nil && want != nil {
			t.Errorf("%s accepted", name)
		}
		if c.State() != StateConnected {
			t.Fatalf("%s: state %d (%d %q)", name, c.State(), c.EndReason(), c.EndDebug())
		}
	}
	check("replay", d, ErrReplay)
	for i := range len(d) {
		check("prefix", d[:i], nil)
	}
	tampered := append([]byte(nil), d...)
	tampered[len(tampered)-20] ^= 0x40
	// A tampered copy of a packet already received is refused as a replay
	// before decryption; make it look new.
	tampered[5]++
	check("tampered", tampered, ErrAuth)
	wrong := append([]byte(nil), d...)
	wrong[1] ^= 0xff
	check("wrong id", wrong, ErrWrongConnID)
	check("oversized", make([]byte, 1400), ErrMalformed)
	if err := c.HandleDatagram(p.now, netip.MustParseAddrPort("10.9.9.9:1"), d); !errors.Is(err, ErrWrongAddr) {
		t.Errorf("other address: %v", err)
	}
	st := c.ConnStats()
	if st.Replayed == 0 || st.AuthFailed != 1 || st.WrongConnID != 1 || st.Malformed == 0 || st.WrongAddr != 1 {
		t.Errorf("counters %+v", st)
	}
	s := c.Stats(p.now)
	if s.PacketsBad < 1 || s.PacketsDuplicate < 1 {
		t.Errorf("engine stats %+v", s)
	}
	// The connection still works.
	p.server.Send(p.now, 0, []byte("still here"), snp.Reliable)
	p.run(100 * time.Millisecond)
	if m := recvAll(c); len(m) != 1 || string(m[0].Data) != "still here" {
		t.Errorf("after hostile input: %d messages", len(m))
	}
}

func TestHostileGarbage(t *testing.T) {
	p, d := capturedPair(t)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		n := r.IntN(1400)
		b := make([]byte, n)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		if n > 0 && i%3 == 0 {
			b[0] = byte(0x20 + r.IntN(6)) // a control lead byte
		}
		if n > 7 && i%3 == 1 {
			copy(b, d[:7]) // our header, garbage after it
			b[5], b[6] = byte(r.Uint32()), byte(r.Uint32())
		}
		for _, c := range []*Conn{p.client, p.server} {
			c.HandleDatagram(p.now, c.RemoteAddr(), b)
		}
		Classify(b)
		p.lis.HandleChallengeRequest(p.now, clientAddr, b, nil)
		p.lis.HandleConnectRequest(p.now, clientAddr, b, 99)
		p.lis.HandleStray(p.now, clientAddr, b, nil)
	}
	if p.client.State() != StateConnected || p.server.State() != StateConnected {
		t.Fatalf("states %d %d", p.client.State(), p.server.State())
	}
	p.run(50 * time.Millisecond)
}

// TestRepeatedConnectRequest: a connect request repeated after the server
// accepted (its connect OK was lost) is answered with connect OK again.
func TestRepeatedConnectRequest(t *testing.T) {
	p := newPair(t, testConfig("str:client"), testConfig("str:server"))
	drops := 0
	p.drop = func(dir string, d []byte) bool {
		if dir == "s2c" && d[0] == leadConnectOK && drops < 2 {
			drops++
			return true
		}
		return false
	}
	p.run(3 * time.Second)
	if p.client.State() != StateConnected || p.server.State() != StateConnected {
		t.Fatalf("states %d %d", p.client.State(), p.server.State())
	}
	if p.server.ConnStats().ConnectOKsSent < 3 {
		t.Errorf("connect OK sent %d times", p.server.ConnStats().ConnectOKsSent)
	}
}
