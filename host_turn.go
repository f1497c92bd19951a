package netmsg

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

	"github.com/netmsg-go/netmsg/internal/conn"
	"github.com/netmsg-go/netmsg/internal/ice"
	"github.com/netmsg-go/netmsg/internal/p2p"
	"github.com/netmsg-go/netmsg/transport"
)

// TURNServer is a relay a Host may allocate an address on, so P2P peers
// that cannot reach each other directly talk through it (GNS's
// P2P_TURN_ServerList, with its user and password lists).
type TURNServer struct {
	Addr               netip.AddrPort
	Username, Password string
	// Realm of the credentials; empty takes the server's.
	Realm string
}

// relayQueue bounds the datagrams waiting for the relay writer.
const relayQueue = 1024

// turnAlloc is the Host's allocation on a TURN server: pion's TURN client
// runs over the Host's own socket (through turnSock, with the Host's
// reader feeding it what the server sends), and the relayed address is
// offered to P2P peers as a relay candidate.
type turnAlloc struct {
	srv     TURNServer
	index   int // in Config.TURNServers
	client  *turn.Client
	sock    *turnSock
	relayed net.PacketConn
	addr    netip.AddrPort // the relayed address
	out     chan relayDatagram

	// The channels pion's client bound, as learnt from the ChannelData
	// the server sends us: data to and from those peers then goes as
	// ChannelData straight through the Host's socket, in its batches and
	// under its lock, without pion's client and the relay goroutines
	// (pion still makes and refreshes the bindings and permissions).
	byChan          map[uint16]netip.AddrPort
	byPeer          map[netip.AddrPort]uint16
	chanIn, chanOut int64 // datagrams that took that way
}

// channelFinder is what pion's relayed connection offers to map a channel
// number to its peer.
type channelFinder interface {
	FindAddrByChannelNumber(uint16) (net.Addr, bool)
}

// maxChannels bounds the channels remembered (TURN numbers them
// 0x4000-0x4fff; a server names only those our client bound).
const maxChannels = 0x1000

// channelDataLocked takes a ChannelData message (RFC 8656 12.4) from the
// TURN server our allocation is on, for a channel pion's client bound: the
// payload is what that peer sent to our relayed address. It reports
// whether it took b; anything else goes to pion's client.
func (h *Host) channelDataLocked(now time.Time, from netip.AddrPort, b []byte) bool {
	ta := h.turn
	if ta == nil || from != ta.srv.Addr || len(b) < 4 || b[0]&0xf0 != 0x40 {
		return false
	}
	num := binary.BigEndian.Uint16(b[:2])
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if 4+n > len(b) {
		return false
	}
	peer, ok := ta.byChan[num]
	if !ok {
		f, isFinder := ta.relayed.(channelFinder)
		if !isFinder || len(ta.byChan) >= maxChannels {
			return false
		}
		a, found := f.FindAddrByChannelNumber(num)
		if !found {
			return false
		}
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return false
		}
		peer = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		ta.byChan[num] = peer
		ta.byPeer[peer] = num
	}
	ta.chanIn++
	h.handleRelayedLocked(now, peer, b[4:4+n])
	return true
}

type relayDatagram struct {
	to netip.AddrPort
	b  []byte
}

// turnStartLocked starts the allocations (once, when P2P is first used).
func (h *Host) turnStartLocked() {
	if h.turnStarted || len(h.cfg.TURNServers) == 0 {
		return
	}
	h.turnStarted = true
	h.turnClients = map[netip.AddrPort]*turn.Client{}
	for i, srv := range h.cfg.TURNServers {
		sock := &turnSock{h: h, done: make(chan struct{})}
		client, err := turn.NewClient(&turn.ClientConfig{
			STUNServerAddr: srv.Addr.String(), TURNServerAddr: srv.Addr.String(),
			Username: srv.Username, Password: srv.Password, Realm: srv.Realm,
			Conn: sock, LoggerFactory: quietPion{},
		})
		if err != nil {
			h.cfg.Logger.Warn("netmsg: TURN client", "server", srv.Addr, "err", err)
			continue
		}
		h.turnClients[srv.Addr] = client
		h.turnSocks = append(h.turnSocks, sock)
		h.wg.Add(1)
		go h.allocate(i, srv, client, sock)
	}
}

