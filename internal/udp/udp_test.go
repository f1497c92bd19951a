package udp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/netmsg-go/netmsg/transport"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testTimeout bounds every blocking step of a test: a watchdog closes the
// Conns, which unblocks ReadBatch.
const testTimeout = 5 * time.Second

var (
	lo4 = netip.MustParseAddrPort("127.0.0.1:0")
	lo6 = netip.MustParseAddrPort("[::1]:0")
)

// mode is one way of running a Conn.
type mode struct {
	name string
	opts Options
}

var modes = []mode{
	{"gso+gro", Options{}},
	{"gso", Options{DisableGRO: true}},
	{"sendmmsg", Options{DisableGSO: true, DisableGRO: true}},
	{"fallback", Options{DisableBatch: true}},
}

func listen(t testing.TB, network string, addr netip.AddrPort, opts Options) *Conn {
	t.Helper()
	c, err := Listen(network, addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// watchdog closes cs after testTimeout unless the returned stop is called.
func watchdog(t testing.TB, cs ...*Conn) (stop func()) {
	tm := time.AfterFunc(testTimeout, func() {
		t.Error("timeout: closing sockets")
		for _, c := range cs {
			c.Close()
		}
	})
	return func() { tm.Stop() }
}

func newPackets(n, size int) []transport.Packet {
	pkts := make([]transport.Packet, n)
	for i := range pkts {
		pkts[i].Buf = make([]byte, size)
	}
	return pkts
}

// payload fills b with datagram seq's content: seq in bytes 0-3, then a
// pattern that depends on seq.
func payload(b []byte, seq int) {
	for i := range b {
		b[i] = byte(seq*7 + i)
	}
	if len(b) >= 4 {
		binary.LittleEndian.PutUint32(b, uint32(seq))
	}
}

// readN reads until n datagrams have arrived and returns copies of them.
func readN(t testing.TB, c *Conn, n int) []transport.Packet {
	t.Helper()
	in := newPackets(16, transport.MaxDatagram)
	var out []transport.Packet
	for len(out) < n {
		k, err := c.ReadBatch(in)
		if err != nil {
			t.Fatalf("after %d of %d datagrams: %v", len(out), n, err)
		}
		for _, p := range in[:k] {
			out = append(out, transport.Packet{Buf: append([]byte(nil), p.Bytes()...), N: p.N, Addr: p.Addr})
		}
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	for _, fam := range []struct {
		network string
		addr    netip.AddrPort
	}{{"udp4", lo4}, {"udp6", lo6}} {
		for _, m := range modes {
			t.Run(fam.network+"/"+m.name, func(t *testing.T) {
				a := listen(t, fam.network, fam.addr, m.opts)
				b := listen(t, fam.network, fam.addr, m.opts)
				defer watchdog(t, a, b)()
				if !b.LocalAddr().Addr().IsLoopback() || b.LocalAddr().Port() == 0 {
					t.Fatalf("LocalAddr %v", b.LocalAddr())
				}
				const n = 10
				out := newPackets(n, 1200)
				for i := range out {
					out[i].N = 100 + i
					payload(out[i].Buf[:out[i].N], i)
					out[i].Addr = b.LocalAddr()
				}
				if k, err := a.WriteBatch(out); k != n || err != nil {
					t.Fatalf("WriteBatch = %d, %v", k, err)
				}
				got := readN(t, b, n)
				for i, p := range got {
					if p.Addr != a.LocalAddr() {
						t.Errorf("datagram %d from %v, want %v", i, p.Addr, a.LocalAddr())
					}
					want := make([]byte, 100+i)
					payload(want, i)
					if string(p.Bytes()) != string(want) {
						t.Errorf("datagram %d: got %d bytes, want %d", i, p.N, len(want))
					}
				}
				// And back.
				for i := range out {
					out[i].Addr = a.LocalAddr()
				}
				if _, err := b.WriteBatch(out[:3]); err != nil {
					t.Fatal(err)
				}
				if got := readN(t, a, 3); got[0].Addr != b.LocalAddr() {
					t.Errorf("reply from %v, want %v", got[0].Addr, b.LocalAddr())
				}
				sa, sb := a.Stats(), b.Stats()
				if sa.DatagramsOut != n || sb.DatagramsIn != n || sa.SendErrors != 0 {
					t.Errorf("stats a %+v b %+v", sa, sb)
				}
				t.Logf("info %+v; stats a %+v", a.Info(), sa)
			})
		}
	}
}

func TestDualStack(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			ds := listen(t, "udp", netip.AddrPort{}, m.opts)
			v4 := listen(t, "udp4", lo4, m.opts)
			v6 := listen(t, "udp6", lo6, m.opts)
			defer watchdog(t, ds, v4, v6)()
			if a := ds.LocalAddr().Addr(); !a.IsUnspecified() || !a.Is6() {
				t.Fatalf("dual-stack LocalAddr %v", ds.LocalAddr())
			}
			port := ds.LocalAddr().Port()
			out := newPackets(2, 64)
			out[0].N, out[0].Addr = 64, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
			if _, err := v4.WriteBatch(out[:1]); err != nil {
				t.Fatal(err)
			}
			out[0].Addr = netip.AddrPortFrom(netip.MustParseAddr("::1"), port)
			if _, err := v6.WriteBatch(out[:1]); err != nil {
				t.Fatal(err)
			}
			got := readN(t, ds, 2)
			from := map[netip.AddrPort]bool{got[0].Addr: true, got[1].Addr: true}
			if !from[v4.LocalAddr()] || !from[v6.LocalAddr()] {
				t.Fatalf("sources %v %v, want %v and %v", got[0].Addr, got[1].Addr, v4.LocalAddr(), v6.LocalAddr())
			}
			if v4.LocalAddr() != netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", v4.LocalAddr().Port())) {
				t.Fatalf("IPv4 LocalAddr %v does not compare equal to its parsed form", v4.LocalAddr())
			}
			// Replies from the dual-stack socket to both families, in one
			// batch (one IPv4 and one IPv6 destination).
			out[0].Addr, out[1].N, out[1].Addr = v4.LocalAddr(), 64, v6.LocalAddr()
			if k, err := ds.WriteBatch(out); k != 2 || err != nil {
				t.Fatalf("WriteBatch = %d, %v", k, err)
			}
			if p := readN(t, v4, 1)[0]; p.Addr != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port) {
				t.Errorf("IPv4 reply from %v", p.Addr)
			}
			if p := readN(t, v6, 1)[0]; p.Addr != netip.AddrPortFrom(netip.MustParseAddr("::1"), port) {
				t.Errorf("IPv6 reply from %v", p.Addr)
			}
			if st := ds.Stats(); st.SendErrors != 0 {
				t.Errorf("send errors: %+v", st)
			}
		})
	}
}

