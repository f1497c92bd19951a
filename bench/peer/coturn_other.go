//go:build !linux

package peer

import "syscall"

func coturnAttr() *syscall.SysProcAttr { return nil }
