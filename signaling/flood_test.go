package signaling_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/signaling"
)

// The flood test's shape. NETMSG_FLOOD_CONNS and NETMSG_FLOOD_SECONDS
// scale it (the report's figure: 10000 and 30).
const (
	floodConns        = 2000 // idle registrations held
	floodSeconds      = 6    // how long the attack runs while good clients are measured
	floodPerSource    = 100  // idle registrations per source address (under the cap of 128)
	floodOneSource    = 500  // more connections from one address (past its cap)
	floodLorisSources = 16   // slowloris sources, each opening 20 connections that trickle bytes
	floodLorisPer     = 20
	floodAbsent       = 20 // clients flooding signals to absent identities
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// heapAndStacks is the Go memory in use after a collection.
func heapAndStacks() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse + m.StackInuse
}

func rssKiB() int {
	b, _ := os.ReadFile("/proc/self/status")
	for l := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// TestFlood runs a server on loopback under attack from another process
// (so the two sides do not share the file limit): idle trivial
// registrations from many addresses, more from one address than its cap,
// slowloris connections that trickle bytes and never finish a line, and
// clients flooding signals to identities nobody holds. Throughout, a good
// client connects, registers and gets a signal through every 100 ms, each
// within a second; the server's memory stays within 48 KiB per
// connection; every refusal is counted.
func TestFlood(t *testing.T) {
	if os.Getenv("NETMSG_FLOOD_ATTACK") != "" {
		t.Skip("the attacker's process")
	}
	if testing.Short() {
		t.Skip("short")
	}
	conns := envInt("NETMSG_FLOOD_CONNS", floodConns)
	seconds := envInt("NETMSG_FLOOD_SECONDS", floodSeconds)
	loris := envInt("NETMSG_FLOOD_LORIS_SOURCES", floodLorisSources)
	before := heapAndStacks()
	rssBefore := rssKiB()
	// MaxClients above the attack, so the good clients fit beside it.
	s, addr := startServer(t, signaling.ServerConfig{MaxClients: conns + 2000})

	cmd := exec.Command(os.Args[0], "-test.run=^TestFloodAttacker$", "-test.count=1")
	cmd.Env = append(os.Environ(), "NETMSG_FLOOD_ATTACK="+addr,
		fmt.Sprintf("NETMSG_FLOOD_CONNS=%d", conns), fmt.Sprintf("NETMSG_FLOOD_LORIS_SOURCES=%d", loris))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		cmd.Wait()
	}()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "ready") {
				ready <- l
			}
		}
		close(ready)
	}()
	start := time.Now()
	select {
	case l, ok := <-ready:
		if !ok {
			t.Fatal("the attacker died")
		}
		t.Logf("attacker %s after %v", l, time.Since(start).Round(time.Millisecond))
	case <-time.After(120 * time.Second):
		t.Fatal("the attacker never got ready")
	}
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Trivial >= conns })

	rx, err := signaling.DialTrivial(context.Background(), addr, "str:good-rx")
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	exchangeSelf(t, rx, "str:good-rx") // registered
	var worst time.Duration
	var lat []time.Duration
	end := time.Now().Add(time.Duration(seconds) * time.Second)
	for i := 0; time.Now().Before(end); i++ {
		d := goodClient(t, addr, fmt.Sprintf("str:good-%d", i), rx)
		lat = append(lat, d)
		worst = max(worst, d)
		time.Sleep(100 * time.Millisecond)
	}
	st := s.Stats()
	after := heapAndStacks()
	perConn := int64(after-before) / int64(st.Clients)
	t.Logf("%d good clients served, worst %v; server: %d connections (%d registered, %d registering), Go memory %d MiB (%d B per connection), RSS %d -> %d MiB",
		len(lat), worst.Round(time.Millisecond), st.Clients, st.Trivial, st.Pending, (after-before)>>20, perConn, rssBefore>>10, rssKiB()>>10)
	t.Logf("stats %+v", st)
	if worst > time.Second {
		t.Errorf("a good client waited %v", worst)
	}
	if perConn > 48<<10 {
		t.Errorf("%d bytes per connection", perConn)
	}
	if st.RefusedAddr == 0 || st.HandshakeTimeouts+st.PendingEvicted == 0 || st.AbsentFloods == 0 || st.NoRecipient == 0 {
		t.Errorf("an attack was not counted: %+v", st)
	}
	// Each absent-flooding source gets 100 at once and 20/s; the one
	// over the budget disconnects its sender.
	if limit := uint64(floodAbsent * (100 + 20*int(time.Since(start).Seconds()+1))); st.NoRecipient-st.AbsentFloods > limit {
		t.Errorf("%d signals to absent identities processed, budget %d", st.NoRecipient-st.AbsentFloods, limit)
	}
	if st.Clients > conns+floodPerSource+floodOneSource+loris*floodLorisPer+floodAbsent+10 {
		t.Errorf("%d connections held", st.Clients)
	}
}

