package netmsg

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netmsg-go/netmsg/internal/conn"
	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/fakenet"
	"github.com/netmsg-go/netmsg/internal/ice"
	"github.com/netmsg-go/netmsg/internal/paths"
	"github.com/netmsg-go/netmsg/internal/snp"
	"github.com/netmsg-go/netmsg/internal/udp"
	"github.com/netmsg-go/netmsg/transport"
)

// Host is one netmsg endpoint: one packet socket (a UDP socket, or the
// PacketConn given in Config) carrying any number of encrypted,
// authenticated connections, GNS's ISteamNetworkingSockets for one socket.
//
// All methods are safe for concurrent use. The Host owns its goroutines
// (a reader, a timer, and one that runs callbacks) and its timers; Close
// ends them all.
//
// Locking: mu guards the connection table and every connection's state
// machine; writeMu serializes writes to the socket and is taken, when both
// are needed, after mu. Callbacks run on the event goroutine without
// either lock, so they may call the Host.
type Host struct {
	cfg      *Config
	pc       transport.PacketConn
	identity Identity
	key      ed25519.PrivateKey
	listener *conn.Listener
	connCfg  conn.Config
	messages *Messages

	mu         sync.Mutex
	closed     bool
	listening  ListenHandle
	conns      map[ConnHandle]*hostConn
	servers    map[serverKey]*hostConn // server connections by the client's (address, connection id)
	pollGroups map[PollGroup]*pollGroup
	nextListen ListenHandle
	nextGroup  PollGroup
	events     []statusEvent // waiting for the event goroutine
	out        []transport.Packet
	outBufs    [][]byte
	scratch    []byte
	msgs       []snp.Message
	slab       msgSlab // the slices receive calls return
	stats      HostStats

	writeMu      sync.Mutex // guards the spare batch, and the socket's write side
	spareOut     []transport.Packet
	spareBufs    [][]byte
	datagramsOut atomic.Int64
	bytesOut     atomic.Int64

	readerWaits bool          // the reader waits on tookKick for the application to take messages
	tookKick    chan struct{} // signalled (cap 1) when messages are taken while readerWaits

	timerAt time.Time // when the timer goroutine will look at the connections next; guarded by mu
	wakes   wakeHeap  // connections by next wake-up

	// P2P (host_p2p.go); nil without Config.Signaling.
	sigOut      chan signalOut
	sigCancel   context.CancelFunc
	p2pIncoming map[p2pKey]*hostConn // accepted P2P connections by the peer's connection
	paths       *paths.Paths         // the socket's demultiplexing, STUN, TURN and ICE routes (safe for concurrent use)
	dueBuf      []*hostConn          // the timer goroutine's connections due now
	timerKick   chan struct{}        // signalled (cap 1) when a connection must wake before timerAt
	eventKick   chan struct{}
	done        chan struct{}
	wg          sync.WaitGroup
}

// HostStats counts what a Host's socket saw; it is for tests and
// monitoring.
type HostStats struct {
	DatagramsIn, DatagramsOut int64
	SignalsDropped            int64 // P2P signals that could not be sent, or were malformed, forged or for no connection
	BytesIn, BytesOut         int64
	Dropped                   int64 // datagrams dropped: malformed, unknown connection, refused
	ChallengesAnswered        int64
	ConnectsRefused           int64
	ICERestarts               int64 // P2P connections whose ICE started over (symmetric connect turned them into the accepting side)
}

type serverKey struct {
	addr netip.AddrPort
	id   uint32
}

// hostConn is the Host's record of one connection. Its fields are guarded
// by Host.mu.
type hostConn struct {
	handle   ConnHandle
	c        *conn.Conn
	listen   ListenHandle
	userData int64
	identity Identity
	state    ConnectionState
	recv     msgQueue      // when not in a poll group
	ready    chan struct{} // signalled (cap 1) when recv gains messages or the connection ends
	queued   int           // messages of this connection waiting in recv or its group's
	group    *pollGroup
	wake     time.Time // next wake-up (zero: none); change it with wakes.set
	wakeNs   int64     // wake as Unix nanoseconds, the heap's key
	hidx     int       // index in Host.wakes, -1 when not in it
	sess     *session  // the Messages session this connection carries, or nil
	p2p      *p2pConn  // the signaling and ICE of a P2P connection, or nil
	lastTake time.Time // when the application last took messages of this connection
}

// PollGroup names a set of connections whose messages are received together
// (GNS's HSteamNetPollGroup). The zero value names none.
type PollGroup uint32

type pollGroup struct {
	recv  msgQueue
	ready chan struct{} // signalled (cap 1) when recv gains messages
}

// ConnStatusChanged is the event passed to Config.OnConnectionStatusChanged:
// a connection changed state (GNS's SteamNetConnectionStatusChangedCallback_t).
type ConnStatusChanged struct {
	Conn     ConnHandle
	Info     ConnectionInfo
	OldState ConnectionState
}

type statusEvent struct {
	ev ConnStatusChanged
	fn func() // if not nil, run instead (the Messages layer's callbacks)
}

// postLocked queues fn to run on the event goroutine, in order with the
// status callbacks.
func (h *Host) postLocked(fn func()) {
	h.events = append(h.events, statusEvent{fn: fn})
	signal(h.eventKick)
}

// Errors of the connection API.
var (
	// ErrHostClosed is returned by methods called after Close.
	ErrHostClosed = errors.New("netmsg: host closed")
	// ErrNoSuchConn is returned for a handle that names no connection.
	ErrNoSuchConn error = noSuchConn{}
)

// noSuchConn is ErrNoSuchConn: it is ResultInvalidParam for errors.Is.
type noSuchConn struct{}

func (noSuchConn) Error() string        { return "netmsg: no such connection" }
func (noSuchConn) Is(target error) bool { return target == ResultInvalidParam }

