package peer

import "syscall"

// coturnAttr makes coturn die with the peer process that started it, so a
// server peer killed by the driver's timeout leaves no relay behind.
func coturnAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
