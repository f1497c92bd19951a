//go:build !unix

package udp

// msgTrunc is zero where recvmsg flags are not known: truncation is then
// not counted.
const msgTrunc = 0