const (
	// maxBatch is how many datagrams the reader takes per ReadBatch.
	maxBatch = 64

	// readerStall is the longest the reader waits, per datagram, for the
	// application to take messages from a connection whose receive queue
	// is full, rather than let the engine discard the datagram (which
	// the peer then retransmits, and counts as loss). The datagrams not
	// yet read wait in the socket's receive buffer meanwhile. 2 ms covers
	// the scheduling hiccups of a busy 2-core machine (at 1.5M msgs/s,
	// RecvBufferMessages = 1000 holds 0.7 ms of traffic).
	readerStall = 5 * time.Millisecond

	// sendBatchDelay is the longest a packet of a send without
	// SendNoNagle that could go at once waits for the timer goroutine, so
	// that the packets of a burst of sends share system calls and GSO
	// super-datagrams. Such a send accepts Nagle's delay (5 ms by
	// default) already.
	sendBatchDelay = 200 * time.Microsecond

	// activeReceiver is how recently the application must have taken
	// messages of a connection for the reader to wait for it: an
	// application that stopped reading does not stall the Host for more
	// than this plus readerStall.
	activeReceiver = 10 * time.Millisecond
)

// NewHost opens a Host: it fills and checks cfg, opens the socket (or takes
// cfg.PacketConn) and starts the Host's goroutines.
func NewHost(cfg Config) (*Host, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if c.Certificate != nil {
		// GNS's SetCertificate: the host takes its identity from its
		// certificate, or refuses one that names another identity.
		id, k, err := ownCertificate(c.Identity, c.PrivateKey, c.AppID, c.Certificate)
		if err != nil {
			return nil, err
		}
		c.Identity, c.PrivateKey = id, k
	}
	key := c.PrivateKey
	if key == nil {
		_, key, err = ed25519.GenerateKey(c.Rand)
		if err != nil {
			return nil, fmt.Errorf("netmsg: identity key: %w", err)
		}
	}
	id := c.Identity
	if !id.IsValid() {
		id = IdentityLocalhost() // GNS presents ip:::1 when no identity is set
	}
	pc := c.PacketConn
	if pc == nil {
		network := "udp"
		if a := c.ListenAddr.Addr(); a.IsValid() && a.Unmap().Is4() {
			network = "udp4"
		}
		pc, err = udp.Listen(network, c.ListenAddr, udp.Options{})
		if err != nil {
			return nil, fmt.Errorf("netmsg: %w", err)
		}
	}
	if !c.FakeSend.IsZero() || !c.FakeRecv.IsZero() {
		var seed [8]byte
		if _, err := io.ReadFull(c.Rand, seed[:]); err != nil {
			pc.Close()
			return nil, fmt.Errorf("netmsg: fake network seed: %w", err)
		}
		pc = fakenet.Wrap(pc, fakenet.Conditions(c.FakeSend), fakenet.Conditions(c.FakeRecv), binary.LittleEndian.Uint64(seed[:]))
	}
	h := &Host{
		cfg: c, pc: pc, identity: id, key: key,
		messages:   &Messages{},
		conns:      make(map[ConnHandle]*hostConn),
		servers:    make(map[serverKey]*hostConn),
		pollGroups: make(map[PollGroup]*pollGroup),
		scratch:    make([]byte, 0, transport.MaxDatagram),
		msgs:       make([]snp.Message, 64),
		timerKick:  make(chan struct{}, 1),
		tookKick:   make(chan struct{}, 1),
		eventKick:  make(chan struct{}, 1),
		done:       make(chan struct{}),
	}
	h.messages.init(h)
	h.connCfg = conn.Config{
		Identity:         id.String(),
		Key:              key,
		Cert:             c.Certificate,
		AppID:            c.AppID,
		TimeoutInitial:   c.TimeoutInitial,
		TimeoutConnected: c.TimeoutConnected,
		SNP:              snpConfig(&c.ConnConfig),
		OfferLanes:       messagesLanes,
		Rand:             c.Rand,
		ParseIdentity: func(s string) (crypto.Identity, error) {
			return ParseIdentity(s)
		},
	}
	if c.gnsLanes {
		h.connCfg.OfferLanes = 0
	}
	for _, ca := range c.TrustedCAs {
		h.connCfg.TrustedCAs = append(h.connCfg.TrustedCAs, ca)
	}
	secret := make([]byte, 32)
	if _, err := io.ReadFull(c.Rand, secret); err != nil {
		pc.Close()
		return nil, fmt.Errorf("netmsg: challenge secret: %w", err)
	}
	if h.listener, err = conn.NewListener(h.connCfg, secret); err != nil {
		pc.Close()
		return nil, fmt.Errorf("netmsg: %w", err)
	}
	h.wg.Add(3)
	go h.readLoop()
	go h.timerLoop()
	go h.eventLoop()
	if c.Signaling != nil {
		h.startSignaling()
	}
	return h, nil
}

// snpConfig maps a connection's configuration onto the engine's.
func snpConfig(cc *ConnConfig) snp.Config {
	nagle := cc.NagleTime
	if cc.DisableNagle {
		nagle = -1
	}
	return snp.Config{
		MaxPayload:         cc.MTUPacketSize - mtuOverhead,
		NagleTime:          nagle,
		SendBufferSize:     cc.SendBufferSize,
		SendRateMin:        cc.SendRateMin,
		SendRateMax:        cc.SendRateMax,
		RecvBufferSize:     cc.RecvBufferSize,
		RecvBufferMessages: cc.RecvBufferMessages,
		RecvMaxMessageSize: cc.RecvMaxMessageSize,
		MaxMessageSize:     cc.MaxMessageSize,
	}
}

// mtuOverhead is what a data packet adds to its SNP payload: the 7-byte
// header, room for an inline stats blob, and the 16-byte GCM tag (GNS
// budgets the same way from MTU_PacketSize).
const mtuOverhead = 7 + 32 + 16

// Identity returns the Host's identity.
func (h *Host) Identity() Identity { return h.identity }

// LocalAddr returns the address of the Host's socket.
func (h *Host) LocalAddr() netip.AddrPort { return h.pc.LocalAddr() }

// Stats returns the Host's socket counters.
func (h *Host) Stats() HostStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.stats
	st.DatagramsOut, st.BytesOut = h.datagramsOut.Load(), h.bytesOut.Load()
	return st
}

