package lan

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/netsim"
	"github.com/netmsg-go/netmsg/signaling"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// simPeer opens a Conn for id on the in-memory network at ip: its
// unicast endpoint on an ephemeral port, its discovery endpoint on the
// group's port, joined to the group.
func simPeer(t *testing.T, nw *netsim.Network, ip, id string, mod func(*Config)) *Conn {
	t.Helper()
	uni, err := nw.Listen(netip.AddrPortFrom(netip.MustParseAddr(ip), 0))
	if err != nil {
		t.Fatal(err)
	}
	disc, err := nw.Listen(netip.AddrPortFrom(netip.MustParseAddr(ip), DefaultPort))
	if err != nil {
		t.Fatal(err)
	}
	if err := disc.JoinGroup(DefaultGroup.Addr()); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Identity: id, PacketConn: uni, DiscoveryConn: disc, Logger: quiet}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func peerIDs(c *Conn) []string {
	var out []string
	for _, p := range c.Peers() {
		out = append(out, p.Identity)
	}
	return out
}

// waitUntil polls cond every 10 ms of (fake) time for up to d.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	for end := time.Now().Add(d); !cond(); {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func recvOne(t *testing.T, c *Conn, d time.Duration) (string, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	from, blob, err := c.Recv(ctx)
	if err != nil {
		t.Fatalf("%s: Recv: %v", c.id, err)
	}
	return from, blob
}

// TestDiscoveryAndSignals: three peers on the in-memory LAN find each
// other within one link delay of the last one starting (the newcomer's
// first announcement, then unicast replies), and signal each other
// directly; a signal to a peer not heard yet waits for it.
func TestDiscoveryAndSignals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: time.Millisecond}})
		defer nw.Close()
		a := simPeer(t, nw, "10.0.0.1", "str:alice", nil)
		b := simPeer(t, nw, "10.0.0.2", "str:bob", nil)
		time.Sleep(time.Second)
		start := time.Now()
		c := simPeer(t, nw, "10.0.0.3", "str:carol", nil)
		synctest.Wait()
		time.Sleep(2 * time.Millisecond) // the announcement, then the replies
		synctest.Wait()
		for _, p := range []*Conn{a, b, c} {
			if n := len(p.Peers()); n != 2 {
				t.Fatalf("%s knows %v after %v", p.id, peerIDs(p), time.Since(start))
			}
		}
		for _, p := range c.Peers() {
			if p.Authenticated || p.Addr.Port() == 0 {
				t.Errorf("carol's entry %+v", p)
			}
		}
		if err := a.Send("str:carol", []byte("hello carol")); err != nil {
			t.Fatal(err)
		}
		if from, blob := recvOne(t, c, time.Second); from != "str:alice" || string(blob) != "hello carol" {
			t.Fatalf("carol got %q from %s", blob, from)
		}
		// dave: alice signals him before he exists; he comes within the
		// pending timeout and gets it.
		if err := a.Send("str:dave", []byte("early")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		d := simPeer(t, nw, "10.0.0.4", "str:dave", nil)
		if from, blob := recvOne(t, d, time.Second); from != "str:alice" || string(blob) != "early" {
			t.Fatalf("dave got %q from %s", blob, from)
		}
		// Nobody is erin: the signal waits, then is dropped and counted.
		if err := a.Send("str:erin", []byte("lost")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(defaultPendingTimeout + 100*time.Millisecond)
		if st := a.Stats(); st.PendingDropped != 1 || st.QueriesSent != 2 || st.SignalsSent != 2 {
			t.Fatalf("alice: %+v", st)
		}
	})
}

