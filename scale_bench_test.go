package netmsg

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/netmsg-go/netmsg/internal/conn"
	"github.com/netmsg-go/netmsg/internal/snp"
	"github.com/netmsg-go/netmsg/internal/udp"
	"github.com/netmsg-go/netmsg/transport"
)

// BenchmarkHostScale measures one Host receiving reliable messages from 1,
// 2, 8 and 64 connections through the connection API (a Receive loop per
// connection, as a Go server is written), to show that connections
// proceed on several cores. The senders run in a child process (this test
// binary, re-run with NETMSG_SCALE_SENDER set): each is a bare client
// connection that makes all its datagrams ahead of time (conn.Prebuild)
// and then only writes them, so the senders cost a few syscalls per
// datagram and the Host under test has the cores; its messages/s and CPU
// (user+system of this process over the measured window) are reported.
//
//	GOMAXPROCS=2 go test -run XXX -bench HostScale -benchtime 1x .
func BenchmarkHostScale(b *testing.B) {
	for _, via := range []string{"mem", "udp"} {
		for _, size := range []int{64, 1200} {
			for _, n := range []int{1, 2, 8, 64} {
				total := 1_500_000
				if size == 1200 {
					total = 300_000
				}
				total = int(float64(total) * scaleLonger)
				b.Run(fmt.Sprintf("via=%s/size=%d/conns=%d", via, size, n), func(b *testing.B) {
					for b.Loop() {
						scaleRun(b, via, n, size, total/n)
					}
				})
			}
		}
	}
}