// Close closes every connection (without lingering: GNS's behaviour when
// its interface is destroyed), the socket, and ends the Host's goroutines.
// It is safe to call more than once.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	now := h.cfg.Now()
	for _, hc := range h.conns {
		hc.c.Close(now, int(EndAppMin), "host closed", false)
		h.pollLocked(now, hc)
	}
	h.flushOutLocked()
	h.closed = true
	h.mu.Unlock()
	if h.sigCancel != nil {
		h.sigCancel()
	}
	close(h.done)
	if h.paths != nil {
		h.paths.Close()
	}
	err := h.pc.Close()
	h.wg.Wait()
	return err
}

// Listen makes the Host accept incoming connections on its socket (GNS's
// CreateListenSocketIP; a Host has one socket, so one listen handle). New
// connections appear in state Connecting through OnConnectionStatusChanged
// and must be accepted with AcceptConnection.
func (h *Host) Listen() (ListenHandle, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return InvalidListen, ErrHostClosed
	}
	if h.listening == InvalidListen {
		h.nextListen++
		h.listening = h.nextListen
	}
	return h.listening, nil
}

// CloseListen stops accepting new connections. Connections already
// accepted go on (GNS closes them too; netmsg leaves that to the caller).
func (h *Host) CloseListen(l ListenHandle) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if l == InvalidListen || l != h.listening {
		return false
	}
	h.listening = InvalidListen
	return true
}

// Connect starts a connection to addr (GNS's ConnectByIPAddress). It
// returns at once, with the connection in state Connecting; messages sent
// before it is connected are queued.
func (h *Host) Connect(addr netip.AddrPort) (ConnHandle, error) {
	if !addr.IsValid() {
		return InvalidConn, fmt.Errorf("netmsg: connect: bad address %v: %w", addr, ResultInvalidParam)
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return InvalidConn, ErrHostClosed
	}
	hc, err := h.connectLocked(h.cfg.Now(), addr, 0)
	if err != nil {
		return InvalidConn, err
	}
	h.flushOutLocked()
	return hc.handle, nil
}

// connectLocked dials addr with virtual port vport (0: a plain connection)
// and queues the first datagram.
func (h *Host) connectLocked(now time.Time, addr netip.AddrPort, vport int) (*hostConn, error) {
	handle, err := h.newHandleLocked()
	if err != nil {
		return nil, err
	}
	cfg := h.connCfg
	cfg.VirtualPort = vport
	c, err := conn.Dial(cfg, now, uint32(handle), addr)
	if err != nil {
		return nil, fmt.Errorf("netmsg: connect: %w", err)
	}
	hc := &hostConn{userData: -1, handle: handle, c: c, state: StateNone, ready: make(chan struct{}, 1), hidx: -1}
	h.conns[handle] = hc
	h.pollLocked(now, hc)
	return hc, nil
}

// connLocked returns the connection the application knows as c, or nil.
func (h *Host) connLocked(c ConnHandle) *hostConn {
	if hc := h.conns[c]; hc != nil && hc.handle == c && hc.sess == nil {
		return hc
	}
	return nil
}

// newHandleLocked picks a random, unused, nonzero connection handle; it is
// also the connection id on the wire, as in GNS.
func (h *Host) newHandleLocked() (ConnHandle, error) {
	var b [4]byte
	for range 100 {
		if _, err := io.ReadFull(h.cfg.Rand, b[:]); err != nil {
			return InvalidConn, fmt.Errorf("netmsg: connection id: %w", err)
		}
		id := ConnHandle(binary.LittleEndian.Uint32(b[:]))
		if id != InvalidConn && h.conns[id] == nil {
			return id, nil
		}
	}
	return InvalidConn, fmt.Errorf("netmsg: no free connection id: %w", ResultLimitExceeded)
}

// AcceptConnection accepts an incoming connection in state Connecting
// (GNS's AcceptConnection).
func (h *Host) AcceptConnection(c ConnHandle) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	hc := h.connLocked(c)
	if hc == nil {
		return ErrNoSuchConn
	}
	now := h.cfg.Now()
	if err := hc.c.Accept(now); err != nil {
		return fmt.Errorf("netmsg: accept: %v: %w", err, ResultInvalidState)
	}
	h.pollLocked(now, hc)
	h.flushOutLocked()
	return nil
}

// SendMessageToConnection sends data on connection c with flags (GNS's
// SendMessageToConnection) and returns the message number. The data is
// copied. Errors are Results: ResultInvalidParam (bad handle, message too
// big), ResultLimitExceeded (send buffer full), ResultNoConnection (the
// connection is closed or closing), ResultIgnored (an unreliable NoDelay
// message that could not go now).
func (h *Host) SendMessageToConnection(c ConnHandle, data []byte, flags SendFlags) (int64, error) {
	return h.send(c, 0, data, flags)
}

func (h *Host) send(c ConnHandle, lane int, data []byte, flags SendFlags) (int64, error) {
	h.mu.Lock()
	hc := h.connLocked(c)
	if hc == nil {
		h.mu.Unlock()
		return 0, ErrNoSuchConn
	}
	now := h.cfg.Now()
	num, err := hc.c.Send(now, lane, data, snp.SendFlags(flags&(SendReliable|SendNoNagle|SendNoDelay)))
	if err != nil {
		h.mu.Unlock()
		return 0, sendResult(err)
	}
	if flags&SendNoNagle != 0 {
		// Latency first: build and write the packet on the caller's
		// goroutine.
		h.pollLocked(now, hc)
	} else {
		// Throughput first: the timer goroutine sends what is due, at
		// most sendBatchDelay from now, so that several packets go out
		// in one batch (one sendmmsg, or one GSO super-datagram).
		h.rescheduleBatchLocked(now, hc)
	}
	h.unlockFlush()
	return num, nil
}

