package signaling

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
)

// ServerConfig configures a Server. The zero value serves both protocols
// with GNS-compatible trivial clients allowed and unsigned certificates
// refused for authenticated ones.
type ServerConfig struct {
	// TrustedCAs are the CAs whose certificates authenticated clients may
	// present.
	TrustedCAs []ed25519.PublicKey
	// AllowUnsigned lets authenticated clients present unsigned
	// certificates: they still prove they hold the key the certificate
	// names. While such a client is connected, its identity is bound to
	// its key: only the same key or a CA-signed certificate can take it
	// over. Once it has gone, anyone may register the identity.
	AllowUnsigned bool
	// AppID, if the certificates list app IDs, must be among them.
	AppID uint32
	// NoTrivial refuses GNS's trivial protocol, whose clients claim an
	// identity without proof. With trivial clients allowed, an identity
	// held (or recently held, see ReserveFor) by an authenticated client
	// cannot be taken by a trivial one.
	NoTrivial bool
	// IsolateTrivial drops signals between trivial and authenticated
	// clients (counted in ServerStats.Isolated), so an authenticated client
	// hears only from identities the server verified. By default they mix,
	// so GNS peers on the trivial protocol reach netmsg peers that
	// authenticate.
	IsolateTrivial bool
	// ReserveFor is how long an identity proven with a CA-signed
	// certificate stays reserved after its holder disconnects: meanwhile
	// only CA-signed certificates may register it, not trivial clients or
	// unsigned certificates (default 24 h; negative: no reservation). At
	// most 4*MaxClients identities are reserved; the oldest go first.
	ReserveFor time.Duration
	// MaxClients bounds the connected clients (default 10,000).
	MaxClients int
	// QueueLen and QueueBytes bound the signals waiting to be written to
	// one client (default 256 signals and 256 KiB); more are dropped and
	// counted.
	QueueLen, QueueBytes int
	// Rate and Burst limit the lines one client may send (per second,
	// token bucket; default 200/s and 400). Excess lines are dropped and
	// counted.
	Rate  float64
	Burst int
	// HandshakeTimeout bounds registration: a connection that has not
	// registered this long after it was accepted is closed (default 5 s;
	// clients register in one round trip, or two for the authenticated
	// protocol).
	HandshakeTimeout time.Duration
	// IdleTimeout disconnects a registered client when nothing has gone
	// either way for this long (default 5 min; negative: never). GNS's
	// trivial clients are silent when idle, and reconnect by themselves
	// when dropped (their Poll reconnects a closed socket), so a generous
	// timeout costs such a client one reconnection per IdleTimeout of
	// silence; netmsg's authenticated clients send a keepalive every 30 s
	// and are never idle. Connections whose peer has vanished are found
	// sooner by TCP keepalive (30 s idle, as GNS's server).
	IdleTimeout time.Duration
	// WriteTimeout disconnects a client that does not read what the server
	// writes for this long (default 10 s).
	WriteTimeout time.Duration
	// MaxClientsPerAddr bounds the connections from one source (an IPv4
	// address or an IPv6 /64), registered or not (default 128: a public
	// address may hide a household or a LAN party behind NAT). More are
	// refused with a reason.
	MaxClientsPerAddr int
	// MaxPendingPerAddr bounds the connections from one source that have
	// not registered yet (default 16). More are refused with a reason.
	MaxPendingPerAddr int
	// MaxPending bounds the connections still registering, from all
	// sources (default 1,024). A connection beyond it closes the oldest
	// one still registering, so connections that never speak (slowloris)
	// cannot keep clients that register at once from being served.
	MaxPending int
	// AbsentRate and AbsentBurst budget the signals to identities nobody
	// holds from one source (an IPv4 address or IPv6 /64, as
	// MaxClientsPerAddr; token bucket; default 20/s and 100: a P2P layer
	// retrying towards a peer that left sends a few a second). A client
	// whose source has spent the budget is disconnected with a reason and
	// counted (ServerStats.AbsentFloods); reconnecting does not refill it.
	AbsentRate  float64
	AbsentBurst int
	// TURN, if set, makes the Server hand each authenticated client that
	// asks short-lived TURN credentials for these servers (see
	// TURNConfig).
	TURN *TURNConfig
	// Cluster, if set, makes the Server a node of a cluster on NATS (see
	// ClusterConfig).
	Cluster *ClusterConfig
	// Logger receives client events (registrations and departures at
	// debug level, refusals and drops at info level, each kind of refusal
	// rate-limited to a few lines a second with a count of those
	// suppressed); nil discards them.
	Logger *slog.Logger
}

