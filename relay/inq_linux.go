package relay

import (
	"net"

	"golang.org/x/sys/unix"
)

// socketHasData reports whether datagrams wait in uc's receive queue
// (SIOCINQ), without reading them.
func socketHasData(uc *net.UDPConn) bool {
	rc, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	var n int
	var ierr error
	if rc.Control(func(fd uintptr) { n, ierr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }) != nil || ierr != nil {
		return false
	}
	return n > 0
}
