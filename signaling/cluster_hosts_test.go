package signaling_test

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/signaling"
)

// clusterHost is a netmsg Host on loopback whose signaling is a trivial
// client of one cluster node; it accepts every session request.
type clusterHost struct {
	h   *netmsg.Host
	id  netmsg.Identity
	sig signaling.Conn
}

func newClusterHost(t *testing.T, name, nodeAddr string) *clusterHost {
	t.Helper()
	id, err := netmsg.ParseIdentity(name)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signaling.DialTrivial(context.Background(), nodeAddr, name)
	if err != nil {
		t.Fatal(err)
	}
	ch := &clusterHost{id: id, sig: sig}
	requests := make(chan netmsg.Identity, 16)
	h, err := netmsg.NewHost(netmsg.Config{
		Identity:         id,
		ListenAddr:       netip.MustParseAddrPort("127.0.0.1:0"),
		Signaling:        sig,
		OnSessionRequest: func(peer netmsg.Identity) { requests <- peer },
	})
	if err != nil {
		t.Fatal(err)
	}
	ch.h = h
	go func() {
		for p := range requests {
			h.Messages().AcceptSessionWithUser(p)
		}
	}()
	t.Cleanup(func() {
		h.Close()
		sig.Close()
		close(requests)
	})
	return ch
}

// expect sends text from a to b on channel 0 (reliable) and waits for b
// to get it, within 20 s.
func expect(t *testing.T, a, b *clusterHost, text string) {
	t.Helper()
	if err := a.h.Messages().SendMessageToUser(b.id, []byte(text), netmsg.SendReliable, 0); err != nil {
		t.Fatalf("%v sends: %v", a.id, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		m, err := b.h.Messages().Receive(ctx, 0)
		if err != nil {
			t.Fatalf("%v never got %q from %v: %v", b.id, text, a.id, err)
		}
		got, from := string(m.Payload), m.Identity
		m.Release()
		if got == text && from == a.id {
			return
		}
	}
}

// TestClusterHosts: Messages sessions between netmsg Hosts (the root
// package's public API, over loopback UDP) whose signaling clients are
// on different nodes of a cluster on an embedded three-node NATS cluster;
// a node killed mid-session leaves established sessions their data path,
// and new sessions through the surviving nodes work.
func TestClusterHosts(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ns := natsCluster(t, 3)
	nodes, addrs := clusterNodes(t, signaling.ServerConfig{},
		ns[0].ClientURL(), ns[1].ClientURL(), ns[2].ClientURL())
	alice := newClusterHost(t, "str:alice", addrs[0])
	bob := newClusterHost(t, "str:bob", addrs[2])
	// The directory reaches every node within a heartbeat or so; the
	// P2P layer retries its signals meanwhile.
	expect(t, alice, bob, "hello bob")
	expect(t, bob, alice, "hello alice")
	if st := nodes[0].Stats(); st.ClusterOut == 0 || st.ClusterIn == 0 {
		t.Errorf("node 0 did not go through the cluster: %+v", st)
	}

	signaling.KillForTest(nodes[2]) // bob's node
	expect(t, alice, bob, "still there")
	expect(t, bob, alice, "still here")

	carol := newClusterHost(t, "str:carol", addrs[1])
	expect(t, carol, alice, "hello alice from carol")
	expect(t, alice, carol, "hello carol")
	waitStats(t, nodes[0], func(st signaling.ServerStats) bool { return st.NodesLost == 1 && st.Peers == 1 })
}