// ServerStats counts what a Server did. Every refusal and drop has a
// counter.
type ServerStats struct {
	Clients, Trivial, Authenticated int // connected now (Clients counts unregistered ones too)
	Pending                         int // connections registering now
	Reserved                        int // identities reserved now for CA-signed certificates
	Registered                      uint64
	Replaced                        uint64 // registrations that replaced a client with the same identity
	Received                        uint64 // well-formed signals from registered clients
	Forwarded                       uint64 // signals queued for their recipient
	NoRecipient                     uint64 // signals to an identity nobody holds
	Isolated                        uint64 // signals between trivial and authenticated clients dropped (IsolateTrivial)
	RateLimited                     uint64
	QueueDropped                    uint64 // the recipient did not read fast enough
	Malformed                       uint64 // bad lines (an oversized one closes the client)
	ReadErrors                      uint64 // connections that ended with a read error other than a timeout, an oversized line or a close (a reset, say)
	AuthFailed                      uint64 // authentication refused (bad certificate, untrusted CA, wrong identity or key, bad or replayed proof)
	TakeoverRefused                 uint64 // a trivial client or another key claiming an authenticated identity
	Refused                         uint64 // connections refused: the sum of RefusedFull, RefusedAddr and RefusedTrivial
	RefusedFull                     uint64 // over MaxClients
	RefusedAddr                     uint64 // over MaxClientsPerAddr or MaxPendingPerAddr
	RefusedTrivial                  uint64 // the trivial protocol with NoTrivial
	PendingEvicted                  uint64 // registering connections closed to make room (MaxPending)
	AbsentFloods                    uint64 // clients disconnected for signalling absent identities over AbsentRate
	HandshakeTimeouts               uint64
	IdleTimeouts                    uint64
	SlowReaders                     uint64 // clients dropped for not reading within WriteTimeout
	ICESent                         uint64 // TURN credentials handed out
	Peers                           int    // other nodes of the cluster seen now
	ClusterOut                      uint64 // signals sent to clients on other nodes
	ClusterIn                       uint64 // signals from other nodes
	NodesLost                       uint64 // nodes unheard of for DeadAfter, whose identities were released
	ClusterDropped                  uint64 // messages for NATS dropped because its publish queue was full
}

// Server is a signaling server speaking GNS's trivial protocol and
// netmsg's authenticated one on TCP and WebSocket (see doc.go). Its
// methods are safe for concurrent use.
//
// Goroutines: each client has two, a reader and a writer; a refused
// connection has one for at most a second while the refusal is written;
// each Listen has an accept loop, each ListenWS an http.Server (whose
// handler goroutine lives as long as its client); in a cluster, nats.go
// runs one goroutine per subscription (the directory, heartbeats, signals
// for this node, list requests), and the cluster has a ticker and a
// publisher.
//
// Lock order: Server.mu, then nothing: messages for NATS are queued under
// it (bounded; the rest dropped and counted) and published by a goroutine
// of their own. A client's queue and the cluster's directory are guarded
// by Server.mu.
type Server struct {
	cfg   ServerConfig
	trust *crypto.TrustStore
	log   *slog.Logger
	logs  *logLimiter

	lingering chan struct{} // semaphore: refused connections being drained
	metrics   metrics

	mu        sync.Mutex
	clients   map[string]*srvClient // by registered identity
	all       map[*srvClient]struct{}
	addrs     map[string]*addrUse // connections by source (addrKey)
	lastSweep time.Time           // of addrs
	pending   list.List           // of *srvClient still registering, oldest first
	reserved  map[string]reservation
	lis       []net.Listener
	https     []*http.Server          // ListenWS
	refusing  map[net.Conn]struct{}   // refused connections being drained
	remote    map[string]remoteHolder // identities held on other nodes of the cluster
	cl        *cluster                // nil when alone; set once in NewServer
	closed    bool
	st        ServerStats
	wg        sync.WaitGroup
}

