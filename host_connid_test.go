package netmsg

import (
	"crypto/rand"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
)

// zeroLowIDs is a randomness source whose first reads of 4 bytes (the
// connection ids a Host draws) give ids whose low 16 bits are 0; the
// rest comes from crypto/rand.
type zeroLowIDs struct{ left int }

func (z *zeroLowIDs) Read(b []byte) (int, error) {
	if len(b) == 4 && z.left > 0 {
		z.left--
		copy(b, []byte{0, 0, byte(z.left + 1), 0x40})
		return 4, nil
	}
	return io.ReadFull(rand.Reader, b)
}

// TestConnIDLowBitsNonzero: a Host never gives a connection an id whose
// low 16 bits are 0, which a GNS client refuses in a connect OK ("Didn't
// send valid connection ID"): one connect in 65,536 failed so.
func TestConnIDLowBitsNonzero(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Seed: 1})
		srvAddr, cliAddr := netip.MustParseAddrPort("10.0.0.1:27015"), netip.MustParseAddrPort("10.0.0.2:27015")
		se, _ := nw.Listen(srvAddr)
		ce, _ := nw.Listen(cliAddr)
		srv := newTestPeer(t, Config{PacketConn: se, Rand: &zeroLowIDs{left: 3}}, true)
		cli := newTestPeer(t, Config{PacketConn: ce, Rand: &zeroLowIDs{left: 3}}, false)
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		c, err := cli.Connect(srvAddr)
		if err != nil {
			t.Fatal(err)
		}
		if c&0xffff == 0 {
			t.Fatalf("client connection id %#x", uint32(c))
		}
		waitConnected(t, cli, c, 5*time.Second)
		for _, ev := range srv.seen() {
			if ev.Conn&0xffff == 0 {
				t.Fatalf("server connection id %#x", uint32(ev.Conn))
			}
		}
		if len(srv.seen()) == 0 {
			t.Fatal("the server saw no connection")
		}
	})
}