// sendResult maps an engine or connection error onto a Result.
func sendResult(err error) error {
	switch {
	case errors.Is(err, snp.ErrMessageTooBig), errors.Is(err, snp.ErrBadLane):
		return fmt.Errorf("netmsg: send: %v: %w", err, ResultInvalidParam)
	case errors.Is(err, snp.ErrSendBufferFull):
		return ResultLimitExceeded
	case errors.Is(err, snp.ErrIgnored):
		return ResultIgnored
	case errors.Is(err, conn.ErrNotConnected):
		return ResultNoConnection
	}
	return fmt.Errorf("netmsg: send: %v: %w", err, ResultFail)
}

// FlushMessagesOnConnection sends what is queued on c now, ignoring Nagle.
func (h *Host) FlushMessagesOnConnection(c ConnHandle) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	hc := h.connLocked(c)
	if hc == nil {
		return ErrNoSuchConn
	}
	now := h.cfg.Now()
	hc.c.Flush(now)
	h.pollLocked(now, hc)
	h.flushOutLocked()
	return nil
}

// ReceiveMessagesOnConnection returns up to max messages received on c,
// oldest first, without blocking (nil when there are none). The caller owns
// them; calling Release on each when done lets the Host reuse its buffers.
func (h *Host) ReceiveMessagesOnConnection(c ConnHandle, max int) []*Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	hc := h.connLocked(c)
	if hc == nil || max <= 0 {
		return nil
	}
	if hc.group != nil {
		return nil // GNS: messages of a connection in a poll group go to the group
	}
	ms := hc.recv.take(max, &h.slab)
	h.tookLocked(ms)
	return ms
}

// Receive waits until messages arrived on c, then returns up to max of them
// (oldest first), like ReceiveMessagesOnConnection but blocking: the form
// Go servers want. It returns ctx's error when ctx ends first, and
// ResultNoConnection when c is unknown, closed, or ended with nothing left
// to read.
func (h *Host) Receive(ctx context.Context, c ConnHandle, max int) ([]*Message, error) {
	if max <= 0 {
		return nil, fmt.Errorf("netmsg: receive: max %d: %w", max, ResultInvalidParam)
	}
	for {
		h.mu.Lock()
		hc := h.connLocked(c)
		if hc == nil || hc.group != nil {
			h.mu.Unlock()
			return nil, ResultNoConnection
		}
		if ms := hc.recv.take(max, &h.slab); len(ms) > 0 {
			h.tookLocked(ms)
			h.mu.Unlock()
			return ms, nil
		}
		if hc.state == StateClosedByPeer || hc.state == StateProblemDetectedLocally {
			h.mu.Unlock()
			return nil, ResultNoConnection
		}
		ready := hc.ready
		h.mu.Unlock()
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-h.done:
			return nil, ErrHostClosed
		}
	}
}

// ReceiveOnPollGroup is the blocking form of ReceiveMessagesOnPollGroup. It
// returns ctx's error when ctx ends first and ResultInvalidParam for an
// unknown group.
func (h *Host) ReceiveOnPollGroup(ctx context.Context, g PollGroup, max int) ([]*Message, error) {
	if max <= 0 {
		return nil, fmt.Errorf("netmsg: receive: max %d: %w", max, ResultInvalidParam)
	}
	for {
		h.mu.Lock()
		pg := h.pollGroups[g]
		if pg == nil {
			h.mu.Unlock()
			return nil, fmt.Errorf("netmsg: no poll group %d: %w", g, ResultInvalidParam)
		}
		if ms := pg.recv.take(max, &h.slab); len(ms) > 0 {
			h.tookLocked(ms)
			h.mu.Unlock()
			return ms, nil
		}
		h.mu.Unlock()
		select {
		case <-pg.ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-h.done:
			return nil, ErrHostClosed
		}
	}
}

// CreatePollGroup returns a new, empty poll group.
func (h *Host) CreatePollGroup() PollGroup {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextGroup++
	h.pollGroups[h.nextGroup] = &pollGroup{ready: make(chan struct{}, 1)}
	return h.nextGroup
}

// DestroyPollGroup removes a poll group; its connections leave it, and the
// messages waiting in it are dropped.
func (h *Host) DestroyPollGroup(g PollGroup) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	pg := h.pollGroups[g]
	if pg == nil {
		return false
	}
	for _, hc := range h.conns {
		if hc.group == pg {
			hc.group = nil
		}
	}
	for _, m := range pg.recv.take(pg.recv.len(), nil) {
		if hc := h.conns[m.Connection]; hc != nil {
			hc.queued--
		}
		m.Release()
	}
	delete(h.pollGroups, g)
	return true
}

// SetConnectionPollGroup puts c in poll group g (0: none). Messages already
// waiting on c move with it.
func (h *Host) SetConnectionPollGroup(c ConnHandle, g PollGroup) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	hc := h.connLocked(c)
	if hc == nil {
		return false
	}
	var pg *pollGroup
	if g != 0 {
		if pg = h.pollGroups[g]; pg == nil {
			return false
		}
	}
	if hc.group == nil && pg != nil {
		for _, m := range hc.recv.take(hc.recv.len(), nil) {
			pg.recv.push(m)
		}
		if pg.recv.len() > 0 {
			signal(pg.ready)
		}
	}
	hc.group = pg
	return true
}

// ReceiveMessagesOnPollGroup returns up to max messages received on the
// connections of g, in arrival order, without blocking.
func (h *Host) ReceiveMessagesOnPollGroup(g PollGroup, max int) []*Message {
	h.mu.Lock()
	defer h.mu.Unlock()
	pg := h.pollGroups[g]
	if pg == nil || max <= 0 {
		return nil
	}
	ms := pg.recv.take(max, &h.slab)
	h.tookLocked(ms)
	return ms
}

