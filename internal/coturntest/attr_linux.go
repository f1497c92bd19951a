package coturntest

import "syscall"

// ProcAttr makes a child process (coturn, and what tests start beside
// it) die with the test binary, so a test killed by its timeout leaves
// nothing running.
func ProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
