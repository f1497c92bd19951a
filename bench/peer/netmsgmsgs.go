package peer

import (
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"

	"github.com/netmsg-go/netmsg"
)

// netmsgMsgsPeer is netmsg's Messages API (ISteamNetworkingMessages) over
// its own UDP Host: identity-addressed messages on numbered channels, over a
// session made on demand by the first send (the client addresses the
// server by its "ip:" identity). Same protocol, crypto and default
// configuration as the "netmsg" peer (Nagle 5 ms, adaptive send rate,
// 512 KiB send buffer), plus GNS's 5-byte Messages header on every
// message. Reliable and unreliable messages both go on channel 0, so that
// one Receive returns either kind and the reliable stream keeps its order.
type netmsgMsgsPeer struct{}

func init() { Register(netmsgMsgsPeer{}) }

func (netmsgMsgsPeer) Name() string { return "netmsg-msgs" }

// netmsgMsgsMax is the largest payload: the 512 KiB message limit less
// GNS's 5-byte Messages header, which travels in the same message.
const netmsgMsgsMax = 512*1024 - 5

func (netmsgMsgsPeer) Caps() Caps {
	return Caps{
		Reliable:    true,
		Unreliable:  true,
		MaxReliable: netmsgMsgsMax,
		Encrypted:   true,
		Note:        "Messages API (SendMessageToUser/ReceiveBatch), GNS protocol v13, AES-256-GCM, default config; channel 0 carries both reliable and unreliable; SendNoNagle for NoDelay",
	}
}

func newNetmsgMsgsHost(addr netip.AddrPort, opt Options, onRequest func(netmsg.Identity)) (*netmsg.Host, error) {
	if opt.Loss > 0 {
		// The Host has Config.FakeSend; this adapter does not wire it yet.
		return nil, errors.New("netmsg-msgs: fake loss is not wired in this adapter")
	}
	return netmsg.NewHost(netmsg.Config{
		ListenAddr:       addr,
		OnSessionRequest: onRequest,
	})
}

func (netmsgMsgsPeer) Listen(ctx context.Context, addr string, opt Options) (Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	l := &netmsgMsgsListener{opt: opt, requests: make(chan netmsg.Identity, 1)}
	h, err := newNetmsgMsgsHost(ap, opt, func(peer netmsg.Identity) {
		// The Host repeats a request every second until it is accepted,
		// so one waiting is enough.
		select {
		case l.requests <- peer:
		default:
		}
	})
	if err != nil {
		return nil, err
	}
	l.h = h
	l.ms = h.Messages() // from now on the Host takes incoming sessions
	return l, nil
}

type netmsgMsgsListener struct {
	h        *netmsg.Host
	ms       *netmsg.Messages
	opt      Options
	requests chan netmsg.Identity
}

func (l *netmsgMsgsListener) Addr() string { return l.h.LocalAddr().String() }

// Accept accepts the first session request and returns once the peer's
// first message has arrived; that message is the first Recv.
func (l *netmsgMsgsListener) Accept(ctx context.Context) (Conn, error) {
	for {
		var peer netmsg.Identity
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case peer = <-l.requests:
		}
		if !l.ms.AcceptSessionWithUser(peer) {
			continue // gone meanwhile; wait for the next request
		}
		nc := newNetmsgMsgsConn(l.h, l.ms, peer, l.opt)
		m, err := l.ms.Receive(ctx, 0)
		if err != nil {
			nc.cancel()
			return nil, err
		}
		// Reply to the identity the message came from (the session is
		// known by it).
		nc.peer = m.Identity
		nc.pending = m
		return nc, nil
	}
}

// Close does nothing: the accepted connection owns the Host.
func (l *netmsgMsgsListener) Close() error { return nil }

func (netmsgMsgsPeer) Dial(ctx context.Context, addr string, opt Options) (Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	server, err := netmsg.IdentityFromAddr(ap)
	if err != nil {
		return nil, err
	}
	local := netip.MustParseAddrPort("127.0.0.1:0")
	if ap.Addr().Is6() && !ap.Addr().Is4In6() {
		local = netip.MustParseAddrPort("[::1]:0")
	}
	h, err := newNetmsgMsgsHost(local, opt, nil)
	if err != nil {
		return nil, err
	}
	// No handshake here: the first send creates the session.
	return newNetmsgMsgsConn(h, h.Messages(), server, opt), nil
}

type netmsgMsgsConn struct {
	h      *netmsg.Host
	ms     *netmsg.Messages
	peer   netmsg.Identity
	flags  netmsg.SendFlags // extra flags for every send
	ctx    context.Context
	cancel context.CancelFunc

	pending *netmsg.Message   // received by Accept, not yet returned by Recv
	last    *netmsg.Message   // returned by the last Recv, released on the next
	batch   []*netmsg.Message // received by ReceiveBatch, batch[next:] not yet returned
	next    int
	once    sync.Once
}

func newNetmsgMsgsConn(h *netmsg.Host, ms *netmsg.Messages, peer netmsg.Identity, opt Options) *netmsgMsgsConn {
	nc := &netmsgMsgsConn{h: h, ms: ms, peer: peer}
	if opt.NoDelay {
		nc.flags = netmsg.SendNoNagle
	}
	nc.ctx, nc.cancel = context.WithCancel(context.Background())
	return nc
}

// send retries a full send buffer after a short wait: the library's own
// back-pressure, as BENCH.md asks.
func (nc *netmsgMsgsConn) send(b []byte, flags netmsg.SendFlags) error {
	for {
		err := nc.ms.SendMessageToUser(nc.peer, b, flags|nc.flags, 0)
		if err == nil {
			return nil
		}
		if !errors.Is(err, netmsg.ResultLimitExceeded) {
			return err
		}
		select {
		case <-nc.ctx.Done():
			return nc.ctx.Err()
		case <-time.After(50 * time.Microsecond):
		}
	}
}

func (nc *netmsgMsgsConn) SendReliable(b []byte) error {
	if len(b) > netmsgMsgsMax {
		return ErrTooLarge
	}
	return nc.send(b, netmsg.SendReliable)
}

func (nc *netmsgMsgsConn) SendUnreliable(b []byte) error {
	if len(b) > netmsgMsgsMax {
		return ErrTooLarge
	}
	return nc.send(b, netmsg.SendUnreliable)
}

func (nc *netmsgMsgsConn) Recv() ([]byte, error) {
	if nc.last != nil {
		nc.last.Release()
		nc.last = nil
	}
	if nc.pending != nil {
		nc.last, nc.pending = nc.pending, nil
		return nc.last.Payload, nil
	}
	if nc.next == len(nc.batch) {
		b, err := nc.ms.ReceiveBatch(nc.ctx, 0, 256)
		if err != nil {
			return nil, err
		}
		nc.batch, nc.next = b, 0
	}
	m := nc.batch[nc.next]
	nc.batch[nc.next] = nil
	nc.next++
	nc.last = m
	return m.Payload, nil
}

// Close waits 50 ms for queued data to go out (CloseSessionWithUser frees
// the session at once, without lingering), then closes the session and the
// Host.
func (nc *netmsgMsgsConn) Close() error {
	nc.once.Do(func() {
		time.Sleep(50 * time.Millisecond)
		nc.ms.CloseSessionWithUser(nc.peer)
		nc.cancel()
		nc.h.Close()
	})
	return nil
}
