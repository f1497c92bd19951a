package netmsg

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/conn"
	"github.com/netmsg-go/netmsg/internal/snp"
	"github.com/netmsg-go/netmsg/internal/udp"
	"github.com/netmsg-go/netmsg/transport"
)

// BenchmarkHostScale measures one Host receiving reliable messages from 1,
// 2, 8 and 64 connections through the connection API (a Receive loop per
// connection, as a Go server is written), to show that connections
// proceed on several cores. The senders must not take the cores the Host
// needs: a child process (this test binary, re-run with
// NETMSG_SCALE_SENDER set) makes each connection's handshake with a bare
// connection state machine, builds every data packet of the run in
// advance, then writes them all at once into the Host's socket, whose
// receive buffer holds them (512 MiB, granted to root). The window is
// measured from the end of that burst to the last message: only the Host
// runs then. Reported: the Host's messages/s and CPU (user+system of this
// process over the window).
//
//	GOMAXPROCS=2 go test -run XXX -bench HostScale -benchtime 1x .
func BenchmarkHostScale(b *testing.B) {
	for _, size := range []int{64, 1200} {
		for _, n := range []int{1, 2, 8, 64} {
			total := 600_000
			if size == 1200 {
				total = 150_000
			}
			b.Run(fmt.Sprintf("size=%d/conns=%d", size, n), func(b *testing.B) {
				for b.Loop() {
					scaleRun(b, n, size, total/n)
				}
			})
		}
	}
}

func scaleRun(b *testing.B, conns, size, count int) {
	var (
		mu      sync.Mutex
		handles []ConnHandle
		arrived = make(chan ConnHandle, conns)
	)
	var h *Host
	pc, err := udp.Listen("udp4", netip.MustParseAddrPort("127.0.0.1:0"), udp.Options{ReadBuffer: 512 << 20})
	if err != nil {
		b.Fatal(err)
	}
	h, err = NewHost(Config{
		PacketConn: pc,
		// Nothing is retransmitted in this run: nothing may be discarded.
		ConnConfig: ConnConfig{RecvBufferMessages: 1 << 20, RecvBufferSize: 256 << 20},
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
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), fmt.Sprintf("NETMSG_SCALE_SENDER=%v,%d,%d,%d", h.LocalAddr(), conns, size, count))
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	// The child prints a line when its burst is written.
	blasted := make(chan struct{})
	go func() {
		var buf [64]byte
		stdout.Read(buf[:])
		close(blasted)
	}()
	defer cmd.Wait()
	defer cmd.Process.Kill()

	var (
		received atomic.Int64
		wg       sync.WaitGroup
		bad      atomic.Value
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
			for next < uint64(count) {
				ms, err := h.Receive(ctx, c, 256)
				if err != nil {
					bad.Store(err.Error())
					return
				}
				for _, m := range ms {
					if m.Size != size || binary.LittleEndian.Uint64(m.Payload) != next {
						bad.Store(fmt.Sprintf("connection %d: message %d of %d bytes, want %d of %d", c, binary.LittleEndian.Uint64(m.Payload), m.Size, next, size))
					}
					next++
					m.Release()
				}
				if received.Add(int64(len(ms))) == want {
					close(done)
				}
			}
		}()
	}
	select {
	case <-blasted:
	case <-ctx.Done():
		b.Fatal("the senders did not finish their burst")
	}
	start, cpu0, got0 := time.Now(), processCPU(), received.Load()
	select {
	case <-done:
	case <-ctx.Done():
		b.Fatalf("%d of %d messages", received.Load(), want)
	}
	el, cpu := time.Since(start), processCPU()-cpu0
	wg.Wait()
	if s, ok := bad.Load().(string); ok {
		b.Fatal(s)
	}
	n := want - got0
	if n < want/2 {
		b.Fatalf("only %d of %d messages after the burst: the window is too short to measure", n, want)
	}
	b.ReportMetric(float64(n)/el.Seconds(), "msgs/s")
	b.ReportMetric(cpu.Seconds()/el.Seconds(), "cores")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/msg")
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