// allocate makes the allocation (blocking: pion runs the transactions,
// whose answers the Host's reader hands to the client), then serves it.
func (h *Host) allocate(index int, srv TURNServer, client *turn.Client, sock *turnSock) {
	defer h.wg.Done()
	relayed, err := client.Allocate()
	if err != nil {
		h.cfg.Logger.Warn("netmsg: TURN allocation failed", "server", srv.Addr, "err", err)
		return
	}
	ra, _ := netip.ParseAddrPort(relayed.LocalAddr().String())
	ta := &turnAlloc{srv: srv, index: index, client: client, sock: sock, relayed: relayed, addr: netip.AddrPortFrom(ra.Addr().Unmap(), ra.Port()), out: make(chan relayDatagram, relayQueue),
		byChan: map[uint16]netip.AddrPort{}, byPeer: map[netip.AddrPort]uint16{}}
	h.mu.Lock()
	if h.closed || h.turn != nil {
		h.mu.Unlock()
		relayed.Close()
		return
	}
	h.turn = ta
	now := h.cfg.Now()
	c := ice.NewCandidate(ice.Relay, ta.addr, h.pc.LocalAddr()).String()
	for _, hc := range h.conns {
		if hc.p2p != nil && hc.handle != InvalidConn {
			hc.p2p.agent.SetRelayBase()
			hc.p2p.sess.QueueReliable(now, p2p.ICECandidate(c))
			h.pollLocked(now, hc)
		}
	}
	h.unlockFlush()

	h.wg.Add(2)
	go func() { // what peers send to the relayed address
		defer h.wg.Done()
		buf := make([]byte, transport.MaxDatagram)
		for {
			n, from, err := relayed.ReadFrom(buf)
			if err != nil {
				return
			}
			ap, err := netip.ParseAddrPort(from.String())
			if err != nil {
				continue
			}
			ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			h.mu.Lock()
			if h.closed {
				h.mu.Unlock()
				return
			}
			h.handleRelayedLocked(h.cfg.Now(), ap, buf[:n])
			h.unlockFlush()
		}
	}()
	go func() { // what we send through the relay (may block: permissions)
		defer h.wg.Done()
		for {
			select {
			case <-h.done:
				return
			case d := <-ta.out:
				if _, err := relayed.WriteTo(d.b, net.UDPAddrFromAddrPort(d.to)); err != nil {
					h.cfg.Logger.Debug("netmsg: TURN send", "to", d.to, "err", err)
				}
			}
		}
	}()
}

// handleRelayedLocked takes a datagram a peer sent to our relayed address.
func (h *Host) handleRelayedLocked(now time.Time, from netip.AddrPort, b []byte) {
	h.stats.DatagramsIn++
	h.stats.BytesIn += int64(len(b))
	if len(b) > 0 && b[0] < 4 && ice.IsSTUN(b) {
		ufrag, ok := ice.Route(b)
		hc := h.iceConns[ufrag]
		if !ok || hc == nil {
			h.stats.Dropped++
			return
		}
		if err := hc.p2p.agent.HandleSTUNVia(now, from, true, b); err != nil {
			h.stats.Dropped++
		}
		h.pollLocked(now, hc)
		return
	}
	kind, id := conn.Classify(b)
	hc := h.conns[ConnHandle(id)]
	if kind != conn.KindData || hc == nil || hc.p2p == nil {
		h.stats.Dropped++
		return
	}
	h.deliverLocked(now, hc, from, b)
}

// relaySendLocked hands a datagram to the relay writer (dropped when its
// queue is full, like any datagram).
func (h *Host) relaySendLocked(to netip.AddrPort, b []byte) {
	if h.turn == nil {
		return
	}
	if num, ok := h.turn.byPeer[to]; ok {
		// A bound channel: ChannelData straight to the server (over UDP
		// without padding, RFC 8656 12.5).
		var hdr [4]byte
		binary.BigEndian.PutUint16(hdr[:2], num)
		binary.BigEndian.PutUint16(hdr[2:], uint16(len(b)))
		h.queuePrefixedLocked(h.turn.srv.Addr, hdr[:], b)
		h.turn.chanOut++
		return
	}
	select {
	case h.turn.out <- relayDatagram{to, append([]byte(nil), b...)}:
	default:
		h.stats.Dropped++
	}
}

// closeTURN ends the allocations (Host.Close, without mu).
func (h *Host) closeTURN() {
	h.mu.Lock()
	ta := h.turn
	clients := h.turnClients
	socks := h.turnSocks
	h.mu.Unlock()
	if ta != nil {
		ta.relayed.Close()
	}
	for _, c := range clients {
		c.Close()
	}
	for _, s := range socks {
		s.Close()
	}
}

// turnSock is the net.PacketConn pion's TURN client uses: writes go out of
// the Host's socket; reads never happen (the Host's reader feeds the
// client with HandleInbound).
type turnSock struct {
	h    *Host
	done chan struct{}
	once sync.Once
}

func (s *turnSock) WriteTo(b []byte, addr net.Addr) (int, error) {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return 0, err
	}
	pkt := []transport.Packet{{Buf: b, N: len(b), Addr: ap}}
	s.h.writeMu.Lock()
	_, err = s.h.pc.WriteBatch(pkt)
	s.h.writeMu.Unlock()
	return len(b), err
}

func (s *turnSock) ReadFrom([]byte) (int, net.Addr, error) {
	<-s.done
	return 0, nil, net.ErrClosed
}

func (s *turnSock) Close() error {
	s.once.Do(func() { close(s.done) })
	return nil
}

func (s *turnSock) LocalAddr() net.Addr {
	return net.UDPAddrFromAddrPort(s.h.pc.LocalAddr())
}

func (s *turnSock) SetDeadline(time.Time) error      { return nil }
func (s *turnSock) SetReadDeadline(time.Time) error  { return nil }
func (s *turnSock) SetWriteDeadline(time.Time) error { return nil }

// quietPion keeps pion's logs out of the application's.
type quietPion struct{}

func (quietPion) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("", logging.LogLevelDisabled, discard{})
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