// TestSendErrors: what Send refuses, and Recv after Close.
func TestSendErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{})
		defer nw.Close()
		a := simPeer(t, nw, "10.0.0.1", "str:alice", func(c *Config) { c.PendingLen = 2 })
		if err := a.Send("bob", nil); !errors.Is(err, signaling.ErrBadIdentity) {
			t.Errorf("bad identity: %v", err)
		}
		if err := a.Send("str:bob", make([]byte, signaling.MaxBlobSize+1)); !errors.Is(err, signaling.ErrTooLarge) {
			t.Errorf("too large: %v", err)
		}
		a.Send("str:x", nil)
		a.Send("str:y", nil)
		if err := a.Send("str:z", nil); !errors.Is(err, ErrPendingFull) {
			t.Errorf("pending full: %v", err)
		}
		done := make(chan error)
		go func() { _, _, err := a.Recv(context.Background()); done <- err }()
		synctest.Wait()
		a.Close()
		if err := <-done; !errors.Is(err, signaling.ErrClosed) {
			t.Errorf("Recv after Close: %v", err)
		}
		if err := a.Send("str:x", nil); !errors.Is(err, signaling.ErrClosed) {
			t.Errorf("Send after Close: %v", err)
		}
	})
}

// TestConfigErrors: New refuses what cannot work.
func TestConfigErrors(t *testing.T) {
	key := ed25519.NewKeyFromSeed(make([]byte, 32))
	for _, cfg := range []Config{
		{},
		{Identity: "alice"},
		{Identity: "str:a", Key: key},
		{Identity: "str:a", Group: netip.MustParseAddrPort("10.0.0.1:5")},
		{Identity: "str:a", Group: netip.MustParseAddrPort("239.255.0.1:0")},
		{Identity: "str:a", Interval: time.Millisecond},
		{Identity: "str:a", TTL: time.Hour},
		{Identity: "str:a", MaxPeers: -1},
		{Identity: "str:a", Key: key, Certificate: []byte{1, 2, 3}},
	} {
		if c, err := New(cfg); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%+v: %v", cfg, err)
			if c != nil {
				c.Close()
			}
		}
	}
}

// TestPeerLeaves: a peer that closes says goodbye and leaves the others'
// tables at once; one that vanishes (its datagrams lost) expires after
// its TTL.
func TestPeerLeaves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: time.Millisecond}})
		defer nw.Close()
		a := simPeer(t, nw, "10.0.0.1", "str:alice", nil)
		b := simPeer(t, nw, "10.0.0.2", "str:bob", nil)
		c := simPeer(t, nw, "10.0.0.3", "str:carol", nil)
		time.Sleep(100 * time.Millisecond)
		if len(a.Peers()) != 2 {
			t.Fatalf("alice knows %v", peerIDs(a))
		}
		b.Close()
		time.Sleep(10 * time.Millisecond)
		if got := peerIDs(a); len(got) != 1 || got[0] != "str:carol" {
			t.Fatalf("after bob's goodbye alice knows %v", got)
		}
		if st := a.Stats(); st.PeersLeft != 1 {
			t.Fatalf("alice: %+v", st)
		}
		// carol vanishes: nothing from her arrives any more.
		nw.SetEgress(c.LocalAddr(), netsim.LinkConfig{LossPercent: 100})
		lost := time.Now()
		waitUntil(t, time.Minute, "carol to expire", func() bool { return len(a.Peers()) == 0 })
		ttl := 3*DefaultInterval + time.Second
		if d := time.Since(lost); d > ttl+20*time.Millisecond || d < ttl-DefaultInterval*11/10 {
			t.Fatalf("carol expired after %v, TTL %v", d, ttl)
		}
		if st := a.Stats(); st.PeersExpired != 1 {
			t.Fatalf("alice: %+v", st)
		}
		// She comes back (same instance): found again.
		nw.SetEgress(c.LocalAddr(), netsim.LinkConfig{Delay: time.Millisecond})
		waitUntil(t, time.Minute, "carol again", func() bool { return len(a.Peers()) == 1 })
	})
}