// addrUse is what one source holds: its connections, and its budget of
// signals to absent identities, kept after its last connection has gone
// until the budget is full again (so reconnecting does not refill it).
type addrUse struct {
	conns, pending int
	absent         float64 // tokens
	absentLast     time.Time
}

// absentTokensLocked refills and returns a's budget (s.mu held).
func (s *Server) absentTokensLocked(a *addrUse, now time.Time) float64 {
	a.absent = min(float64(s.cfg.AbsentBurst), a.absent+now.Sub(a.absentLast).Seconds()*s.cfg.AbsentRate)
	a.absentLast = now
	return a.absent
}

// sweepAddrsLocked forgets sources without connections whose budget is
// full again (s.mu held); it runs when the table has grown past twice
// the client limit, at most once a second.
func (s *Server) sweepAddrsLocked(now time.Time) {
	if len(s.addrs) <= 2*s.cfg.MaxClients || now.Sub(s.lastSweep) < time.Second {
		return
	}
	s.lastSweep = now
	for k, a := range s.addrs {
		if a.conns == 0 && s.absentTokensLocked(a, now) >= float64(s.cfg.AbsentBurst) {
			delete(s.addrs, k)
		}
	}
}

// holder is who proved an identity: the key, and whether a trusted CA
// signed its certificate.
type holder struct {
	key      string // the Ed25519 public key
	caSigned bool
}

// mayTake reports whether newcomer h may take an identity held by old: a
// CA-signed certificate beats an unsigned one; an unsigned one needs the
// same key.
func (old holder) mayTake(h holder) bool { return h.caSigned || (!old.caSigned && old.key == h.key) }

type reservation struct {
	holder
	until time.Time
}

// NewServer returns a Server; call Serve or Listen to run it.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 10000
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 256
	}
	if cfg.QueueBytes <= 0 {
		cfg.QueueBytes = 256 << 10
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 200
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 400
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = 5 * time.Second
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 5 * time.Minute
	}
	if cfg.MaxClientsPerAddr <= 0 {
		cfg.MaxClientsPerAddr = 128
	}
	if cfg.MaxPendingPerAddr <= 0 {
		cfg.MaxPendingPerAddr = 16
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 1024
	}
	if cfg.AbsentRate <= 0 {
		cfg.AbsentRate = 20
	}
	if cfg.AbsentBurst <= 0 {
		cfg.AbsentBurst = 100
	}
	if cfg.WriteTimeout <= 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.ReserveFor == 0 {
		cfg.ReserveFor = 24 * time.Hour
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, log: log, logs: newLogLimiter(log), lingering: make(chan struct{}, maxLingering),
		clients: map[string]*srvClient{}, all: map[*srvClient]struct{}{}, refusing: map[net.Conn]struct{}{}, remote: map[string]remoteHolder{}, addrs: map[string]*addrUse{}, reserved: map[string]reservation{}}
	s.metrics = newMetrics()
	if len(cfg.TrustedCAs) > 0 {
		cas := make([]crypto.CA, len(cfg.TrustedCAs))
		for i, k := range cfg.TrustedCAs {
			cas[i] = crypto.CA{PublicKey: k}
		}
		ts, err := crypto.NewTrustStore(cas...)
		if err != nil {
			return nil, fmt.Errorf("signaling: TrustedCAs: %w", err)
		}
		s.trust = ts
	}
	if t := cfg.TURN; t != nil {
		if t.Secret == "" || len(t.Servers) == 0 {
			return nil, errors.New("signaling: TURNConfig needs a secret and servers")
		}
		for _, a := range append(append([]string(nil), t.Servers...), t.STUN...) {
			if _, _, err := net.SplitHostPort(a); err != nil || strings.ContainsAny(a, ", ") {
				return nil, fmt.Errorf("signaling: TURNConfig: bad server %q", a)
			}
		}
		tc := *t
		if tc.STUN == nil {
			tc.STUN = tc.Servers
		}
		if tc.TTL <= 0 {
			tc.TTL = time.Hour
		}
		s.cfg.TURN = &tc
	}
	if cfg.Cluster != nil {
		cl, err := newCluster(s, cfg.Cluster)
		if err != nil {
			return nil, err
		}
		s.cl = cl
	}
	return s, nil
}

