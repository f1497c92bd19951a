// Package netnstest builds, for tests and benchmarks, a small routed
// network out of Linux network namespaces: two peer namespaces, A and B,
// each joined by a veth pair to a router namespace R, which runs the
// services (signaling, STUN/TURN). Peers reach R's addresses always; they
// reach each other only while R forwards (SetForwarding), so the same
// topology gives a direct path or one where the peers' host candidates are
// unreachable and only a relay on R connects them.
//
//	A 10.77.1.2/24 --- 10.77.1.1 [R] 10.77.2.1 --- 10.77.2.2/24 B
//
// It needs root and the ip command; New skips the test (with the reason)
// where the machine forbids namespaces. Everything is removed when the
// test ends. Addresses and interface names live inside the namespaces, so
// topologies of several test processes (or tests) do not meet; only the
// namespace names are unique (process id and a counter).
package netnstest

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// The topology's addresses.
var (
	AddrA   = netip.MustParseAddr("10.77.1.2")
	AddrB   = netip.MustParseAddr("10.77.2.2")
	RouterA = netip.MustParseAddr("10.77.1.1") // R's address on A's side: where the services listen
	RouterB = netip.MustParseAddr("10.77.2.1")
)

// Topology names the namespaces of one network.
type Topology struct {
	A, B, R string // namespace names (for ip netns exec)
	ip      string // the ip command
}

var (
	mu   sync.Mutex
	next int
)

// New builds the topology, forwarding on, or skips tb.
func New(tb testing.TB) *Topology {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("network namespaces need root")
	}
	ipCmd, err := exec.LookPath("ip")
	if err != nil {
		tb.Skip("no ip command (iproute2)")
	}
	mu.Lock()
	next++
	tag := fmt.Sprintf("%d-%d", os.Getpid(), next)
	mu.Unlock()
	t := &Topology{A: "nmtA-" + tag, B: "nmtB-" + tag, R: "nmtR-" + tag, ip: ipCmd}
	tb.Cleanup(t.remove)
	if err := t.run("netns", "add", t.R); err != nil {
		tb.Skipf("cannot create a network namespace here: %v", err)
	}
	for _, args := range [][]string{
		{"netns", "add", t.A},
		{"netns", "add", t.B},
		{"link", "add", "nmtA0", "netns", t.A, "type", "veth", "peer", "name", "nmtRA", "netns", t.R},
		{"link", "add", "nmtB0", "netns", t.B, "type", "veth", "peer", "name", "nmtRB", "netns", t.R},
		{"-n", t.A, "addr", "add", AddrA.String() + "/24", "dev", "nmtA0"},
		{"-n", t.B, "addr", "add", AddrB.String() + "/24", "dev", "nmtB0"},
		{"-n", t.R, "addr", "add", RouterA.String() + "/24", "dev", "nmtRA"},
		{"-n", t.R, "addr", "add", RouterB.String() + "/24", "dev", "nmtRB"},
		{"-n", t.A, "link", "set", "nmtA0", "up"},
		{"-n", t.B, "link", "set", "nmtB0", "up"},
		{"-n", t.R, "link", "set", "nmtRA", "up"},
		{"-n", t.R, "link", "set", "nmtRB", "up"},
		{"-n", t.A, "link", "set", "lo", "up"},
		{"-n", t.B, "link", "set", "lo", "up"},
		{"-n", t.R, "link", "set", "lo", "up"},
		{"-n", t.A, "route", "add", "default", "via", RouterA.String()},
		{"-n", t.B, "route", "add", "default", "via", RouterB.String()},
	} {
		if err := t.run(args...); err != nil {
			tb.Skipf("cannot set up the namespaces here: %v", err)
		}
	}
	if err := t.SetForwarding(true); err != nil {
		tb.Skipf("cannot enable forwarding in a namespace here: %v", err)
	}
	return t
}

func (t *Topology) run(args ...string) error {
	out, err := exec.Command(t.ip, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// remove deletes the namespaces (and with them the veth pairs).
func (t *Topology) remove() {
	for _, ns := range []string{t.A, t.B, t.R} {
		exec.Command(t.ip, "netns", "del", ns).Run()
	}
}

// SetForwarding turns routing between A and B on R on or off. Off, A and
// B still reach R's addresses (they are R's own), not each other.
func (t *Topology) SetForwarding(on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	return t.Do(t.R, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte(v), 0o644)
	})
}

// Command returns a command that runs name with args inside namespace ns.
func (t *Topology) Command(ns, name string, args ...string) *exec.Cmd {
	return exec.Command(t.ip, append([]string{"netns", "exec", ns, name}, args...)...)
}

// Do runs f on an OS thread inside namespace ns. Sockets f creates belong
// to ns for their whole life, whichever goroutine uses them later (other
// socket calls made later from other threads, such as a DNS lookup or a
// redial, happen in the process's own namespace).
func (t *Topology) Do(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// The thread is not unlocked: if switching back failed it must not
		// run other goroutines; the runtime ends it with this goroutine.
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		err = f()
		if e := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); e == nil {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}
