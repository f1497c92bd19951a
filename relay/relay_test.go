package relay

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/turn/v5"
	"go.uber.org/goleak"

	"github.com/netmsg-go/netmsg/internal/ice"
	"github.com/netmsg-go/netmsg/netsim"
)

func TestMain(m *testing.M) {
	// Refusals are logged; the tests that check logs give their own Logger.
	slog.SetDefault(slog.New(slog.NewTextHandler(io.Discard, nil)))
	goleak.VerifyTestMain(m)
}

// loopback lets the tests relay to peers on 127.0.0.1, which a Server
// refuses by default.
var loopback = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// turnClient allocates a relayed address on the server at addr.
func turnClient(t *testing.T, addr netip.AddrPort, user, pass string) (*turn.Client, net.PacketConn, error) {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := turn.NewClient(&turn.ClientConfig{
		STUNServerAddr: addr.String(), TURNServerAddr: addr.String(),
		Username: user, Password: pass, Realm: "netmsg", Conn: c, LoggerFactory: quietLogger{},
	})
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close(); c.Close() })
	relayed, err := cl.Allocate()
	if err == nil {
		t.Cleanup(func() { relayed.Close() }) // before the client: its refresh timers
	}
	return cl, relayed, err
}

// checkRelay sends through an allocation to a peer socket and back.
func checkRelay(t *testing.T, relayed net.PacketConn) {
	t.Helper()
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := relayed.WriteTo([]byte("via the relay"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "via the relay" {
		t.Fatalf("peer got %q, %v", buf[:n], err)
	}
	if from.String() != relayed.LocalAddr().String() {
		t.Fatalf("peer saw %v, the allocation is %v", from, relayed.LocalAddr())
	}
	peer.WriteTo([]byte("and back"), from)
	relayed.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err = relayed.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "and back" || from.String() != peer.LocalAddr().String() {
		t.Fatalf("client got %q from %v, %v", buf[:n], from, err)
	}
}

func TestRelay(t *testing.T) {
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"alice": "secret"}, MaxAllocations: 2, AllowPeers: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	_, relayed, err := turnClient(t, s.Addr(), "alice", "secret")
	if err != nil {
		t.Fatal(err)
	}
	checkRelay(t, relayed)
	relayed.Close()

	if _, _, err := turnClient(t, s.Addr(), "alice", "wrong"); err == nil {
		t.Error("a wrong password allocated")
	}
	if st := s.Stats(); st.AuthFailed == 0 && st.Allocations > 1 {
		t.Errorf("stats %+v", st)
	}

	// STUN binding: the mapped address is the client's.
	c, _ := net.ListenPacket("udp4", "127.0.0.1:0")
	defer c.Close()
	var tx [12]byte
	tx[0] = 7
	c.WriteTo(ice.BindingRequest(tx), net.UDPAddrFromAddrPort(s.Addr()))
	buf := make([]byte, 1500)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	gotTx, mapped, ok := ice.ParseBindingResponse(buf[:n])
	if !ok || gotTx != tx || mapped.String() != c.LocalAddr().String() {
		t.Fatalf("binding: %v %v %v", ok, mapped, c.LocalAddr())
	}
}

func TestRelayMaxAllocations(t *testing.T) {
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"}, MaxAllocations: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, err := turnClient(t, s.Addr(), "u", "p"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := turnClient(t, s.Addr(), "u", "p"); err == nil {
		t.Error("a second allocation over the limit")
	}
	if s.Stats().Refused == 0 {
		t.Errorf("stats %+v", s.Stats())
	}
}

