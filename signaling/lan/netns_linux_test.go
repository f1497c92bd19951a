package lan

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg"
)

// bridgeLAN is a LAN made of network namespaces: one holding a Linux
// bridge, and one per peer joined to it by a veth pair, at 10.78.0.<i+1>/24
// on interface nml0. Everything lives in namespaces the test creates and
// removes; no route leads anywhere else.
type bridgeLAN struct {
	br    string
	peers []string
	ip    string
}

var nsSeq struct {
	sync.Mutex
	n int
}

// newBridgeLAN builds a bridge with n peer namespaces, or skips the test
// where namespaces cannot be made (not root, no ip command, a sandbox).
func newBridgeLAN(t *testing.T, n int) *bridgeLAN {
	t.Helper()
	if testing.Short() {
		t.Skip("short mode")
	}
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	ipCmd, err := exec.LookPath("ip")
	if err != nil {
		t.Skip("no ip command (iproute2)")
	}
	nsSeq.Lock()
	nsSeq.n++
	tag := fmt.Sprintf("%d-%d", os.Getpid(), nsSeq.n)
	nsSeq.Unlock()
	l := &bridgeLAN{br: "nmlB-" + tag, ip: ipCmd}
	t.Cleanup(func() {
		for _, ns := range append(l.peers, l.br) {
			exec.Command(ipCmd, "netns", "del", ns).Run()
		}
	})
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipCmd, args...).CombinedOutput(); err != nil {
			t.Skipf("cannot set up namespaces here: ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", l.br)
	run("-n", l.br, "link", "add", "br0", "type", "bridge")
	run("-n", l.br, "link", "set", "br0", "up")
	for i := range n {
		ns := fmt.Sprintf("nmlP%d-%s", i, tag)
		l.peers = append(l.peers, ns)
		port := fmt.Sprintf("nmlp%d", i)
		run("netns", "add", ns)
		run("link", "add", "nml0", "netns", ns, "type", "veth", "peer", "name", port, "netns", l.br)
		run("-n", ns, "addr", "add", fmt.Sprintf("10.78.0.%d/24", i+1), "dev", "nml0")
		run("-n", ns, "link", "set", "nml0", "up")
		run("-n", ns, "link", "set", "lo", "up")
		run("-n", l.br, "link", "set", port, "master", "br0")
		run("-n", l.br, "link", "set", port, "up")
	}
	return l
}

// noMulticast turns the MULTICAST flag off on every peer's interface, so
// that announcements must go by broadcast.
func (l *bridgeLAN) noMulticast(t *testing.T) {
	for _, ns := range l.peers {
		if out, err := exec.Command(l.ip, "-n", ns, "link", "set", "nml0", "multicast", "off").CombinedOutput(); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
}

// helper is this test binary run as one LAN peer inside a namespace (see
// TestLANHelper); its output lines are read as they come.
type helper struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	mu    sync.Mutex
	lines []string
	news  chan struct{}
}

func (l *bridgeLAN) start(t *testing.T, i int, env ...string) *helper {
	t.Helper()
	cmd := exec.Command(l.ip, "netns", "exec", l.peers[i], os.Args[0], "-test.run=^TestLANHelper$", "-test.v")
	cmd.Env = append(os.Environ(), append([]string{"NETMSG_LAN_HELPER=1"}, env...)...)
	cmd.Stderr = os.Stderr
	h := &helper{t: t, cmd: cmd, news: make(chan struct{}, 1)}
	stdout, _ := cmd.StdoutPipe()
	h.stdin, _ = cmd.StdinPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() }) // ours, by its PID
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			h.mu.Lock()
			h.lines = append(h.lines, sc.Text())
			h.mu.Unlock()
			select {
			case h.news <- struct{}{}:
			default:
			}
		}
	}()
	return h
}

// wait waits up to d for an output line starting with prefix and returns
// it.
func (h *helper) wait(d time.Duration, prefix string) string {
	h.t.Helper()
	deadline := time.After(d)
	for {
		h.mu.Lock()
		for _, l := range h.lines {
			if strings.HasPrefix(l, prefix) {
				h.mu.Unlock()
				return l
			}
		}
		h.mu.Unlock()
		select {
		case <-h.news:
		case <-deadline:
			h.mu.Lock()
			defer h.mu.Unlock()
			h.t.Fatalf("no %q from %v within %v; output:\n%s", prefix, h.cmd.Args[3], d, strings.Join(h.lines, "\n"))
		}
	}
}

