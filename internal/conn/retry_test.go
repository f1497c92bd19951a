package conn

import (
	"testing"
	"time"
)

// TestConnectRetryAfterLostConnectOK: a client whose connect OK was lost
// retries with the connect request of the challenge it holds (one round
// trip, no new challenge) and is connected by its first retry; once its
// challenge is challengeReuse old, it asks for a new one.
func TestConnectRetryAfterLostConnectOK(t *testing.T) {
	count := func(p *pair, kind string) int {
		n := 0
		for _, s := range p.sent {
			if s == kind {
				n++
			}
		}
		return n
	}
	t.Run("once", func(t *testing.T) {
		p := newPair(t, testConfig("str:client"), testConfig("str:server"))
		dropped := false
		p.drop = func(dir string, d []byte) bool {
			if dir == "s2c" && d[0] == leadConnectOK && !dropped {
				dropped = true
				return true
			}
			return false
		}
		start := p.now
		if !p.until(2*time.Second, func() bool { return p.client.State() == StateConnected }) {
			t.Fatalf("client state %d", p.client.State())
		}
		if took := p.now.Sub(start); took > connectRetryInterval+20*time.Millisecond {
			t.Errorf("connected after %v, want by the first retry (%v)", took, connectRetryInterval)
		}
		if c, r := count(p, "c2s:ChallengeRequest"), count(p, "c2s:ConnectRequest"); c != 1 || r != 2 {
			t.Errorf("client sent %d challenge and %d connect requests, want 1 and 2: %v", c, r, p.sent)
		}
	})
	t.Run("challenge-too-old", func(t *testing.T) {
		p := newPair(t, testConfig("str:client"), testConfig("str:server"))
		lost := p.now.Add(challengeReuse + time.Second)
		p.drop = func(dir string, d []byte) bool {
			return dir == "s2c" && d[0] == leadConnectOK && p.now.Before(lost)
		}
		if !p.until(5*time.Second, func() bool { return p.client.State() == StateConnected }) {
			t.Fatalf("client state %d", p.client.State())
		}
		// 500 ms apart: connect requests while the first challenge is
		// younger than challengeReuse, then a new challenge.
		if c := count(p, "c2s:ChallengeRequest"); c < 2 {
			t.Errorf("client sent %d challenge requests, want a new one after %v: %v", c, challengeReuse, p.sent)
		}
		if r := count(p, "c2s:ConnectRequest"); r < int(challengeReuse/connectRetryInterval) {
			t.Errorf("client sent %d connect requests: %v", r, p.sent)
		}
	})
}