// TestAnnouncementTraffic: what one peer sends in a minute on a LAN of
// three: the first announcement, two more in the first second, then one
// per Interval (±10%), and a unicast reply to each newcomer.
func TestAnnouncementTraffic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: time.Millisecond}})
		defer nw.Close()
		var ps []*Conn
		for i, id := range []string{"str:a", "str:b", "str:c"} {
			ps = append(ps, simPeer(t, nw, fmt.Sprintf("10.0.0.%d", i+1), id, nil))
		}
		time.Sleep(time.Minute)
		for _, p := range ps {
			st := p.Stats()
			// 3 + 59 s / 5 s ≈ 14-15 to the group, plus up to 2 replies.
			if st.AnnouncementsSent < 13 || st.AnnouncementsSent > 18 {
				t.Errorf("%s sent %d announcements in a minute", p.id, st.AnnouncementsSent)
			}
			t.Logf("%s: %d announcements sent, %d heard", p.id, st.AnnouncementsSent, st.AnnouncementsHeard)
		}
		size := len(appendAnnouncement(nil, &announcement{ID: "str:a"}))
		t.Logf("an unsigned announcement of str:a is %d bytes of UDP payload", size)
	})
}

// TestBounds: a full table refuses newcomers, a flood of announcements is
// rate limited, and signals nobody reads are dropped past QueueLen; each
// is counted.
func TestBounds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{})
		defer nw.Close()
		a := simPeer(t, nw, "10.0.0.1", "str:alice", func(c *Config) { c.MaxPeers = 2; c.QueueLen = 3; c.Rate = 10; c.Burst = 5 })
		simPeer(t, nw, "10.0.0.2", "str:b", nil)
		simPeer(t, nw, "10.0.0.3", "str:c", nil)
		d := simPeer(t, nw, "10.0.0.4", "str:d", nil)
		time.Sleep(2 * time.Second)
		if st := a.Stats(); len(a.Peers()) != 2 || st.TableFull == 0 {
			t.Fatalf("alice knows %v: %+v", peerIDs(a), st)
		}
		for i := range 5 {
			d.Send("str:alice", []byte{byte(i)}) // d is not in alice's table; trivial trust takes it
		}
		time.Sleep(10 * time.Millisecond)
		if st := a.Stats(); st.SignalsReceived != 3 || st.QueueFull != 2 {
			t.Fatalf("alice: %+v", st)
		}
		// A flood: 100 announcements of fresh identities in a moment.
		flood, _ := nw.Listen(netip.MustParseAddrPort("10.0.0.9:1"))
		before := a.Stats()
		for i := range 100 {
			an := announcement{Instance: uint64(i + 1), Seq: 1, TimeMs: time.Now().UnixMilli(), TTLms: 10000, Port: 1, ID: fmt.Sprintf("str:f%d", i)}
			writeTo(t, flood, appendAnnouncement(nil, &an), DefaultGroup)
		}
		time.Sleep(10 * time.Millisecond)
		st := a.Stats()
		if got := st.RateLimited - before.RateLimited; got < 90 {
			t.Fatalf("rate limited %d of 100: %+v", got, st)
		}
		// Garbage is counted, never more.
		writeTo(t, flood, []byte("NMLN\x01\x03\x00garbage"), a.LocalAddr())
		writeTo(t, flood, []byte("hello"), a.LocalAddr())
		time.Sleep(10 * time.Millisecond)
		if got := a.Stats().Malformed; got != 2 {
			t.Fatalf("malformed %d", got)
		}
	})
}

// TestIdentityConflict: a second instance announcing our identity is
// counted and never enters our table.
func TestIdentityConflict(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{})
		defer nw.Close()
		a := simPeer(t, nw, "10.0.0.1", "str:alice", nil)
		simPeer(t, nw, "10.0.0.2", "str:alice", nil)
		time.Sleep(time.Second)
		if st := a.Stats(); st.Conflict == 0 || len(a.Peers()) != 0 {
			t.Fatalf("alice: %v %+v", peerIDs(a), st)
		}
	})
}

