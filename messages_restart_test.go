package netmsg

import (
	"errors"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/signaling"
)

// restartPeer closes p's Host and opens a new one on the same address
// (and, for P2P, the same identity and a new signaling connection), with
// the same callbacks.
func restartPeer(t *testing.T, nw *netsim.Network, hub *signaling.Hub, p *msgPeer, idx int) *msgPeer {
	t.Helper()
	addr := p.LocalAddr()
	p.Close()
	ep, err := nw.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	// With no network, newMsgPeersWith listens on UDP; the hook puts the
	// netsim endpoint there instead.
	np := newMsgPeersWith(t, nil, 1, func(_ int, c *Config) {
		c.ListenAddr = netip.AddrPort{}
		c.PacketConn = ep
		if hub != nil {
			id := fmt.Sprintf("str:p%d", idx)
			c.Identity = mustIdentity(t, id)
			sc, err := hub.Connect(id)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sc.Close() })
			c.Signaling = sc
		}
	})
	q := np[0]
	if hub != nil {
		q.id = p.id
	}
	return q
}

// TestMessagesPeerRestartIdle: GNS's rule for a Messages session whose
// connection dies while idle (CheckConnection in csteamnetworkingmessages:
// it is treated like an idle timeout). B's Host closes while its session
// with A is idle: A gets no OnSessionFailed, and once B is back on the same
// address A's next send makes a new session that reaches it; nothing is
// delivered twice.
func TestMessagesPeerRestartIdle(t *testing.T) {
	for _, mode := range []string{"direct", "p2p"} {
		t.Run(mode, func(t *testing.T) {
			bubble(t, func(t *testing.T) {
				nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 10 * time.Millisecond}})
				defer nw.Close()
				var hub *signaling.Hub
				var ps []*msgPeer
				if mode == "p2p" {
					hub, _ = signaling.NewHub(signaling.HubConfig{Delay: 20 * time.Millisecond})
					ps = p2pPeers(t, nw, hub, 2)
				} else {
					ps = newMsgPeers(t, nw, 2)
				}
				defer closeAll(ps)
				alice, bob := ps[0], ps[1]
				openSession(t, alice, bob)
				bob.m.SendMessageToUser(alice.id, []byte("ack"), SendReliable, 0)
				if text, m := recvText(t, alice, 0); text != "ack" {
					t.Fatalf("alice got %q", text)
				} else {
					m.Release()
				}
				time.Sleep(2 * time.Second) // everything acked: idle

				bob2 := restartPeer(t, nw, hub, bob, 1)
				defer bob2.Close()
				time.Sleep(30 * time.Second) // long enough for any timeout of the old connection
				if f := alice.gotFailures(); len(f) != 0 {
					t.Fatalf("alice got OnSessionFailed for an idle session: %+v", f)
				}
				if st, _, _ := alice.m.GetSessionConnectionInfo(bob.id); st != StateNone {
					t.Errorf("alice's session with the restarted peer reads %v, want none (idled out)", st)
				}
				if err := alice.m.SendMessageToUser(bob.id, []byte("again"), SendReliable, 0); err != nil {
					t.Fatalf("alice's next send: %v", err)
				}
				waitFor(t, time.Minute, "the restarted peer's session request", func() bool { return len(bob2.gotRequests()) > 0 })
				bob2.m.AcceptSessionWithUser(alice.id)
				if text, m := recvText(t, bob2, 0); text != "again" {
					t.Fatalf("restarted bob got %q, want again", text)
				} else {
					m.Release()
				}
				time.Sleep(5 * time.Second)
				if ms := bob2.m.ReceiveMessagesOnChannel(0, 10); len(ms) != 0 {
					t.Fatalf("restarted bob got %d more messages (%q...): delivered twice", len(ms), ms[0].Payload)
				}
				if f := alice.gotFailures(); len(f) != 0 {
					t.Fatalf("alice's failures %+v", f)
				}
			})
		})
	}
}

// TestMessagesPeerDiesBusy: the rule is only for idle sessions. A session
// with reliable data unacked when the peer goes away still fails with
// OnSessionFailed, and sends fail with ResultNoConnection.
func TestMessagesPeerDiesBusy(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 10 * time.Millisecond}})
		defer nw.Close()
		ps := newMsgPeers(t, nw, 2)
		defer closeAll(ps)
		alice, bob := ps[0], ps[1]
		openSession(t, alice, bob)
		time.Sleep(2 * time.Second)
		bob.Close()
		if err := alice.m.SendMessageToUser(bob.id, []byte("into the void"), SendReliable, 0); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 2*time.Minute, "alice's failure", func() bool { return len(alice.gotFailures()) > 0 })
		if err := alice.m.SendMessageToUser(bob.id, []byte("x"), SendReliable, 0); !errors.Is(err, ResultNoConnection) {
			t.Fatalf("send on the failed session: %v, want ResultNoConnection", err)
		}
	})
}