// TestManyDatagrams sends batches with runs of equal and unequal sizes,
// zero-length datagrams, and interleaved destinations, and checks that
// every datagram arrives once, intact, with its own length: GSO groups
// must never merge or split datagrams.
func TestManyDatagrams(t *testing.T) {
	// The size of datagram seq, chosen to exercise the grouping rules:
	// runs of one size, a shorter last one, a longer one after a run, a
	// zero-length one, runs long enough to hit the segment limits.
	size := func(seq int) int {
		switch r := seq % 97; {
		case r < 60:
			return 1200 // a long run: several GSO groups of at most 54
		case r == 60:
			return 700 // shorter: ends a group
		case r < 70:
			return 1300
		case r == 70:
			return 1400 // longer: must start a new group
		case r == 71:
			return 0
		case r < 80:
			return 8 + r // distinct small sizes
		default:
			return transport.MaxDatagram
		}
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			const ndst, total, batch = 3, 2000, 200
			src := listen(t, "udp4", lo4, m.opts)
			dsts := make([]*Conn, ndst)
			for i := range dsts {
				dsts[i] = listen(t, "udp4", lo4, m.opts)
			}
			defer watchdog(t, append(dsts, src)...)()
			// dst of datagram seq: runs of 25 to one destination, then
			// alternating, then runs again.
			dst := func(seq int) int {
				if seq%300 < 150 {
					return seq / 25 % ndst
				}
				return seq % ndst
			}
			want := make([]int, ndst)
			for seq := range total {
				want[dst(seq)]++
			}

			var wg sync.WaitGroup
			errs := make([]error, ndst)
			seen := make([]map[int]bool, ndst)
			zero := make([]int, ndst)
			for d := range dsts {
				seen[d] = map[int]bool{}
				wg.Add(1)
				go func() {
					defer wg.Done()
					in := newPackets(32, transport.MaxDatagram)
					for got := 0; got < want[d]; {
						k, err := dsts[d].ReadBatch(in)
						if err != nil {
							errs[d] = fmt.Errorf("dst %d after %d of %d: %w", d, got, want[d], err)
							return
						}
						for _, p := range in[:k] {
							got++
							if p.N == 0 {
								zero[d]++
								continue
							}
							if p.N < 4 {
								errs[d] = fmt.Errorf("dst %d: %d-byte datagram", d, p.N)
								return
							}
							seq := int(binary.LittleEndian.Uint32(p.Buf))
							w := make([]byte, size(seq))
							payload(w, seq)
							switch {
							case seq >= total || dst(seq) != d:
								errs[d] = fmt.Errorf("dst %d: datagram %d not for it", d, seq)
							case seen[d][seq]:
								errs[d] = fmt.Errorf("dst %d: datagram %d twice", d, seq)
							case string(p.Bytes()) != string(w):
								errs[d] = fmt.Errorf("dst %d: datagram %d: %d bytes, want %d (or content differs)", d, seq, p.N, len(w))
							case p.Addr != src.LocalAddr():
								errs[d] = fmt.Errorf("dst %d: datagram %d from %v", d, seq, p.Addr)
							}
							if errs[d] != nil {
								return
							}
							seen[d][seq] = true
						}
					}
				}()
			}

			out := newPackets(batch, transport.MaxDatagram)
			for seq := 0; seq < total; seq += batch {
				for i := range out {
					n := size(seq + i)
					out[i].N = n
					payload(out[i].Buf[:n], seq+i)
					out[i].Addr = dsts[dst(seq+i)].LocalAddr()
				}
				if k, err := src.WriteBatch(out); k != batch || err != nil {
					t.Fatalf("WriteBatch = %d, %v", k, err)
				}
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			st := src.Stats()
			if st.DatagramsOut != total || st.SendErrors != 0 {
				t.Fatalf("sender stats %+v", st)
			}
			if src.Info().GSO && st.GSOBatches == 0 {
				t.Errorf("GSO on but no GSO batch: %+v", st)
			}
			var in, gro uint64
			for _, d := range dsts {
				in += d.Stats().DatagramsIn
				gro += d.Stats().GROReads
			}
			if in != total {
				t.Errorf("received %d, want %d", in, total)
			}
			t.Logf("sender %+v; receivers' GRO reads %d", st, gro)
		})
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			c := listen(t, "udp4", lo4, m.opts)
			done := make(chan error, 1)
			go func() {
				_, err := c.ReadBatch(newPackets(4, transport.MaxDatagram))
				done <- err
			}()
			time.Sleep(20 * time.Millisecond) // let ReadBatch block (not needed for correctness)
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if !errors.Is(err, transport.ErrClosed) {
					t.Fatalf("ReadBatch after Close: %v", err)
				}
			case <-time.After(testTimeout):
				t.Fatal("ReadBatch still blocked after Close")
			}
			if _, err := c.ReadBatch(newPackets(1, 10)); !errors.Is(err, transport.ErrClosed) {
				t.Errorf("ReadBatch on closed: %v", err)
			}
			out := newPackets(1, 10)
			out[0].Addr = lo4
			if _, err := c.WriteBatch(out); !errors.Is(err, transport.ErrClosed) {
				t.Errorf("WriteBatch on closed: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Errorf("second Close: %v", err)
			}
		})
	}
}