func scaleRun(b *testing.B, via string, conns, size, count int) {
	var (
		mu      sync.Mutex
		handles []ConnHandle
		arrived = make(chan ConnHandle, conns)
	)
	var (
		h        *Host
		feed     *scaleFeed
		received *atomic.Int64 // messages the application received
		pc       transport.PacketConn
	)
	if via == "mem" {
		received = new(atomic.Int64)
		feed = newScaleFeed(scaleInFlight(size), received)
		pc = feed
	}
	h, err := NewHost(Config{
		ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"),
		PacketConn: pc,
		// Room for everything the senders keep in flight (scaleWindow),
		// whichever connection it is on.
		ConnConfig: ConnConfig{RecvBufferMessages: 1 << 16, RecvBufferSize: 4 * scaleWindow},
		OnConnectionStatusChanged: func(ev ConnStatusChanged) {
			if ev.Info.State == StateConnecting && ev.Info.ListenSocket != InvalidListen {
				h.AcceptConnection(ev.Conn)
			}
			if ev.Info.State == StateConnected {
				mu.Lock()
				handles = append(handles, ev.Conn)
				mu.Unlock()
				arrived <- ev.Conn
			}
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	if _, err := h.Listen(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if feed != nil {
		feedErr := make(chan error, 1)
		go func() {
			cs, err := feed.dial(conns)
			if err == nil {
				err = feed.start(cs, size, count)
			}
			feedErr <- err
		}()
		if err := <-feedErr; err != nil {
			b.Fatal(err)
		}
	} else {
		// The count received is shared with the senders through a mapped
		// file, so they see it at once.
		shared := filepath.Join(b.TempDir(), "received")
		counter, unmap, err := scaleCounter(shared, true)
		if err != nil {
			b.Fatal(err)
		}
		defer unmap()
		received = counter
		cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("NETMSG_SCALE_SENDER=%v,%d,%d,%d,%s", h.LocalAddr(), conns, size, count, shared))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		defer cmd.Wait()
		defer cmd.Process.Kill()
	}

	var (
		firstOnce sync.Once
		first     time.Time
		cpu0      time.Duration
		wg        sync.WaitGroup
		bad       atomic.Value
	)
	want := int64(conns * count)
	done := make(chan struct{})
	for range conns {
		var c ConnHandle
		select {
		case c = <-arrived:
		case <-ctx.Done():
			b.Fatal("senders did not connect")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := uint64(0)
			one := make([]*Message, 1)
			unsaid := 0 // received and not yet added to received
			tell := min(scaleTell, int(scaleInFlight(size))/(4*conns))
			for next < uint64(count) {
				ms, err := scaleRecv(h, ctx, c, one)
				if err != nil {
					bad.Store(err.Error())
					return
				}
				firstOnce.Do(func() {
					first, cpu0 = time.Now(), processCPU()
					scaleProfileStart(b)
				})
				for _, m := range ms {
					if m.Size != size || binary.LittleEndian.Uint64(m.Payload) != next {
						bad.Store(fmt.Sprintf("connection %d: message %d of %d bytes, want %d of %d", c, binary.LittleEndian.Uint64(m.Payload), m.Size, next, size))
					}
					next++
					if !scaleNoRelease {
						m.Release()
					}
				}
				// The shared count is told every scaleTell messages
				// (and at the end), so that the receivers do not all
				// write one cache line per message.
				if unsaid += len(ms); unsaid < tell && next < uint64(count) {
					continue
				}
				if received.Add(int64(unsaid)) == want {
					close(done)
				}
				unsaid = 0
				if feed != nil && feed.waiting.Load() {
					signal(feed.kick)
				}
			}
		}()
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last, lastAt := int64(-1), time.Now()
wait:
	for {
		select {
		case <-done:
			break wait
		case <-ctx.Done():
			b.Fatalf("%d of %d messages", received.Load(), want)
		case <-tick.C:
			if r := received.Load(); r != last {
				last, lastAt = r, time.Now()
			} else if time.Since(lastAt) > 10*time.Second {
				b.Fatalf("stalled at %d of %d messages (a datagram lost; the senders never send one again): %+v", r, want, h.Stats())
			}
		}
	}
	el, cpu := time.Since(first), processCPU()-cpu0
	scaleProfileStop()
	wg.Wait()
	if s, ok := bad.Load().(string); ok {
		b.Fatal(s)
	}
	b.ReportMetric(float64(want)/el.Seconds(), "msgs/s")
	b.ReportMetric(cpu.Seconds()/el.Seconds(), "cores")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(want), "cpu-ns/msg")
}

// processCPU is this process's user+system CPU time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func init() {
	if v := os.Getenv("NETMSG_SCALE_SENDER"); v != "" {
		if err := scaleSender(v); err != nil {
			fmt.Fprintln(os.Stderr, "scale sender:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
}

// scaleWindow is how many bytes of messages the senders keep ahead of what
// the Host under test has handed to its application: well within the
// Host's socket buffer, so that nothing is lost (the prebuilt datagrams
// are never sent again).
const scaleWindow = 1 << 20

// scaleInFlight is how many messages of size bytes the senders keep in
// flight, all connections together (scaleWindow).
func scaleInFlight(size int) int64 {
	return int64(max(scaleWindow/size, 64))
}

// scaleSender runs the senders of BenchmarkHostScale: spec is
// "addr,conns,size,count,file". Each connects, makes its datagrams ahead
// of time, and, once all are ready, writes them to the Host, keeping the
// messages sent within scaleInFlight of the count the Host received,
// which the benchmark keeps in file (scaleCounter).
func scaleSender(spec string) error {
	parts := strings.Split(spec, ",")
	if len(parts) != 5 {
		return fmt.Errorf("bad spec %q", spec)
	}
	conns, _ := strconv.Atoi(parts[1])
	size, _ := strconv.Atoi(parts[2])
	count, _ := strconv.Atoi(parts[3])
	to, err := netip.ParseAddrPort(parts[0])
	if err != nil {
		return err
	}
	received, unmap, err := scaleCounter(parts[4], false)
	if err != nil {
		return err
	}
	defer unmap()
	var sent atomic.Int64 // messages, as far as the datagrams written tell
	window := scaleInFlight(size)
	var ready sync.WaitGroup
	start := make(chan struct{})
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Add(1)
		ready.Add(1)
		go func() {
			defer wg.Done()
			ds, u, err := scalePrebuild(to, uint32(i+1)*7919, size, count)
			ready.Done()
			if err != nil {
				errs <- err
				return
			}
			defer u.Close()
			<-start
			var total int
			for _, d := range ds {
				total += len(d)
			}
			perMsg := float64(total) / float64(count)
			out := make([]transport.Packet, 0, 32)
			written, counted := 0, int64(0)
			for len(ds) > 0 {
				for sent.Load()-received.Load() > window {
					time.Sleep(20 * time.Microsecond)
				}
				out = out[:0]
				for _, d := range ds[:min(len(ds), cap(out))] {
					out = append(out, transport.Packet{Buf: d, N: len(d), Addr: to})
					written += len(d)
				}
				if _, err := u.WriteBatch(out); err != nil {
					errs <- err
					return
				}
				ds = ds[len(out):]
				now := int64(float64(written) / perMsg)
				sent.Add(now - counted)
				counted = now
			}
		}()
	}
	ready.Wait()
	close(start)
	if os.Getenv("NETMSG_SCALE_DEBUG") != "" {
		go func() {
			for range time.Tick(time.Second) {
				fmt.Fprintf(os.Stderr, "scale sender: sent %d, received %d\n", sent.Load(), received.Load())
			}
		}()
	}
	bt, bcpu := time.Now(), processCPU()
	wg.Wait()
	if os.Getenv("NETMSG_SCALE_DEBUG") != "" {
		fmt.Fprintf(os.Stderr, "scale sender: %.2f cores writing over %v\n", (processCPU()-bcpu).Seconds()/time.Since(bt).Seconds(), time.Since(bt).Round(time.Millisecond))
	}
	close(errs)
	return <-errs
}

// scalePrebuild connects one sender, a bare client connection, to the
// Host, and makes the datagrams of count numbered messages of size bytes.
func scalePrebuild(to netip.AddrPort, id uint32, size, count int) ([][]byte, *udp.Conn, error) {
	u, err := udp.Listen("udp4", netip.MustParseAddrPort("127.0.0.1:0"), udp.Options{})
	if err != nil {
		return nil, nil, err
	}
	_, key, _ := ed25519.GenerateKey(nil)
	cfg := conn.Config{Identity: fmt.Sprintf("str:sender%d", id), Key: key, SNP: snp.Config{SendBufferSize: 4 << 20, SendRateMax: 1 << 30}}
	c, err := conn.Dial(cfg, time.Now(), id, to)
	if err != nil {
		u.Close()
		return nil, nil, err
	}
	var mu sync.Mutex
	var stop atomic.Bool
	kick := make(chan struct{}, 1)
	go func() {
		pkts := make([]transport.Packet, 64)
		for i := range pkts {
			pkts[i].Buf = make([]byte, transport.MaxDatagram)
		}
		for {
			n, err := u.ReadBatch(pkts)
			if err != nil {
				return
			}
			if stop.Load() {
				continue // the Host's acks of the prebuilt datagrams: not needed
			}
			mu.Lock()
			for i := range pkts[:n] {
				c.HandleDatagram(time.Now(), pkts[i].Addr, pkts[i].Bytes())
			}
			mu.Unlock()
			signal(kick)
		}
	}()
	buf := make([]byte, transport.MaxDatagram)
	for deadline := time.Now().Add(time.Minute); ; {
		mu.Lock()
		now := time.Now()
		st := c.State()
		for st == conn.StateConnecting {
			d, ok := c.Poll(now, buf[:0])
			if !ok {
				break
			}
			u.WriteBatch([]transport.Packet{{Buf: d, N: len(d), Addr: to}})
		}
		mu.Unlock()
		if st == conn.StateConnected {
			break
		}
		if st != conn.StateConnecting || now.After(deadline) {
			u.Close()
			return nil, nil, fmt.Errorf("connection %d: state %v: %s", id, st, c.EndDebug())
		}
		t := time.NewTimer(time.Millisecond)
		select {
		case <-kick:
		case <-t.C:
		}
		t.Stop()
	}
	stop.Store(true)
	msg := make([]byte, size)
	mu.Lock()
	ds, err := c.Prebuild(time.Now(), count, func(i int) []byte {
		binary.LittleEndian.PutUint64(msg, uint64(i))
		return msg
	}, snp.Reliable)
	mu.Unlock()
	if err != nil {
		u.Close()
		return nil, nil, err
	}
	return ds, u, nil
}

// scaleCounter maps the 8-byte file at path (made when create) and returns
// the counter in it, shared by the processes that map it.
func scaleCounter(path string, create bool) (*atomic.Int64, func(), error) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE | os.O_TRUNC
	}
	f, err := os.OpenFile(path, flags, 0o600)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	if create {
		if err := f.Truncate(8); err != nil {
			return nil, nil, err
		}
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, 8, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return (*atomic.Int64)(unsafe.Pointer(&mem[0])), func() { syscall.Munmap(mem) }, nil
}

// scaleTell is how many messages a receiver takes before it adds them to
// the count the senders keep their window by: at most this, and a quarter
// of the window's share of one connection, so that what the receivers
// hold back stays well within the window.
const scaleTell = 256

var scaleBatch = os.Getenv("NETMSG_SCALE_BATCH") != ""

// scaleLonger (NETMSG_SCALE_LONGER=x) multiplies the messages of each run
// by x, for profiles with more samples than a default run gives.
var scaleLonger = func() float64 {
	if x, err := strconv.ParseFloat(os.Getenv("NETMSG_SCALE_LONGER"), 64); err == nil && x > 0 {
		return x
	}
	return 1
}()

// scaleProfile (NETMSG_SCALE_CPUPROFILE=file) writes a CPU profile of the
// measured window only, without the setup (the senders' prebuilt
// datagrams) that a -cpuprofile of the whole run is mostly made of. With
// -count above 1, the last run's profile is kept.
var scaleProfile = os.Getenv("NETMSG_SCALE_CPUPROFILE")

var scaleProfiling *os.File

// scaleTrace (NETMSG_SCALE_TRACE=file) writes an execution trace of the
// measured window only (go tool trace; -pprof=sched shows who waited for
// a core).
var scaleTrace = os.Getenv("NETMSG_SCALE_TRACE")

var scaleTracing *os.File

func scaleProfileStart(b *testing.B) {
	if scaleTrace != "" {
		if f, err := os.Create(scaleTrace); err != nil {
			b.Error(err)
		} else if err := trace.Start(f); err != nil {
			f.Close()
			b.Error(err)
		} else {
			scaleTracing = f
		}
	}
	if scaleProfile == "" {
		return
	}
	f, err := os.Create(scaleProfile)
	if err != nil {
		b.Error(err)
		return
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Error(err)
		return
	}
	scaleProfiling = f
}

func scaleProfileStop() {
	if scaleTracing != nil {
		trace.Stop()
		scaleTracing.Close()
		scaleTracing = nil
	}
	if scaleProfiling != nil {
		pprof.StopCPUProfile()
		scaleProfiling.Close()
		scaleProfiling = nil
	}
}

// scaleNoRelease (NETMSG_SCALE_NORELEASE set) leaves the messages to the
// garbage collector: what not calling Release costs, against
// BenchmarkGCAllocBaseline.
var scaleNoRelease = os.Getenv("NETMSG_SCALE_NORELEASE") != ""

// scaleRecv is the benchmark's receive call: Receive, one message a call
// (NETMSG_SCALE_BATCH set: ReceiveBatch of up to 256), into one's slice.
func scaleRecv(h *Host, ctx context.Context, c ConnHandle, one []*Message) ([]*Message, error) {
	if scaleBatch {
		return h.ReceiveBatch(ctx, c, 256)
	}
	m, err := h.Receive(ctx, c)
	if err != nil {
		return nil, err
	}
	one[0] = m
	return one, nil
}
