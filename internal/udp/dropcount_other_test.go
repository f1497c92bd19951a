//go:build !linux

package udp

// hasDropCount says whether Stats.RecvDropped is kept.
func (c *Conn) hasDropCount() bool { return false }
