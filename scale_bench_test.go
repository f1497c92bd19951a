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
	"strings"
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
// proceed on several cores. The senders run in a child process (this test
// binary, re-run with NETMSG_SCALE_SENDER set) on bare connection state
// machines over loopback UDP: no Host, no locks, no timers, so they cost
// less per message than the Host under test, whose messages/s and CPU
// (user+system of this process over the measured window) are reported.
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
	h, err := NewHost(Config{
		ListenAddr: netip.MustParseAddrPort("127.0.0.1:0"),
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
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()

	var (
		received  atomic.Int64
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
			for next < uint64(count) {
				ms, err := h.Receive(ctx, c, 256)
				if err != nil {
					bad.Store(err.Error())
					return
				}
				firstOnce.Do(func() { first, cpu0 = time.Now(), processCPU() })
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
	case <-done:
	case <-ctx.Done():
		b.Fatalf("%d of %d messages", received.Load(), want)
	}
	el, cpu := time.Since(first), processCPU()-cpu0
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

// scaleSender runs the senders of BenchmarkHostScale: spec is
// "addr,conns,size,count".
func scaleSender(spec string) error {
	var addr string
	var conns, size, count int
	parts := strings.Split(spec, ",")
	if len(parts) != 4 {
		return fmt.Errorf("bad spec %q", spec)
	}
	addr = parts[0]
	conns, _ = strconv.Atoi(parts[1])
	size, _ = strconv.Atoi(parts[2])
	count, _ = strconv.Atoi(parts[3])
	to, err := netip.ParseAddrPort(addr)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := scaleSend(to, uint32(i+1)*7919, size, count); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// scaleSend is one sender: a bare client connection that sends count
// numbered messages as fast as its engine lets it, and keeps acking what
// the Host sends until every message is acknowledged.
func scaleSend(to netip.AddrPort, id uint32, size, count int) error {
	u, err := udp.Listen("udp4", netip.MustParseAddrPort("127.0.0.1:0"), udp.Options{})
	if err != nil {
		return err
	}
	defer u.Close()
	_, key, _ := ed25519.GenerateKey(nil)
	cfg := conn.Config{Identity: fmt.Sprintf("str:sender%d", id), Key: key, SNP: snp.Config{SendBufferSize: 4 << 20, SendRateMax: 1 << 30}}
	var mu sync.Mutex
	c, err := conn.Dial(cfg, time.Now(), id, to)
	if err != nil {
		return err
	}
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
			mu.Lock()
			now := time.Now()
			for i := range pkts[:n] {
				if err := c.HandleDatagram(now, pkts[i].Addr, pkts[i].Bytes()); err != nil && os.Getenv("NETMSG_SCALE_DEBUG") != "" {
					fmt.Fprintf(os.Stderr, "connection %d: %v\n", id, err)
				}
			}
			mu.Unlock()
			signal(kick)
		}
	}()
	msg := make([]byte, size)
	out := make([]transport.Packet, 0, 64)
	bufs := make([][]byte, 64)
	for i := range bufs {
		bufs[i] = make([]byte, transport.MaxDatagram)
	}
	sent := 0
	deadline := time.Now().Add(4 * time.Minute)
	for time.Now().Before(deadline) {
		mu.Lock()
		now := time.Now()
		if c.State() == conn.StateConnected {
			for sent < count {
				binary.LittleEndian.PutUint64(msg, uint64(sent))
				if _, err := c.Send(now, 0, msg, snp.Reliable); err != nil {
					break
				}
				sent++
			}
		} else if c.State() != conn.StateConnecting {
			mu.Unlock()
			return fmt.Errorf("connection %d: state %v: %s", id, c.State(), c.EndDebug())
		}
		out = out[:0]
		for len(out) < len(bufs) {
			d, ok := c.Poll(now, bufs[len(out)][:0])
			if !ok {
				break
			}
			out = append(out, transport.Packet{Buf: d, N: len(d), Addr: c.RemoteAddr()})
		}
		st := c.Stats(now)
		finished := sent == count && st.PendingReliable+st.SentUnackedReliable == 0
		wake := c.NextWake()
		mu.Unlock()
		if len(out) > 0 {
			u.WriteBatch(out)
			continue
		}
		if finished {
			return nil
		}
		d := time.Millisecond
		if !wake.IsZero() {
			d = min(d, max(time.Until(wake), 0))
		}
		t := time.NewTimer(d)
		select {
		case <-kick:
		case <-t.C:
		}
		t.Stop()
	}
	return fmt.Errorf("connection %d: %d of %d sent before the deadline", id, sent, count)
}
