package peer

import (
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// lossyConn drops a fraction of the datagrams written through it (the W6
// hook). It hides the *net.UDPConn underneath, so libraries fall back to
// their generic socket path (no GSO, no recvmmsg).
type lossyConn struct {
	net.PacketConn
	loss float64

	mu  sync.Mutex // guards rnd
	rnd *rand.Rand
}

func newLossyConn(c net.PacketConn, loss float64, seed int64) *lossyConn {
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	return &lossyConn{PacketConn: c, loss: loss, rnd: rand.New(rand.NewPCG(uint64(seed), 0x6e65746d7367))}
}

func (c *lossyConn) drop() bool {
	c.mu.Lock()
	d := c.rnd.Float64() < c.loss
	c.mu.Unlock()
	return d
}

func (c *lossyConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	if c.drop() {
		return len(b), nil
	}
	return c.PacketConn.WriteTo(b, addr)
}

// wrapLoss returns c unchanged when opt asks for no loss.
func wrapLoss(c net.PacketConn, opt Options) net.PacketConn {
	if opt.Loss <= 0 {
		return c
	}
	return newLossyConn(c, opt.Loss, opt.Seed)
}