func (h *helper) say(line string) {
	fmt.Fprintln(h.stdin, line)
}

// TestLANHelper is one peer of the namespace tests when run by them
// (NETMSG_LAN_HELPER=1); otherwise it returns at once. Environment:
// LAN_ID its identity, LAN_SEND identities to send "hello from <id>" to
// (comma-separated), LAN_KEY/LAN_CERT/LAN_CA hex credentials, LAN_FORGE
// to forge announcements of that identity instead of being a peer. It
// prints "peers <ids>" when its table changes, "got <from> <text> <ms>"
// for each message (ms since it started), and "stats ..." when told
// "stats"; "quit" closes it (a goodbye), a kill does not.
func TestLANHelper(t *testing.T) {
	if os.Getenv("NETMSG_LAN_HELPER") != "1" {
		return
	}
	start := time.Now()
	id := os.Getenv("LAN_ID")
	cfg := Config{Identity: id, Interval: time.Second, Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	var hcfg netmsg.Config
	if k := os.Getenv("LAN_KEY"); k != "" {
		key, _ := hex.DecodeString(k)
		cert, _ := hex.DecodeString(os.Getenv("LAN_CERT"))
		ca, _ := hex.DecodeString(os.Getenv("LAN_CA"))
		cfg.Key, cfg.Certificate, cfg.TrustedCAs = key, cert, []ed25519.PublicKey{ca}
		hcfg.PrivateKey, hcfg.Certificate, hcfg.TrustedCAs = key, cert, []ed25519.PublicKey{ca}
	}
	if victim := os.Getenv("LAN_FORGE"); victim != "" {
		forge(t, cfg, victim)
		return
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ident, _ := netmsg.ParseIdentity(id)
	var h *netmsg.Host
	hcfg.Identity, hcfg.Signaling, hcfg.Logger = ident, c, cfg.Logger
	hcfg.OnSessionRequest = func(p netmsg.Identity) { h.Messages().AcceptSessionWithUser(p) }
	if h, err = netmsg.NewHost(hcfg); err != nil {
		t.Fatal(err)
	}
	var out sync.Mutex
	say := func(format string, args ...any) {
		out.Lock()
		fmt.Printf(format+"\n", args...)
		out.Unlock()
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for {
			m, err := h.Messages().Receive(ctx, 1)
			if err != nil {
				return
			}
			say("got %v %s %d", m.Identity, m.Payload, time.Since(start).Milliseconds())
			m.Release()
		}
	}()
	go func() {
		sent := map[string]bool{}
		last := ""
		for ctx.Err() == nil {
			var ids []string
			for _, p := range c.Peers() {
				ids = append(ids, p.Identity)
				if !sent[p.Identity] && strings.Contains(","+os.Getenv("LAN_SEND")+",", ","+p.Identity+",") {
					sent[p.Identity] = true
					say("found %s %d", p.Identity, time.Since(start).Milliseconds())
					pid, _ := netmsg.ParseIdentity(p.Identity)
					h.Messages().SendMessageToUser(pid, []byte("hello-from-"+id), netmsg.SendReliable, 1)
				}
			}
			if l := strings.Join(ids, ","); l != last {
				last = l
				say("peers %s", l)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "stats":
			st := c.Stats()
			say("stats %+v", st)
		case "quit":
			cancel()
			h.Close()
			c.Close()
			say("bye")
			return
		}
	}
	cancel()
}

// forge sends, once a second, announcements claiming victim's identity
// from this namespace: unsigned, and signed with a key of its own under
// an untrusted CA's certificate.
func forge(t *testing.T, cfg Config, victim string) {
	cfg.Key, cfg.Certificate = nil, nil
	evilCA := ed25519.NewKeyFromSeed(append(make([]byte, 31), 0xee))
	ev := issue(t, evilCA, victim, 0xef)
	c, err := New(Config{Identity: "str:mallory", Interval: time.Hour, Logger: cfg.Logger})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := uint64(1); ; i++ {
		a := announcement{Instance: 42, Seq: 2 * i, TimeMs: time.Now().UnixMilli(), TTLms: 60000, Port: c.LocalAddr().Port(), ID: victim}
		c.announce(appendAnnouncement(nil, &a))
		a.Seq++
		a.Cert = ev.cert
		c.announce(sign(appendAnnouncement(nil, &a), ev.key))
		fmt.Println("forged")
		time.Sleep(time.Second)
	}
}

// TestLANNamespaces: netmsg Hosts in network namespaces on one Linux
// bridge, each with LAN signaling on real sockets, find each other by
// multicast (or by broadcast where the interfaces cannot multicast) and
// exchange Messages directly; a peer that quits leaves the others' tables
// at once, one that is killed expires; with certificates on, a forger's
// announcements of alice's identity are refused and alice is reached.
func TestLANNamespaces(t *testing.T) {
	t.Run("three-peers-multicast", func(t *testing.T) { threePeers(t, false) })
	t.Run("three-peers-broadcast", func(t *testing.T) { threePeers(t, true) })
	t.Run("forged-announcement", forgedInNamespaces)
}

func threePeers(t *testing.T, broadcast bool) {
	l := newBridgeLAN(t, 3)
	if broadcast {
		l.noMulticast(t)
	}
	ids := []string{"str:alice", "str:bob", "str:carol"}
	var hs []*helper
	for i, id := range ids {
		hs = append(hs, l.start(t, i, "LAN_ID="+id, "LAN_SEND="+strings.Join(ids, ",")))
	}
	for i, h := range hs {
		for j, from := range ids {
			if i != j {
				line := h.wait(30*time.Second, "got "+from+" hello-from-"+from)
				t.Logf("%s: %s", ids[i], line)
			}
		}
		t.Logf("%s: %s", ids[i], h.wait(time.Second, "found "))
	}
	// carol quits: a goodbye.
	hs[2].say("quit")
	hs[2].wait(5*time.Second, "bye")
	t0 := time.Now()
	waitLine(t, hs[0], 5*time.Second, "peers str:bob")
	t.Logf("alice dropped carol %v after her goodbye", time.Since(t0))
	// bob is killed: no goodbye; his entry expires (TTL 4 s at a 1 s
	// interval).
	hs[1].cmd.Process.Kill()
	t0 = time.Now()
	waitLine(t, hs[0], 10*time.Second, "peers ")
	d := time.Since(t0)
	t.Logf("alice expired bob %v after he was killed", d)
	if d < 2*time.Second {
		t.Errorf("bob expired after %v, before his TTL", d)
	}
	hs[0].say("stats")
	t.Logf("alice: %s", hs[0].wait(5*time.Second, "stats "))
}

// waitLine waits for an output line equal to want, the latest "peers"
// line counting.
func waitLine(t *testing.T, h *helper, d time.Duration, want string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		h.mu.Lock()
		var last string
		for _, l := range h.lines {
			if strings.HasPrefix(l, "peers") {
				last = l
			}
		}
		h.mu.Unlock()
		if strings.TrimSpace(last) == strings.TrimSpace(want) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	t.Fatalf("no %q within %v:\n%s", want, d, strings.Join(h.lines, "\n"))
}

func forgedInNamespaces(t *testing.T) {
	l := newBridgeLAN(t, 3)
	ca := ed25519.NewKeyFromSeed(make([]byte, 32))
	env := func(id string, seed byte) []string {
		cr := issue(t, ca, id, seed)
		return []string{"LAN_ID=" + id, "LAN_KEY=" + hex.EncodeToString(cr.key), "LAN_CERT=" + hex.EncodeToString(cr.cert),
			"LAN_CA=" + hex.EncodeToString(ca.Public().(ed25519.PublicKey))}
	}
	mallory := l.start(t, 2, "LAN_FORGE=str:alice")
	mallory.wait(10*time.Second, "forged")
	bob := l.start(t, 1, append(env("str:bob", 2), "LAN_SEND=str:alice")...)
	time.Sleep(1500 * time.Millisecond) // bob hears mallory's forgeries before alice exists
	alice := l.start(t, 0, append(env("str:alice", 1), "LAN_SEND=str:bob")...)
	t.Logf("bob: %s", bob.wait(30*time.Second, "got str:alice hello-from-str:alice"))
	t.Logf("alice: %s", alice.wait(30*time.Second, "got str:bob hello-from-str:bob"))
	bob.say("stats")
	st := bob.wait(5*time.Second, "stats ")
	t.Logf("bob: %s", st)
	if !strings.Contains(st, "Unsigned:") || strings.Contains(st, "Unsigned:0 ") || strings.Contains(st, "BadSignature:0 ") {
		t.Fatalf("bob refused none of mallory's forgeries: %s", st)
	}
	alice.say("quit")
}
