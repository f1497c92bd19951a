//go:build !linux

package coturntest

import "syscall"

// ProcAttr is nil outside Linux (no parent-death signal there).
func ProcAttr() *syscall.SysProcAttr { return nil }
