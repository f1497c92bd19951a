package conn

import (
	"bytes"
	"crypto/ed25519"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/snp"
)

func TestHandshakeAndMessages(t *testing.T) {
	p := newPair(t, testConfig("str:client"), testConfig("str:server"))
	p.run(50 * time.Millisecond)
	if p.client.State() != StateConnected || p.server == nil || p.server.State() != StateConnected {
		t.Fatalf("states: client %d server %v; sent %v", p.client.State(), p.server, p.sent)
	}
	if got := p.client.RemoteIdentity(); got != "str:server" {
		t.Errorf("client sees %q", got)
	}
	if got := p.server.RemoteIdentity(); got != "str:client" {
		t.Errorf("server sees %q", got)
	}
	if _, err := p.client.Send(p.now, 0, []byte("hello reliable"), snp.Reliable); err != nil {
		t.Fatal(err)
	}
	if _, err := p.client.Send(p.now, 0, []byte("hello unreliable"), snp.Unreliable); err != nil {
		t.Fatal(err)
	}
	if _, err := p.server.Send(p.now, 0, []byte("back reliable"), snp.Reliable); err != nil {
		t.Fatal(err)
	}
	if _, err := p.server.Send(p.now, 0, []byte("back unreliable"), snp.Unreliable); err != nil {
		t.Fatal(err)
	}
	p.run(100 * time.Millisecond)
	got := map[string]bool{}
	for _, m := range recvAll(p.server) {
		got["s:"+string(m.Data)] = true
	}
	for _, m := range recvAll(p.client) {
		got["c:"+string(m.Data)] = true
	}
	for _, w := range []string{"s:hello reliable", "s:hello unreliable", "c:back reliable", "c:back unreliable"} {
		if !got[w] {
			t.Errorf("missing %s; got %v", w, got)
		}
	}
	t.Logf("sent: %v", p.sent)
}

func connectedPair(t *testing.T) *pair {
	t.Helper()
	p := newPair(t, testConfig("str:client"), testConfig("str:server"))
	p.run(50 * time.Millisecond)
	if p.client.State() != StateConnected || p.server == nil || p.server.State() != StateConnected {
		t.Fatalf("not connected: %d", p.client.State())
	}
	events(p.client)
	events(p.server)
	return p
}

func TestCloseWithReason(t *testing.T) {
	p := connectedPair(t)
	p.client.Close(p.now, 1234, "bye now", false)
	if p.client.State() != StateFinWait {
		t.Fatalf("client state %d", p.client.State())
	}
	p.run(10 * time.Millisecond)
	if s := p.server.State(); s != StateClosedByPeer {
		t.Fatalf("server state %d", s)
	}
	if p.server.EndReason() != 1234 || p.server.EndDebug() != "bye now" {
		t.Errorf("server end %d %q", p.server.EndReason(), p.server.EndDebug())
	}
	ev := events(p.server)
	if len(ev) != 1 || ev[0] != (Event{State: StateClosedByPeer, EndReason: 1234, EndDebug: "bye now"}) {
		t.Errorf("server events %+v", ev)
	}
	if _, err := p.server.Send(p.now, 0, []byte("x"), snp.Reliable); err == nil {
		t.Error("send after closed by peer")
	}
	// The server application closes its end too; both are dead 5 s later.
	p.server.Close(p.now, 0, "", false)
	if p.server.State() != StateFinWait || p.server.EndReason() != 1234 {
		t.Errorf("server after close: %d %d", p.server.State(), p.server.EndReason())
	}
	p.run(finWaitTimeout + time.Second)
	if p.client.State() != StateDead || p.server.State() != StateDead {
		t.Errorf("states %d %d", p.client.State(), p.server.State())
	}
	// The client's connection closed was answered with no connection.
	found := false
	for _, s := range p.sent {
		if s == "s2c:NoConnection" {
			found = true
		}
	}
	if !found {
		t.Errorf("no no-connection answer: %v", p.sent)
	}
}

func TestCloseReasonRules(t *testing.T) {
	for _, tc := range []struct {
		reason    int
		debug     string
		wantCode  int
		wantDebug string
	}{
		{0, "", 1000, "Application closed connection"},
		{2500, "", 2500, "Application closed connection in an unusual way"},
		{4001, "x", 1999, "Invalid numeric reason code"},
		{1500, "mine", 1500, "mine"},
	} {
		p := connectedPair(t)
		p.client.Close(p.now, tc.reason, tc.debug, false)
		p.run(10 * time.Millisecond)
		if p.server.EndReason() != tc.wantCode || p.server.EndDebug() != tc.wantDebug {
			t.Errorf("close(%d,%q): peer sees %d %q", tc.reason, tc.debug, p.server.EndReason(), p.server.EndDebug())
		}
	}
}

