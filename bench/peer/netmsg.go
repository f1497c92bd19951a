package peer

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/netmsg-go/netmsg"
	"github.com/prometheus/client_golang/prometheus"
)

// netmsgPeer is netmsg's connection API over its own UDP Host: the GNS
// protocol with AES-256-GCM, default configuration (Nagle 5 ms, adaptive
// send rate from 256 KiB/s to 1 GiB/s, 512 KiB send buffer). NoDelay
// sends use SendNoNagle. "netmsg" receives with ReceiveBatch(ctx, c, 256);
// "netmsg-recv" with a Receive(ctx, c) loop, one message per call, as a
// Go program is first written.
type netmsgPeer struct{ one bool }

func init() {
	Register(netmsgPeer{})
	Register(netmsgPeer{one: true})
}

func (p netmsgPeer) Name() string {
	if p.one {
		return "netmsg-recv"
	}
	return "netmsg"
}

func (p netmsgPeer) Caps() Caps {
	recv := "ReceiveBatch(ctx, c, 256)"
	if p.one {
		recv = "Receive(ctx, c) per message"
	}
	return Caps{
		Reliable:    true,
		Unreliable:  true,
		MaxReliable: 512 * 1024,
		Encrypted:   true,
		Note:        "connection API, GNS protocol v13, AES-256-GCM, default config; Host.Send per message; receiver: " + recv + ", Release after use; SendNoNagle for NoDelay",
	}
}

// netmsgHost is a Host with a channel of the connections that reached a
// state, fed by its status callback.
type netmsgHost struct {
	h      *netmsg.Host
	events chan netmsg.ConnStatusChanged
}

func newNetmsgHost(addr netip.AddrPort, opt Options) (*netmsgHost, error) {
	nh := &netmsgHost{events: make(chan netmsg.ConnStatusChanged, 64)}
	cfg := netmsg.Config{
		ListenAddr: addr,
		OnConnectionStatusChanged: func(ev netmsg.ConnStatusChanged) {
			select {
			case nh.events <- ev:
			default:
			}
		},
	}
	if opt.Loss > 0 {
		// In-library fake loss on this side's sends (W6).
		cfg.FakeSend.LossPercent = opt.Loss * 100
	}
	h, err := netmsg.NewHost(cfg)
	if err != nil {
		return nil, err
	}
	nh.h = h
	return nh, nil
}

// wait returns the first event for a connection in one of states.
func (nh *netmsgHost) wait(ctx context.Context, c netmsg.ConnHandle, states ...netmsg.ConnectionState) (netmsg.ConnStatusChanged, error) {
	for {
		select {
		case <-ctx.Done():
			return netmsg.ConnStatusChanged{}, ctx.Err()
		case ev := <-nh.events:
			if c != netmsg.InvalidConn && ev.Conn != c {
				continue
			}
			for _, st := range states {
				if ev.Info.State == st {
					return ev, nil
				}
			}
			if ev.Info.State == netmsg.StateClosedByPeer || ev.Info.State == netmsg.StateProblemDetectedLocally {
				return ev, fmt.Errorf("netmsg: connection ended: %v %s", ev.Info.EndReason, ev.Info.EndDebug)
			}
		}
	}
}

func (p netmsgPeer) Listen(ctx context.Context, addr string, opt Options) (Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	nh, err := newNetmsgHost(ap, opt)
	if err != nil {
		return nil, err
	}
	if _, err := nh.h.Listen(); err != nil {
		nh.h.Close()
		return nil, err
	}
	return &netmsgListener{nh: nh, opt: opt, one: p.one}, nil
}

type netmsgListener struct {
	nh  *netmsgHost
	opt Options
	one bool
}

func (l *netmsgListener) Addr() string { return l.nh.h.LocalAddr().String() }

func (l *netmsgListener) Accept(ctx context.Context) (Conn, error) {
	ev, err := l.nh.wait(ctx, netmsg.InvalidConn, netmsg.StateConnecting)
	if err != nil {
		return nil, err
	}
	if err := l.nh.h.AcceptConnection(ev.Conn); err != nil {
		return nil, err
	}
	if _, err := l.nh.wait(ctx, ev.Conn, netmsg.StateConnected); err != nil {
		return nil, err
	}
	return newNetmsgConn(l.nh, ev.Conn, l.opt, l.one), nil
}