func writeTo(t *testing.T, e *netsim.Endpoint, b []byte, to netip.AddrPort) {
	t.Helper()
	if err := (&tpConn{pc: e}).WriteTo(b, to); err != nil {
		t.Fatal(err)
	}
}

// hostPeer is a netmsg Host signaling over a LAN Conn on the in-memory
// network, both at ip. It accepts every session request.
func hostPeer(t *testing.T, nw *netsim.Network, ip, id string, hcfg netmsg.Config, mod func(*Config)) (*netmsg.Host, *Conn) {
	t.Helper()
	c := simPeer(t, nw, ip, id, mod)
	ep, err := nw.Listen(netip.AddrPortFrom(netip.MustParseAddr(ip), 27015))
	if err != nil {
		t.Fatal(err)
	}
	ident, err := netmsg.ParseIdentity(id)
	if err != nil {
		t.Fatal(err)
	}
	var h *netmsg.Host
	hcfg.PacketConn, hcfg.Identity, hcfg.Signaling, hcfg.Logger = ep, ident, c, quiet
	hcfg.OnSessionRequest = func(peer netmsg.Identity) { h.Messages().AcceptSessionWithUser(peer) }
	h, err = netmsg.NewHost(hcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h, c
}

// exchange sends one reliable message from each Host to every other one
// on channel 1 and checks every Host gets them all, with the sender's
// identity; it returns how long that took.
func exchange(t *testing.T, hs []*netmsg.Host) time.Duration {
	t.Helper()
	start := time.Now()
	for _, from := range hs {
		for _, to := range hs {
			if from != to {
				if err := from.Messages().SendMessageToUser(to.Identity(), []byte("from "+from.Identity().String()), netmsg.SendReliable, 1); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for _, to := range hs {
		got := map[string]bool{}
		for range len(hs) - 1 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			m, err := to.Messages().Receive(ctx, 1)
			cancel()
			if err != nil {
				t.Fatalf("%v: %v (got %v)", to.Identity(), err, got)
			}
			if string(m.Payload) != "from "+m.Identity.String() {
				t.Fatalf("%v got %q from %v", to.Identity(), m.Payload, m.Identity)
			}
			got[m.Identity.String()] = true
			m.Release()
		}
	}
	return time.Since(start)
}

// TestHostsOverLAN: two, then three netmsg Hosts with str: identities
// make Messages sessions through LAN signaling on the in-memory network
// (1 ms links), directly over their host candidates; one leaves and the
// others' tables drop it.
func TestHostsOverLAN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: time.Millisecond}})
		defer nw.Close()
		start := time.Now()
		h1, c1 := hostPeer(t, nw, "10.0.0.1", "str:alice", netmsg.Config{}, nil)
		h2, _ := hostPeer(t, nw, "10.0.0.2", "str:bob", netmsg.Config{}, nil)
		d := exchange(t, []*netmsg.Host{h1, h2})
		t.Logf("two Hosts: first messages both ways %v after start", time.Since(start))
		st, info, _ := h1.Messages().GetSessionConnectionInfo(h2.Identity())
		if st != netmsg.StateConnected || info.RemoteAddress != netip.MustParseAddrPort("10.0.0.2:27015") {
			t.Fatalf("alice's session to bob: %v %+v", st, info)
		}
		if d > 200*time.Millisecond {
			t.Errorf("connecting took %v", d)
		}
		h3, c3 := hostPeer(t, nw, "10.0.0.3", "str:carol", netmsg.Config{}, nil)
		start = time.Now()
		exchange(t, []*netmsg.Host{h1, h2, h3})
		t.Logf("three Hosts: every pair exchanged messages %v after carol started", time.Since(start))
		h3.Close()
		c3.Close()
		time.Sleep(10 * time.Millisecond)
		if got := peerIDs(c1); len(got) != 1 || got[0] != "str:bob" {
			t.Fatalf("alice's table after carol left: %v", got)
		}
	})
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