// Listen listens on the TCP address addr and serves there in the
// background until Close. It returns the address listened on.
func (s *Server) Listen(addr string) (net.Addr, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("signaling: %w", err)
	}
	if err := s.addListener(l, true); err != nil {
		return nil, err
	}
	go func() {
		defer s.wg.Done()
		s.accept(l)
	}()
	return l.Addr(), nil
}

// Addr returns the address of the first listener given to Serve or
// Listen, or nil.
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.lis) == 0 {
		return nil
	}
	return s.lis[0].Addr()
}

// Serve accepts clients on l until Close. It returns nil after Close and
// ErrClosed if the Server was closed before.
func (s *Server) Serve(l net.Listener) error {
	if err := s.addListener(l, false); err != nil {
		return err
	}
	return s.accept(l)
}

// addListener records l (closing it if the Server is closed); tracked adds
// the goroutine that will serve it to s.wg.
func (s *Server) addListener(l net.Listener, tracked bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		l.Close()
		return ErrClosed
	}
	s.lis = append(s.lis, l)
	if tracked {
		s.wg.Add(1)
	}
	return nil
}

func (s *Server) accept(l net.Listener) error {
	for {
		conn, err := l.Accept()
		if err != nil {
			s.mu.Lock()
			closed := s.closed
			s.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return err
		}
		s.serveConn(conn)
	}
}

// serveConn starts a client's goroutines, or refuses it with a reason.
func (s *Server) serveConn(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3})
	}
	now := time.Now()
	key := addrKey(conn.RemoteAddr())
	c := &srvClient{s: s, conn: conn, addr: key, wake: make(chan struct{}, 1), tokens: float64(s.cfg.Burst), last: now}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		conn.Close()
		return
	}
	a := s.addrs[key]
	reason := ""
	switch {
	case len(s.all) >= s.cfg.MaxClients:
		reason = reasonFull
		s.st.RefusedFull++
	case a != nil && a.conns >= s.cfg.MaxClientsPerAddr:
		reason = reasonAddr
		s.st.RefusedAddr++
	case a != nil && a.pending >= s.cfg.MaxPendingPerAddr:
		reason = reasonAddrPend
		s.st.RefusedAddr++
	}
	if reason != "" {
		s.st.Refused++
		s.mu.Unlock()
		s.logs.logf(slog.LevelInfo, reason, "signaling: connection refused", "reason", reason, "addr", conn.RemoteAddr())
		s.refuse(conn, reason)
		return
	}
	if s.pending.Len() >= s.cfg.MaxPending {
		old := s.pending.Front().Value.(*srvClient)
		s.unpendLocked(old)
		old.conn.Close()
		s.st.PendingEvicted++
		s.logs.logf(slog.LevelInfo, "evicted", "signaling: oldest registering connection closed (MaxPending)", "addr", old.conn.RemoteAddr())
	}
	if a == nil {
		s.sweepAddrsLocked(now)
		a = &addrUse{absent: float64(s.cfg.AbsentBurst), absentLast: now}
		s.addrs[key] = a
	}
	a.conns++
	a.pending++
	c.pend = s.pending.PushBack(c)
	s.all[c] = struct{}{}
	s.wg.Add(2)
	s.mu.Unlock()
	go c.readLoop()
	go c.writeLoop()
}

// refuse writes "ERR <reason>" to a connection the server will not serve
// and closes it. It reads (and discards) what the client sends meanwhile,
// for at most refuseLinger, so that closing with unread input does not
// reset the connection before the client has read the reason. At most
// maxLingering refusals linger at once; beyond that, they are written
// and closed at once.
func (s *Server) refuse(conn net.Conn, reason string) {
	line := []byte(authErr + " " + reason + "\n")
	select {
	case s.lingering <- struct{}{}:
	default:
		conn.SetWriteDeadline(time.Now())
		conn.Write(line) // fits in any socket buffer; a pipe gives up at once
		conn.Close()
		return
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.lingering
		conn.Close()
		return
	}
	s.refusing[conn] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer func() { <-s.lingering }()
		defer func() {
			s.mu.Lock()
			delete(s.refusing, conn)
			s.mu.Unlock()
			conn.Close()
		}()
		conn.SetDeadline(time.Now().Add(refuseLinger))
		if _, err := conn.Write(line); err != nil {
			return
		}
		if cw, ok := conn.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		}
		io.Copy(io.Discard, io.LimitReader(conn, refuseDrainBytes))
	}()
}

