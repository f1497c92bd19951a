package conn

import (
	"crypto/ed25519"
	"crypto/sha256"
	"net/netip"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/snp"
)

// t0 is the fake start time of every test.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func testKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte(name))
	return ed25519.NewKeyFromSeed(seed[:])
}

func testConfig(identity string) Config {
	return Config{Identity: identity, Key: testKey(identity)}
}

var (
	clientAddr = netip.MustParseAddrPort("10.0.0.1:5000")
	serverAddr = netip.MustParseAddrPort("10.0.0.2:27020")
)

// pair is a client Conn and a server host (a Listener and its Conns) joined
// by an in-test network that can drop datagrams. Time is fake: run advances
// it to the next wake-up.
type pair struct {
	t          testing.TB
	now        time.Time
	client     *Conn
	lis        *Listener
	server     *Conn // the one connection the server host holds
	accept     bool  // the server application accepts at once
	drop       func(dir string, d []byte) bool
	sent       []string // kinds sent, "c2s:ConnectRequest" etc.
	serverGone bool     // the server host is unplugged: drops everything
	clientGone bool
	buf        []byte
}

func newPair(t testing.TB, ccfg, scfg Config) *pair {
	t.Helper()
	p := &pair{t: t, now: t0, accept: true, buf: make([]byte, 0, 2048)}
	var err error
	p.client, err = Dial(ccfg, p.now, 0x1111_2222, serverAddr)
	if err != nil {
		t.Fatal(err)
	}
	p.lis, err = NewListener(scfg, []byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (p *pair) toServer(d []byte) {
	if p.serverGone {
		return
	}
	k, id := Classify(d)
	switch {
	case k == KindChallengeRequest:
		r, err := p.lis.HandleChallengeRequest(p.now, clientAddr, d, nil)
		if err == nil {
			p.toClient(append([]byte(nil), r...))
		}
	case k == KindConnectRequest && (p.server == nil || p.server.State() == StateDead):
		c, reply, err := p.lis.HandleConnectRequest(p.now, clientAddr, d, 0x3333_4444)
		if reply != nil {
			p.toClient(reply)
		}
		if err == nil {
			p.server = c
			if p.accept {
				if err := c.Accept(p.now); err != nil {
					p.t.Fatalf("accept: %v", err)
				}
			}
		}
	case p.server != nil && (k == KindConnectRequest || id == p.server.LocalID()):
		p.server.HandleDatagram(p.now, clientAddr, d)
	default:
		if r := p.lis.HandleStray(p.now, clientAddr, d, nil); r != nil {
			p.toClient(r)
		}
	}
}

func (p *pair) toClient(d []byte) {
	if p.clientGone {
		return
	}
	if p.drop != nil && p.drop("s2c", d) {
		return
	}
	p.sent = append(p.sent, "s2c:"+kindOf(d))
	p.client.HandleDatagram(p.now, serverAddr, d)
}

func kindOf(d []byte) string { k, _ := Classify(d); return k.String() }

// step polls both sides at p.now and delivers what they send, until
// neither sends anything.
func (p *pair) step() {
	for range 10000 {
		moved := false
		for {
			d, ok := p.client.Poll(p.now, p.buf)
			if !ok {
				break
			}
			moved = true
			d = append([]byte(nil), d...)
			if p.drop != nil && p.drop("c2s", d) {
				continue
			}
			p.sent = append(p.sent, "c2s:"+kindOf(d))
			if !p.clientGone {
				p.toServer(d)
			}
		}
		if p.server != nil {
			for {
				d, ok := p.server.Poll(p.now, p.buf)
				if !ok {
					break
				}
				moved = true
				d = append([]byte(nil), d...)
				if p.drop != nil && p.drop("s2c", d) {
					continue
				}
				p.sent = append(p.sent, "s2c:"+kindOf(d))
				if !p.serverGone {
					p.client.HandleDatagram(p.now, serverAddr, d)
				}
			}
		}
		if !moved {
			return
		}
	}
	p.t.Fatal("step: no quiescence")
}

// run steps until d of fake time has passed, jumping to each wake-up.
func (p *pair) run(d time.Duration) {
	end := p.now.Add(d)
	for {
		p.step()
		next := end
		for _, c := range []*Conn{p.client, p.server} {
			if c == nil {
				continue
			}
			if w := c.NextWake(); !w.IsZero() && w.Before(next) {
				next = w
			}
		}
		if !next.After(p.now) {
			next = p.now.Add(time.Millisecond)
		}
		if next.After(end) {
			p.now = end
			p.step()
			return
		}
		p.now = next
	}
}

// until runs until cond holds or d passes.
func (p *pair) until(d time.Duration, cond func() bool) bool {
	end := p.now.Add(d)
	for p.now.Before(end) {
		if cond() {
			return true
		}
		p.run(10 * time.Millisecond)
	}
	return cond()
}

func recvAll(c *Conn) []snp.Message {
	var out []snp.Message
	buf := make([]snp.Message, 16)
	for {
		n := c.Receive(buf)
		if n == 0 {
			return out
		}
		out = append(out, buf[:n]...)
	}
}

func events(c *Conn) []Event {
	var out []Event
	for {
		e, ok := c.NextEvent()
		if !ok {
			return out
		}
		out = append(out, e)
	}
}
