package conn

import (
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