// CloseConnection closes c with reason (use EndAppMin..EndAppMax, 1000-1999,
// for application reasons; 0 means EndAppMin) and debug text. With linger,
// reliable data already queued is delivered first. The handle is released:
// later calls with it fail. It returns false for an unknown handle.
func (h *Host) CloseConnection(c ConnHandle, reason EndReason, debug string, linger bool) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	hc := h.connLocked(c)
	if hc == nil {
		return false
	}
	if reason == EndInvalid {
		reason = EndAppMin
	}
	now := h.cfg.Now()
	hc.c.Close(now, int(reason), debug, linger)
	h.pollLocked(now, hc)
	h.flushOutLocked()
	hc.recv.drop()
	hc.queued = 0
	// The handle goes now; a lingering connection keeps running in the
	// table under it until it is dead, but the application cannot reach
	// it any more.
	hc.listen = InvalidListen
	hc.userData = -1
	hc.state = StateNone
	h.forgetHandleLocked(hc)
	return true
}

// forgetHandleLocked removes hc from the API's view. Its state machine is
// kept in the table while it still has something to send (linger, closing
// messages).
func (h *Host) forgetHandleLocked(hc *hostConn) {
	hc.group = nil
	if st := ConnectionState(hc.c.State()); st == StateDead || st == StateNone {
		h.removeLocked(hc)
		return
	}
	hc.handle = InvalidConn // a zombie: reachable only by the packet path
}

func (h *Host) removeLocked(hc *hostConn) {
	h.wakes.remove(hc)
	h.removeP2PLocked(hc)
	id := ConnHandle(hc.c.LocalID())
	if h.conns[id] == hc {
		delete(h.conns, id)
	}
	if hc.c.IsServer() {
		k := serverKey{hc.c.RemoteAddr(), hc.c.RemoteID()}
		if h.servers[k] == hc {
			delete(h.servers, k)
		}
	}
}

// SetConnectionUserData sets c's user data (ConnectionInfo.UserData, and
// Message.ReceiverUserData of messages received from now on).
func (h *Host) SetConnectionUserData(c ConnHandle, v int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	hc := h.connLocked(c)
	if hc == nil {
		return false
	}
	hc.userData = v
	return true
}

// ConnectionInfo returns what is known of c (GNS's GetConnectionInfo).
func (h *Host) ConnectionInfo(c ConnHandle) (ConnectionInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hc := h.connLocked(c)
	if hc == nil {
		return ConnectionInfo{}, ErrNoSuchConn
	}
	return h.infoLocked(hc), nil
}

func (h *Host) infoLocked(hc *hostConn) ConnectionInfo {
	st := ConnectionState(hc.c.State())
	if st == StateFinWait || st == StateLinger {
		st = StateConnected // GNS reports these only internally
	}
	desc := fmt.Sprintf("#%d UDP %v", hc.c.LocalID(), hc.c.RemoteAddr())
	remote := hc.c.RemoteAddr()
	var flags ConnectionInfoFlags
	var popRelay uint32
	if hc.p2p != nil {
		// As GNS describes P2P connections ("#id P2P ICE peer"), with the
		// path: RemoteAddress is the peer's address on it; through a
		// relay it is the address the relay reaches the peer at.
		switch {
		case !hc.c.RemoteAddr().IsValid():
			desc = fmt.Sprintf("#%d P2P (finding route)", hc.c.LocalID())
		case hc.p2p.route.Selected().Relayed:
			al, _ := h.paths.Allocation()
			desc = fmt.Sprintf("#%d P2P ICE relay %v via TURN %v (relayed address %v)", hc.c.LocalID(), hc.c.RemoteAddr(), al.Server, al.Relayed)
			flags |= ConnInfoRelayed
			popRelay = uint32(al.Index + 1)
		case hc.p2p.route.Selected().PeerRelay:
			desc = fmt.Sprintf("#%d P2P ICE relay %v (the peer's TURN allocation)", hc.c.LocalID(), hc.c.RemoteAddr())
			flags |= ConnInfoRelayed
		default:
			desc = fmt.Sprintf("#%d P2P ICE direct %v", hc.c.LocalID(), hc.c.RemoteAddr())
			if ice.IsPrivate(remote.Addr()) {
				flags |= ConnInfoFast // both ends on one LAN (GNS: "probably local")
			}
		}
		if flags&ConnInfoRelayed != 0 {
			remote = netip.AddrPort{} // as GNS: the route is the relay's (Description has the addresses)
		}
	}
	if remote.Addr().IsLoopback() {
		flags |= ConnInfoFast
	}
	if !hc.c.PeerCASigned() || !hc.identity.IsValid() || hc.identity.Type() == IdentityIPAddress {
		flags |= ConnInfoUnauthenticated
	}
	if hc.identity.IsValid() && hc.identity.Type() != IdentityIPAddress {
		desc += " " + hc.identity.String()
	}
	return ConnectionInfo{
		Identity:      hc.identity,
		UserData:      hc.userData,
		ListenSocket:  hc.listen,
		RemoteAddress: remote,
		POPRelay:      popRelay,
		Flags:         flags,
		State:         st,
		EndReason:     EndReason(hc.c.EndReason()),
		EndDebug:      hc.c.EndDebug(),
		Description:   desc,
	}
}

// RealTimeStatus returns c's live figures (GNS's
// GetConnectionRealTimeStatus).
func (h *Host) RealTimeStatus(c ConnHandle) (RealTimeStatus, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	hc := h.connLocked(c)
	if hc == nil {
		return RealTimeStatus{}, ErrNoSuchConn
	}
	return h.statusLocked(hc), nil
}

func (h *Host) statusLocked(hc *hostConn) RealTimeStatus {
	s := hc.c.Stats(h.cfg.Now())
	ping := time.Duration(-1)
	if s.Ping >= 0 {
		ping = time.Duration(s.Ping) * time.Millisecond
	}
	return RealTimeStatus{
		State:                   ConnectionState(hc.c.State()),
		Ping:                    ping,
		ConnectionQualityLocal:  s.ConnectionQualityLocal,
		ConnectionQualityRemote: s.ConnectionQualityRemote,
		OutPacketsPerSec:        s.OutPacketsPerSec,
		OutBytesPerSec:          s.OutBytesPerSec,
		InPacketsPerSec:         s.InPacketsPerSec,
		InBytesPerSec:           s.InBytesPerSec,
		SendRateBytesPerSecond:  s.SendRateBytesPerSecond,
		PendingUnreliable:       s.PendingUnreliable,
		PendingReliable:         s.PendingReliable,
		SentUnackedReliable:     s.SentUnackedReliable,
		QueueTime:               s.QueueTime,
	}
}

