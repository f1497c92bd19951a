package netsim

import (
	"net"
	"testing"
	"time"
)

// TestListenPacket: Network.ListenPacket behaves as net.ListenPacket on
// the in-memory network: a fixed or a picked port, datagrams both ways,
// errors for other networks, bad addresses, families and ports in use.
func TestListenPacket(t *testing.T) {
	nw, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	a, err := nw.ListenPacket("udp", "198.51.100.1:3478")
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := nw.ListenPacket("udp4", "203.0.113.5:0")
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got := a.LocalAddr().String(); got != "198.51.100.1:3478" {
		t.Errorf("a at %s", got)
	}
	if p := b.LocalAddr().(*net.UDPAddr).Port; p == 0 {
		t.Error("port 0 not replaced")
	}
	if _, err := b.WriteTo([]byte("hi"), a.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	a.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := a.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "hi" || from.String() != b.LocalAddr().String() {
		t.Errorf("got %q from %v, %v", buf[:n], from, err)
	}
	for _, bad := range [][2]string{{"tcp", "198.51.100.2:1"}, {"udp", "nonsense"}, {"udp6", "198.51.100.2:1"}, {"udp4", "[2001:db8::1]:1"}, {"udp", "198.51.100.1:3478"}} {
		if c, err := nw.ListenPacket(bad[0], bad[1]); err == nil {
			c.Close()
			t.Errorf("ListenPacket(%q, %q) succeeded", bad[0], bad[1])
		}
	}
}