func TestTruncation(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			a := listen(t, "udp4", lo4, m.opts)
			b := listen(t, "udp4", lo4, m.opts)
			defer watchdog(t, a, b)()
			out := newPackets(3, 1500)
			for i := range out {
				out[i].N, out[i].Addr = 1500, b.LocalAddr()
				payload(out[i].Buf, i)
			}
			out[2].N = 50
			if _, err := a.WriteBatch(out); err != nil {
				t.Fatal(err)
			}
			in := newPackets(1, 100)
			for i := range out {
				if k, err := b.ReadBatch(in); k != 1 || err != nil {
					t.Fatalf("ReadBatch = %d, %v", k, err)
				}
				if want := min(out[i].N, 100); in[0].N != want || string(in[0].Bytes()) != string(out[i].Buf[:want]) {
					t.Fatalf("datagram %d: N = %d, want %d", i, in[0].N, want)
				}
			}
			if st := b.Stats(); st.Truncated != 2 {
				t.Errorf("Truncated = %d, want 2", st.Truncated)
			}
		})
	}
}

// TestClosedPort sends to a port nobody listens on, then to a live one:
// the socket must go on working.
func TestClosedPort(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			a := listen(t, "udp4", lo4, m.opts)
			b := listen(t, "udp4", lo4, m.opts)
			gone := listen(t, "udp4", lo4, Options{})
			dead := gone.LocalAddr()
			gone.Close()
			defer watchdog(t, a, b)()
			out := newPackets(4, 100)
			for round := range 5 {
				for i := range out {
					out[i].N, out[i].Addr = 100, dead
				}
				out[3].Addr = b.LocalAddr()
				payload(out[3].Buf, round)
				if k, err := a.WriteBatch(out); k != len(out) || err != nil {
					t.Fatalf("round %d: WriteBatch = %d, %v", round, k, err)
				}
				if p := readN(t, b, 1)[0]; binary.LittleEndian.Uint32(p.Buf) != uint32(round) {
					t.Fatalf("round %d: got datagram %d", round, binary.LittleEndian.Uint32(p.Buf))
				}
				time.Sleep(2 * time.Millisecond) // let the ICMP errors come back
			}
			t.Logf("sender stats %+v", a.Stats())
		})
	}
}

