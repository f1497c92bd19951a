package relay

import (
	"bytes"
	"encoding/binary"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v4"

	"github.com/netmsg-go/netmsg/internal/udp"
	"github.com/netmsg-go/netmsg/transport"
)

// allocateRelayed makes an allocation and returns its relayed address.
func (r *rawTURN) allocateRelayed() netip.AddrPort {
	r.t.Helper()
	if code := r.allocate(); code != 0 {
		r.t.Fatalf("allocate: error %d", code)
	}
	var a stun.XORMappedAddress
	if err := a.GetFromAs(r.last, stun.AttrXORRelayedAddress); err != nil {
		r.t.Fatalf("allocate: %v", err)
	}
	ip, _ := netip.AddrFromSlice(a.IP)
	return netip.AddrPortFrom(ip.Unmap(), uint16(a.Port))
}

// bind binds channel num to peer.
func (r *rawTURN) bind(num uint16, peer netip.AddrPort) {
	r.t.Helper()
	if code := r.do(stun.MethodChannelBind, channelAttr(num), peerAttr(peer)); code != 0 {
		r.t.Fatalf("channel bind: error %d", code)
	}
}

// sendChannel sends data as ChannelData on channel num.
func (r *rawTURN) sendChannel(num uint16, data []byte) {
	r.t.Helper()
	b := binary.BigEndian.AppendUint16(nil, num)
	b = binary.BigEndian.AppendUint16(b, uint16(len(data)))
	if _, err := r.c.WriteTo(append(b, data...), r.srv); err != nil {
		r.t.Fatal(err)
	}
}

// recv returns the next datagram from the server within d.
func (r *rawTURN) recv(d time.Duration) ([]byte, error) {
	r.c.SetReadDeadline(time.Now().Add(d))
	n, _, err := r.c.ReadFrom(r.buf)
	return r.buf[:n], err
}