// readLoop takes datagrams from the socket and hands them to the
// connections, until the socket is closed.
func (h *Host) readLoop() {
	defer h.wg.Done()
	pkts := make([]transport.Packet, maxBatch)
	for i := range pkts {
		pkts[i].Buf = make([]byte, transport.MaxDatagram)
	}
	stall := time.NewTimer(time.Hour)
	stall.Stop()
	for {
		n, err := h.pc.ReadBatch(pkts)
		if err != nil {
			if errors.Is(err, transport.ErrClosed) {
				return
			}
			select {
			case <-h.done:
				return
			default:
			}
			h.cfg.Logger.Warn("netmsg: read", "err", err)
			continue
		}
		h.mu.Lock()
		now := h.cfg.Now()
		for i := range pkts[:n] {
			if hc := h.recvFullLocked(now, pkts[i].Bytes()); hc != nil {
				now = h.waitTakeLocked(now, hc, stall)
			}
			h.handleDatagramLocked(now, pkts[i].Addr, pkts[i].Bytes())
		}
		h.unlockFlush()
	}
}

// recvFullLocked returns the connection a data datagram is for if its
// receive queue is full (the Host's queue at RecvBufferMessages and the
// engine's half full) while the application is taking messages from it:
// the reader should then give the application a moment before it hands
// the connection more.
func (h *Host) recvFullLocked(now time.Time, b []byte) *hostConn {
	kind, id := conn.Classify(b)
	if kind != conn.KindData {
		return nil
	}
	hc := h.conns[ConnHandle(id)]
	if hc == nil || !h.recvFullConnLocked(hc) || now.Sub(hc.lastTake) > activeReceiver {
		return nil
	}
	return hc
}

// recvFullConnLocked reports whether hc's queue is full and its engine's
// half full, by messages or by bytes: more data would soon be discarded.
func (h *Host) recvFullConnLocked(hc *hostConn) bool {
	if hc.queued < h.cfg.RecvBufferMessages {
		return false
	}
	msgs, bytes := hc.c.RecvPending()
	return msgs >= h.cfg.RecvBufferMessages/2 || bytes >= h.cfg.RecvBufferSize/2
}

// waitTakeLocked releases mu (writing what is queued) and waits until the
// application takes messages of hc, at most readerStall, then takes mu
// again and returns the time.
func (h *Host) waitTakeLocked(now time.Time, hc *hostConn, t *time.Timer) time.Time {
	deadline := now.Add(readerStall)
	for h.conns[hc.handle] == hc && h.recvFullConnLocked(hc) && now.Before(deadline) {
		h.readerWaits = true
		h.unlockFlush()
		t.Reset(deadline.Sub(now))
		select {
		case <-h.tookKick:
		case <-t.C:
		case <-h.done:
		}
		t.Stop()
		h.mu.Lock()
		h.readerWaits = false
		now = h.cfg.Now()
	}
	return now
}

// handleDatagramLocked routes one datagram.
func (h *Host) handleDatagramLocked(now time.Time, from netip.AddrPort, b []byte) {
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	h.stats.DatagramsIn++
	h.stats.BytesIn += int64(len(b))
	if h.paths != nil {
		// Classified once by package paths: STUN and TURN are its own,
		// checks go to their route, GNS comes back (unwrapped from
		// ChannelData when relayed).
		switch in := h.paths.HandleDatagram(now, from, b); {
		case in.Disposition == paths.Taken:
			h.pathsEventsLocked(now) // a STUN answer may bring a new candidate
			return
		case in.Disposition != paths.GNS || in.Relayed:
			h.pathsInputLocked(now, in)
			return
		}
	}
	kind, id := conn.Classify(b)
	switch kind {
	case conn.KindChallengeRequest:
		if h.listening == InvalidListen && !h.messages.enabled {
			h.stats.Dropped++
			return
		}
		reply, err := h.listener.HandleChallengeRequest(now, from, b, h.scratch)
		if err != nil {
			h.stats.Dropped++
			return
		}
		h.stats.ChallengesAnswered++
		h.queueLocked(from, reply)
	case conn.KindConnectRequest:
		if hc := h.servers[serverKey{from, id}]; hc != nil {
			h.deliverLocked(now, hc, from, b)
			return
		}
		if h.listening == InvalidListen && !h.messages.enabled {
			h.stats.Dropped++
			return
		}
		handle, err := h.newHandleLocked()
		if err != nil {
			h.stats.Dropped++
			return
		}
		c, reply, err := h.listener.HandleConnectRequest(now, from, b, uint32(handle))
		if reply != nil {
			h.queueLocked(from, reply)
		}
		if err != nil {
			h.stats.ConnectsRefused++
			return
		}
		hc := &hostConn{userData: -1, handle: handle, c: c, listen: h.listening, state: StateNone, ready: make(chan struct{}, 1), hidx: -1}
		hc.identity, _ = ParseIdentity(c.RemoteIdentity())
		isMsgs := c.VirtualPort() == messagesVirtualPort
		if isMsgs != h.messages.enabled && (isMsgs || h.listening == InvalidListen) {
			// Nobody here takes this kind of connection: refuse it.
			h.stats.ConnectsRefused++
			c.Close(now, int(EndAppMin), "nobody listens to that virtual port", false)
			hc.handle = InvalidConn // a zombie: it only says goodbye
		}
		h.conns[handle] = hc
		h.servers[serverKey{from, id}] = hc
		if isMsgs && h.messages.enabled && hc.handle != InvalidConn {
			hc.listen = InvalidListen
			h.messages.incomingLocked(now, hc)
		}
		h.pollLocked(now, hc)
	case conn.KindChallengeReply, conn.KindConnectOK, conn.KindConnectionClosed, conn.KindNoConnection, conn.KindData:
		hc := h.conns[ConnHandle(id)]
		if hc == nil {
			h.stats.Dropped++
			if kind == conn.KindConnectionClosed || kind == conn.KindData {
				if reply := h.listener.HandleStray(now, from, b, h.scratch); reply != nil {
					h.queueLocked(from, reply)
				}
			}
			return
		}
		h.deliverLocked(now, hc, from, b)
	default:
		h.stats.Dropped++
	}
}

