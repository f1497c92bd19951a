package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/netmsg-go/netmsg"
	"github.com/netmsg-go/netmsg/relay"
	"github.com/netmsg-go/netmsg/signaling"
)

// netmsgMsgsPeer is netmsg's Messages API (ISteamNetworkingMessages) over
// its own UDP Host, used as a user writes it: identity-addressed messages
// on numbered channels, over a session made on demand by the first send
// (the client addresses the server by its "ip:" identity). Same protocol,
// crypto and default configuration as the "netmsg" peer (Nagle 5 ms,
// adaptive send rate, 512 KiB send buffer), plus GNS's 5-byte Messages
// header on every message. Reliable and unreliable messages both go on
// channel 0, so that one receive returns either kind and the reliable
// stream keeps its order. The sender makes one Messages.Send call per
// message (SendMessageToUser that waits for room in a full send buffer).
//
// The receiver differs by peer:
//
//   - "netmsg-msgs": a Receive(ctx, 0) loop, one message per call, each
//     message Released once the workload is done with it (at the next
//     Recv), as the examples teach;
//   - "netmsg-msgs-norelease": the same loop, never calling Release (the
//     garbage collector frees the messages);
//   - "netmsg-msgs-batch": ReceiveBatch(ctx, 0, 256), each message
//     Released at the next Recv.
//
// The P2P variants receive as "netmsg-msgs-batch" does. They run the same
// over P2P: the server side starts a
// signaling server (TCP, GNS's trivial protocol) on 127.0.0.1 and its Host
// is str:server; the client is str:client and finds it through signaling
// and ICE (host candidates on 127.0.0.1). "netmsg-p2p" lets ICE pick the
// direct path; "netmsg-p2p-relay" also starts a TURN server (package
// relay, on the UDP port with the signaling server's number) and both
// Hosts use only paths through it; "netmsg-p2p-coturn" is the same with
// coturn (Debian's turnserver, which must be installed) as the TURN server.
type netmsgMsgsPeer struct {
	name       string
	recv       msgsRecv
	p2p, relay bool
	coturn     bool
}

// msgsRecv is how a netmsg Messages connection receives.
type msgsRecv int

const (
	recvOne          msgsRecv = iota // Receive(ctx, ch), Release at the next Recv
	recvOneNoRelease                 // Receive(ctx, ch), never Release
	recvBatch                        // ReceiveBatch(ctx, ch, 256), Release at the next Recv
)

// msgsBatch is the max of the batch receiver's ReceiveBatch calls.
const msgsBatch = 256

func init() {
	Register(netmsgMsgsPeer{name: "netmsg-msgs", recv: recvOne})
	Register(netmsgMsgsPeer{name: "netmsg-msgs-norelease", recv: recvOneNoRelease})
	Register(netmsgMsgsPeer{name: "netmsg-msgs-batch", recv: recvBatch})
	Register(netmsgMsgsPeer{name: "netmsg-p2p", recv: recvBatch, p2p: true})
	Register(netmsgMsgsPeer{name: "netmsg-p2p-relay", recv: recvBatch, p2p: true, relay: true})
	Register(netmsgMsgsPeer{name: "netmsg-p2p-coturn", recv: recvBatch, p2p: true, relay: true, coturn: true})
}

func (p netmsgMsgsPeer) Name() string { return p.name }

// netmsgMsgsMax is the largest payload: the 512 KiB message limit less
// GNS's 5-byte Messages header, which travels in the same message.
const netmsgMsgsMax = 512*1024 - 5

func (p netmsgMsgsPeer) Caps() Caps {
	note := "Messages API, GNS protocol v13, AES-256-GCM, default config; one Messages.Send per message (SendMessageToUser that waits for room in a full send buffer); "
	switch p.recv {
	case recvOne:
		note += "receiver: Receive(ctx, 0) per message, Release after use"
	case recvOneNoRelease:
		note += "receiver: Receive(ctx, 0) per message, never Release"
	case recvBatch:
		note += "receiver: ReceiveBatch(ctx, 0, 256), Release after use"
	}
	note += "; channel 0 carries both reliable and unreliable; SendNoNagle for NoDelay; fake loss (W6): Config.FakeSend.LossPercent"
	switch {
	case p.coturn:
		note += "; P2P through signaling and ICE, relay only (coturn on 127.0.0.1)"
	case p.relay:
		note += "; P2P through signaling and ICE, relay only (netmsg's TURN server on 127.0.0.1)"
	case p.p2p:
		note += "; P2P through signaling and ICE (direct path)"
	}
	return Caps{Reliable: true, Unreliable: true, MaxReliable: netmsgMsgsMax, Encrypted: true, Note: note}
}