// channelPair starts a server and two clients of it, each with an
// allocation; it returns them and their relayed addresses.
func channelPair(t testing.TB) (s *Server, a, b *rawTURN, ra, rb netip.AddrPort) {
	s, err := NewServer(Config{Logger: slog.New(slog.DiscardHandler), ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"}, AllowPeers: loopback})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	a = newRawTURN(t, s.Addr(), "127.0.0.1:0", "u", "p")
	b = newRawTURN(t, s.Addr(), "127.0.0.1:0", "u", "p")
	return s, a, b, a.allocateRelayed(), b.allocateRelayed()
}

// TestRelayChannelToChannel: ChannelData from client A on its channel to
// B's relayed address reaches client B as ChannelData on B's channel to
// A's relayed address, bytes exact, forwarded by the server's reader
// (nothing goes through B's relayed socket); malformed ChannelData
// reaches nobody; once B's allocation is gone, nothing reaches B's client.
func TestRelayChannelToChannel(t *testing.T) {
	s, a, b, ra, rb := channelPair(t)
	a.bind(0x4000, rb)
	b.bind(0x4abc, ra)
	for i := range 50 {
		data := bytes.Repeat([]byte{byte(i)}, 1+i*24)
		a.sendChannel(0x4000, data)
		got, err := b.recv(5 * time.Second)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		// pion pads what it sends to a multiple of 4 bytes; the server's
		// reader does not (RFC 8656 12.5: optional over UDP).
		want := append([]byte{0x4a, 0xbc, byte(len(data) >> 8), byte(len(data))}, data...)
		if len(got) < len(want) || !bytes.Equal(got[:len(want)], want) || len(got) > len(want)+3 {
			t.Fatalf("datagram %d: b got % x, want % x", i, got, want)
		}
	}
	// Malformed ChannelData is pion's to drop: a length past the datagram,
	// an unbound channel, a bare header.
	for _, bad := range [][]byte{
		{0x40, 0x00, 0x00, 0x64, 1, 2, 3},
		{0x40, 0x07, 0x00, 0x01, 1},
		{0x40, 0x00},
	} {
		if _, err := a.c.WriteTo(bad, a.srv); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := b.recv(100 * time.Millisecond); err == nil {
		t.Fatalf("b got % x from malformed ChannelData", got)
	}
	v, ok := s.local.Load(rb)
	if !ok {
		t.Fatalf("the server does not know %v as its own", rb)
	}
	bc := v.(*relayedConn).bc
	bc.inbox.Lock()
	injected := bc.inbox.taken
	bc.inbox.Unlock()
	if st := bc.c.Stats(); st.DatagramsIn != 0 || injected != 0 {
		t.Fatalf("b's relayed socket read %d datagrams from the network and %d from its inbox, want none", st.DatagramsIn, injected)
	}
	if st := s.Stats(); st.PacketsToPeers != 50 || st.PacketsFromPeers != 50 {
		t.Fatalf("stats %+v, want 50 packets each way", st)
	}

	// B's allocation ends (a Refresh with lifetime 0): its channel with it.
	if code := b.do(stun.MethodRefresh, stun.RawAttribute{Type: stun.AttrLifetime, Value: []byte{0, 0, 0, 0}}); code != 0 {
		t.Fatalf("refresh: error %d", code)
	}
	for i := 0; ; i++ {
		if _, ok := s.chans.byPeer.Load(peerKey{rb, ra}); !ok {
			break
		}
		if i == 500 {
			t.Fatal("an ended allocation's channel is still forwarded")
		}
		time.Sleep(10 * time.Millisecond)
	}
	a.sendChannel(0x4000, []byte("gone"))
	if got, err := b.recv(200 * time.Millisecond); err == nil {
		t.Fatalf("b's client got % x after its allocation ended", got)
	}
}

// TestRelayChannelToPermission: when the peer allocation has a permission
// for the sender but no channel, A's ChannelData reaches B's client as a
// Data indication from A's relayed address (pion's way, through B's
// relayed socket).
func TestRelayChannelToPermission(t *testing.T) {
	_, a, b, ra, rb := channelPair(t)
	a.bind(0x4000, rb)
	if code := b.do(stun.MethodCreatePermission, peerAttr(ra)); code != 0 {
		t.Fatalf("permission: error %d", code)
	}
	a.sendChannel(0x4000, []byte("to a permission"))
	got, err := b.recv(5 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	m := &stun.Message{Raw: append([]byte(nil), got...)}
	if err := m.Decode(); err != nil || m.Type != stun.NewType(stun.MethodData, stun.ClassIndication) {
		t.Fatalf("b got % x (%v), want a Data indication", got, err)
	}
	data, _ := m.Get(stun.AttrData)
	var from stun.XORMappedAddress
	from.GetFromAs(m, stun.AttrXORPeerAddress)
	if string(data) != "to a permission" || from.String() != net.UDPAddrFromAddrPort(ra).String() {
		t.Fatalf("b got %q from %v, want from %v", data, from, ra)
	}
}

// TestRelayChannelToNetworkPeer: ChannelData on a channel bound to a peer
// that is no allocation of this server goes out of the client's relayed
// socket, from its relayed address, bytes exact; the peer's answer comes
// back on the channel.
func TestRelayChannelToNetworkPeer(t *testing.T) {
	_, a, _, ra, _ := channelPair(t)
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	pa, _ := addrPort(peer.LocalAddr())
	a.bind(0x4123, pa)
	a.sendChannel(0x4123, []byte("to the network"))
	buf := make([]byte, 100)
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := peer.ReadFrom(buf)
	if err != nil || string(buf[:n]) != "to the network" || from.String() != net.UDPAddrFromAddrPort(ra).String() {
		t.Fatalf("peer got %q from %v (%v), want from %v", buf[:n], from, err, ra)
	}
	if _, err := peer.WriteTo([]byte("back"), from); err != nil {
		t.Fatal(err)
	}
	got, err := a.recv(5 * time.Second)
	if err != nil || len(got) < 8 || !bytes.Equal(got[:8], []byte{0x41, 0x23, 0, 4, 'b', 'a', 'c', 'k'}) {
		t.Fatalf("a got % x (%v)", got, err)
	}
}

// BenchmarkRelayChannelData: ChannelData of 1200 bytes from one client
// through the relay to another client's channel, over loopback. The
// clients write and read in batches (sendmmsg, recvmmsg) so that the
// relay's own work dominates: A writes a burst of 32, B reads them all
// (time and process CPU per datagram; allocations are the whole
// process's, the relay's included).
func BenchmarkRelayChannelData(b *testing.B) {
	_, ca, cb, ra, rb := channelPair(b)
	ca.bind(0x4000, rb)
	cb.bind(0x4001, ra)
	batch := func(c *rawTURN) *udp.Conn {
		uc, err := udp.New(c.c.(*net.UDPConn), udp.Options{BatchSize: burst, DisableGRO: true})
		if err != nil {
			b.Fatal(err)
		}
		return uc
	}
	wa, rbc := batch(ca), batch(cb)
	srv, _ := addrPort(ca.srv)
	out := make([]transport.Packet, burst)
	for i := range out {
		d := binary.BigEndian.AppendUint16(nil, 0x4000)
		d = binary.BigEndian.AppendUint16(d, 1200)
		out[i] = transport.Packet{Buf: append(d, make([]byte, 1200)...), N: 1204, Addr: srv}
	}
	in := make([]transport.Packet, burst)
	for i := range in {
		in[i].Buf = make([]byte, transport.MaxDatagram)
	}
	b.ReportAllocs()
	b.SetBytes(burst * 1200)
	cpu := processCPU()
	for b.Loop() {
		if _, err := wa.WriteBatch(out); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < burst; {
			cb.c.SetReadDeadline(time.Now().Add(time.Second))
			n, err := rbc.ReadBatch(in)
			if err != nil {
				b.Fatalf("datagram %d of the burst: %v", got, err)
			}
			got += n
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*burst)/1000, "µs/datagram")
	if cpu := processCPU() - cpu; cpu > 0 {
		// The process's CPU (the relay's and both clients'), which waiting
		// for a core on a busy machine does not inflate as it does the
		// time per datagram.
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N*burst)/1000, "cpu-µs/datagram")
	}
}

// burst is BenchmarkRelayChannelData's datagrams per batch.
const burst = 32