// unpendLocked marks c as no longer registering (s.mu held).
func (s *Server) unpendLocked(c *srvClient) {
	if c.pend == nil {
		return
	}
	s.pending.Remove(c.pend)
	c.pend = nil
	if a := s.addrs[c.addr]; a != nil {
		a.pending--
	}
}

// Close stops the listeners and disconnects every client at once; see
// Shutdown for a stop that tells clients.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.finish()
		return nil
	}
	s.closed = true
	for _, l := range s.lis {
		l.Close()
	}
	for _, hs := range s.https {
		hs.Close()
	}
	for c := range s.all {
		c.conn.Close()
	}
	for c := range s.refusing {
		c.Close()
	}
	s.mu.Unlock()
	s.finish()
	return nil
}

// finish waits for the goroutines of the clients and listeners, then
// leaves the cluster (so the clients' departures are announced first).
func (s *Server) finish() {
	s.wg.Wait()
	if s.cl != nil {
		s.cl.close()
	}
}

// Shutdown stops the listeners, tells every authenticated client
// ("ERR shutdown", after the signals already queued for it; the client
// reconnects, to another server behind the same address if there is one),
// closes trivial and unregistered connections (GNS's trivial protocol has
// no way to say it), and waits until the authenticated clients' lines are
// written or ctx ends; then it disconnects whoever is left, as Close. It
// returns ctx's error if ctx ended first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.finish()
		return nil
	}
	s.closed = true
	for _, l := range s.lis {
		l.Close()
	}
	for _, hs := range s.https {
		hs.Close()
	}
	for c := range s.refusing {
		c.Close()
	}
	for c := range s.all {
		if c.authed && s.clients[c.id] == c && !c.closing {
			c.queueLocked([]byte(authErr + " " + reasonShutdown + "\n"))
			c.closing = true
		} else {
			c.conn.Close()
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		s.finish()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for c := range s.all {
		c.conn.Close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}

// Stats returns the counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Clients = len(s.all)
	st.Pending = s.pending.Len()
	if s.cl != nil {
		st.Peers = len(s.cl.peers)
	}
	now := time.Now()
	for _, r := range s.reserved {
		if now.Before(r.until) {
			st.Reserved++
		}
	}
	for _, c := range s.clients {
		if c.authed {
			st.Authenticated++
		} else {
			st.Trivial++
		}
	}
	return st
}

type srvClient struct {
	s      *Server
	conn   net.Conn
	addr   string // addrKey of the source
	id     string // registered identity ("" until registered); set under s.mu
	authed bool
	holder holder    // authenticated clients
	since  time.Time // when it registered; set under s.mu

	// Guarded by s.mu.
	pend     *list.Element // in s.pending while registering
	out      []outLine     // outbound queue
	outBytes int
	closing  bool // write what is queued, then close (replaced, shutdown)
	gone     bool
	wake     chan struct{}

	// Read loop only.
	tokens float64 // rate limit
	last   time.Time
}

func (c *srvClient) readLoop() {
	s := c.s
	defer s.wg.Done()
	defer c.drop()
	r := bufio.NewReaderSize(c.conn, 4096)
	c.conn.SetReadDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	err := c.register(r)
	s.mu.Lock()
	s.unpendLocked(c)
	s.mu.Unlock()
	if err != nil {
		if isTimeout(err) {
			s.count(func(st *ServerStats) { st.HandshakeTimeouts++ })
		}
		s.logs.logf(slog.LevelInfo, "register", "signaling: registration failed", "addr", c.conn.RemoteAddr(), "err", err)
		return
	}
	s.log.Debug("signaling: client registered", "identity", c.id, "authenticated", c.authed, "addr", c.conn.RemoteAddr())
	for {
		c.extendIdle()
		line, err := readLine(r)
		if err != nil {
			switch {
			case isTimeout(err):
				s.count(func(st *ServerStats) { st.IdleTimeouts++ })
			case errors.Is(err, errLineTooLong):
				s.count(func(st *ServerStats) { st.Malformed++ })
			case !isClosed(err):
				s.count(func(st *ServerStats) { st.ReadErrors++ })
			}
			s.log.Debug("signaling: client read", "identity", c.id, "err", err)
			return
		}
		if !c.allow() {
			s.count(func(st *ServerStats) { st.RateLimited++ })
			s.logs.logf(slog.LevelInfo, "rate", "signaling: client over its rate, lines dropped", "identity", c.id, "addr", c.conn.RemoteAddr())
			continue
		}
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			continue // a keepalive
		}
		if c.authed && string(bytes.TrimSuffix(line, []byte{'\r'})) == iceWant {
			if s.cfg.TURN != nil {
				s.mu.Lock()
				c.queueLocked(s.cfg.TURN.iceLine(c.id, time.Now()))
				s.st.ICESent++
				s.mu.Unlock()
			}
			continue
		}
		to, blob, err := parseLine(line)
		if err != nil {
			s.count(func(st *ServerStats) { st.Malformed++ })
			s.logs.logf(slog.LevelInfo, "malformed", "signaling: malformed line dropped", "identity", c.id, "err", err)
			continue // GNS's server ignores weird input too
		}
		if !s.forward(c, to, blob) {
			s.count(func(st *ServerStats) { st.AbsentFloods++ })
			s.logs.logf(slog.LevelInfo, "absent", "signaling: client disconnected for signalling absent identities", "identity", c.id, "addr", c.conn.RemoteAddr())
			s.mu.Lock()
			if !c.closing {
				c.queueLocked([]byte(authErr + " " + reasonAbsent + "\n"))
				c.closing = true
			}
			s.mu.Unlock()
			// The writer closes the connection once the line is out (or
			// WriteTimeout has passed); what the client sends meanwhile is
			// read and ignored.
			c.discard(r)
			return
		}
	}
}

