package netmsg

import (
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netmsg-go/netmsg/internal/conn"
	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/fakenet"
	"github.com/netmsg-go/netmsg/internal/ice"
	"github.com/netmsg-go/netmsg/internal/paths"
	"github.com/netmsg-go/netmsg/internal/ptimer"
	"github.com/netmsg-go/netmsg/internal/snp"
	"github.com/netmsg-go/netmsg/internal/udp"
	"github.com/netmsg-go/netmsg/transport"
)

// Host is one netmsg endpoint: one packet socket (a UDP socket, or the
// PacketConn given in Config) carrying any number of encrypted,
// authenticated connections, GNS's ISteamNetworkingSockets for one socket.
// Make one with NewHost; Messages returns its Networking Messages API.
//
// All methods are safe for concurrent use, and connections proceed on
// several cores at once (each connection's datagrams in order). Callbacks
// (Config.OnConnectionStatusChanged, OnSessionRequest, ...) run one at a
// time, in order, on a goroutine of the Host's that holds no lock, so they
// may call the Host. Close ends every goroutine the Host started: a
// reader, one worker per core when there are several (GOMAXPROCS, at most
// 64), a timer (and, on Linux with its own socket, the precise timer's
// goroutine) and the callback goroutine; with Config.Signaling, a signal reader and writer,
// the TURN client's goroutines, and one that follows the STUN and TURN
// servers a signaling service hands out.
type Host struct {
	// What each goroutine does:
	//
	//   - the reader takes batches of datagrams from the socket, sorts
	//     them, handles handshakes, STUN and TURN itself, and hands each
	//     connection's datagrams to the worker of its shard (the shards are
	//     given to connections in turn); a small batch (the reader keeps
	//     up) whose shard's worker has nothing of it left to run, it runs
	//     itself, which spares a handoff (latency); with one core it runs
	//     everything;
	//   - a worker runs its shard's datagrams, in order: decryption, the
	//     SNP engine, message queueing and the acks;
	//   - the timer polls connections whose wake-up time has come, and
	//     ticks the Messages sessions and the paths; the precise timer's
	//     goroutine (internal/ptimer) only wakes it;
	//   - the event goroutine runs the callbacks;
	//   - host_p2p.go's signal reader and writer, internal/paths's TURN
	//     goroutines, host_ice.go's follower.
	//
	// Locks, in the order they are taken (never the reverse):
	//
	//  1. mu, the table lock: the connection table, listen sockets, poll
	//     group table, the P2P, STUN and TURN state and the Messages
	//     session table; and the whole of every P2P connection.
	//  2. hostConn.mu, a direct connection's own lock: its state machine
	//     and engine (decryption and encryption happen under it), its
	//     queues. A goroutine holding mu may take several connection
	//     locks; without mu, at most one at a time.
	//  3. Messages.chMu: the channel table and the sessions' open
	//     channels.
	//  4. a receive queue's (recvQueue) outMu, then its inMu: the ends
	//     of a connection's, poll group's or channel's queue. A receive
	//     takes these alone (and mu, or chMu, a moment before to find the
	//     queue): it never waits for a connection's lock.
	//  5. the leaf locks, under which nothing else is taken: wakeMu (the
	//     wake-up heap), evMu (the callback queue), a connection's
	//     released-message list (msgFree.mu), and writeMu (the socket's
	//     write side).
	//
	// Callbacks and foreign code (pion) never run under any of them.

	cfg      *Config
	pc       transport.PacketConn
	identity Identity
	key      ed25519.PrivateKey
	listener *conn.Listener
	connCfg  conn.Config
	services map[int]service // by virtual port (host_service.go); guarded by mu
	rtc      *rtcState       // WebRTC sessions' machinery, made on first use (host_webrtc.go); guarded by mu
	shards   int             // GOMAXPROCS: the number of workers when more than 1

	mu         sync.Mutex // the table lock: guards every field up to the next group
	closed     bool
	listening  ListenHandle
	conns      map[ConnHandle]*hostConn
	byHandle   sync.Map                // ConnHandle -> *hostConn: conns, readable without mu (lookupConn)
	recent     connCache               // the last connections lookupConn found, by handle (readable without mu)
	nextShard  int                     // the shard the next connection gets
	servers    map[serverKey]*hostConn // server connections by the client's (address, connection id)
	pollGroups map[PollGroup]*pollGroup
	nextListen ListenHandle
	nextGroup  PollGroup
	out        *outBatch // datagrams queued by holders of mu
	spare      *outBatch // the other batch unlockFlush swaps in (guarded by writeMu)
	msgs       []snp.Message
	arena      snp.ArenaSlot // the arena of the engines run under mu (P2P connections)
	scratch    []byte
	stats      HostStats // the counters kept by holders of mu
	refused    refusedLog

	// P2P (host_p2p.go); nil without Config.Signaling. Guarded by mu.
	sigOut      chan signalOut
	sigCancel   context.CancelFunc
	p2pIncoming map[p2pKey]*hostConn // accepted P2P connections by the peer's connection
	p2pListens  p2pListens           // the connection API's P2P listen sockets (host_p2pconn.go)
	paths       *paths.Paths         // the socket's demultiplexing, STUN, TURN and ICE routes (safe for concurrent use)

	wakeMu  sync.Mutex // guards wakes, timerAt and every hostConn's wake fields
	wakes   wakeHeap   // connections by next wake-up
	timerAt time.Time  // when the timer goroutine looks at the connections next
	// timerT is the timer goroutine's timer for waits beyond preciseMax
	// (all waits without a precise timer); a wake-up sooner than timerAt
	// but beyond preciseMax moves it (kickTimerLocked) rather than
	// waking the goroutine. Reset and stopped under wakeMu only.
	timerT *time.Timer

	evMu   sync.Mutex    // guards events
	events []statusEvent // waiting for the event goroutine

	ho halfOpenTable // incoming connections not yet proven (halfopen.go); its own leaf lock

	writeMu sync.Mutex // serializes writes to the socket; guards spare

	fast fastStats // counters of the paths that run without mu
	// clock is Config.Now as Unix nanoseconds, stored by the reader, the
	// workers and the timer each time they read it (once per batch or
	// round): a clock that costs the application's calls nothing, behind
	// the real one by at most the time since the Host last handled
	// anything. It is for bookkeeping that needs no precision
	// (hostConn.lastTake).
	clock        atomic.Int64
	datagramsOut atomic.Int64
	bytesOut     atomic.Int64
	// repliesAwaited is set by a send with SendNoNagle (latency first,
	// awaitReplies) and cleared when a receiver's read brought it a
	// message (readFor): until then a receiver's reads may spin for the
	// answer (readOnce). A receiver of one-way traffic never spins.
	repliesAwaited atomic.Bool

	// The reader and workers wait, for at most readerStall, for the
	// application to take messages from a full queue: takers signal by
	// closing tookCh when someone waits.
	tookMu      sync.Mutex
	tookCh      chan struct{}
	tookWaiters atomic.Int32
	// Senders waiting for room in a send buffer (Send, Messages.Send)
	// wait on roomCh; polling a connection that has room again, or that
	// ended, closes it (and makes a new one) when someone waits.
	roomMu      sync.Mutex
	roomCh      chan struct{}
	roomWaiters atomic.Int32

	role      readRole        // who reads the socket (host_readrole.go)
	workers   []chan *rxBatch // the workers' inboxes, by shard
	inflight  []atomic.Int32  // by shard: batches handed to its worker and not yet run
	rxPool    sync.Pool       // *rxBatch
	workPool  sync.Pool       // *worker, for API calls that poll a connection
	dueBuf    []*hostConn     // the timer goroutine's connections due now
	timerKick chan struct{}   // signalled (cap 1) when a connection must wake before timerAt
	// precise, when not nil, is the timer goroutine's timer for waits
	// up to preciseMax: a Host with its own socket on
	// the real clock (fake time must keep Go's timers) on Linux.
	precise   *ptimer.Timer
	eventKick chan struct{}
	done      chan struct{}
	wg        sync.WaitGroup
}

// fastStats are HostStats counters updated without the table lock.
type fastStats struct {
	datagramsIn, bytesIn, dropped atomic.Int64
	wrongAddr                     atomic.Int64
}

// HostStats counts what a Host's socket saw; it is for tests and
// monitoring.
type HostStats struct {
	DatagramsIn, DatagramsOut int64
	SignalsDropped            int64 // P2P signals that could not be sent, or were malformed, forged or for no connection
	BytesIn, BytesOut         int64
	Dropped                   int64 // datagrams dropped (malformed, unknown connection, refused), and messages a peer sent on a channel beyond the Messages layer's bound (65,536 channels)
	HalfOpenRefused           int64 // connect requests and session requests refused by Config.Limits
	WrongAddr                 int64 // datagrams for a connection from an address that is not its peer's (a forged close, say): dropped, also in Dropped
	ChallengesAnswered        int64
	ConnectsRefused           int64
	ConnectsDropped           int64 // connect requests a service did not take (the losing side of a symmetric connect), dropped without a reply or any state, so the peer's next attempt is judged afresh
	ICERestarts               int64 // P2P connections whose ICE started over (symmetric connect turned them into the accepting side)
}

type serverKey struct {
	addr netip.AddrPort
	id   uint32
}