func TestBadDestination(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			a := listen(t, "udp4", lo4, m.opts)
			b := listen(t, "udp4", lo4, m.opts)
			defer watchdog(t, a, b)()
			out := newPackets(3, 10)
			out[0].N, out[0].Addr = 10, netip.MustParseAddrPort("[::1]:9") // IPv6 from an IPv4 socket
			out[1].N, out[1].Addr = 10, netip.AddrPort{}                   // no address
			out[2].N, out[2].Addr = 10, b.LocalAddr()
			if k, err := a.WriteBatch(out); k != 3 || err != nil {
				t.Fatalf("WriteBatch = %d, %v", k, err)
			}
			readN(t, b, 1)
			st := a.Stats()
			if st.SendErrors != 2 || st.DatagramsOut != 1 || st.LastSendError == nil {
				t.Errorf("stats %+v", st)
			}
			t.Logf("last send error: %v", st.LastSendError)
		})
	}
}

func TestInvalidOptions(t *testing.T) {
	for _, o := range []Options{{BatchSize: -1}, {BatchSize: MaxBatchSize + 1}, {GROBuffers: -1}} {
		if c, err := Listen("udp4", lo4, o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%+v: %v", o, err)
			if c != nil {
				c.Close()
			}
		}
	}
}

// TestSmallBatch writes more datagrams than BatchSize in one WriteBatch
// and reads them with a small pkts slice.
func TestSmallBatch(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			o := m.opts
			o.BatchSize, o.GROBuffers = 3, 2
			a := listen(t, "udp4", lo4, o)
			b := listen(t, "udp4", lo4, o)
			defer watchdog(t, a, b)()
			out := newPackets(100, 500)
			for i := range out {
				out[i].N, out[i].Addr = 500-i, b.LocalAddr()
				if i%10 < 5 {
					out[i].N = 500
				}
				payload(out[i].Buf[:out[i].N], i)
			}
			if k, err := a.WriteBatch(out); k != len(out) || err != nil {
				t.Fatalf("WriteBatch = %d, %v", k, err)
			}
			in := newPackets(2, transport.MaxDatagram)
			for i := 0; i < len(out); {
				k, err := b.ReadBatch(in)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range in[:k] {
					if string(p.Bytes()) != string(out[i].Bytes()) {
						t.Fatalf("datagram %d: %d bytes, want %d", i, p.N, out[i].N)
					}
					i++
				}
			}
		})
	}
}