// deliverLocked gives a datagram to a connection and takes what follows
// from it: messages, state changes, datagrams to send.
func (h *Host) deliverLocked(now time.Time, hc *hostConn, from netip.AddrPort, b []byte) {
	if err := hc.c.HandleDatagram(now, from, b); err != nil {
		h.stats.Dropped++
	}
	if !hc.identity.IsValid() {
		if s := hc.c.RemoteIdentity(); s != "" {
			hc.identity, _ = ParseIdentity(s)
		}
	}
	h.drainLocked(now, hc)
	h.pollLocked(now, hc)
}

// drainLocked moves the connection's completed messages to its queue (or
// its poll group's), at most RecvBufferMessages of them waiting at a time;
// the rest wait in the engine, whose limits then push back on the peer.
func (h *Host) drainLocked(now time.Time, hc *hostConn) {
	limit := h.cfg.RecvBufferMessages
	for hc.queued < limit {
		n := hc.c.Receive(h.msgs[:min(len(h.msgs), limit-hc.queued)])
		if n == 0 {
			return
		}
		for i := range h.msgs[:n] {
			sm := &h.msgs[i]
			if hc.handle == InvalidConn {
				sm.Release() // closed by the application: drop
				continue
			}
			m := newMessage(sm)
			m.Connection = hc.handle
			m.Identity = hc.identity
			m.ReceiverUserData = hc.userData
			m.TimeReceived = now
			if hc.sess != nil {
				h.messages.deliverLocked(now, hc, m)
				*sm = snp.Message{}
				continue
			}
			hc.queued++
			if hc.group != nil {
				hc.group.recv.push(m)
				signal(hc.group.ready)
			} else {
				hc.recv.push(m)
				signal(hc.ready)
			}
			*sm = snp.Message{}
		}
	}
}

// signal wakes a waiter on a capacity-1 channel without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// tookLocked accounts for messages the application took and pulls more
// from the engines they came from.
func (h *Host) tookLocked(ms []*Message) {
	now := h.cfg.Now()
	var last *hostConn
	for _, m := range ms {
		hc := h.conns[m.Connection]
		if hc == nil {
			continue
		}
		hc.queued--
		hc.lastTake = now
		if hc != last && last != nil {
			h.drainLocked(now, last)
		}
		last = hc
	}
	if h.readerWaits && len(ms) > 0 {
		h.readerWaits = false
		signal(h.tookKick)
	}
	if last != nil {
		h.drainLocked(now, last)
		// Taking messages may let the engine ack data it had to refuse.
		h.rescheduleLocked(last)
	}
}

// pollLocked collects the connection's datagrams and events and schedules
// its next wake-up.
func (h *Host) pollLocked(now time.Time, hc *hostConn) {
	if hc.p2p != nil {
		h.p2pRouteLocked(now, hc)
	}
	for {
		i := len(h.out)
		if i == len(h.outBufs) {
			h.outBufs = append(h.outBufs, make([]byte, 0, transport.MaxDatagram))
		}
		if hc.p2p != nil && !hc.c.RemoteAddr().IsValid() && hc.c.State() == conn.StateConnected {
			break // no path yet: data waits in the engine until ICE selects one
		}
		d, ok := hc.c.Poll(now, h.outBufs[i])
		if !ok {
			break
		}
		to := hc.c.RemoteAddr()
		if !to.IsValid() {
			continue // a P2P connection's closing datagram without a path: dropped
		}
		if hc.p2p != nil && hc.p2p.route.Selected().Relayed {
			hc.p2p.route.Send(h.writer(), d) // through our TURN allocation
			continue
		}
		h.out = append(h.out, transport.Packet{Buf: d, N: len(d), Addr: to})
		if len(h.out) == maxBatch {
			h.flushOutLocked()
		}
	}
	for {
		ev, ok := hc.c.NextEvent()
		if !ok {
			break
		}
		h.stateChangedLocked(hc, ev)
	}
	if hc.p2p != nil {
		h.p2pPollLocked(now, hc)
	}
	if st := hc.c.State(); st == conn.StateDead || (hc.handle == InvalidConn && st == conn.StateNone) {
		h.removeLocked(hc)
		return
	}
	h.rescheduleLocked(hc)
}

// stateChangedLocked records a state change and queues the callback.
func (h *Host) stateChangedLocked(hc *hostConn, ev conn.Event) {
	old := hc.state
	hc.state = ConnectionState(ev.State)
	if hc.state == StateClosedByPeer || hc.state == StateProblemDetectedLocally {
		signal(hc.ready) // wake a Receive waiting on a connection that ended
	}
	if hc.sess != nil {
		h.messages.connStateLocked(hc, old)
		return
	}
	if hc.handle == InvalidConn || h.cfg.OnConnectionStatusChanged == nil {
		return
	}
	if hc.state == StateFinWait || hc.state == StateLinger || hc.state == StateDead {
		return // internal states: GNS does not report them
	}
	h.events = append(h.events, statusEvent{ev: ConnStatusChanged{Conn: hc.handle, Info: h.infoLocked(hc), OldState: old}})
	select {
	case h.eventKick <- struct{}{}:
	default:
	}
}

// rescheduleLocked notes the connection's next wake-up and kicks the timer
// if it is sooner than the one it waits for.
func (h *Host) rescheduleLocked(hc *hostConn) {
	w := hc.c.NextWake()
	if hc.p2p != nil {
		w = h.p2pWake(hc, w)
	}
	h.wakes.set(hc, w)
	h.kickTimerLocked(hc.wake)
}