// p2pSetup is what a P2P variant's Host needs: its identity, signaling
// and relay.
type p2pSetup struct {
	id    netmsg.Identity
	sig   signaling.Conn
	turn  []netmsg.TURNServer
	close []func() error // signaling server, relay, signaling client
}

func (p netmsgMsgsPeer) newHost(addr netip.AddrPort, opt Options, ps *p2pSetup, onRequest func(netmsg.Identity)) (*netmsg.Host, error) {
	cfg := netmsg.Config{ListenAddr: addr, OnSessionRequest: onRequest}
	if opt.Loss > 0 {
		// In-library fake loss on this side's sends (W6).
		cfg.FakeSend.LossPercent = opt.Loss * 100
	}
	if ps != nil {
		cfg.Identity, cfg.Signaling, cfg.TURNServers, cfg.P2PRelayOnly = ps.id, ps.sig, ps.turn, p.relay
	}
	return netmsg.NewHost(cfg)
}

// p2pSide connects one side of a P2P variant to the signaling server at
// sigAddr (and the relay on the same port number over UDP).
func (p netmsgMsgsPeer) p2pSide(ctx context.Context, sigAddr, identity string) (*p2pSetup, error) {
	id, err := netmsg.ParseIdentity(identity)
	if err != nil {
		return nil, err
	}
	sc, err := signaling.DialTrivial(ctx, sigAddr, identity)
	if err != nil {
		return nil, err
	}
	ps := &p2pSetup{id: id, sig: sc, close: []func() error{sc.Close}}
	if p.relay {
		ap, err := netip.ParseAddrPort(sigAddr)
		if err != nil {
			return nil, err
		}
		ps.turn = []netmsg.TURNServer{{Addr: ap, Username: "bench", Password: "bench"}}
	}
	return ps, nil
}

