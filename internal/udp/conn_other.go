//go:build !linux

package udp

import (
	"syscall"

	"github.com/netmsg-go/netmsg/transport"
)

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

// setBuffers is SetBuffers: SetReadBuffer and SetWriteBuffer where c has
// them; the granted sizes are not portably readable.
func setBuffers(c syscall.Conn, read, write int) (int, int, error) {
	var err error
	if b, ok := c.(interface{ SetReadBuffer(int) error }); ok && read > 0 {
		err = b.SetReadBuffer(read)
	}
	if b, ok := c.(interface{ SetWriteBuffer(int) error }); ok && write > 0 {
		if werr := b.SetWriteBuffer(write); err == nil {
			err = werr
		}
	}
	return 0, 0, err
}

// ReadBatchSpin is ReadBatch: reads spin on Linux only.
func (c *Conn) ReadBatchSpin(pkts []transport.Packet) (int, error) { return c.ReadBatch(pkts) }