func TestZeroAllocs(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			a := listen(t, "udp4", lo4, m.opts)
			b := listen(t, "udp4", lo4, m.opts)
			defer watchdog(t, a, b)()
			out := newPackets(16, 1200)
			for i := range out {
				out[i].N, out[i].Addr = 1200, b.LocalAddr()
			}
			in := newPackets(16, transport.MaxDatagram)
			allocs := testing.AllocsPerRun(50, func() {
				if _, err := a.WriteBatch(out); err != nil {
					t.Fatal(err)
				}
				for got := 0; got < len(out); {
					k, err := b.ReadBatch(in)
					if err != nil {
						t.Fatal(err)
					}
					got += k
				}
			})
			if allocs != 0 {
				t.Errorf("%v allocations per batch of %d", allocs, len(out))
			}
		})
	}
}

// TestRecvDropped overflows a small receive buffer: on the Linux batch
// path the kernel's drop count must be reported, and every datagram is
// either read or counted as dropped.
func TestRecvDropped(t *testing.T) {
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			a := listen(t, "udp4", lo4, m.opts)
			o := m.opts
			o.ReadBuffer = 16 << 10
			b := listen(t, "udp4", lo4, o)
			defer watchdog(t, a, b)()
			const n = 200
			out := newPackets(n, 1000)
			for i := range out {
				out[i].N, out[i].Addr = 1000, b.LocalAddr()
			}
			if _, err := a.WriteBatch(out); err != nil {
				t.Fatal(err)
			}
			// Each read makes room for a 1-byte end marker, sent until one
			// comes back.
			in := newPackets(64, transport.MaxDatagram)
			mk := newPackets(1, 1)
			mk[0].N, mk[0].Addr = 1, b.LocalAddr()
			var got uint64
			for done := false; !done; {
				k, err := b.ReadBatch(in)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range in[:k] {
					switch p.N {
					case 1:
						done = true
					case 1000:
						got++
					default:
						t.Fatalf("%d-byte datagram", p.N)
					}
				}
				if !done {
					if _, err := a.WriteBatch(mk); err != nil {
						t.Fatal(err)
					}
				}
			}
			st := b.Stats()
			t.Logf("read %d of %d; stats %+v; info %+v", got, n, st, b.Info())
			switch {
			case got == n:
				t.Skip("nothing dropped")
			case !b.hasDropCount():
			case b.Info().GRO:
				// A GSO super-datagram kept whole by GRO is dropped,
				// and counted, as one.
				if st.RecvDropped == 0 {
					t.Errorf("read %d of %d, none counted as dropped", got, n)
				}
			case got+st.RecvDropped != n:
				t.Errorf("read %d + dropped %d != sent %d", got, st.RecvDropped, n)
			}
		})
	}
}