// Close does nothing: the accepted connection owns the Host.
func (l *netmsgListener) Close() error { return nil }

func (p netmsgPeer) Dial(ctx context.Context, addr string, opt Options) (Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	local := netip.MustParseAddrPort("127.0.0.1:0")
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		local = netip.MustParseAddrPort("[::1]:0")
	}
	nh, err := newNetmsgHost(local, opt)
	if err != nil {
		return nil, err
	}
	c, err := nh.h.Connect(ap)
	if err != nil {
		nh.h.Close()
		return nil, err
	}
	if _, err := nh.wait(ctx, c, netmsg.StateConnected); err != nil {
		nh.h.Close()
		return nil, err
	}
	return newNetmsgConn(nh, c, opt, p.one), nil
}

type netmsgConn struct {
	nh     *netmsgHost
	c      netmsg.ConnHandle
	flags  netmsg.SendFlags // extra flags for every send
	ctx    context.Context
	cancel context.CancelFunc

	one     bool              // Receive per message, not ReceiveBatch
	pending []*netmsg.Message // received, not yet returned by Recv
	last    *netmsg.Message   // returned by the last Recv, released on the next
	once    sync.Once
}

func newNetmsgConn(nh *netmsgHost, c netmsg.ConnHandle, opt Options, one bool) *netmsgConn {
	nc := &netmsgConn{nh: nh, c: c, one: one}
	if opt.NoDelay {
		nc.flags = netmsg.SendNoNagle
	}
	nc.ctx, nc.cancel = context.WithCancel(context.Background())
	return nc
}

// send sends with Host.Send, which waits while the send buffer is full
// until the library has sent half of it: the library's own back-pressure,
// as BENCH.md asks.
func (nc *netmsgConn) send(b []byte, flags netmsg.SendFlags) error {
	_, err := nc.nh.h.Send(nc.ctx, nc.c, b, flags|nc.flags)
	return err
}

func (nc *netmsgConn) SendReliable(b []byte) error { return nc.send(b, netmsg.SendReliable) }

func (nc *netmsgConn) SendUnreliable(b []byte) error {
	if len(b) > 512*1024 {
		return ErrTooLarge
	}
	return nc.send(b, netmsg.SendUnreliable)
}

func (nc *netmsgConn) Recv() ([]byte, error) {
	if nc.last != nil {
		nc.last.Release()
		nc.last = nil
	}
	if nc.one {
		m, err := nc.nh.h.Receive(nc.ctx, nc.c)
		if err != nil {
			return nil, err
		}
		nc.last = m
		return m.Payload, nil
	}
	if len(nc.pending) == 0 {
		ms, err := nc.nh.h.ReceiveBatch(nc.ctx, nc.c, 256)
		if err != nil {
			return nil, err
		}
		nc.pending = ms
	}
	nc.last = nc.pending[0]
	nc.pending = nc.pending[1:]
	return nc.last.Payload, nil
}

func (nc *netmsgConn) Close() error {
	nc.once.Do(func() {
		if os.Getenv("NETBENCH_STATS") != "" {
			printPacketStats(nc.nh.h)
			if rs, err := nc.nh.h.RealTimeStatus(nc.c); err == nil {
				fmt.Fprintf(os.Stderr, "netbench: netmsg status ping %v send rate %d B/s quality %.3f/%.3f\n",
					rs.Ping, rs.SendRateBytesPerSecond, rs.ConnectionQualityLocal, rs.ConnectionQualityRemote)
			}
		}
		nc.nh.h.CloseConnection(nc.c, 0, "bye", true)
		time.Sleep(50 * time.Millisecond) // let the linger deliver what is queued
		nc.cancel()
		nc.nh.h.Close()
	})
	return nil
}

// printPacketStats writes the Host's packet figures (sent, received,
// lost, retransmitted) to stderr: NETBENCH_STATS=1, to see the
// retransmissions behind a figure.
func printPacketStats(h *netmsg.Host) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(h.Collector()); err != nil {
		return
	}
	mfs, err := reg.Gather()
	if err != nil {
		return
	}
	var b strings.Builder
	for _, mf := range mfs {
		if mf.GetName() != "netmsg_host_conn_packets" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				fmt.Fprintf(&b, " %s=%.0f", l.GetValue(), m.GetGauge().GetValue())
			}
		}
	}
	fmt.Fprintf(os.Stderr, "netbench: netmsg packets%s\n", b.String())
}
