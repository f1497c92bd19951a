//go:build unix && !linux

package udp

import "syscall"

// msgTrunc is the flag recvmsg sets on a truncated datagram.
const msgTrunc = syscall.MSG_TRUNC
