//go:build !linux

package udp

import "github.com/netmsg-go/netmsg/transport"

// sysConn is empty where only the portable path exists.
type sysConn struct{}

func (c *Conn) init() error {
	if c.opts.ReadBuffer > 0 {
		_ = c.uc.SetReadBuffer(c.opts.ReadBuffer)
	}
	if c.opts.WriteBuffer > 0 {
		_ = c.uc.SetWriteBuffer(c.opts.WriteBuffer)
	}
	return nil // the granted sizes are not portably readable: Info says 0
}

func (c *Conn) batchRead() bool  { return false }
func (c *Conn) batchWrite() bool { return false }

func (c *Conn) readBatchSys(pkts []transport.Packet) (int, error)  { return c.readOne(pkts) }
func (c *Conn) writeBatchSys(pkts []transport.Packet) (int, error) { return c.writeLoop(pkts) }