func TestRelayConfig(t *testing.T) {
	u := map[string]string{"u": "p"}
	for name, cfg := range map[string]Config{
		"no users":               {ListenAddr: "127.0.0.1:0"},
		"unspecified relay IP":   {ListenAddr: "0.0.0.0:0", Users: u},
		"empty secret":           {ListenAddr: "127.0.0.1:0", AuthSecrets: []string{"a", ""}},
		"zero AllowPeers prefix": {ListenAddr: "127.0.0.1:0", Users: u, AllowPeers: []netip.Prefix{{}}},
		"half a port range":      {ListenAddr: "127.0.0.1:0", Users: u, RelayPortMax: 5},
		"port range upside down": {ListenAddr: "127.0.0.1:0", Users: u, RelayPortMin: 6, RelayPortMax: 5},
		"socket without IP:port": {PacketConn: noAddrConn{}, Users: u},
	} {
		if s, err := NewServer(cfg); !errors.Is(err, ErrConfig) {
			if s != nil {
				s.Close()
			}
			t.Errorf("%s: %v, want ErrConfig", name, err)
		}
	}
	s, err := NewServer(Config{ListenAddr: "0.0.0.0:0", RelayIP: netip.MustParseAddr("127.0.0.1"), Users: u})
	if err != nil {
		t.Fatalf("listening everywhere with a RelayIP: %v", err)
	}
	s.Close()
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// noAddrConn is a socket whose address is no IP address and port.
type noAddrConn struct{ net.PacketConn }

func (noAddrConn) LocalAddr() net.Addr { return &net.UnixAddr{Name: "x", Net: "unixgram"} }
func (noAddrConn) Close() error        { return nil }

// TestRelayOnNetsim runs the server on the in-memory network through
// Config.ListenPacket (package relay knows nothing of netsim): a client
// there allocates, relays to a peer on a public (documentation) address
// and back, and cannot relay to a private one.
func TestRelayOnNetsim(t *testing.T) {
	nw, err := netsim.New(netsim.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	s, err := NewServer(Config{ListenPacket: nw.ListenPacket, ListenAddr: "198.51.100.20:3478", Users: map[string]string{"u": "p"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.Addr().String(); got != "198.51.100.20:3478" {
		t.Fatalf("server at %s", got)
	}
	c, err := nw.ListenPacket("udp4", "203.0.113.1:5000")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := turn.NewClient(&turn.ClientConfig{STUNServerAddr: s.Addr().String(), TURNServerAddr: s.Addr().String(),
		Username: "u", Password: "p", Realm: "netmsg", Conn: c, LoggerFactory: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { cl.Close(); c.Close() }()
	if err := cl.Listen(); err != nil {
		t.Fatal(err)
	}
	relayed, err := cl.Allocate()
	if err != nil {
		t.Fatal(err)
	}
	defer relayed.Close()
	if ap := netip.MustParseAddrPort(relayed.LocalAddr().String()); ap.Addr() != netip.MustParseAddr("198.51.100.20") {
		t.Errorf("relayed address %v", ap)
	}
	peer, err := nw.ListenPacket("udp4", "203.0.113.9:7000")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if _, err := relayed.WriteTo([]byte("out"), peer.LocalAddr()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "out" || from.String() != relayed.LocalAddr().String() {
		t.Fatalf("peer got %q from %v, %v", buf[:n], from, err)
	}
	peer.WriteTo([]byte("back"), from)
	relayed.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, _, err := relayed.ReadFrom(buf); err != nil || string(buf[:n]) != "back" {
		t.Fatalf("client got %q, %v", buf[:n], err)
	}
	if _, err := relayed.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(10, 1, 0, 2), Port: 27015}); err == nil {
		t.Error("relayed to a private address on the in-memory network")
	}
}

// TestRelayPortRange: relayed addresses take their ports from the
// configured range, until it is full.
func TestRelayPortRange(t *testing.T) {
	base := uint16(42000 + time.Now().UnixNano()%1000*10)
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"}, RelayPortMin: base, RelayPortMax: base + 2, MaxAllocationsPerUser: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	seen := map[int]bool{}
	ok := 0
	for range 4 {
		_, relayed, err := turnClient(t, s.Addr(), "u", "p")
		if err != nil {
			continue
		}
		ok++
		p := relayed.LocalAddr().(*net.UDPAddr).Port
		if p < int(base) || p > int(base)+2 || seen[p] {
			t.Errorf("relayed port %d, range %d-%d, seen %v", p, base, base+2, seen)
		}
		seen[p] = true
	}
	if ok > 3 {
		t.Errorf("%d allocations in a range of 3 ports", ok)
	}
	if ok == 0 {
		t.Error("no allocation in the range")
	}
	if _, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"}, RelayPortMin: 5}); !errors.Is(err, ErrConfig) {
		t.Errorf("half a range: %v", err)
	}
}
