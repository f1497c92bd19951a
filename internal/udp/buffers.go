package udp

import "syscall"

// SetBuffers asks for a receive and a send buffer of read and write bytes
// on c, a UDP socket of the net package, as a Conn does with
// Options.ReadBuffer and WriteBuffer: on Linux first with SO_RCVBUFFORCE
// and SO_SNDBUFFORCE (which pass the system maximum when the process has
// CAP_NET_ADMIN), then with SO_RCVBUF and SO_SNDBUF; elsewhere with
// SetReadBuffer and SetWriteBuffer. A size <= 0 leaves that buffer alone.
// It returns the sizes the kernel reports afterwards (Linux doubles the
// request for its bookkeeping), 0 where the platform does not say.
func SetBuffers(c syscall.Conn, read, write int) (gotRead, gotWrite int, err error) {
	return setBuffers(c, read, write)
}