func TestLingerFlushesReliable(t *testing.T) {
	p := connectedPair(t)
	big := make([]byte, 100_000)
	if _, err := p.client.Send(p.now, 0, big, snp.Reliable); err != nil {
		t.Fatal(err)
	}
	p.client.Close(p.now, 1000, "done", true)
	if p.client.State() != StateLinger {
		t.Fatalf("state %d, want linger", p.client.State())
	}
	p.run(2 * time.Second)
	msgs := recvAll(p.server)
	if len(msgs) != 1 || len(msgs[0].Data) != len(big) {
		t.Fatalf("server got %d messages", len(msgs))
	}
	if p.server.State() != StateClosedByPeer || p.server.EndReason() != 1000 {
		t.Errorf("server %d %d", p.server.State(), p.server.EndReason())
	}
	if s := p.client.State(); s != StateFinWait && s != StateDead {
		t.Errorf("client %d", s)
	}
}

func TestPeerVanishesWhileSending(t *testing.T) {
	p := connectedPair(t)
	p.serverGone = true
	if _, err := p.client.Send(p.now, 0, []byte("anyone?"), snp.Reliable); err != nil {
		t.Fatal(err)
	}
	ok := p.until(60*time.Second, func() bool { return p.client.State() == StateProblemDetectedLocally })
	if !ok {
		t.Fatalf("client state %d after 60 s; stats %+v", p.client.State(), p.client.ConnStats())
	}
	if p.client.EndReason() != EndMiscTimeout || p.client.EndDebug() != "Connection dropped" {
		t.Errorf("end %d %q", p.client.EndReason(), p.client.EndDebug())
	}
	if p.client.ConnStats().ReplyTimeouts < replyTimeoutsToDrop {
		t.Errorf("reply timeouts %d", p.client.ConnStats().ReplyTimeouts)
	}
}

func TestServerNeverAccepts(t *testing.T) {
	p := newPair(t, testConfig("str:client"), testConfig("str:server"))
	p.accept = false
	p.run(5 * time.Second)
	if p.client.State() != StateConnecting || p.server == nil || p.server.State() != StateConnecting {
		t.Fatalf("states %d %v", p.client.State(), p.server)
	}
	p.run(6 * time.Second)
	if p.client.State() != StateProblemDetectedLocally || p.client.EndReason() != EndMiscTimeout ||
		p.client.EndDebug() != "Timed out attempting to connect" {
		t.Errorf("client %d %d %q", p.client.State(), p.client.EndReason(), p.client.EndDebug())
	}
	if s := p.server.State(); s != StateProblemDetectedLocally && s != StateClosedByPeer {
		t.Errorf("server %d", s)
	}
	if p.server.EndReason() != EndMiscTimeout {
		t.Errorf("server end %d %q", p.server.EndReason(), p.server.EndDebug())
	}
}

func TestServerRejects(t *testing.T) {
	p := newPair(t, testConfig("str:client"), testConfig("str:server"))
	p.accept = false
	p.run(100 * time.Millisecond)
	if p.server == nil {
		t.Fatal("no server connection")
	}
	p.server.Close(p.now, 1007, "not today", false)
	p.run(100 * time.Millisecond)
	if p.client.State() != StateClosedByPeer || p.client.EndReason() != 1007 || p.client.EndDebug() != "not today" {
		t.Errorf("client %d %d %q", p.client.State(), p.client.EndReason(), p.client.EndDebug())
	}
	if err := p.server.Accept(p.now); err == nil {
		t.Error("accepted a closed connection")
	}
}

func TestNoConnectionWhileConnecting(t *testing.T) {
	p := newPair(t, testConfig("str:client"), testConfig("str:server"))
	buf := make([]byte, 0, 600)
	p.client.Poll(p.now, buf)
	nc := []byte{0x25, 0x1d}
	nc = append(nc, le32(p.client.LocalID())...)
	if err := p.client.HandleDatagram(p.now, serverAddr, nc); err != nil {
		t.Fatal(err)
	}
	if p.client.State() != StateClosedByPeer || p.client.EndReason() != EndMiscPeerSentNoConnection {
		t.Errorf("client %d %d %q", p.client.State(), p.client.EndReason(), p.client.EndDebug())
	}
}

func le32(v uint32) []byte { return []byte{byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)} }