// hostConn is the Host's record of one connection.
//
// A direct connection's fields are guarded by its mu, except that handle,
// sess, state and listen are written with both the Host's mu and the
// connection's held, so either lock is enough to read them; wake, wakeNs
// and hidx are the Host's wakeMu's. A P2P connection (c.IsP2P(), fixed at
// creation) is guarded by the Host's mu instead, and its own mu is not
// used (see lockConn).
type hostConn struct {
	mu       sync.Mutex
	handle   ConnHandle
	c        *conn.Conn
	listen   ListenHandle
	userData int64
	identity Identity
	state    ConnectionState
	removed  bool         // taken out of the table: paths that found it before must leave it
	unlisted atomic.Bool  // removed, for lookupConn, which reads it without a lock
	recv     recvQueue    // its messages when not in a poll group
	queued   atomic.Int32 // messages of this connection waiting in recv, its group's or a channel's
	group    *pollGroup
	wake     time.Time    // next wake-up (zero: none); change it with wakes.set
	wakeNs   int64        // wake as Unix nanoseconds, the heap's key
	hidx     int          // index in Host.wakes, -1 when not in it
	wakeAt   atomic.Int64 // wakeNs while in Host.wakes, else 0: readable without wakeMu
	svc      service      // the service (by virtual port) that owns this connection, or nil
	sess     *session     // the Messages layer's session on this connection (its own field; the Host does not read it)
	p2p      *p2pConn     // the signaling and ICE of a P2P connection, or nil
	lastTake atomic.Int64 // Host.clock when the application last took messages of this connection
	ho       halfOpenMark // its place in Host.ho while half-open
	// held is set while the engine holds completed messages that drainConn
	// left there because recv (or its group's, or a channel's queue) held
	// RecvBufferMessages: a take must then pull them (took's slow path).
	held atomic.Bool
	// roomWaiters counts the senders waiting for room in this
	// connection's send buffer (Host.awaitRoom).
	roomWaiters atomic.Int32
	// shard is the worker that runs the connection's datagrams (set when
	// it enters the table, then fixed).
	shard int
	// Released Messages (host_msg.go): free is filled by Release, spare
	// (guarded with the connection's state) is what newMessage takes.
	free  msgFree // written by the application's goroutines
	_     cacheLinePad
	spare *[]*Message
	// outBy is the batch that holds this direct connection's packets
	// that are not written yet (nil: none), so that they leave in the
	// order they were numbered: while one batch holds some, no other
	// goroutine polls the connection (outBatch.mayPoll). Set with the
	// connection's lock held, cleared by the batch's writer.
	outBy atomic.Pointer[outBatch]
	// repoll is set by a goroutine that did not poll the connection
	// because outBy was another batch; that batch's writer polls it
	// once the batch is written.
	repoll atomic.Bool
}

// lockConn takes hc's lock for a holder of the Host's mu: a direct
// connection's own mu (a P2P connection is guarded by the Host's mu
// already).
func lockConn(hc *hostConn) {
	if !hc.c.IsP2P() {
		hc.mu.Lock()
	}
}

// unlockConn releases what lockConn took.
func unlockConn(hc *hostConn) {
	if !hc.c.IsP2P() {
		hc.mu.Unlock()
	}
}

// PollGroup names a set of connections whose messages are received together
// (GNS's HSteamNetPollGroup). The zero value names none. PollGroups count
// up from 1 per Host, so a value does not come back after
// DestroyPollGroup unless 2^32 poll groups have been made on the Host.
type PollGroup uint32

type pollGroup struct {
	recv recvQueue
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
	h.evMu.Lock()
	h.events = append(h.events, statusEvent{fn: fn})
	h.evMu.Unlock()
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

	// preciseMax bounds the timer goroutine's waits that use the precise
	// timer (internal/ptimer): Go's runtime waits for its timers with a
	// millisecond timeout, so a 250 µs wait (the tail-loss probe on
	// loopback, ptoMin) often ends a millisecond late, and so does what is
	// left of one when the goroutine woke for something else first (with
	// only waits from 100 µs on the precise timer, W6b's p95-p97 sat at
	// 1.3 ms); longer waits lose little to the lateness.
	preciseMax = 2 * time.Millisecond
)

// NewHost opens a Host: it fills and checks cfg, opens the socket (or takes
// cfg.PacketConn) and starts the Host's goroutines.
func NewHost(cfg Config) (*Host, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if c.Certificate != nil {
		// GNS will not present an expired certificate: fail here, not at
		// every peer (which would end each connection with 4003).
		if err := CheckCertificateTime(c.Certificate, c.Now()); err != nil && !c.presentExpired {
			return nil, fmt.Errorf("netmsg: Config.Certificate: %w", err)
		}
		// GNS's SetCertificate: the host takes its identity from its
		// certificate, or refuses one that names another identity.
		id, k, err := ownCertificate(c.Identity, c.PrivateKey, c.AppID, c.Certificate)
		if err != nil {
			return nil, err
		}
		c.Identity, c.PrivateKey = id, k
	}
	if sc, ok := c.Signaling.(interface{ Identity() string }); ok && sc.Identity() != "" {
		// One identity: the signaling client's is the Host's.
		sid, err := ParseIdentity(sc.Identity())
		if err != nil {
			return nil, fmt.Errorf("netmsg: the signaling client's identity: %w", err)
		}
		switch {
		case !c.Identity.IsValid():
			c.Identity = sid
		case c.Identity != sid:
			return nil, fmt.Errorf("%w: Config.Identity is %v but the signaling client is registered as %v: peers would signal one and reach the other", ErrBadConfig, c.Identity, sid)
		}
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
		services:   map[int]service{},
		conns:      make(map[ConnHandle]*hostConn),
		servers:    make(map[serverKey]*hostConn),
		pollGroups: make(map[PollGroup]*pollGroup),
		scratch:    make([]byte, 0, transport.MaxDatagram),
		msgs:       make([]snp.Message, 64),
		out:        new(outBatch),
		spare:      new(outBatch),
		timerKick:  make(chan struct{}, 1),
		tookCh:     make(chan struct{}),
		roomCh:     make(chan struct{}),
		eventKick:  make(chan struct{}, 1),
		done:       make(chan struct{}),
		shards:     min(max(1, runtime.GOMAXPROCS(0)), maxShards),
	}
	h.role.init(pc)
	h.rxPool.New = func() any { return newRxBatch() }
	h.workPool.New = func() any { return newWorker() }
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
			return parseIdentityGNS(s)
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
	if cfg.PacketConn == nil && cfg.Now == nil {
		h.precise, _ = ptimer.New() // nil (Go's timers) where unsupported
	}
	h.wg.Add(3)
	go h.readLoop()
	go h.timerLoop()
	go h.eventLoop()
	h.inflight = make([]atomic.Int32, h.shards)
	if h.shards > 1 {
		for s := range h.shards {
			in := make(chan *rxBatch, workerQueue)
			h.workers = append(h.workers, in)
			h.wg.Add(1)
			go h.workLoop(s, in)
		}
	}
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
		// The Messages layer's header rides on top of the payload limits,
		// which count payload only (the connection API checks its own).
		RecvMaxMessageSize: cc.RecvMaxMessageSize + msgHeaderLen,
		MaxMessageSize:     cc.MaxMessageSize + msgHeaderLen,
	}
}

// laneConfig maps the API's lanes onto the engine's.
func laneConfig(lanes []Lane) []snp.Lane {
	if lanes == nil {
		return nil
	}
	out := make([]snp.Lane, len(lanes))
	for i, l := range lanes {
		out[i] = snp.Lane{Priority: l.Priority, Weight: l.Weight}
	}
	return out
}

// mtuOverhead is what a data packet adds to its SNP payload: the 7-byte
// header, room for an inline stats blob, and the 16-byte GCM tag (GNS
// budgets the same way from MTU_PacketSize).
const mtuOverhead = 7 + 32 + 16

// Identity returns the identity peers know this Host by: the one it was
// given (Config.Identity, its certificate's, or its signaling client's).
// A Host given none presents the anonymous localhost identity in its
// handshakes, as GNS does, and peers then know it by its address: Identity
// returns that, "ip:" and the socket's address, when the socket is bound
// to one. On a socket bound to every interface (0.0.0.0, ::) the address
// depends on the peer's route, so Identity returns the localhost identity
// (ip:::1); IdentityFromAddr of the address a peer reaches gives the rest.
func (h *Host) Identity() Identity {
	if h.identity.IsLocalhost() {
		if a := h.pc.LocalAddr(); a.IsValid() && !a.Addr().IsUnspecified() {
			if id, err := IdentityFromAddr(a); err == nil {
				return id
			}
		}
	}
	return h.identity
}

// LocalAddr returns the address of the Host's socket.
func (h *Host) LocalAddr() netip.AddrPort { return h.pc.LocalAddr() }

// Stats returns the Host's socket counters.
func (h *Host) Stats() HostStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	st := h.stats
	st.DatagramsIn += h.fast.datagramsIn.Load()
	st.BytesIn += h.fast.bytesIn.Load()
	st.Dropped += h.fast.dropped.Load()
	st.WrongAddr += h.fast.wrongAddr.Load()
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
		lockConn(hc)
		hc.c.Close(now, int(EndAppMin), "host closed", false)
		h.pollLocked(now, hc)
		unlockConn(hc)
	}
	h.closeWebLocked()
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
	h.role.unwatch()
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
	if h.closeP2PListenLocked(l) {
		return true
	}
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
	return h.ConnectWith(addr, ConnConfig{})
}

