package netmsg

import (
	"errors"
	"testing"
	"time"
)

// TestMessagesSendCache: the sends that reuse the last session without the
// session table (Messages.last) see every change that table sees: a
// channel closed and sent on again is open again (closing the other
// channel then leaves the session up), a closed session is made anew by
// the next send (a new session request at the peer), and a closed Host
// refuses the send.
func TestMessagesSendCache(t *testing.T) {
	bubble(t, func(t *testing.T) {
		alice, bob := msgPair(t, 5*time.Millisecond)
		openSession(t, alice, bob)
		for _, ch := range []int{1, 1, 2, 2, 1} {
			if err := bob.m.SendMessageToUser(alice.id, []byte("x"), SendReliable, ch); err != nil {
				t.Fatal(err)
			}
		}
		if c := bob.m.last.Load(); c == nil || c.channel != 1 || c.peer != alice.id {
			t.Fatalf("send cache %+v after sends on channel 1", c)
		}
		// Channels 0 (alice's hello) and 1 closed, then 1 sent on again
		// (the cached channel): it is open again, so closing channel 2
		// leaves the session up.
		bob.m.CloseChannelWithUser(alice.id, 0)
		bob.m.CloseChannelWithUser(alice.id, 1)
		if err := bob.m.SendMessageToUser(alice.id, []byte("again"), SendReliable, 1); err != nil {
			t.Fatal(err)
		}
		bob.m.CloseChannelWithUser(alice.id, 2)
		if st, _, _ := bob.m.GetSessionConnectionInfo(alice.id); st != StateConnected {
			t.Fatalf("session %v after closing channel 2 with channel 1 in use, want Connected", st)
		}
		// Closed session: the next send (same peer, same channel) makes a
		// new one, which alice sees as a new request.
		if err := bob.m.SendMessageToUser(alice.id, []byte("cached"), SendReliable, 1); err != nil {
			t.Fatal(err)
		}
		c := bob.m.last.Load()
		if c == nil {
			t.Fatal("no send cache")
		}
		old := c.hc
		n := len(alice.gotRequests())
		bob.m.CloseSessionWithUser(alice.id)
		if err := bob.m.SendMessageToUser(alice.id, []byte("new"), SendReliable, 1); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "a new session request", func() bool { return len(alice.gotRequests()) > n })
		if c := bob.m.last.Load(); c != nil && c.hc == old {
			t.Error("the send cache still names the closed session's connection")
		}
		bob.Close()
		if err := bob.m.SendMessageToUser(alice.id, []byte("closed"), SendReliable, 1); !errors.Is(err, ErrHostClosed) {
			t.Errorf("send after Close: %v, want ErrHostClosed", err)
		}
	})
}

// TestMessagesSendCacheClosedHost: a Host closed while a send could take
// the fast path refuses the send.
func TestMessagesSendCacheClosedHost(t *testing.T) {
	bubble(t, func(t *testing.T) {
		alice, bob := msgPair(t, 5*time.Millisecond)
		openSession(t, alice, bob)
		if err := alice.m.SendMessageToUser(bob.id, []byte("x"), SendReliable, 0); err != nil {
			t.Fatal(err)
		}
		if alice.m.last.Load() == nil {
			t.Fatal("no send cache after a connected send")
		}
		alice.Close()
		if err := alice.m.SendMessageToUser(bob.id, []byte("x"), SendReliable, 0); !errors.Is(err, ErrHostClosed) {
			t.Errorf("send after Close: %v, want ErrHostClosed", err)
		}
	})
}