func TestLossyHandshake(t *testing.T) {
	for seed := uint64(1); seed <= 30; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		p := newPair(t, testConfig("str:client"), testConfig("str:server"))
		p.drop = func(string, []byte) bool { return r.Float64() < 0.10 }
		if !p.until(9*time.Second, func() bool {
			return p.client.State() == StateConnected && p.server != nil && p.server.State() == StateConnected
		}) {
			t.Fatalf("seed %d: not connected: client %d; sent %v", seed, p.client.State(), p.sent)
		}
		if _, err := p.client.Send(p.now, 0, []byte("through loss"), snp.Reliable); err != nil {
			t.Fatal(err)
		}
		if !p.until(5*time.Second, func() bool { return p.server.eng.Pending() > 0 }) {
			t.Fatalf("seed %d: message lost", seed)
		}
	}
}

func TestSendBeforeConnected(t *testing.T) {
	p := newPair(t, testConfig("str:client"), testConfig("str:server"))
	for i, s := range []string{"one", "two"} {
		n, err := p.client.Send(p.now, 0, []byte(s), snp.Reliable)
		if err != nil || n != int64(i+1) {
			t.Fatalf("send %d: %d %v", i, n, err)
		}
	}
	if _, err := p.client.Send(p.now, 5, []byte("x"), snp.Reliable); err == nil {
		t.Error("bad lane accepted")
	}
	p.run(200 * time.Millisecond)
	msgs := recvAll(p.server)
	if len(msgs) != 2 || string(msgs[0].Data) != "one" || string(msgs[1].Data) != "two" {
		t.Fatalf("got %d messages", len(msgs))
	}
}

// TestNoBusyWake: NextWake never stays in the past once Poll has run, in
// any state the tests reach (a host would spin).
func TestNoBusyWake(t *testing.T) {
	p := connectedPair(t)
	p.serverGone = true
	p.client.Send(p.now, 0, []byte("x"), snp.Reliable)
	for range 2000 {
		p.run(37 * time.Millisecond)
		for _, c := range []*Conn{p.client, p.server} {
			for range 5 {
				if _, ok := c.Poll(p.now, nil); !ok {
					break
				}
			}
			if w := c.NextWake(); !w.IsZero() && !w.After(p.now) {
				t.Fatalf("state %d: NextWake %v not after now %v", c.State(), w, p.now)
			}
		}
		if p.client.State() == StateDead {
			break
		}
		if p.client.State() == StateProblemDetectedLocally {
			p.client.Close(p.now, 0, "", false)
		}
	}
}

// TestVirtualPort: the client's virtual port (netmsg's connect-request
// extension) reaches the server; a plain connection has none.
func TestVirtualPort(t *testing.T) {
	for _, vp := range []int{0, 0x7fffffff, 7} {
		cc := testConfig("str:client")
		cc.VirtualPort = vp
		p := newPair(t, cc, testConfig("str:server"))
		p.run(50 * time.Millisecond)
		if p.server == nil || p.server.State() != StateConnected {
			t.Fatalf("vport %d: not connected", vp)
		}
		if got := p.server.VirtualPort(); got != vp {
			t.Errorf("server sees virtual port %d, want %d", got, vp)
		}
		if got := p.client.VirtualPort(); got != vp {
			t.Errorf("client has virtual port %d, want %d", got, vp)
		}
	}
	cc := testConfig("str:client")
	cc.VirtualPort = -1
	if _, err := Dial(cc, time.Now(), 1, netip.MustParseAddrPort("127.0.0.1:1")); err == nil {
		t.Error("Dial took a negative virtual port")
	}
}

// TestPeerKey: each side reports the key of the other's certificate once
// the handshake verified it (nil before), and StateSince when it entered
// its state.
func TestPeerKey(t *testing.T) {
	p := newPair(t, testConfig("str:client"), testConfig("str:server"))
	if p.client.PeerKey() != nil {
		t.Fatal("a key before the handshake")
	}
	p.run(50 * time.Millisecond)
	if p.client.State() != StateConnected || p.server == nil || p.server.State() != StateConnected {
		t.Fatalf("not connected")
	}
	for _, c := range []struct {
		conn *Conn
		peer string
	}{{p.client, "str:server"}, {p.server, "str:client"}} {
		want := testKey(c.peer).Public().(ed25519.PublicKey)
		if got := c.conn.PeerKey(); !bytes.Equal(got, want) {
			t.Errorf("%s's key: %x, want %x", c.peer, got, want)
		}
		if s := c.conn.StateSince(); s.IsZero() || s.After(p.now) {
			t.Errorf("connected since %v (now %v)", s, p.now)
		}
	}
}
