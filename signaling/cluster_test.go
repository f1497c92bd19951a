package signaling_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/netmsg-go/netmsg/signaling"
)

// natsServer starts an embedded NATS server on 127.0.0.1 (port -1:
// any), in cluster clusterName with routes to the given servers when
// clusterName is set.
func natsServer(t *testing.T, port int, clusterName string, routes ...*natsserver.Server) *natsserver.Server {
	return natsServerOpts(t, port, clusterName, false, routes...)
}

// natsServerOpts is natsServer; with noAdvertise, the server does not
// tell its clients about the other servers of its cluster (so they
// reconnect only to the URLs they were given).
func natsServerOpts(t *testing.T, port int, clusterName string, noAdvertise bool, routes ...*natsserver.Server) *natsserver.Server {
	t.Helper()
	opts := &natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true}
	if clusterName != "" {
		opts.Cluster = natsserver.ClusterOpts{Name: clusterName, Host: "127.0.0.1", Port: -1, NoAdvertise: noAdvertise}
		for _, r := range routes {
			opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats", Host: r.ClusterAddr().String()})
		}
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// natsCluster starts n embedded NATS servers routed to each other and
// waits until a message published on any reaches a subscriber on the
// first.
func natsCluster(t *testing.T, n int) []*natsserver.Server {
	t.Helper()
	ns := []*natsserver.Server{natsServer(t, -1, "netmsg-test")}
	for range n - 1 {
		ns = append(ns, natsServer(t, -1, "netmsg-test", ns[0]))
	}
	sub, err := nats.Connect(ns[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch := make(chan *nats.Msg, 16)
	s, _ := sub.ChanSubscribe("probe", ch)
	defer s.Unsubscribe()
	sub.Flush()
	for _, x := range ns[1:] {
		pub, err := nats.Connect(x.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for got := false; !got; {
			pub.Publish("probe", nil)
			select {
			case <-ch:
				got = true
			case <-time.After(50 * time.Millisecond):
				if time.Now().After(deadline) {
					t.Fatal("nats cluster never formed")
				}
			}
		}
		pub.Close()
	}
	return ns
}

// clusterNodes starts one signaling node per NATS URL, with fast
// heartbeats, and waits until each sees all the others.
func clusterNodes(t *testing.T, cfg signaling.ServerConfig, urls ...string) ([]*signaling.Server, []string) {
	t.Helper()
	var nodes []*signaling.Server
	var addrs []string
	for _, u := range urls {
		c := cfg
		c.Cluster = &signaling.ClusterConfig{URLs: []string{u}, Heartbeat: 100 * time.Millisecond, DeadAfter: 500 * time.Millisecond}
		s, addr := startServer(t, c)
		nodes = append(nodes, s)
		addrs = append(addrs, addr)
	}
	for _, s := range nodes {
		waitStats(t, s, func(st signaling.ServerStats) bool { return st.Peers == len(nodes)-1 })
	}
	return nodes, addrs
}

// until sends from a to toID until b gets a signal from aID (the
// directory reached a's node), within 10 s.
func until(t *testing.T, a, b signaling.Conn, aID, toID string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		a.Send(toID, []byte("probe"))
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		from, _, err := b.Recv(ctx)
		cancel()
		if err == nil && from == aID {
			// Drain the probes still on their way.
			for {
				ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
				_, _, err := b.Recv(ctx)
				cancel()
				if err != nil {
					return
				}
			}
		}
	}
	t.Fatalf("%s never reached %s", aID, toID)
}

// TestClusterEmbedded: three signaling nodes on an embedded three-node
// NATS cluster share one identity space: signals cross nodes in order;
// an authenticated identity stays bound cluster-wide (a trivial client on
// another node cannot take it, even after its holder left: the
// reservation is the cluster's); an authenticated client that reconnects
// to another node takes its identity over (the old connection is told).
func TestClusterEmbedded(t *testing.T) {
	ns := natsCluster(t, 3)
	ca := key("ca")
	nodes, addrs := clusterNodes(t, signaling.ServerConfig{TrustedCAs: []ed25519.PublicKey{ca.Public().(ed25519.PublicKey)}},
		ns[0].ClientURL(), ns[1].ClientURL(), ns[2].ClientURL())
	ctx := context.Background()
	a, err := signaling.DialTrivial(ctx, addrs[0], "str:a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := signaling.DialTrivial(ctx, addrs[2], "str:b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	until(t, a, b, "str:a", "str:b")
	for i := range 200 {
		for {
			err := a.Send("str:b", []byte(strconv.Itoa(i)))
			if err == nil {
				break
			}
			if !errors.Is(err, signaling.ErrQueueFull) {
				t.Fatal(err)
			}
			time.Sleep(time.Millisecond) // the client's queue (64 lines) is full
		}
	}
	for i := range 200 {
		if from, blob := recv(t, b); from != "str:a" || string(blob) != strconv.Itoa(i) {
			t.Fatalf("signal %d: got %q from %q", i, blob, from)
		}
	}
	if st := nodes[0].Stats(); st.ClusterOut < 200 {
		t.Errorf("node 0: %+v", st)
	}

	dialAuth := func(node int, id string) (signaling.Conn, error) {
		return signaling.Dial(ctx, addrs[node], signaling.ClientConfig{Identity: id, Key: key(id), Certificate: cert(t, id, key(id), ca)})
	}
	alice, err := dialAuth(1, "str:alice")
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	until(t, a, alice, "str:a", "str:alice") // node 0 knows where alice is
	raw := dialRaw(t, addrs[0], "str:alice")
	if !raw.closed() {
		t.Error("a trivial client on another node took an authenticated identity")
	}
	waitStats(t, nodes[0], func(st signaling.ServerStats) bool { return st.TakeoverRefused == 1 })

	// alice reconnects to node 2: node 1 tells the old connection.
	alice2, err := dialAuth(2, "str:alice")
	if err != nil {
		t.Fatal(err)
	}
	defer alice2.Close()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, _, err := alice.Recv(rctx); !errors.Is(err, signaling.ErrReplaced) {
		t.Errorf("old connection of alice: %v", err)
	}
	until(t, a, alice2, "str:a", "str:alice")
	b.Send("str:alice", []byte("from b"))
	if from, blob := recv(t, alice2); from != "str:b" || string(blob) != "from b" {
		t.Errorf("alice got %q from %q", blob, from)
	}

	// alice leaves: her identity stays reserved on every node.
	alice2.Close()
	waitStats(t, nodes[0], func(st signaling.ServerStats) bool { return st.Reserved == 1 })
	if !dialRaw(t, addrs[0], "str:alice").closed() {
		t.Error("a trivial client took a reserved identity on another node")
	}
	alice3, err := dialAuth(0, "str:alice")
	if err != nil {
		t.Fatalf("alice back on node 0: %v", err)
	}
	alice3.Close()
}

// TestClusterNodeDies: a node that dies (it leaves NATS without a word)
// has its identities released by the others within DeadAfter and a
// heartbeat: an identity bound to a key there can then be registered
// with another key elsewhere, and signals reach it; the other nodes keep
// working throughout.
func TestClusterNodeDies(t *testing.T) {
	ns := natsCluster(t, 3)
	nodes, addrs := clusterNodes(t, signaling.ServerConfig{AllowUnsigned: true},
		ns[0].ClientURL(), ns[1].ClientURL(), ns[2].ClientURL())
	ctx := context.Background()
	dial := func(node int, id, keyName string) (signaling.Conn, error) {
		return signaling.Dial(ctx, addrs[node], signaling.ClientConfig{Identity: id, Key: key(keyName), Certificate: cert(t, id, key(keyName), nil)})
	}
	c, err := dial(0, "str:carol", "carol")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bob, err := dial(1, "str:bob", "bob-1")
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	until(t, c, bob, "str:carol", "str:bob")
	d, err := dial(2, "str:dave", "dave")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	until(t, c, d, "str:carol", "str:dave")
	// Another key for bob while his node lives: refused.
	if _, err := dial(2, "str:bob", "bob-2"); !errors.Is(err, signaling.ErrRefused) {
		t.Fatalf("another key took bob's identity on another node: %v", err)
	}

	signaling.KillForTest(nodes[1])
	killed := time.Now()
	var bob2 signaling.Conn
	for {
		bob2, err = dial(2, "str:bob", "bob-2")
		if err == nil {
			break
		}
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("bob's identity never released: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	defer bob2.Close()
	t.Logf("dead node's identity released after %v", time.Since(killed).Round(time.Millisecond))
	until(t, c, bob2, "str:carol", "str:bob")
	until(t, d, c, "str:dave", "str:carol")
	if st := nodes[0].Stats(); st.Peers != 1 || st.NodesLost != 1 {
		t.Errorf("node 0: %+v", st)
	}
}

// freePort returns a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// testNATSRestart runs two nodes on the NATS server at url, which stop
// and start restart: the nodes see NATS go (not ready), come back when it
// does, and signals between them resume.
func testNATSRestart(t *testing.T, url string, stop, start func()) {
	nodes, addrs := clusterNodes(t, signaling.ServerConfig{}, url, url)
	ctx := context.Background()
	a, err := signaling.DialTrivial(ctx, addrs[0], "str:a")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := signaling.DialTrivial(ctx, addrs[1], "str:b")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	until(t, a, b, "str:a", "str:b")
	stop()
	for _, s := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for s.Ready() == nil {
			if time.Now().After(deadline) {
				t.Fatal("a node stayed ready without NATS")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	start()
	for _, s := range nodes {
		deadline := time.Now().Add(10 * time.Second)
		for s.Ready() != nil {
			if time.Now().After(deadline) {
				t.Fatalf("a node never reconnected: %v", s.Ready())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	until(t, a, b, "str:a", "str:b")
	until(t, b, a, "str:b", "str:a")
}

// TestClusterNATSRestart: an embedded NATS server restarted on the same
// port.
func TestClusterNATSRestart(t *testing.T) {
	port := freePort(t)
	ns := natsServer(t, port, "")
	testNATSRestart(t, ns.ClientURL(), ns.Shutdown, func() { natsServer(t, port, "") })
}

// TestClusterNATSProcess: the same with Debian's nats-server run as its
// own process (skipped when it is not installed, unless
// NETMSG_REQUIRE_NATS is set).
func TestClusterNATSProcess(t *testing.T) {
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		if os.Getenv("NETMSG_REQUIRE_NATS") != "" {
			t.Fatal("nats-server not installed and NETMSG_REQUIRE_NATS is set")
		}
		t.Skip("nats-server not installed")
	}
	port := freePort(t)
	var cmd *exec.Cmd
	start := func() {
		cmd = exec.Command(bin, "-a", "127.0.0.1", "-p", strconv.Itoa(port))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for {
			c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
			if err == nil {
				c.Close()
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("nats-server never listened")
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	stop := func() {
		cmd.Process.Kill()
		cmd.Wait()
	}
	start()
	t.Cleanup(func() { stop() })
	testNATSRestart(t, fmt.Sprintf("nats://127.0.0.1:%d", port), stop, start)
}

// TestClusterDefaultRelease: with the default heartbeat (1 s) and
// DeadAfter (3 s), a dead node's identities are released within 5 s.
func TestClusterDefaultRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ns := natsServer(t, -1, "")
	var nodes []*signaling.Server
	var addrs []string
	for range 2 {
		s, addr := startServer(t, signaling.ServerConfig{AllowUnsigned: true, Cluster: &signaling.ClusterConfig{URLs: []string{ns.ClientURL()}}})
		nodes, addrs = append(nodes, s), append(addrs, addr)
	}
	for _, s := range nodes {
		waitStats(t, s, func(st signaling.ServerStats) bool { return st.Peers == 1 })
	}
	ctx := context.Background()
	dial := func(node int, keyName string) (signaling.Conn, error) {
		return signaling.Dial(ctx, addrs[node], signaling.ClientConfig{Identity: "str:bob", Key: key(keyName), Certificate: cert(t, "str:bob", key(keyName), nil)})
	}
	bob, err := dial(0, "bob-1")
	if err != nil {
		t.Fatal(err)
	}
	defer bob.Close()
	deadline := time.Now().Add(5 * time.Second)
	for { // node 1 learns bob's key
		c, err := dial(1, "bob-2")
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("node 1 never learnt bob's claim")
		}
		time.Sleep(20 * time.Millisecond)
	}
	signaling.KillForTest(nodes[0])
	killed := time.Now()
	for {
		c, err := dial(1, "bob-2")
		if err == nil {
			c.Close()
			break
		}
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("not released after 5 s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("released after %v", time.Since(killed).Round(time.Millisecond))
}

// BenchmarkClusterForward: 300-byte signals between two trivial clients
// on different nodes of a cluster on one embedded NATS server (compare
// BenchmarkServerForward, one node).
func BenchmarkClusterForward(b *testing.B) {
	opts := &natsserver.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		b.Fatal(err)
	}
	go ns.Start()
	ns.ReadyForConnections(10 * time.Second)
	defer ns.Shutdown()
	var addrs []string
	for range 2 {
		s, err := signaling.NewServer(signaling.ServerConfig{Rate: 1e9, Burst: 1 << 30, QueueLen: 1 << 16, QueueBytes: 1 << 30,
			Cluster: &signaling.ClusterConfig{URLs: []string{ns.ClientURL()}}})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		a, err := s.Listen("127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		addrs = append(addrs, a.String())
	}
	ctx := context.Background()
	a, _ := signaling.DialTrivial(ctx, addrs[0], "str:a")
	defer a.Close()
	c, _ := signaling.DialTrivial(ctx, addrs[1], "str:b")
	defer c.Close()
	for { // the directory has str:b on node 0
		a.Send("str:b", []byte("probe"))
		rctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		_, _, err := c.Recv(rctx)
		cancel()
		if err == nil {
			break
		}
	}
	for { // drain the probes
		rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, _, err := c.Recv(rctx)
		cancel()
		if err != nil {
			break
		}
	}
	blob := make([]byte, 300)
	b.SetBytes(int64(len(blob)))
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for a.Send("str:b", blob) != nil {
			time.Sleep(10 * time.Microsecond)
		}
		if i%32 == 31 {
			for range 32 {
				if _, _, err := c.Recv(ctx); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "signals/s")
}

// TestClusterResyncAfterNATSLoss: a node that loses its NATS server for
// less than DeadAfter misses what happens meanwhile (here, an identity's
// holder leaving another node); once connected again it relearns the
// other nodes' holders and drops what they no longer hold, without
// waiting for DeadAfter.
func TestClusterResyncAfterNATSLoss(t *testing.T) {
	port := freePort(t)
	n2 := natsServerOpts(t, -1, "netmsg-resync", true)
	n1 := natsServerOpts(t, port, "netmsg-resync", true, n2)
	natsClusterReady(t, n1, n2)
	cfg := func(url string) signaling.ServerConfig {
		return signaling.ServerConfig{AllowUnsigned: true, Cluster: &signaling.ClusterConfig{URLs: []string{url},
			Heartbeat: 100 * time.Millisecond, DeadAfter: 20 * time.Second}}
	}
	a, addrA := startServer(t, cfg(n1.ClientURL()))
	b, addrB := startServer(t, cfg(n2.ClientURL()))
	for _, s := range []*signaling.Server{a, b} {
		waitStats(t, s, func(st signaling.ServerStats) bool { return st.Peers == 1 })
	}
	ctx := context.Background()
	dial := func(addr, keyName string) (signaling.Conn, error) {
		return signaling.Dial(ctx, addr, signaling.ClientConfig{Identity: "str:x", Key: key(keyName), Certificate: cert(t, "str:x", key(keyName), nil)})
	}
	x, err := dial(addrB, "x-1")
	if err != nil {
		t.Fatal(err)
	}
	// As the waits below, 10 s: a loaded machine.
	deadline := time.Now().Add(10 * time.Second)
	for { // node A has learnt that x is bound to key x-1
		c, err := dial(addrA, "x-2")
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("node A never learnt x")
		}
		time.Sleep(20 * time.Millisecond)
	}
	n1.Shutdown()
	deadline = time.Now().Add(10 * time.Second)
	for a.Ready() == nil {
		if time.Now().After(deadline) {
			t.Fatal("node A stayed connected without its NATS server")
		}
		time.Sleep(5 * time.Millisecond)
	}
	x.Close() // node B announces it; node A cannot hear
	time.Sleep(200 * time.Millisecond)
	natsServerOpts(t, port, "netmsg-resync", true, n2)
	deadline = time.Now().Add(10 * time.Second)
	for a.Ready() != nil {
		if time.Now().After(deadline) {
			t.Fatal("node A never reconnected")
		}
		time.Sleep(5 * time.Millisecond)
	}
	back := time.Now()
	for {
		c, err := dial(addrA, "x-2")
		if err == nil {
			c.Close()
			break
		}
		if time.Since(back) > 5*time.Second {
			t.Fatalf("node A still holds x bound to its old key: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("resynced %v after reconnecting", time.Since(back).Round(time.Millisecond))
}

// natsClusterReady waits until a message published on each server
// reaches a subscriber on the first.
func natsClusterReady(t *testing.T, ns ...*natsserver.Server) {
	t.Helper()
	sub, err := nats.Connect(ns[0].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ch := make(chan *nats.Msg, 16)
	s, _ := sub.ChanSubscribe("probe", ch)
	defer s.Unsubscribe()
	sub.Flush()
	for _, x := range ns[1:] {
		pub, err := nats.Connect(x.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for got := false; !got; {
			pub.Publish("probe", nil)
			select {
			case <-ch:
				got = true
			case <-time.After(50 * time.Millisecond):
				if time.Now().After(deadline) {
					t.Fatal("nats cluster never formed")
				}
			}
		}
		pub.Close()
	}
}
