package udp

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestConnRefused makes the kernel report ICMP port unreachable on the
// socket (IP_RECVERR; without it an unconnected socket never sees these
// errors): the ECONNREFUSED that then fails a later send or receive must
// be counted and skipped, and the socket must go on working.
func TestConnRefused(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			uc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(lo4))
			if err != nil {
				t.Fatal(err)
			}
			rc, err := uc.SyscallConn()
			if err != nil {
				t.Fatal(err)
			}
			var serr error
			rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_RECVERR, 1) })
			if serr != nil {
				t.Fatal(serr)
			}
			a, err := New(uc, m.opts)
			if err != nil {
				uc.Close()
				t.Fatal(err)
			}
			t.Cleanup(func() { a.Close() })
			b := listen(t, "udp4", lo4, m.opts)
			gone := listen(t, "udp4", lo4, Options{})
			dead := gone.LocalAddr()
			gone.Close()
			defer watchdog(t, a, b)()

			out := newPackets(2, 100)
			out[0].N, out[0].Addr = 100, dead
			out[1].N, out[1].Addr = 100, b.LocalAddr()
			for round := range 20 {
				payload(out[1].Buf, round)
				if k, err := a.WriteBatch(out); k != 2 || err != nil {
					t.Fatalf("round %d: WriteBatch = %d, %v", round, k, err)
				}
				if p := readN(t, b, 1)[0]; binary.LittleEndian.Uint32(p.Buf) != uint32(round) {
					t.Fatalf("round %d: got datagram %d", round, binary.LittleEndian.Uint32(p.Buf))
				}
				time.Sleep(time.Millisecond) // let the ICMP error come back
			}
			// b answers; a's ReadBatch must skip the pending error.
			out[1].Addr = a.LocalAddr()
			if _, err := b.WriteBatch(out[1:]); err != nil {
				t.Fatal(err)
			}
			if p := readN(t, a, 1)[0]; p.Addr != b.LocalAddr() {
				t.Fatalf("reply from %v", p.Addr)
			}
			st := a.Stats()
			if st.SendErrors+st.SendRetries+st.ReadErrors == 0 && m.name == "fallback" {
				t.Errorf("no error counted: %+v", st)
			}
			if st.SendErrors > 0 && st.LastSendError == nil {
				t.Errorf("LastSendError nil: %+v", st)
			}
			t.Logf("stats %+v", st)
		})
	}
}

// TestGSORefused makes the kernel refuse every GSO send (it does so with
// EINVAL on a socket with SO_NO_CHECK): each group must be sent again as
// separate datagrams, all arriving intact.
func TestGSORefused(t *testing.T) {
	uc, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(lo4))
	if err != nil {
		t.Fatal(err)
	}
	rc, err := uc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_NO_CHECK, 1) })
	if serr != nil {
		t.Fatal(serr)
	}
	a, err := New(uc, Options{})
	if err != nil {
		uc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	if !a.Info().GSO {
		t.Skip("no UDP GSO")
	}
	b := listen(t, "udp4", lo4, Options{})
	defer watchdog(t, a, b)()
	out := newPackets(100, 1000)
	for i := range out {
		out[i].N, out[i].Addr = 1000-i/50, b.LocalAddr() // two runs of 50
		payload(out[i].Buf[:out[i].N], i)
	}
	if k, err := a.WriteBatch(out); k != len(out) || err != nil {
		t.Fatalf("WriteBatch = %d, %v", k, err)
	}
	for i, p := range readN(t, b, len(out)) {
		if string(p.Bytes()) != string(out[i].Bytes()) {
			t.Fatalf("datagram %d: %d bytes, want %d", i, p.N, out[i].N)
		}
	}
	st := a.Stats()
	if st.GSOBatches != 0 || st.DatagramsOut != uint64(len(out)) || st.SendErrors != 0 {
		t.Errorf("stats %+v", st)
	}
	t.Logf("stats %+v", st)
}