// scaleSender runs the senders of BenchmarkHostScale: spec is
// "addr,conns,size,count". It connects every connection, builds all their
// packets, writes them in one burst, prints a line and waits to be killed.
func scaleSender(spec string) error {
	parts := splitComma(spec)
	if len(parts) != 4 {
		return fmt.Errorf("bad spec %q", spec)
	}
	conns, _ := strconv.Atoi(parts[1])
	size, _ := strconv.Atoi(parts[2])
	count, _ := strconv.Atoi(parts[3])
	to, err := netip.ParseAddrPort(parts[0])
	if err != nil {
		return err
	}
	type sender struct {
		u    *udp.Conn
		pkts []transport.Packet
	}
	ss := make([]sender, conns)
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, pkts, err := scaleBuild(to, uint32(i+1)*7919, size, count)
			if err != nil {
				errs <- err
				return
			}
			ss[i] = sender{u, pkts}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	// The burst: every connection's packets, interleaved in batches.
	for off := 0; ; off += 32 {
		more := false
		for _, s := range ss {
			if off < len(s.pkts) {
				s.u.WriteBatch(s.pkts[off:min(off+32, len(s.pkts))])
				more = true
			}
		}
		if !more {
			break
		}
	}
	fmt.Println("blasted")
	time.Sleep(time.Hour)
	return nil
}

// scaleBuild connects one bare client connection to the Host and returns
// its socket and every data packet of count numbered messages, built in
// advance on a fast clock (nothing is acknowledged meanwhile).
func scaleBuild(to netip.AddrPort, id uint32, size, count int) (*udp.Conn, []transport.Packet, error) {
	u, err := udp.Listen("udp4", netip.MustParseAddrPort("127.0.0.1:0"), udp.Options{})
	if err != nil {
		return nil, nil, err
	}
	_, key, _ := ed25519.GenerateKey(nil)
	cfg := conn.Config{Identity: fmt.Sprintf("str:sender%d", id), Key: key,
		SNP: snp.Config{SendBufferSize: 256 << 20, SendRateMin: 1 << 30, SendRateMax: 1 << 30, NagleTime: -1}}
	now := time.Now()
	c, err := conn.Dial(cfg, now, id, to)
	if err != nil {
		return nil, nil, err
	}
	// The handshake, live.
	in := make([]transport.Packet, 8)
	for i := range in {
		in[i].Buf = make([]byte, transport.MaxDatagram)
	}
	buf := make([]byte, 0, transport.MaxDatagram)
	deadline := time.Now().Add(20 * time.Second)
	got := make(chan []byte, 64)
	go func() {
		for {
			n, err := u.ReadBatch(in)
			if err != nil {
				return
			}
			for i := range in[:n] {
				select {
				case got <- append([]byte(nil), in[i].Bytes()...):
				default:
				}
			}
		}
	}()
	for c.State() != conn.StateConnected {
		if time.Now().After(deadline) || c.State() != conn.StateConnecting {
			return nil, nil, fmt.Errorf("connection %d: handshake: state %v %s", id, c.State(), c.EndDebug())
		}
		now = time.Now()
		for {
			d, ok := c.Poll(now, buf[:0])
			if !ok {
				break
			}
			u.WriteBatch([]transport.Packet{{Buf: d, N: len(d), Addr: to}})
		}
		select {
		case b := <-got:
			c.HandleDatagram(time.Now(), to, b)
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Every message, then every packet, on a clock that runs just fast
	// enough for pacing.
	msg := make([]byte, size)
	var pkts []transport.Packet
	poll := func() {
		for {
			d, ok := c.Poll(now, make([]byte, 0, transport.MaxDatagram))
			if !ok {
				if w := c.NextWake(); !w.IsZero() && w.Before(now.Add(time.Millisecond)) && c.Stats(now).PendingReliable > 0 {
					now = w
					continue
				}
				return
			}
			pkts = append(pkts, transport.Packet{Buf: d, N: len(d), Addr: to})
		}
	}
	for i := range count {
		binary.LittleEndian.PutUint64(msg, uint64(i))
		for {
			_, err := c.Send(now, 0, msg, snp.Reliable)
			if err == nil {
				break
			}
			poll()
			now = now.Add(time.Microsecond)
		}
	}
	for c.Stats(now).PendingReliable > 0 {
		poll()
		now = now.Add(time.Microsecond)
	}
	return u, pkts, nil
}

func splitComma(s string) []string {
	var out []string
	start := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == ',' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return out
}