func (p netmsgMsgsPeer) Listen(ctx context.Context, addr string, opt Options) (Listener, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	l := &netmsgMsgsListener{opt: opt, recv: p.recv, requests: make(chan netmsg.Identity, 1)}
	var ps *p2pSetup
	if p.p2p {
		srv, err := signaling.NewServer(signaling.ServerConfig{})
		if err != nil {
			return nil, err
		}
		tl, err := net.Listen("tcp", netip.AddrPortFrom(ap.Addr(), 0).String())
		if err != nil {
			return nil, err
		}
		go srv.Serve(tl)
		l.sigAddr = tl.Addr().String()
		closers := []func() error{srv.Close}
		switch {
		case p.coturn:
			stop, err := startCoturn(l.sigAddr)
			if err != nil {
				srv.Close()
				return nil, fmt.Errorf("%s: %w", p.name, err)
			}
			closers = append(closers, stop)
		case p.relay:
			rs, err := relay.NewServer(relay.Config{ListenAddr: l.sigAddr, Users: map[string]string{"bench": "bench"}, AllowPeers: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")}, MaxAllocationsPerUser: -1, MaxAllocationsPerAddr: -1})
			if err != nil {
				srv.Close()
				return nil, fmt.Errorf("%s: relay on the signaling port: %w", p.name, err)
			}
			closers = append(closers, rs.Close)
		}
		if ps, err = p.p2pSide(ctx, l.sigAddr, "str:server"); err != nil {
			srv.Close()
			return nil, err
		}
		ps.close = append(ps.close, closers...)
		l.closers = ps.close
	}
	h, err := p.newHost(ap, opt, ps, func(peer netmsg.Identity) {
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
	recv     msgsRecv
	requests chan netmsg.Identity
	sigAddr  string         // P2P: the signaling server the client dials
	closers  []func() error // P2P: closed with the accepted connection
}

func (l *netmsgMsgsListener) Addr() string {
	if l.sigAddr != "" {
		return l.sigAddr
	}
	return l.h.LocalAddr().String()
}

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
		nc := newNetmsgMsgsConn(l.h, l.ms, peer, l.opt, l.recv)
		nc.closers = l.closers
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

func (p netmsgMsgsPeer) Dial(ctx context.Context, addr string, opt Options) (Conn, error) {
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
	var ps *p2pSetup
	if p.p2p {
		if ps, err = p.p2pSide(ctx, addr, "str:client"); err != nil {
			return nil, err
		}
		server, _ = netmsg.ParseIdentity("str:server")
	}
	h, err := p.newHost(local, opt, ps, nil)
	if err != nil {
		return nil, err
	}
	// No handshake here: the first send creates the session.
	nc := newNetmsgMsgsConn(h, h.Messages(), server, opt, p.recv)
	if ps != nil {
		nc.closers = ps.close
	}
	return nc, nil
}

type netmsgMsgsConn struct {
	h      *netmsg.Host
	ms     *netmsg.Messages
	peer   netmsg.Identity
	flags  netmsg.SendFlags // extra flags for every send
	recv   msgsRecv
	ctx    context.Context
	cancel context.CancelFunc

	pending *netmsg.Message   // received by Accept, not yet returned by Recv
	last    *netmsg.Message   // returned by the last Recv, released on the next
	batch   []*netmsg.Message // received by ReceiveBatch, batch[next:] not yet returned
	next    int
	once    sync.Once
	closers []func() error // P2P: signaling and relay, closed after the Host
}

func newNetmsgMsgsConn(h *netmsg.Host, ms *netmsg.Messages, peer netmsg.Identity, opt Options, recv msgsRecv) *netmsgMsgsConn {
	nc := &netmsgMsgsConn{h: h, ms: ms, peer: peer, recv: recv}
	if opt.NoDelay {
		nc.flags = netmsg.SendNoNagle
	}
	nc.ctx, nc.cancel = context.WithCancel(context.Background())
	return nc
}

// send sends with Messages.Send, which waits while the send buffer is
// full until the library has sent half of it: the library's own
// back-pressure, as BENCH.md asks.
func (nc *netmsgMsgsConn) send(b []byte, flags netmsg.SendFlags) error {
	return nc.ms.Send(nc.ctx, nc.peer, b, flags|nc.flags, 0)
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

// Recv returns the next message's payload, received as nc.recv says. The
// message returned before is Released first (except by the norelease
// receiver).
func (nc *netmsgMsgsConn) Recv() ([]byte, error) {
	if nc.last != nil {
		nc.last.Release()
		nc.last = nil
	}
	var m *netmsg.Message
	switch {
	case nc.pending != nil:
		m, nc.pending = nc.pending, nil
	case nc.recv == recvOne, nc.recv == recvOneNoRelease:
		var err error
		if m, err = nc.ms.Receive(nc.ctx, 0); err != nil {
			return nil, err
		}
	default: // recvBatch
		if nc.next == len(nc.batch) {
			b, err := nc.ms.ReceiveBatch(nc.ctx, 0, msgsBatch)
			if err != nil {
				return nil, err
			}
			nc.batch, nc.next = b, 0
		}
		m = nc.batch[nc.next]
		nc.batch[nc.next] = nil
		nc.next++
	}
	if nc.recv != recvOneNoRelease {
		nc.last = m
	}
	return m.Payload, nil
}

// Close waits 50 ms for queued data to go out (CloseSessionWithUser frees
// the session at once, without lingering), then closes the session and the
// Host.
func (nc *netmsgMsgsConn) Close() error {
	nc.once.Do(func() {
		if os.Getenv("NETBENCH_STATS") != "" {
			printPacketStats(nc.h)
			fmt.Fprintf(os.Stderr, "netbench: netmsg host %+v\n", nc.h.Stats())
		}
		time.Sleep(50 * time.Millisecond)
		nc.ms.CloseSessionWithUser(nc.peer)
		nc.cancel()
		nc.h.Close()
		for _, c := range nc.closers {
			c()
		}
	})
	return nil
}

// startCoturn runs turnserver on addr (UDP) with the bench credentials
// and waits until it answers a STUN binding request; stop ends it (by its
// PID).
func startCoturn(addr string) (stop func() error, err error) {
	bin, err := exec.LookPath("turnserver")
	if err != nil {
		return nil, errors.New("coturn (turnserver) is not installed")
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, err
	}
	ip := ap.Addr().String()
	cmd := exec.Command(bin, "-n", "--listening-ip="+ip, "--relay-ip="+ip, fmt.Sprintf("--listening-port=%d", ap.Port()),
		// A relay port window of its own (by its port), as coturns of
		// earlier runs may still be ending.
		fmt.Sprintf("--min-port=%d", 50000+int(ap.Port()%150)*100), fmt.Sprintf("--max-port=%d", 50000+int(ap.Port()%150)*100+99), "--lt-cred-mech", "--user=bench:bench", "--realm=netmsg",
		"--no-tcp", "--no-tls", "--no-dtls", "--no-cli", "--allow-loopback-peers", "--fingerprint", "--log-file=stdout", "--simple-log")
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	cmd.SysProcAttr = coturnAttr()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop = func() error { cmd.Process.Kill(); return cmd.Wait() }
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		stop()
		return nil, err
	}
	defer c.Close()
	// A binding request (RFC 5389: type 0x0001, length 0, magic cookie,
	// transaction id); any answer from the server will do.
	req := []byte{0, 1, 0, 0, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}
	buf := make([]byte, 1500)
	for range 50 {
		c.WriteTo(req, net.UDPAddrFromAddrPort(ap))
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		if _, _, err := c.ReadFrom(buf); err == nil {
			return stop, nil
		}
	}
	stop()
	return nil, fmt.Errorf("coturn does not answer at %v:\n%s", ap, logs.String())
}
