package relay

import (
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// rcvbuf is the SO_RCVBUF the kernel reports for pc.
func rcvbuf(t *testing.T, pc net.PacketConn) int {
	t.Helper()
	rc, err := pc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var v int
	var gerr error
	if err := rc.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF) }); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	return v
}

// TestRelaySocketBuffers checks that the server's socket and every
// relayed socket get Config.SocketBuffer (Linux reports twice the size
// asked for), and that a negative one leaves the system default.
func TestRelaySocketBuffers(t *testing.T) {
	def, err := os.ReadFile("/proc/sys/net/core/rmem_default")
	if err != nil {
		t.Fatal(err)
	}
	rmemDefault, err := strconv.Atoi(strings.TrimSpace(string(def)))
	if err != nil {
		t.Fatal(err)
	}
	// 96 KiB is below every system's rmem_max, so the kernel grants it
	// with or without CAP_NET_ADMIN.
	for _, tc := range []struct {
		size, want int
	}{{96 << 10, 192 << 10}, {-1, rmemDefault}} {
		var mu sync.Mutex
		var opened []net.PacketConn
		s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"alice": "secret"}, AllowPeers: loopback, SocketBuffer: tc.size,
			ListenPacket: func(network, addr string) (net.PacketConn, error) {
				pc, err := net.ListenPacket(network, addr)
				if err == nil {
					mu.Lock()
					opened = append(opened, pc)
					mu.Unlock()
				}
				return pc, err
			}})
		if err != nil {
			t.Fatal(err)
		}
		_, relayed, err := turnClient(t, s.Addr(), "alice", "secret")
		if err != nil {
			t.Fatal(err)
		}
		checkRelay(t, relayed)
		mu.Lock()
		if len(opened) != 2 {
			t.Fatalf("size %d: %d sockets opened, want the server's and one relayed", tc.size, len(opened))
		}
		for i, pc := range opened {
			if got := rcvbuf(t, pc); got != tc.want {
				t.Errorf("size %d: socket %d has SO_RCVBUF %d, want %d", tc.size, i, got, tc.want)
			}
		}
		mu.Unlock()
		relayed.Close()
		s.Close()
	}
}