// ConnectWith is Connect with the connection's own settings: cc's zero
// fields take the Host's (Config's) values; FakeSend and FakeRecv must be
// zero (they are the Host's socket's). It returns an error wrapping
// ErrBadConfig for an invalid cc.
func (h *Host) ConnectWith(addr netip.AddrPort, cc ConnConfig) (ConnHandle, error) {
	own, err := h.connSettings(cc)
	if err != nil {
		return InvalidConn, err
	}
	if !addr.IsValid() {
		return InvalidConn, fmt.Errorf("netmsg: connect: bad address %v: %w", addr, ResultInvalidParam)
	}
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if id, err := IdentityFromAddr(addr); err != nil {
		return InvalidConn, fmt.Errorf("netmsg: connect: %w", err)
	} else if err := id.CheckTarget(); err != nil {
		return InvalidConn, fmt.Errorf("netmsg: connect: %w", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return InvalidConn, ErrHostClosed
	}
	hc, err := h.connectWithLocked(h.cfg.Now(), addr, 0, own)
	if err != nil {
		return InvalidConn, err
	}
	h.flushOutLocked()
	return hc.handle, nil
}

// connectLocked dials addr with virtual port vport (0: a plain connection)
// and queues the first datagram.
func (h *Host) connectLocked(now time.Time, addr netip.AddrPort, vport int) (*hostConn, error) {
	return h.connectWithLocked(now, addr, vport, nil)
}

// connectWithLocked is connectLocked for a connection with its own
// settings (nil: the Host's).
func (h *Host) connectWithLocked(now time.Time, addr netip.AddrPort, vport int, own *conn.Settings) (*hostConn, error) {
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
	if own != nil {
		if err := c.Configure(*own); err != nil {
			return nil, fmt.Errorf("netmsg: connect: %v: %w", err, ErrBadConfig)
		}
	}
	hc := &hostConn{userData: -1, handle: handle, c: c, state: StateNone, recv: recvQueue{ready: make(chan struct{}, 1)}, hidx: -1}
	h.addConnLocked(handle, hc)
	lockConn(hc)
	h.pollLocked(now, hc)
	unlockConn(hc)
	return hc, nil
}

// connLocked returns the connection the application knows as c, or nil.
func (h *Host) connLocked(c ConnHandle) *hostConn {
	if hc := h.conns[c]; hc != nil && hc.handle == c && hc.svc == nil {
		return hc
	}
	return nil
}

// newHandleLocked picks a random, unused connection handle whose low 16
// bits are not 0; it is also the connection id on the wire, as in GNS.
func (h *Host) newHandleLocked() (ConnHandle, error) {
	var b [4]byte
	for range 100 {
		if _, err := io.ReadFull(h.cfg.Rand, b[:]); err != nil {
			return InvalidConn, fmt.Errorf("netmsg: connection id: %w", err)
		}
		id := ConnHandle(binary.LittleEndian.Uint32(b[:]))
		// A connection id's low 16 bits must not be 0: a GNS client
		// (and ours) ends a connection whose server sends such an id
		// ("Didn't send valid connection ID"), one in 65,536 before.
		if id&0xffff != 0 && h.conns[id] == nil {
			return id, nil
		}
	}
	return InvalidConn, fmt.Errorf("netmsg: no free connection id: %w", ResultLimitExceeded)
}

// AcceptConnection accepts an incoming connection in state Connecting
// (GNS's AcceptConnection).
func (h *Host) AcceptConnection(c ConnHandle) error {
	return h.AcceptConnectionWith(c, ConnConfig{})
}

// AcceptConnectionWith is AcceptConnection with the connection's own
// settings, as ConnectWith takes them.
func (h *Host) AcceptConnectionWith(c ConnHandle, cc ConnConfig) error {
	own, err := h.connSettings(cc)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	hc := h.connLocked(c)
	if hc == nil {
		return ErrNoSuchConn
	}
	now := h.cfg.Now()
	lockConn(hc)
	defer unlockConn(hc)
	if own != nil {
		if err := hc.c.Configure(*own); err != nil {
			return fmt.Errorf("netmsg: accept: %v: %w", err, ErrBadConfig)
		}
	}
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
	if len(data) > h.cfg.MaxMessageSize {
		return 0, fmt.Errorf("netmsg: message of %d bytes over the %d limit: %w", len(data), h.cfg.MaxMessageSize, ResultInvalidParam)
	}
	h.mu.Lock()
	hc := h.connLocked(c)
	if hc == nil {
		h.mu.Unlock()
		return 0, ErrNoSuchConn
	}
	if hc.c.IsP2P() {
		defer h.unlockFlush()
		return h.sendConnLocked(hc, lane, data, flags)
	}
	h.mu.Unlock()
	hc.mu.Lock()
	if hc.removed || hc.handle != c {
		hc.mu.Unlock()
		return 0, ErrNoSuchConn
	}
	now := h.cfg.Now()
	num, err := hc.c.Send(now, lane, data, snp.SendFlags(flags&(SendReliable|SendNoNagle|SendNoDelay)))
	if err != nil {
		err = h.sendErr(hc, err)
		hc.mu.Unlock()
		return 0, err
	}
	h.afterSend(now, hc, flags)
	return num, nil
}

// sendConnLocked is send for a connection guarded by mu (P2P).
func (h *Host) sendConnLocked(hc *hostConn, lane int, data []byte, flags SendFlags) (int64, error) {
	now := h.cfg.Now()
	num, err := hc.c.Send(now, lane, data, snp.SendFlags(flags&(SendReliable|SendNoNagle|SendNoDelay)))
	if err != nil {
		return 0, h.sendErr(hc, err)
	}
	if flags&SendNoNagle != 0 {
		h.awaitReplies()
		h.pollLocked(now, hc)
	} else {
		h.rescheduleBatchLocked(now, hc)
	}
	return num, nil
}

// awaitReplies notes a send with SendNoNagle: the application likely
// waits for an answer (repliesAwaited). The flag is read first, so that
// a run of sends does not write the Host's shared cache line each time.
func (h *Host) awaitReplies() {
	if !h.repliesAwaited.Load() {
		h.repliesAwaited.Store(true)
	}
}

// afterSend sends or schedules what a send queued on hc, a direct
// connection whose mu the caller holds, and releases that lock.
func (h *Host) afterSend(now time.Time, hc *hostConn, flags SendFlags) {
	if flags&SendNoNagle == 0 {
		// Throughput first: the timer goroutine sends what is due, at
		// most sendBatchDelay from now, so that several packets go out
		// in one batch (one sendmmsg, or one GSO super-datagram).
		h.rescheduleBatchLocked(now, hc)
		hc.mu.Unlock()
		return
	}
	// Latency first: build and write the packet on the caller's
	// goroutine.
	h.awaitReplies()
	w := h.workPool.Get().(*worker)
	slow := h.pollFast(w, now, hc)
	hc.mu.Unlock()
	h.flushWorker(w)
	h.workPool.Put(w)
	if slow {
		h.pollSlow(now, hc)
	}
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
	lockConn(hc)
	hc.c.Flush(now)
	h.pollLocked(now, hc)
	unlockConn(hc)
	h.flushOutLocked()
	return nil
}

// ReceiveMessagesOnConnection returns up to max messages received on c,
// oldest first, without blocking (nil when there are none). The caller owns
// them; calling Release on each when done lets the Host reuse its buffers.
func (h *Host) ReceiveMessagesOnConnection(c ConnHandle, max int) []*Message {
	if max <= 0 {
		return nil
	}
	_, ms, _ := h.takeConn(c, max)
	return ms
}

// takeConn takes up to max messages from c's queue, and returns c's
// record (nil when unknown). With no message, err is ResultNoConnection
// when c is unknown or in a poll group, a *ConnError when it ended with
// nothing left to read, and nil otherwise.
func (h *Host) takeConn(c ConnHandle, max int) (hc *hostConn, ms []*Message, err error) {
	hc = h.lookupConn(c)
	if hc == nil {
		return nil, nil, ResultNoConnection
	}
	var runs tookRuns
	ms, err = hc.recv.take(max, &runs)
	h.took(&runs)
	if len(ms) == 0 && err == nil {
		err = h.connEnded(hc, c)
	}
	return hc, ms, err
}

// lookupConn returns the connection in the table under c, without mu,
// or nil: for the receive calls, which ask connEnded (under the locks)
// whether the application may still use c once they find no message.
func (h *Host) lookupConn(c ConnHandle) *hostConn {
	slot := h.recent.slot(c)
	if hc := slot.Load(); hc != nil && ConnHandle(hc.c.LocalID()) == c && !hc.unlisted.Load() {
		return hc
	}
	v, ok := h.byHandle.Load(c)
	if !ok {
		return nil
	}
	hc := v.(*hostConn)
	slot.Store(hc)
	if hc.unlisted.Load() {
		// removeLocked cleared the slot before this Store: clear it again,
		// so that a stale entry never outlives the lookup that saw it.
		slot.CompareAndSwap(hc, nil)
	}
	return hc
}

// connCache is a direct-mapped cache of the connection table, by the low
// bits of the handle (random): a receive loop calls lookupConn once per
// message, and this costs two loads where byHandle (a sync.Map) hashes an
// interface and walks a trie. An entry is a connection that was in the
// table; lookupConn takes it only while it is not unlisted, and
// removeLocked unlists a connection before clearing its entry.
type connCache [256]atomic.Pointer[hostConn]

func (cc *connCache) slot(c ConnHandle) *atomic.Pointer[hostConn] {
	return &cc[uint32(c)%uint32(len(cc))]
}

// addConnLocked puts hc in the table under handle and gives it a shard,
// the shards in turn, so that the workers get as many connections each;
// mu is held.
func (h *Host) addConnLocked(handle ConnHandle, hc *hostConn) {
	h.conns[handle] = hc
	h.byHandle.Store(handle, hc)
	hc.shard = h.nextShard
	h.nextShard = (h.nextShard + 1) % h.shards
}

// connEnded is the error of a receive that found nothing on hc, known to
// the application as c: ResultNoConnection once c is gone, a *ConnError
// once the connection ended, nil while it may still bring messages.
func (h *Host) connEnded(hc *hostConn, c ConnHandle) error {
	if hc.c.IsP2P() {
		h.mu.Lock()
		defer h.mu.Unlock()
	} else {
		hc.mu.Lock()
		defer hc.mu.Unlock()
	}
	if hc.removed || hc.handle != c || hc.svc != nil {
		return ResultNoConnection
	}
	if hc.state == StateClosedByPeer || hc.state == StateProblemDetectedLocally {
		return h.connErr(hc)
	}
	return nil
}

// Receive waits for the next message on c: the blocking form of
// ReceiveMessagesOnConnection that Go servers want. It returns ctx's error
// when ctx ends first; an error matching ResultNoConnection when c is
// unknown or in a poll group, and a *ConnError (which matches it too) with
// the end reason when c ended with nothing left to read.
func (h *Host) Receive(ctx context.Context, c ConnHandle) (*Message, error) {
	hc := h.lookupConn(c)
	if hc == nil {
		return nil, ResultNoConnection
	}
	var (
		m   *Message
		err error
	)
	if werr := h.await(ctx, &hc.recv, func() bool {
		var runs tookRuns
		m, err = hc.recv.take1(&runs)
		h.took(&runs)
		if m == nil && err == nil {
			err = h.connEnded(hc, c)
		}
		return m != nil || err != nil
	}); werr != nil {
		return nil, werr
	}
	return m, err
}

// ReceiveBatch is Receive for up to max messages at once (oldest first): a
// server that wants to handle what arrived together takes it in one call.
// The slice is the caller's to keep.
func (h *Host) ReceiveBatch(ctx context.Context, c ConnHandle, max int) ([]*Message, error) {
	if max <= 0 {
		return nil, fmt.Errorf("netmsg: receive: max %d: %w", max, ResultInvalidParam)
	}
	hc := h.lookupConn(c)
	if hc == nil {
		return nil, ResultNoConnection
	}
	var (
		ms  []*Message
		err error
	)
	if werr := h.await(ctx, &hc.recv, func() bool {
		var runs tookRuns
		ms, err = hc.recv.take(max, &runs)
		h.took(&runs)
		if len(ms) == 0 && err == nil {
			err = h.connEnded(hc, c)
		}
		return len(ms) > 0 || err != nil
	}); werr != nil {
		return nil, werr
	}
	return ms, err
}

// ReceiveOnPollGroup waits for the next message on any connection of g:
// the blocking form of ReceiveMessagesOnPollGroup. It returns ctx's error
// when ctx ends first and ResultInvalidParam for an unknown group.
func (h *Host) ReceiveOnPollGroup(ctx context.Context, g PollGroup) (*Message, error) {
	pg, err := h.pollGroup(g)
	if err != nil {
		return nil, err
	}
	var m *Message
	if err := h.await(ctx, &pg.recv, func() bool {
		var runs tookRuns
		m, _ = pg.recv.take1(&runs)
		h.took(&runs)
		return m != nil
	}); err != nil {
		return nil, err
	}
	return m, nil
}

// ReceiveBatchOnPollGroup is ReceiveOnPollGroup for up to max messages at
// once.
func (h *Host) ReceiveBatchOnPollGroup(ctx context.Context, g PollGroup, max int) ([]*Message, error) {
	if max <= 0 {
		return nil, fmt.Errorf("netmsg: receive: max %d: %w", max, ResultInvalidParam)
	}
	pg, err := h.pollGroup(g)
	if err != nil {
		return nil, err
	}
	var ms []*Message
	if err := h.await(ctx, &pg.recv, func() bool {
		ms = h.takeGroup(pg, max)
		return len(ms) > 0
	}); err != nil {
		return nil, err
	}
	return ms, nil
}

// pollGroup returns poll group g.
func (h *Host) pollGroup(g PollGroup) (*pollGroup, error) {
	h.mu.Lock()
	pg := h.pollGroups[g]
	h.mu.Unlock()
	if pg == nil {
		return nil, fmt.Errorf("netmsg: no poll group %d: %w", g, ResultInvalidParam)
	}
	return pg, nil
}

// takeGroup takes up to max messages from pg's queue.
func (h *Host) takeGroup(pg *pollGroup, max int) []*Message {
	var runs tookRuns
	ms, _ := pg.recv.take(max, &runs)
	h.took(&runs)
	return ms
}

// CreatePollGroup returns a new, empty poll group.
func (h *Host) CreatePollGroup() PollGroup {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.nextGroup++
	h.pollGroups[h.nextGroup] = &pollGroup{recv: recvQueue{ready: make(chan struct{}, 1)}}
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
		lockConn(hc)
		if hc.group == pg {
			hc.group = nil
			hc.recv.outMu.Lock()
			hc.recv.refuse = nil
			hc.recv.outMu.Unlock()
		}
		unlockConn(hc)
	}
	pg.recv.outMu.Lock()
	pg.recv.refuse = fmt.Errorf("netmsg: poll group %d destroyed: %w", g, ResultInvalidParam)
	pg.recv.outMu.Unlock()
	pg.recv.wake()
	out, in := pg.recv.takeAll()
	for _, m := range out {
		m.Release()
	}
	for _, m := range in {
		if m.conn != nil {
			m.conn.queued.Add(-1)
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
	lockConn(hc)
	defer unlockConn(hc)
	hc.recv.outMu.Lock()
	hc.recv.refuse = nil
	if pg != nil {
		hc.recv.refuse = ResultNoConnection // GNS: messages of a connection in a poll group go to the group
	}
	hc.recv.outMu.Unlock()
	hc.recv.wake() // a Receive waiting on c sees the change
	if hc.group == nil && pg != nil {
		// The messages waiting on c join the group's, counted again as
		// waiting (those a receive had moved out were counted as taken).
		out, in := hc.recv.takeAll()
		hc.queued.Add(int32(len(out)))
		pg.recv.inMu.Lock()
		for _, m := range out {
			pg.recv.in.push(m)
		}
		for _, m := range in {
			pg.recv.in.push(m)
		}
		pg.recv.inMu.Unlock()
		pg.recv.wake()
	}
	hc.group = pg
	return true
}

// ReceiveMessagesOnPollGroup returns up to max messages received on the
// connections of g, in arrival order, without blocking.
func (h *Host) ReceiveMessagesOnPollGroup(g PollGroup, max int) []*Message {
	h.mu.Lock()
	pg := h.pollGroups[g]
	h.mu.Unlock()
	if pg == nil || max <= 0 {
		return nil
	}
	return h.takeGroup(pg, max)
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
	lockConn(hc)
	defer unlockConn(hc)
	hc.c.Close(now, int(reason), debug, linger)
	h.pollLocked(now, hc)
	h.flushOutLocked()
	hc.recv.drop()
	hc.queued.Store(0)
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
// messages). mu and hc's lock are held.
func (h *Host) forgetHandleLocked(hc *hostConn) {
	hc.group = nil
	hc.recv.wake() // a Receive waiting on the handle finds it gone
	if st := ConnectionState(hc.c.State()); st == StateDead || st == StateNone {
		h.removeLocked(hc)
		return
	}
	hc.handle = InvalidConn // a zombie: reachable only by the packet path
}

// removeLocked takes hc out of the table; mu and hc's lock are held.
func (h *Host) removeLocked(hc *hostConn) {
	hc.removed = true
	h.halfOpenUpdate(hc)
	h.wakeMu.Lock()
	h.wakes.remove(hc)
	h.wakeMu.Unlock()
	h.removeP2PLocked(hc)
	id := ConnHandle(hc.c.LocalID())
	if h.conns[id] == hc {
		delete(h.conns, id)
		hc.unlisted.Store(true)
		h.byHandle.Delete(id)
		h.recent.slot(id).CompareAndSwap(hc, nil)
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
	lockConn(hc)
	hc.userData = v
	unlockConn(hc)
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
	lockConn(hc)
	defer unlockConn(hc)
	return h.infoLocked(hc), nil
}

// infoLocked is hc's ConnectionInfo; mu and hc's lock are held.
func (h *Host) infoLocked(hc *hostConn) ConnectionInfo {
	st := apiState(hc, ConnectionState(hc.c.State()))
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
	lockConn(hc)
	defer unlockConn(hc)
	return h.statusLocked(hc), nil
}

func (h *Host) statusLocked(hc *hostConn) RealTimeStatus {
	s := hc.c.Stats(h.cfg.Now())
	ping := time.Duration(-1)
	if s.Ping >= 0 {
		ping = time.Duration(s.Ping) * time.Millisecond
	}
	return RealTimeStatus{
		State:                   apiState(hc, ConnectionState(hc.c.State())),
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

// rxBatch is one batch of datagrams read from the socket, with the
// connection each is for (nil: handled by the reader under mu).
type rxBatch struct {
	pkts  []transport.Packet
	conns []*hostConn
	shard []int        // the shard of each datagram with a connection
	refs  atomic.Int32 // goroutines still using the batch
}

func newRxBatch() *rxBatch {
	b := &rxBatch{pkts: make([]transport.Packet, maxBatch), conns: make([]*hostConn, maxBatch), shard: make([]int, maxBatch)}
	for i := range b.pkts {
		b.pkts[i].Buf = make([]byte, transport.MaxDatagram)
	}
	return b
}

// worker is the scratch of a goroutine that runs direct connections
// without mu: its outgoing batch and a buffer for the engine's messages.
type worker struct {
	out  outBatch
	msgs []snp.Message
	wake []*recvQueue // queues that gained messages in its batches, to wake (wakeHeld)
	// arena is the one the engines this goroutine runs copy small
	// messages into (snp.ArenaSlot).
	arena snp.ArenaSlot
	// own is the queue of the receiver that runs this worker with the
	// role of reading (host_readrole.go), nil otherwise: its pushes need
	// not interrupt its read, and it never waits for an application to
	// take messages (it may be that application).
	own *recvQueue
	// held counts the batches run since the queues in wake were last
	// woken (runBatch's hold).
	held int
}

func newWorker() *worker { return &worker{msgs: make([]snp.Message, 64)} }

// maxShards bounds the workers (a batch's shards are bits of a uint64).
const maxShards = 64

// inlineBatch is the largest batch whose datagrams the reader runs itself
// when their shards' workers are idle.
const inlineBatch = maxBatch / 4

// workQueue bounds the batches waiting for a worker; the reader waits
// when it is full (the socket's receive buffer holds what comes
// meanwhile).
const workerQueue = 8

// workLoop runs shard's share of the datagrams the reader hands over.
func (h *Host) workLoop(shard int, in chan *rxBatch) {
	defer h.wg.Done()
	w := newWorker()
	stall := time.NewTimer(time.Hour)
	stall.Stop()
	for {
		select {
		case <-h.done:
			return
		case rb := <-in:
			h.runBatch(w, rb, len(rb.pkts), shard, stall, len(in) > 0)
			h.inflight[shard].Add(-1)
			h.releaseBatch(rb)
		}
	}
}

func (h *Host) releaseBatch(rb *rxBatch) {
	if rb.refs.Add(-1) == 0 {
		clear(rb.conns)
		h.rxPool.Put(rb)
	}
}

// sortLocked takes a datagram the reader read. It returns the connection
// a GNS datagram that names one (handshake replies, closes, data) is for,
// to be run by that connection's shard; it handles everything else itself
// (package paths sorts out STUN, TURN and relayed datagrams; connect
// requests, unknown connections) and returns nil. The data of a P2P
// connection that came through our TURN allocation is returned too, p
// made into the GNS datagram it carried (the ChannelData header cut, the
// peer's address behind the relay as its source), so that it waits for a
// reading application (runBatch) as direct data does rather than being
// discarded by the engine when the receive queue is full.
func (h *Host) sortLocked(now time.Time, p *transport.Packet) *hostConn {
	from, b := p.Addr, p.Bytes()
	if h.paths != nil {
		// Classified once by package paths: STUN and TURN are its own,
		// checks go to their route, GNS comes back (unwrapped from
		// ChannelData when relayed).
		switch in := h.paths.HandleDatagram(now, from, b); {
		case in.Disposition == paths.Taken:
			h.countInLocked(b)
			h.pathsEventsLocked(now) // a STUN answer may bring a new candidate
			return nil
		case in.Disposition == paths.GNS && in.Relayed:
			if kind, id := conn.Classify(in.B); kind == conn.KindData {
				if hc := h.conns[ConnHandle(id)]; hc != nil && hc.p2p != nil {
					p.N = copy(p.Buf, in.B)
					p.Addr = in.From
					return hc
				}
			}
			h.countInLocked(b)
			h.pathsInputLocked(now, in)
			return nil
		case in.Disposition != paths.GNS:
			h.countInLocked(b)
			h.pathsInputLocked(now, in)
			return nil
		}
	}
	kind, id := conn.Classify(b)
	switch kind {
	case conn.KindChallengeReply, conn.KindConnectOK, conn.KindConnectionClosed, conn.KindNoConnection, conn.KindData:
		if hc := h.conns[ConnHandle(id)]; hc != nil {
			return hc
		}
	}
	h.countInLocked(b)
	h.handleGNSLocked(now, from, b)
	return nil
}

// countInLocked counts a datagram the reader handles under mu.
func (h *Host) countInLocked(b []byte) {
	h.stats.DatagramsIn++
	h.stats.BytesIn += int64(len(b))
}

// runBatch handles the datagrams of rb[:n] that are shard's, in order, and
// writes what they made the connections send. With more set (another
// batch waits for this worker), the receivers whose queues gained
// messages are woken after that batch instead, up to maxHeld batches:
// under load, a receiver then wakes once for several batches' messages,
// rather than a goroutine switch (and, with several connections, the
// displacement of the reader the worker just unblocked) per batch.
func (h *Host) runBatch(w *worker, rb *rxBatch, n int, shard int, stall *time.Timer, more bool) {
	now := h.cfg.Now()
	h.clock.Store(now.UnixNano())
	var count, bytes int64 // added to the Host's counters once per batch
	for i := range rb.pkts[:n] {
		hc := rb.conns[i]
		if hc == nil || rb.shard[i] != shard {
			continue
		}
		p := &rb.pkts[i]
		count++
		bytes += int64(p.N)
		if hc.c.IsP2P() {
			h.mu.Lock()
			if !hc.removed {
				if w.own == nil && h.recvFullConn(hc) && now.Sub(time.Unix(0, hc.lastTake.Load())) <= activeReceiver {
					now = h.waitTakeLocked(now, hc, stall)
				}
				h.deliverLocked(now, hc, p.Addr, p.Bytes())
			}
			h.unlockFlush()
			continue
		}
		hc.mu.Lock()
		if hc.removed {
			hc.mu.Unlock()
			h.fast.dropped.Add(1)
			continue
		}
		if w.own == nil && h.recvFullConn(hc) && now.Sub(time.Unix(0, hc.lastTake.Load())) <= activeReceiver {
			h.wakeHeld(w)
			h.write(&w.out)
			now = h.waitTake(now, hc, stall)
		}
		hc.c.UseArena(&w.arena)
		err := hc.c.HandleDatagram(now, p.Addr, p.Bytes())
		hc.c.UseArena(nil)
		if err != nil {
			h.fast.dropped.Add(1)
			if errors.Is(err, conn.ErrWrongAddr) {
				h.fast.wrongAddr.Add(1)
			}
		}
		h.halfOpenUpdate(hc)
		if !hc.identity.IsValid() {
			if s := hc.c.RemoteIdentity(); s != "" {
				hc.identity, _ = parseIdentityGNS(s)
			}
		}
		h.drainConn(w.msgs, now, hc, &w.wake)
		slow := h.pollFast(w, now, hc)
		hc.mu.Unlock()
		if slow {
			h.wakeHeld(w)
			h.flushWorker(w)
			h.pollSlow(now, hc)
		}
	}
	if w.held++; !more || w.held >= maxHeld {
		h.wakeHeld(w)
	}
	h.fast.datagramsIn.Add(count)
	h.fast.bytesIn.Add(bytes)
	h.flushWorker(w)
}

// maxHeld bounds the batches whose receivers' wake-ups runBatch holds.
const maxHeld = 4

// recvFullConn reports whether hc's queue is full and its engine's half
// full, by messages or by bytes: more data would soon be discarded. hc's
// lock is held.
func (h *Host) recvFullConn(hc *hostConn) bool {
	if int(hc.queued.Load()) < h.cfg.RecvBufferMessages {
		return false
	}
	msgs, bytes := hc.c.RecvPending()
	return msgs >= h.cfg.RecvBufferMessages/2 || bytes >= h.cfg.RecvBufferSize/2
}

// waitTake releases hc's lock and waits until the application takes
// messages of hc, at most readerStall, then takes the lock again and
// returns the time. The datagrams not yet handled wait meanwhile, and
// those not yet read wait in the socket's receive buffer, rather than
// being discarded by the engine (which the peer would retransmit, and
// count as loss).
func (h *Host) waitTake(now time.Time, hc *hostConn, t *time.Timer) time.Time {
	deadline := now.Add(readerStall)
	for !hc.removed && h.recvFullConn(hc) && now.Before(deadline) {
		ch := h.tookWait()
		hc.mu.Unlock()
		h.waitTook(ch, deadline.Sub(now), t)
		hc.mu.Lock()
		now = h.cfg.Now()
	}
	return now
}

// waitTakeLocked is waitTake for a connection guarded by mu (P2P).
func (h *Host) waitTakeLocked(now time.Time, hc *hostConn, t *time.Timer) time.Time {
	deadline := now.Add(readerStall)
	for !hc.removed && h.recvFullConn(hc) && now.Before(deadline) {
		ch := h.tookWait()
		h.unlockFlush()
		h.waitTook(ch, deadline.Sub(now), t)
		h.mu.Lock()
		now = h.cfg.Now()
	}
	return now
}

// tookWait registers a waiter for messages being taken and returns the
// channel that is closed when they are.
func (h *Host) tookWait() chan struct{} {
	h.tookMu.Lock()
	defer h.tookMu.Unlock()
	h.tookWaiters.Add(1)
	return h.tookCh
}

func (h *Host) waitTook(ch chan struct{}, d time.Duration, t *time.Timer) {
	t.Reset(d)
	select {
	case <-ch:
	case <-t.C:
	case <-h.done:
	}
	t.Stop()
	h.tookWaiters.Add(-1)
}

// roomCheck wakes the senders waiting for room in hc's send buffer once
// polling left it half empty, or hc cannot send any more (they try again,
// and find room or the error). hc's lock is held (mu for a P2P one).
func (h *Host) roomCheck(hc *hostConn) {
	if hc.roomWaiters.Load() > 0 && hc.c.SendRoom() {
		h.roomMu.Lock()
		close(h.roomCh)
		h.roomCh = make(chan struct{})
		h.roomMu.Unlock()
	}
}

// awaitRoom calls try until it reports that it is done (its send went
// in, or failed otherwise than for a full buffer), waiting between calls
// until hc's send buffer has room. A waiter registers with hc before its
// try, so a poll that frees room after the try wakes it. It returns ctx's
// error when ctx ends first and ErrHostClosed when the Host closes.
func (h *Host) awaitRoom(ctx context.Context, hc *hostConn, try func() bool) error {
	for {
		hc.roomWaiters.Add(1)
		h.roomMu.Lock()
		ch := h.roomCh
		h.roomMu.Unlock()
		if try() {
			hc.roomWaiters.Add(-1)
			return nil
		}
		var err error
		select {
		case <-ch:
		case <-ctx.Done():
			err = ctx.Err()
		case <-h.done:
			err = ErrHostClosed
		}
		hc.roomWaiters.Add(-1)
		if err != nil {
			return err
		}
	}
}

// Send is SendMessageToConnection that waits while c's send buffer is
// full, rather than failing with ResultLimitExceeded: until the Host has
// sent half of what waits (the buffer has room), ctx ends (ctx's error),
// the connection ends (its error), or the Host closes (ErrHostClosed).
// It is the form a Go program that produces as fast as the connection
// takes wants: no retry loop, no sleep.
func (h *Host) Send(ctx context.Context, c ConnHandle, data []byte, flags SendFlags) (int64, error) {
	num, err := h.SendMessageToConnection(c, data, flags)
	if !errors.Is(err, ResultLimitExceeded) {
		return num, err
	}
	hc := h.lookupConn(c)
	if hc == nil {
		return 0, err
	}
	if werr := h.awaitRoom(ctx, hc, func() bool {
		num, err = h.SendMessageToConnection(c, data, flags)
		return !errors.Is(err, ResultLimitExceeded)
	}); werr != nil {
		return 0, werr
	}
	return num, err
}

// tookSignal wakes every goroutine waiting in waitTake.
func (h *Host) tookSignal() {
	if h.tookWaiters.Load() == 0 {
		return
	}
	h.tookMu.Lock()
	close(h.tookCh)
	h.tookCh = make(chan struct{})
	h.tookMu.Unlock()
}

// handleGNSLocked handles a GNS datagram that the reader does not hand
// to a connection's shard: handshake requests, and datagrams for
// connections that are not (or no longer) in the table.
func (h *Host) handleGNSLocked(now time.Time, from netip.AddrPort, b []byte) {
	kind, id := conn.Classify(b)
	switch kind {
	case conn.KindChallengeRequest:
		if hc := h.servers[serverKey{from, id}]; hc != nil {
			// A client we accepted asks again: its connect OK was lost.
			// Its connection answers with connect OK at once, as GNS's
			// Received_ChallengeOrConnectRequest does, rather than the
			// listener with a challenge (one round trip more).
			lockConn(hc)
			h.deliverLocked(now, hc, from, b)
			unlockConn(hc)
			return
		}
		if h.listening == InvalidListen && !h.acceptingLocked(messagesVirtualPort) {
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
			lockConn(hc)
			h.deliverLocked(now, hc, from, b)
			unlockConn(hc)
			return
		}
		if h.listening == InvalidListen && !h.acceptingLocked(messagesVirtualPort) {
			h.stats.Dropped++
			return
		}
		mark, ok := h.admitHalfOpenLocked(now, from, "", false)
		if !ok {
			h.stats.Dropped++
			return
		}
		handle, err := h.newHandleLocked()
		if err != nil {
			h.ho.release(mark.src, false)
			h.stats.Dropped++
			return
		}
		c, reply, err := h.listener.HandleConnectRequest(now, from, b, uint32(handle))
		if reply != nil {
			h.queueLocked(from, reply)
		}
		if err != nil {
			h.ho.release(mark.src, false)
			h.stats.ConnectsRefused++
			h.logRefusedLocked(from, err.Error())
			return
		}
		hc := &hostConn{userData: -1, handle: handle, c: c, listen: h.listening, state: StateNone, recv: recvQueue{ready: make(chan struct{}, 1)}, hidx: -1, ho: mark}
		hc.identity, _ = parseIdentityGNS(c.RemoteIdentity())
		// A service's port goes to the service (refused when it does not
		// take connections); any other to the listen socket.
		vp := c.VirtualPort()
		_, registered := h.services[vp]
		isSvc := vp == messagesVirtualPort || registered
		var svc service
		if isSvc && h.acceptingLocked(vp) {
			svc = h.serviceLocked(vp)
		}
		if (isSvc && svc == nil) || (!isSvc && h.listening == InvalidListen) {
			// Nobody here takes this kind of connection: refuse it.
			h.stats.ConnectsRefused++
			c.Close(now, int(EndAppMin), "nobody listens to that virtual port", false)
			hc.handle = InvalidConn // a zombie: it only says goodbye
		}
		if svc != nil && hc.handle != InvalidConn && !h.admitSessionLocked(now, hc) {
			h.ho.release(mark.src, false) // dropped: the client asks again
			h.stats.Dropped++
			return
		}
		lockConn(hc)
		h.addConnLocked(handle, hc)
		h.servers[serverKey{from, id}] = hc
		if svc != nil && hc.handle != InvalidConn {
			hc.listen = InvalidListen
			if old := h.supersedesLocked(now, svc, hc); old != nil {
				h.endSupersededLocked(now, old)
			}
			if !svc.incomingLocked(now, hc) {
				h.removeLocked(hc)
				unlockConn(hc)
				h.stats.ConnectsDropped++
				return
			}
		}
		h.pollLocked(now, hc)
		unlockConn(hc)
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
		lockConn(hc)
		h.deliverLocked(now, hc, from, b)
		unlockConn(hc)
	default:
		h.stats.Dropped++
	}
}

// deliverLocked gives a datagram to a connection and takes what follows
// from it: messages, state changes, datagrams to send. mu and hc's lock
// are held.
func (h *Host) deliverLocked(now time.Time, hc *hostConn, from netip.AddrPort, b []byte) {
	hc.c.UseArena(&h.arena)
	err := hc.c.HandleDatagram(now, from, b)
	hc.c.UseArena(nil)
	if err != nil {
		h.stats.Dropped++
		if errors.Is(err, conn.ErrWrongAddr) {
			h.stats.WrongAddr++
		}
	}
	h.halfOpenUpdate(hc)
	if !hc.identity.IsValid() {
		if s := hc.c.RemoteIdentity(); s != "" {
			hc.identity, _ = parseIdentityGNS(s)
		}
	}
	h.drainConn(h.msgs, now, hc, nil)
	h.pollLocked(now, hc)
}

// drainConn moves the connection's completed messages to its queue (or
// its poll group's, or the Messages channels'), at most RecvBufferMessages
// of them waiting at a time; the rest wait in the engine, whose limits
// then push back on the peer, and hc.held says so. hc's lock is held; buf
// is the caller's scratch. With wake nil the queue's waiters are woken at
// once; otherwise the queue is added to *wake, and the caller wakes them
// with wakeHeld once its batch of datagrams is handled (a receiver woken
// per datagram would take one message per wake-up while the batch goes
// on).
func (h *Host) drainConn(buf []snp.Message, now time.Time, hc *hostConn, wake *[]*recvQueue) {
	limit := int32(h.cfg.RecvBufferMessages)
	for {
		if hc.queued.Load() >= limit {
			// Set held before looking at queued again: a take that
			// lowered queued after this look sees held and drains
			// (took), so no message stays behind unnoticed.
			hc.held.Store(true)
			if hc.queued.Load() >= limit {
				return
			}
		}
		q := hc.queued.Load()
		n := hc.c.Receive(buf[:min(int32(len(buf)), max(limit-q, 1))])
		if n == 0 {
			hc.held.Store(false)
			return
		}
		if hc.svc != nil && hc.handle != InvalidConn {
			hc.svc.deliverAll(now, hc, buf[:n])
			continue
		}
		if hc.handle == InvalidConn {
			for i := range buf[:n] {
				buf[i].Release() // closed by the application: drop
				buf[i] = snp.Message{}
			}
			continue
		}
		// One count and one wake-up for the lot: the queue's counter and
		// channel are shared with the receiving goroutine's core.
		hc.queued.Add(int32(n))
		rq := &hc.recv
		if hc.group != nil {
			rq = &hc.group.recv
		}
		rq.inMu.Lock()
		for i := range buf[:n] {
			sm := &buf[i]
			m := hc.newMessage(sm)
			m.conn = hc
			m.Connection = hc.handle
			m.Identity = hc.identity
			m.ReceiverUserData = hc.userData
			m.TimeReceived = now
			*sm = snp.Message{}
			rq.in.push(m)
		}
		rq.inMu.Unlock()
		if wake == nil {
			rq.pushed()
		} else if k := len(*wake); k == 0 || (*wake)[k-1] != rq {
			*wake = append(*wake, rq)
		}
	}
}

// wakeHeld wakes the waiters of the queues drainConn added to w.wake in
// w's batches.
func (h *Host) wakeHeld(w *worker) {
	for i, rq := range w.wake {
		rq.pushed()
		w.wake[i] = nil
	}
	w.wake, w.held = w.wake[:0], 0
}

// signal wakes a waiter on a capacity-1 channel without blocking.
func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// took accounts for messages the application took (moved to the consumer
// end of a recvQueue), by runs of one connection or browser session.
// Once a connection's queue has room for takeSlack of them, it pulls more
// from its engine if that holds some back (hostConn.held) and wakes a
// reader waiting for room (waitTake), so that both happen once per
// takeSlack messages rather than once per take. Otherwise it costs two
// atomic operations per run, and no lock or clock read. The caller holds
// no lock.
func (h *Host) took(runs *tookRuns) {
	if runs.n == 0 {
		return
	}
	clock := h.clock.Load()
	limit := int32(h.cfg.RecvBufferMessages)
	slack := takeSlack(limit)
	room := false
	var w *worker
	for _, r := range runs.all() {
		hc := r.hc
		if hc == nil {
			if r.web != nil {
				r.web.unread.Add(-r.n)
			}
			continue
		}
		q := hc.queued.Add(-r.n)
		if hc.lastTake.Load() != clock {
			hc.lastTake.Store(clock)
		}
		if q > limit-slack {
			continue
		}
		room = true
		if !hc.held.Load() {
			continue
		}
		now := h.cfg.Now()
		if hc.c.IsP2P() {
			h.mu.Lock()
			if !hc.removed {
				h.drainConn(h.msgs, now, hc, nil)
				// Taking messages may let the engine ack data it had to refuse.
				h.rescheduleLocked(hc)
			}
			h.mu.Unlock()
		} else {
			if w == nil {
				w = h.workPool.Get().(*worker)
			}
			hc.mu.Lock()
			if !hc.removed {
				h.drainConn(w.msgs, now, hc, nil)
				h.rescheduleLocked(hc)
			}
			hc.mu.Unlock()
		}
	}
	if w != nil {
		h.workPool.Put(w)
	}
	if room {
		h.tookSignal()
	}
}

// takeSlack is how many of a connection's RecvBufferMessages (limit) the
// application takes before took refills the queue from the engine: a
// quarter of them, at least one.
func takeSlack(limit int32) int32 { return max(1, limit/4) }

// pollLocked collects the connection's datagrams and events and schedules
// its next wake-up. mu and hc's lock are held.
func (h *Host) pollLocked(now time.Time, hc *hostConn) {
	if hc.p2p != nil {
		h.p2pRouteLocked(now, hc)
	}
	skipped := !hc.c.IsP2P() && !h.out.mayPoll(hc)
	for !skipped {
		if hc.p2p != nil && !hc.c.RemoteAddr().IsValid() && hc.c.State() == conn.StateConnected {
			break // no path yet: data waits in the engine until ICE selects one
		}
		d, ok := hc.c.Poll(now, h.out.next())
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
		if !hc.c.IsP2P() {
			h.out.own(hc)
		}
		if h.out.add(to, d) {
			h.flushOutLocked()
		}
	}
	h.roomCheck(hc)
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
	if !skipped {
		h.rescheduleLocked(hc) // else the writer of hc.outBy polls and reschedules it
	}
}

// pollFast is pollLocked for a direct connection whose lock is held,
// without mu: it collects the datagrams into w's batch and schedules the
// next wake-up, and reports whether what is left needs mu (state changes
// to report, a connection to remove), for which the caller calls
// pollSlow once it released hc.
//
// When another batch holds packets of hc that are not written yet, it
// leaves hc to that batch's writer (outBatch.mayPoll) and reports false.
func (h *Host) pollFast(w *worker, now time.Time, hc *hostConn) (slow bool) {
	if !w.out.mayPoll(hc) {
		return false
	}
	h.pollOut(w, now, hc)
	h.roomCheck(hc)
	if hc.c.PendingEvents() {
		return true
	}
	if st := hc.c.State(); st == conn.StateDead || (hc.handle == InvalidConn && st == conn.StateNone) {
		return true
	}
	h.rescheduleLocked(hc)
	return false
}

// pollOut collects the datagrams of hc, a direct connection whose lock is
// held and whose packets w's batch may take (outBatch.mayPoll), into that
// batch, writing it whenever it fills up.
func (h *Host) pollOut(w *worker, now time.Time, hc *hostConn) {
	for {
		d, ok := hc.c.Poll(now, w.out.next())
		if !ok {
			return
		}
		to := hc.c.RemoteAddr()
		if !to.IsValid() {
			continue
		}
		w.out.own(hc)
		if w.out.add(to, d) {
			h.write(&w.out)
		}
	}
}

// flushWorker writes w's batch, then polls the connections that other
// goroutines left to it (outBatch.again) and writes what they send, until
// none are left. The caller holds no lock.
func (h *Host) flushWorker(w *worker) {
	for {
		h.write(&w.out)
		if len(w.out.again) == 0 {
			return
		}
		now := h.cfg.Now()
		for len(w.out.again) > 0 {
			hc := w.out.again[len(w.out.again)-1]
			w.out.again[len(w.out.again)-1] = nil
			w.out.again = w.out.again[:len(w.out.again)-1]
			h.repoll(w, now, hc)
		}
	}
}

// repoll polls hc, a direct connection another goroutine left to w's
// batch, and releases its lock.
func (h *Host) repoll(w *worker, now time.Time, hc *hostConn) {
	hc.mu.Lock()
	if hc.removed {
		// Out of the table (closed while w's batch held its packets):
		// what it still has to send (its close) goes, nothing else.
		if w.out.mayPoll(hc) {
			h.pollOut(w, now, hc)
		}
		hc.mu.Unlock()
		return
	}
	slow := h.pollFast(w, now, hc)
	hc.mu.Unlock()
	if slow {
		h.write(&w.out)
		h.pollSlow(now, hc)
	}
}

// pollSlow polls a direct connection with mu held, for what pollFast
// left.
func (h *Host) pollSlow(now time.Time, hc *hostConn) {
	h.mu.Lock()
	hc.mu.Lock()
	if !hc.removed {
		h.pollLocked(now, hc)
	}
	hc.mu.Unlock()
	h.unlockFlush()
}

// stateChangedLocked records a state change and queues the callback. mu
// and hc's lock are held.
func (h *Host) stateChangedLocked(hc *hostConn, ev conn.Event) {
	old := hc.state
	hc.state = apiState(hc, ConnectionState(ev.State))
	h.halfOpenUpdate(hc)
	if r := EndReason(ev.EndReason); hc.state == StateProblemDetectedLocally && r >= EndRemoteMin && r <= EndRemoteMax {
		h.logRefusedLocked(hc.c.RemoteAddr(), fmt.Sprintf("%v (%d): %s", r, int(r), ev.EndDebug))
	}
	if hc.state == old && hc.p2p != nil {
		return // a P2P connection still finding its route (host_route.go)
	}
	if hc.state == StateClosedByPeer || hc.state == StateProblemDetectedLocally {
		hc.recv.wake() // wake a Receive waiting on a connection that ended
	}
	if hc.svc != nil {
		hc.svc.stateLocked(hc, old)
		return
	}
	if hc.handle == InvalidConn || h.cfg.OnConnectionStatusChanged == nil {
		return
	}
	if hc.state == StateFinWait || hc.state == StateLinger || hc.state == StateDead {
		return // internal states: GNS does not report them
	}
	h.evMu.Lock()
	h.events = append(h.events, statusEvent{ev: ConnStatusChanged{Conn: hc.handle, Info: h.infoLocked(hc), OldState: old}})
	h.evMu.Unlock()
	signal(h.eventKick)
}

// rescheduleLocked notes the connection's next wake-up and kicks the timer
// if it is sooner than the one it waits for. hc's lock is held.
func (h *Host) rescheduleLocked(hc *hostConn) {
	w := hc.c.NextWake()
	if hc.p2p != nil {
		w = h.p2pWake(hc, w)
	}
	cur := hc.wakeAt.Load()
	if !w.IsZero() && w.UnixNano() == cur {
		return // already in the heap for w (the timer takes it out under hc's lock only after this)
	}
	if keepFarWake(cur, w, h.clock.Load()) {
		return
	}
	h.wakeMu.Lock()
	h.wakes.set(hc, w)
	h.kickTimerLocked(hc.wake)
	h.wakeMu.Unlock()
}

// lazyWake: a wake-up at least this far ahead is not moved later (see
// keepFarWake).
const lazyWake = time.Second

// keepFarWake reports whether a connection whose wake-up is cur (Unix ns,
// 0: none) keeps it rather than take w, at now (Unix ns): when cur is
// sooner and at least lazyWake ahead. Polled early, the connection finds
// nothing to do and sets the right one. The usual case is the keepalive
// (10 s after the last packet received), which every packet moves: a
// session receiving 10 messages a second moved its place in the heap 10
// times a second, and is now polled once in 10 s.
func keepFarWake(cur int64, w time.Time, now int64) bool {
	return cur != 0 && (w.IsZero() || cur < w.UnixNano()) && cur-now >= int64(lazyWake)
}

// rescheduleSendLocked is rescheduleLocked after a send, which can only
// bring the connection's wake-up closer: when the wake-up already set is
// due (at or before now), the timer goroutine polls hc at its next round
// anyway and sees the send then, so nothing is done (no NextWake, no
// wakeMu). hc's lock is held.
func (h *Host) rescheduleSendLocked(now time.Time, hc *hostConn) {
	if w := hc.wakeAt.Load(); w != 0 && w <= now.UnixNano() {
		return
	}
	h.rescheduleLocked(hc)
}

// rescheduleBatchLocked is rescheduleLocked for a send that leaves its
// packets to the timer goroutine: data that could go now waits until
// sendBatchDelay from now (or an earlier wake-up already set) for more to
// join it. hc's lock is held.
//
// When the wake-up already set comes no later than sendBatchDelay from
// now, it is what the computation below would choose, so it is kept
// without asking the engine (NextWake) or taking wakeMu: a run of sends
// costs one of each per sendBatchDelay rather than one per send. (Were
// the timer taking hc out of the heap meanwhile, it polls hc after this
// send, under hc's lock, and sees the send.)
func (h *Host) rescheduleBatchLocked(now time.Time, hc *hostConn) {
	if w := hc.wakeAt.Load(); w != 0 && w <= now.UnixNano()+int64(sendBatchDelay) {
		return
	}
	w := hc.c.NextWake()
	if hc.p2p != nil {
		w = h.p2pWake(hc, w)
	}
	h.wakeMu.Lock()
	defer h.wakeMu.Unlock()
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

// kickTimerLocked makes the timer goroutine look at the connections at w
// if w is sooner than the time it sleeps until. A w beyond preciseMax
// (or any w, without a precise timer) moves its timer: no goroutine
// wakes now. Otherwise it is woken to set its precise timer. Most such
// wake-ups are an ack owed within 50 ms, which a reply then carries: a
// request-reply exchange would otherwise wake the timer goroutine for
// nothing, a futex call and a goroutine switch per message. wakeMu is
// held.
func (h *Host) kickTimerLocked(w time.Time) {
	if w.IsZero() || !w.Before(h.timerAt) {
		return
	}
	h.timerAt = w
	if h.timerT != nil {
		if d := w.Sub(h.cfg.Now()); d > preciseMax || (h.precise == nil && d > 0) {
			h.timerT.Reset(d)
			return
		}
	}
	signal(h.timerKick)
}

// outBatch is a batch of datagrams to write, with buffers it keeps for
// the next ones.
//
// A direct connection's packets are numbered when they are polled (under
// its lock) but written when the batch is, after that lock is released;
// were two goroutines' batches to hold packets of one connection, the
// later-numbered could be written first, which the peer takes for loss.
// So one batch at a time holds a connection's unwritten packets
// (hostConn.outBy): another goroutine that would poll the connection
// meanwhile leaves it to that batch (mayPoll), whose writer polls it once
// the batch is written (again). A P2P connection's packets only ever go
// into the Host's batch under mu, which is written in order already.
type outBatch struct {
	pkts  []transport.Packet
	bufs  [][]byte
	conns []*hostConn // direct connections with packets in pkts (outBy is this batch)
	// again holds the connections other goroutines left to this batch
	// (mayPoll) that were written since: its owner polls them next.
	again []*hostConn
}

// mayPoll reports whether o may take packets of hc, a direct connection
// whose lock is held: when another batch holds some not yet written, it
// marks hc for that batch's writer to poll and reports false.
func (o *outBatch) mayPoll(hc *hostConn) bool {
	if by := hc.outBy.Load(); by == nil || by == o {
		return true
	}
	hc.repoll.Store(true)
	// The writer clears outBy before it reads repoll: if outBy is still
	// set, that writer sees repoll; if not, hc is free to take (and a
	// writer that saw repoll as well polls it once more, harmlessly).
	if hc.outBy.Load() != nil {
		return false
	}
	hc.repoll.Store(false)
	return true
}

// own notes that o holds a packet of hc, whose lock is held and which
// mayPoll let o take.
func (o *outBatch) own(hc *hostConn) {
	if hc.outBy.Load() != o {
		hc.outBy.Store(o)
		o.conns = append(o.conns, hc)
	}
}

// written releases the connections whose packets o held, once they are
// written, and adds those others left to o to o.again.
func (o *outBatch) written() {
	for i, hc := range o.conns {
		o.conns[i] = nil
		hc.outBy.Store(nil)
		if hc.repoll.Swap(false) {
			o.again = append(o.again, hc)
		}
	}
	o.conns = o.conns[:0]
}

// next returns the free buffer the next datagram may be built in.
func (o *outBatch) next() []byte {
	i := len(o.pkts)
	if i == len(o.bufs) {
		o.bufs = append(o.bufs, make([]byte, 0, transport.MaxDatagram))
	}
	return o.bufs[i]
}

// add appends datagram d, built in the buffer next returned, and reports
// whether the batch is full.
func (o *outBatch) add(to netip.AddrPort, d []byte) (full bool) {
	o.pkts = append(o.pkts, transport.Packet{Buf: d, N: len(d), Addr: to})
	return len(o.pkts) == maxBatch
}

// queueLocked adds one datagram (copied) to mu's outgoing batch.
func (h *Host) queueLocked(to netip.AddrPort, b []byte) { h.queuePrefixedLocked(to, nil, b) }

// queuePrefixedLocked is queueLocked for prefix followed by b. b may be
// the very buffer the datagram goes into (a connection's packet polled
// into the next free one): it is moved up in place.
func (h *Host) queuePrefixedLocked(to netip.AddrPort, prefix, b []byte) {
	o := h.out
	buf := o.next()
	n := len(prefix) + len(b)
	if cap(buf) < n {
		buf = make([]byte, 0, max(n, transport.MaxDatagram))
	}
	buf = buf[:n]
	copy(buf[len(prefix):], b) // memmove: b may overlap buf
	copy(buf, prefix)
	o.bufs[len(o.pkts)] = buf
	if o.add(to, buf) {
		h.flushOutLocked()
	}
}

// flushOutLocked writes mu's outgoing batch while holding mu: for a batch
// that filled up in the middle of work done under mu. Ends of critical
// sections use unlockFlush instead, which writes without holding mu. The
// connections other goroutines left to the batch (outBatch.again) cannot
// be polled here (their locks may not be taken now): the timer goroutine
// polls them at once.
func (h *Host) flushOutLocked() {
	h.write(h.out)
	if len(h.out.again) == 0 {
		return
	}
	now := h.cfg.Now()
	h.wakeMu.Lock()
	for i, hc := range h.out.again {
		h.out.again[i] = nil
		if hc.wake.IsZero() || hc.wake.After(now) {
			h.wakes.set(hc, now)
		}
	}
	h.kickTimerLocked(now)
	h.wakeMu.Unlock()
	h.out.again = h.out.again[:0]
}

// unlockFlush releases mu and then writes the outgoing batch, so that the
// system call does not hold up the application, the reader and the timer.
// The batch is handed over under writeMu, taken before mu is released, so
// batches are written in the order they were made.
//
// Connections other goroutines left to the batch (outBatch.again) are
// polled then, on a worker from workPool.
func (h *Host) unlockFlush() {
	if len(h.out.pkts) == 0 && len(h.out.again) == 0 {
		h.mu.Unlock()
		return
	}
	h.writeMu.Lock()
	out := h.out
	h.out, h.spare = h.spare, nil
	h.mu.Unlock()
	h.writeLocked(out)
	var w *worker
	if len(out.again) > 0 {
		w = h.workPool.Get().(*worker)
		w.out.again = append(w.out.again, out.again...)
		clear(out.again)
		out.again = out.again[:0]
	}
	h.spare = out
	h.writeMu.Unlock()
	if w != nil {
		h.flushWorker(w)
		h.workPool.Put(w)
	}
}

// write writes o and empties it. The connections whose packets it held
// are released; those other goroutines left to it are in o.again, for its
// owner to poll when it holds no lock (flushWorker).
func (h *Host) write(o *outBatch) {
	if len(o.pkts) == 0 {
		o.written()
		return
	}
	h.writeMu.Lock()
	h.writeLocked(o)
	h.writeMu.Unlock()
}

// writeLocked writes a batch, empties it and releases the connections
// whose packets it held (outBatch.written); writeMu is held. The counters
// are atomic because writers hold different locks.
func (h *Host) writeLocked(o *outBatch) {
	defer o.written()
	if len(o.pkts) == 0 {
		return
	}
	n, err := h.pc.WriteBatch(o.pkts)
	var bytes int64
	for i := range o.pkts {
		if i < n {
			bytes += int64(o.pkts[i].N)
		}
		o.bufs[i] = o.pkts[i].Buf[:0]
	}
	o.pkts = o.pkts[:0]
	h.datagramsOut.Add(int64(n))
	h.bytesOut.Add(bytes)
	if err != nil && !errors.Is(err, transport.ErrClosed) {
		h.cfg.Logger.Debug("netmsg: write", "err", err)
	}
}

// timerLoop polls every connection whose wake-up time has come, ticks the
// Messages sessions and the STUN client, and sleeps until the soonest next
// wake-up.
func (h *Host) timerLoop() {
	defer h.wg.Done()
	t := time.NewTimer(time.Hour)
	h.wakeMu.Lock()
	h.timerT = t
	h.wakeMu.Unlock()
	defer func() {
		h.wakeMu.Lock()
		h.timerT = nil
		t.Stop()
		h.wakeMu.Unlock()
	}()
	// pc is the precise timer's channel (nil, never ready, without one).
	var pc <-chan struct{}
	if h.precise != nil {
		defer h.precise.Close()
		pc = h.precise.C
	}
	w := newWorker()
	for {
		now := h.cfg.Now()
		h.clock.Store(now.UnixNano())
		// Every connection due now, each once: polling may leave one
		// due again at once (it sends what pacing allows next), which the
		// next round takes.
		h.wakeMu.Lock()
		h.dueBuf = h.dueBuf[:0]
		for hc := h.wakes.due(now); hc != nil; hc = h.wakes.due(now) {
			h.wakes.remove(hc)
			hc.wake = time.Time{}
			h.dueBuf = append(h.dueBuf, hc)
		}
		h.wakeMu.Unlock()
		for i, hc := range h.dueBuf {
			h.dueBuf[i] = nil
			if hc.c.IsP2P() {
				h.mu.Lock()
				if !hc.removed {
					if hc.held.Load() {
						h.drainConn(h.msgs, now, hc, nil) // as below
					}
					h.pollLocked(now, hc)
				}
				h.unlockFlush()
				continue
			}
			hc.mu.Lock()
			if hc.removed {
				hc.mu.Unlock()
				continue
			}
			if hc.held.Load() {
				// Messages the queue had no room for (a take
				// drains them too; see took).
				h.drainConn(w.msgs, now, hc, nil)
			}
			slow := h.pollFast(w, now, hc)
			hc.mu.Unlock()
			if slow {
				h.flushWorker(w)
				h.pollSlow(now, hc)
			}
		}
		h.flushWorker(w)
		h.mu.Lock()
		var next time.Time
		if w := h.tickServicesLocked(now); !w.IsZero() {
			next = w
		}
		if h.paths != nil {
			if w := h.paths.Tick(now, h.writer()); !w.IsZero() && (next.IsZero() || w.Before(next)) {
				next = w
			}
		}
		h.unlockFlush()
		h.wakeMu.Lock()
		if w := h.wakes.next(); !w.IsZero() && (next.IsZero() || w.Before(next)) {
			next = w
		}
		d := time.Hour
		if !next.IsZero() {
			d = max(next.Sub(now), 0)
		}
		h.timerAt = now.Add(d)
		usePrecise := h.precise != nil && d > 0 && d <= preciseMax
		if usePrecise {
			t.Stop()
		} else {
			t.Reset(d)
		}
		h.wakeMu.Unlock()
		if usePrecise {
			h.precise.Reset(d)
		} else if h.precise != nil {
			h.precise.Stop()
		}
		select {
		case <-h.done:
			return
		case <-h.timerKick:
		case <-t.C:
		case <-pc:
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
			h.evMu.Lock()
			evs := h.events
			h.events = nil
			h.evMu.Unlock()
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