// exchangeSelf sends c's own identity a signal until c gets it.
func exchangeSelf(t *testing.T, c signaling.Conn, id string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.Send(id, []byte("self"))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		_, _, err := c.Recv(ctx)
		cancel()
		if err == nil {
			return
		}
	}
	t.Fatalf("%s never got its own signal", id)
}

// goodClient connects as id, registers, sends rx a signal and returns how
// long until rx had it (or fails the test after 5 s).
func goodClient(t *testing.T, addr, id string, rx signaling.Conn) time.Duration {
	t.Helper()
	start := time.Now()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("good client: %v", err)
	}
	defer c.Close()
	fmt.Fprintf(c, "%s\nstr:good-rx 0102\n", id)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		from, blob, err := rx.Recv(ctx)
		if err != nil {
			t.Fatalf("good client %s: no signal: %v", id, err)
		}
		if from == id && string(blob) == "\x01\x02" {
			return time.Since(start)
		}
	}
}

// TestFloodAttacker is TestFlood's attacker, run in its own process.
func TestFloodAttacker(t *testing.T) {
	addr := os.Getenv("NETMSG_FLOOD_ATTACK")
	if addr == "" {
		t.Skip("run by TestFlood")
	}
	conns := envInt("NETMSG_FLOOD_CONNS", floodConns)
	loris := envInt("NETMSG_FLOOD_LORIS_SOURCES", floodLorisSources)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { io.Copy(io.Discard, os.Stdin); cancel() }() // stop when the parent closes stdin
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	// hold dials from src, runs fn on each connection until it ends, and
	// again after pause, until the parent stops the attack.
	hold := func(src string, pause time.Duration, fn func(net.Conn)) {
		for ctx.Err() == nil {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
			c, err := d.DialContext(ctx, "tcp", addr)
			if err == nil {
				stop := context.AfterFunc(ctx, func() { c.Close() })
				fn(c)
				c.Close()
				stop()
			}
			select {
			case <-ctx.Done():
			case <-time.After(pause):
			}
		}
	}
	// Idle registrations, floodPerSource per address, dialled one per
	// 100 µs; one that is refused or dropped registers again.
	for i := range conns {
		src := i / floodPerSource
		wg.Go(func() {
			hold(fmt.Sprintf("127.0.%d.%d", 1+src/250, 1+src%250), 50*time.Millisecond, func(c net.Conn) {
				fmt.Fprintf(c, "str:idle-%d\n", i)
				io.Copy(io.Discard, c)
			})
		})
		time.Sleep(100 * time.Microsecond)
	}
	// More from one address than its cap: the excess is refused, again
	// and again.
	for i := range floodOneSource {
		wg.Go(func() {
			hold("127.0.100.1", time.Second, func(c net.Conn) {
				fmt.Fprintf(c, "str:greedy-%d\n", i)
				io.Copy(io.Discard, c)
			})
		})
	}
	// Slowloris: a byte a second, never a newline.
	for src := range loris {
		for range floodLorisPer {
			wg.Go(func() {
				hold(fmt.Sprintf("127.0.101.%d", 1+src), 10*time.Millisecond, func(c net.Conn) {
					for {
						if _, err := c.Write([]byte("s")); err != nil {
							return
						}
						select {
						case <-ctx.Done():
							return
						case <-time.After(time.Second):
						}
					}
				})
			})
		}
	}
	// Signals to absent identities, as fast as the server reads.
	for k := range floodAbsent {
		wg.Go(func() {
			line := []byte(strings.Repeat(fmt.Sprintf("str:nobody-%d 00\n", k), 64))
			hold(fmt.Sprintf("127.0.102.%d", 1+k), 10*time.Millisecond, func(c net.Conn) {
				go io.Copy(io.Discard, c)
				fmt.Fprintf(c, "str:absent-%d\n", k)
				for {
					if _, err := c.Write(line); err != nil {
						return
					}
				}
			})
		})
	}
	fmt.Printf("ready: %d idle connections dialled\n", conns)
	<-ctx.Done()
}