// rescheduleBatchLocked is rescheduleLocked for a send that leaves its
// packets to the timer goroutine: data that could go now waits until
// sendBatchDelay from now (or an earlier wake-up already set) for more to
// join it.
func (h *Host) rescheduleBatchLocked(now time.Time, hc *hostConn) {
	w := hc.c.NextWake()
	if hc.p2p != nil {
		w = h.p2pWake(hc, w)
	}
	if w.IsZero() {
		h.wakes.set(hc, w)
		return
	}
	if d := now.Add(sendBatchDelay); w.Before(d) {
		w = d
	}
	if !hc.wake.IsZero() && hc.wake.Before(w) {
		w = hc.wake // polling early is harmless: it sends what is ready
	}
	h.wakes.set(hc, w)
	h.kickTimerLocked(w)
}

// kickTimerLocked wakes the timer goroutine if w is sooner than the time
// it sleeps until.
func (h *Host) kickTimerLocked(w time.Time) {
	if w.IsZero() || !w.Before(h.timerAt) {
		return
	}
	h.timerAt = w
	select {
	case h.timerKick <- struct{}{}:
	default:
	}
}

// queueLocked adds one datagram (copied) to the outgoing batch.
func (h *Host) queueLocked(to netip.AddrPort, b []byte) { h.queuePrefixedLocked(to, nil, b) }

// queuePrefixedLocked is queueLocked for prefix followed by b. b may be
// the very buffer the datagram goes into (a connection's packet polled
// into the next free one): it is moved up in place.
func (h *Host) queuePrefixedLocked(to netip.AddrPort, prefix, b []byte) {
	i := len(h.out)
	if i == len(h.outBufs) {
		h.outBufs = append(h.outBufs, make([]byte, 0, transport.MaxDatagram))
	}
	n := len(prefix) + len(b)
	buf := h.outBufs[i]
	if cap(buf) < n {
		buf = make([]byte, 0, max(n, transport.MaxDatagram))
	}
	buf = buf[:n]
	copy(buf[len(prefix):], b) // memmove: b may overlap buf
	copy(buf, prefix)
	h.outBufs[i] = buf
	h.out = append(h.out, transport.Packet{Buf: buf, N: len(buf), Addr: to})
	if len(h.out) == maxBatch {
		h.flushOutLocked()
	}
}

// flushOutLocked writes the outgoing batch while holding mu: for a batch
// that filled up in the middle of work done under mu. Ends of critical
// sections use unlockFlush instead, which writes without holding mu.
func (h *Host) flushOutLocked() {
	if len(h.out) == 0 {
		return
	}
	h.writeMu.Lock()
	h.writeLocked(h.out, h.outBufs)
	h.writeMu.Unlock()
	h.out = h.out[:0]
}

// unlockFlush releases mu and then writes the outgoing batch, so that the
// system call does not hold up the application, the reader and the timer.
// The batch is handed over under writeMu, taken before mu is released, so
// batches are written in the order they were made.
func (h *Host) unlockFlush() {
	if len(h.out) == 0 {
		h.mu.Unlock()
		return
	}
	h.writeMu.Lock()
	out, bufs := h.out, h.outBufs
	h.out, h.outBufs = h.spareOut[:0], h.spareBufs
	h.mu.Unlock()
	h.writeLocked(out, bufs)
	h.spareOut, h.spareBufs = out[:0], bufs
	h.writeMu.Unlock()
}

// writeLocked writes a batch; writeMu is held. The counters are atomic
// because unlockFlush runs without mu.
func (h *Host) writeLocked(out []transport.Packet, bufs [][]byte) {
	n, err := h.pc.WriteBatch(out)
	var bytes int64
	for i := range out {
		if i < n {
			bytes += int64(out[i].N)
		}
		bufs[i] = out[i].Buf[:0]
	}
	h.datagramsOut.Add(int64(n))
	h.bytesOut.Add(bytes)
	if err != nil && !errors.Is(err, transport.ErrClosed) {
		h.cfg.Logger.Debug("netmsg: write", "err", err)
	}
}

// timerLoop polls every connection whose wake-up time has come, and sleeps
// until the soonest next one.
func (h *Host) timerLoop() {
	defer h.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		h.mu.Lock()
		now := h.cfg.Now()
		// Every connection due now, each once: polling may leave one
		// due again at once (it sends what pacing allows next), which the
		// next round takes.
		h.dueBuf = h.dueBuf[:0]
		for hc := h.wakes.due(now); hc != nil; hc = h.wakes.due(now) {
			h.wakes.remove(hc)
			hc.wake = time.Time{}
			h.dueBuf = append(h.dueBuf, hc)
		}
		for i, hc := range h.dueBuf {
			h.dueBuf[i] = nil
			if h.conns[ConnHandle(hc.c.LocalID())] != hc {
				continue // removed meanwhile
			}
			h.drainLocked(now, hc)
			h.pollLocked(now, hc)
		}
		next := h.wakes.next()
		if w := h.messages.tickLocked(now); !w.IsZero() && (next.IsZero() || w.Before(next)) {
			next = w
		}
		if h.paths != nil {
			if w := h.paths.Tick(now, h.writer()); !w.IsZero() && (next.IsZero() || w.Before(next)) {
				next = w
			}
		}
		d := time.Hour
		if !next.IsZero() {
			d = max(next.Sub(now), 0)
		}
		h.timerAt = now.Add(d)
		h.unlockFlush()
		t.Reset(d)
		select {
		case <-h.done:
			return
		case <-h.timerKick:
		case <-t.C:
		}
	}
}

// eventLoop runs the callbacks, in order, outside the Host's locks.
func (h *Host) eventLoop() {
	defer h.wg.Done()
	for {
		select {
		case <-h.done:
			return
		case <-h.eventKick:
		}
		for {
			h.mu.Lock()
			evs := h.events
			h.events = nil
			h.mu.Unlock()
			if len(evs) == 0 {
				break
			}
			for _, e := range evs {
				if e.fn != nil {
					e.fn()
				} else {
					h.cfg.OnConnectionStatusChanged(e.ev)
				}
			}
		}
	}
}