// extendIdle moves the read deadline IdleTimeout ahead (both loops call
// it: traffic either way keeps a client).
func (c *srvClient) extendIdle() {
	if d := c.s.cfg.IdleTimeout; d > 0 {
		c.conn.SetReadDeadline(time.Now().Add(d))
	} else {
		c.conn.SetReadDeadline(time.Time{})
	}
}

// discard reads and drops input until the connection ends.
func (c *srvClient) discard(r *bufio.Reader) {
	c.conn.SetReadDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	io.Copy(io.Discard, io.LimitReader(r, refuseDrainBytes))
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// isClosed reports whether err says the connection ended (closed by
// either side), as opposed to bad input.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}

// allow takes a token from the client's bucket.
func (c *srvClient) allow() bool {
	now := time.Now()
	c.tokens = min(float64(c.s.cfg.Burst), c.tokens+now.Sub(c.last).Seconds()*c.s.cfg.Rate)
	c.last = now
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

func (s *Server) count(f func(*ServerStats)) {
	s.mu.Lock()
	f(&s.st)
	s.mu.Unlock()
}

// register reads the first line: an identity (trivial) or the
// authenticated hello, and runs the challenge.
func (c *srvClient) register(r *bufio.Reader) error {
	s := c.s
	line, err := readLine(r)
	if err != nil {
		switch {
		case errors.Is(err, errLineTooLong):
			s.count(func(st *ServerStats) { st.Malformed++ })
		case !isTimeout(err) && !isClosed(err):
			s.count(func(st *ServerStats) { st.ReadErrors++ })
		}
		return err
	}
	id, certBytes, isHello, err := parseHello(line)
	if !isHello {
		// GNS's server strips the identity line and takes it on trust.
		id := strings.TrimSpace(string(line))
		if s.cfg.NoTrivial {
			s.count(func(st *ServerStats) { st.Refused++; st.RefusedTrivial++ })
			c.writeNow(authErr + " " + reasonNoTrivial + "\n")
			return errors.New(reasonNoTrivial)
		}
		if err := CheckIdentity(id); err != nil {
			s.count(func(st *ServerStats) { st.Malformed++ })
			return err
		}
		return c.take(id, false, holder{})
	}
	fail := func(why string) error {
		s.count(func(st *ServerStats) { st.AuthFailed++ })
		c.writeNow(authErr + " " + why + "\n")
		return errors.New(why)
	}
	if err != nil {
		return fail(err.Error())
	}
	var cert pb.CertificateSigned
	if proto.Unmarshal(certBytes, &cert) != nil {
		return fail("bad certificate")
	}
	challenge := make([]byte, challengeLen)
	rand.Read(challenge)
	if err := c.writeNow(authChallenge + " " + hex.EncodeToString(challenge) + "\n"); err != nil {
		return err
	}
	line, err = readLine(r)
	if err != nil {
		return err
	}
	sig, err := parseWordHex(line, authProof, ed25519.SignatureSize)
	if err != nil {
		return fail("bad proof")
	}
	pol := &crypto.PeerPolicy{Trust: s.trust, AllowUnsigned: s.cfg.AllowUnsigned, AppID: s.cfg.AppID, Now: time.Now(), ExpectedIdentity: id}
	got, caSigned, err := crypto.VerifyProof(pol, &cert, proofMessage(id, challenge), sig)
	if err != nil {
		return fail(err.Error())
	}
	if got != id {
		return fail(fmt.Sprintf("the certificate names %q, not %q", got, id))
	}
	var body pb.Certificate
	if proto.Unmarshal(cert.GetCert(), &body) != nil {
		return fail("bad certificate")
	}
	if err := c.take(id, true, holder{key: string(body.GetKeyData()), caSigned: caSigned}); err != nil {
		c.writeNow(authErr + " " + err.Error() + "\n")
		return err
	}
	return nil
}

// errTakeover refuses a registration that would take an identity from its
// authenticated holder.
var errTakeover = errors.New("identity held by another authenticated key")

// writeNow writes a registration line directly (the write loop has nothing
// to write before the client is registered).
func (c *srvClient) writeNow(line string) error {
	c.conn.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	_, err := c.conn.Write([]byte(line))
	return err
}

// take registers c as id. A later registration replaces an earlier one (as
// GNS's server does), except that a trivial client cannot replace an
// authenticated one or take a reserved identity, and an authenticated one
// with an unsigned certificate cannot replace another key's.
func (c *srvClient) take(id string, authed bool, h holder) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	old := s.clients[id]
	var prev *holder
	rh, remote := s.remote[id]
	if old != nil && old.authed {
		prev = &old.holder
	} else if remote && rh.authed {
		prev = &rh.holder
	} else if r, ok := s.reserved[id]; ok && now.Before(r.until) {
		prev = &r.holder
	}
	if prev != nil && (!authed || !prev.mayTake(h)) {
		s.st.TakeoverRefused++
		return errTakeover
	}
	if prev == nil {
		delete(s.reserved, id) // expired, if there
	}
	if old != nil {
		s.st.Replaced++
		if old.authed {
			// Tell it, so it stops instead of taking the identity back.
			old.queueLocked([]byte(authErr + " " + errReplaced + "\n"))
			old.closing = true
		} else {
			old.conn.Close()
		}
	}
	if remote {
		s.st.Replaced++ // the other node drops its client when it sees our claim
		delete(s.remote, id)
	}
	c.id, c.authed, c.holder, c.since = id, authed, h, now
	if authed {
		delete(s.reserved, id)
		c.queueLocked([]byte(authOK + "\n")) // before any signal
	}
	s.clients[id] = c
	s.st.Registered++
	if s.cl != nil {
		s.cl.claimLocked(c)
	}
	return nil
}

// endLocked ends a client that lost its identity to another connection
// (s.mu held): an authenticated client is told line first, a trivial one
// is closed.
func (c *srvClient) endLocked(line string) {
	if c.authed {
		c.queueLocked([]byte(line))
		c.closing = true
	} else {
		c.conn.Close()
	}
}

// outLine is a line waiting for the write loop, and when a signal was
// queued (zero for the server's own lines).
type outLine struct {
	b  []byte
	at time.Time
}

// queueLocked queues a line of the server's for the write loop (s.mu
// held).
func (c *srvClient) queueLocked(line []byte) { c.queueAtLocked(line, time.Time{}) }

// queueAtLocked queues a line, a signal if at is set (s.mu held).
func (c *srvClient) queueAtLocked(line []byte, at time.Time) {
	c.out = append(c.out, outLine{line, at})
	c.outBytes += len(line)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// forward queues a signal from c to the client holding to. It returns
// false when nobody holds to and the sender's source has spent its budget
// of such signals.
func (s *Server) forward(from *srvClient, to string, blob []byte) bool {
	line := appendLine(make([]byte, 0, len(from.id)+2+2*len(blob)), from.id, blob)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.st.Received++
	if s.clients[from.id] != from {
		return true // replaced; its connection is closing
	}
	dst := s.clients[to]
	if rh, ok := s.remote[to]; ok && dst == nil && s.cl != nil {
		if s.cfg.IsolateTrivial && rh.authed != from.authed {
			s.st.Isolated++
			return true
		}
		s.st.ClusterOut++
		s.cl.forwardLocked(rh.node, clSignal{To: to, From: from.id, Authed: from.authed, Blob: blob, At: time.Now().UnixNano()})
		return true
	}
	switch {
	case dst == nil || dst.closing:
		s.st.NoRecipient++
		if a := s.addrs[from.addr]; a != nil {
			if s.absentTokensLocked(a, time.Now()) < 1 {
				return false
			}
			a.absent--
		}
	case s.cfg.IsolateTrivial && dst.authed != from.authed:
		s.st.Isolated++
	case len(dst.out) >= s.cfg.QueueLen || dst.outBytes+len(line) > s.cfg.QueueBytes:
		s.st.QueueDropped++
	default:
		dst.queueAtLocked(line, time.Now())
		s.st.Forwarded++
	}
	return true
}

func (c *srvClient) writeLoop() {
	s := c.s
	defer s.wg.Done()
	var batch []outLine
	var buf bytes.Buffer
	for {
		s.mu.Lock()
		batch, c.out = c.out, batch[:0]
		c.outBytes = 0
		gone, closing := c.gone, c.closing
		s.mu.Unlock()
		if gone {
			return
		}
		if len(batch) > 0 {
			buf.Reset()
			for _, l := range batch {
				buf.Write(l.b)
			}
			c.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			_, err := c.conn.Write(buf.Bytes())
			if err == nil {
				now := time.Now()
				for _, l := range batch {
					if !l.at.IsZero() {
						s.metrics.latency.Observe(now.Sub(l.at).Seconds())
					}
				}
			}
			clear(batch)
			if err != nil {
				if isTimeout(err) {
					s.count(func(st *ServerStats) { st.SlowReaders++ })
					s.logs.logf(slog.LevelInfo, "slow", "signaling: client dropped for not reading", "identity", c.id, "addr", c.conn.RemoteAddr())
				}
				c.conn.Close() // the read loop sees it and drops the client
			} else if !closing {
				c.extendIdle()
			}
			if buf.Cap() > 4*s.cfg.QueueBytes {
				buf = bytes.Buffer{}
			}
			continue
		}
		if closing {
			c.conn.Close()
		}
		<-c.wake
	}
}

// drop unregisters c (reserving an authenticated identity) and stops its
// writer.
func (c *srvClient) drop() {
	s := c.s
	c.conn.Close()
	s.mu.Lock()
	if c.id != "" && s.clients[c.id] == c {
		delete(s.clients, c.id)
		var until time.Time
		if c.authed && c.holder.caSigned && s.cfg.ReserveFor > 0 {
			until = time.Now().Add(s.cfg.ReserveFor)
			s.reserveLocked(c.id, reservation{c.holder, until})
		}
		if s.cl != nil {
			s.cl.releaseLocked(c.id, until)
		}
	}
	s.unpendLocked(c)
	if a := s.addrs[c.addr]; a != nil {
		if a.conns--; a.conns <= 0 && s.absentTokensLocked(a, time.Now()) >= float64(s.cfg.AbsentBurst) {
			delete(s.addrs, c.addr)
		}
	}
	delete(s.all, c)
	c.gone, c.out = true, nil
	s.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	s.log.Debug("signaling: client gone", "identity", c.id, "addr", c.conn.RemoteAddr())
}

// reserveLocked records a reservation, keeping at most 4*MaxClients:
// expired ones go first, then the oldest.
func (s *Server) reserveLocked(id string, r reservation) {
	s.reserved[id] = r
	max := 4 * s.cfg.MaxClients
	if len(s.reserved) <= max {
		return
	}
	now := time.Now()
	type entry struct {
		id    string
		until time.Time
	}
	var live []entry
	for k, v := range s.reserved {
		if now.Before(v.until) {
			live = append(live, entry{k, v.until})
		} else {
			delete(s.reserved, k)
		}
	}
	if len(live) <= max {
		return
	}
	// Keep the newest three quarters, so pruning happens rarely.
	slices.SortFunc(live, func(a, b entry) int { return a.until.Compare(b.until) })
	for _, e := range live[:len(live)-3*max/4] {
		delete(s.reserved, e.id)
	}
}
