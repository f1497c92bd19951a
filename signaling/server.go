package signaling

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
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
	// HandshakeTimeout bounds registration (default 10 s).
	HandshakeTimeout time.Duration
	// IdleTimeout disconnects a registered client that sends nothing for
	// this long (default 0: never, since GNS's trivial clients are silent
	// when idle; they reconnect when dropped). Dead connections are found
	// by TCP keepalive either way (30 s idle, as GNS's server).
	IdleTimeout time.Duration
	// WriteTimeout disconnects a client that does not read what the server
	// writes for this long (default 10 s).
	WriteTimeout time.Duration
	// Logger receives one line per client event; nil discards them.
	Logger *slog.Logger
}

// ServerStats counts what a Server did.
type ServerStats struct {
	Clients, Trivial, Authenticated int // connected now (Clients counts unregistered ones too)
	Reserved                        int // identities reserved now for CA-signed certificates
	Registered                      uint64
	Replaced                        uint64 // registrations that replaced a client with the same identity
	Forwarded                       uint64
	NoRecipient                     uint64 // signals to an identity nobody holds
	Isolated                        uint64 // signals between trivial and authenticated clients dropped (IsolateTrivial)
	RateLimited                     uint64
	QueueDropped                    uint64 // the recipient did not read fast enough
	Malformed                       uint64 // bad lines (an oversized one closes the client)
	AuthFailed                      uint64 // authentication refused (bad certificate, untrusted CA, wrong identity or key, bad or replayed proof)
	TakeoverRefused                 uint64 // a trivial client or another key claiming an authenticated identity
	Refused                         uint64 // over MaxClients, or the trivial protocol with NoTrivial
	HandshakeTimeouts               uint64
	IdleTimeouts                    uint64
	SlowReaders                     uint64 // clients dropped for not reading within WriteTimeout
}

// Server is a signaling server speaking GNS's trivial protocol and
// netmsg's authenticated one on one TCP port (see doc.go).
type Server struct {
	cfg   ServerConfig
	trust *crypto.TrustStore
	log   *slog.Logger

	mu       sync.Mutex
	clients  map[string]*srvClient // by registered identity
	all      map[*srvClient]struct{}
	reserved map[string]reservation
	lis      []net.Listener
	closed   bool
	st       ServerStats
	wg       sync.WaitGroup
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
		cfg.HandshakeTimeout = 10 * time.Second
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
	s := &Server{cfg: cfg, log: log, clients: map[string]*srvClient{}, all: map[*srvClient]struct{}{}, reserved: map[string]reservation{}}
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

// serveConn starts a client's goroutines, or refuses it.
func (s *Server) serveConn(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3})
	}
	c := &srvClient{s: s, conn: conn, wake: make(chan struct{}, 1), tokens: float64(s.cfg.Burst), last: time.Now()}
	s.mu.Lock()
	if s.closed || len(s.all) >= s.cfg.MaxClients {
		s.st.Refused++
		s.mu.Unlock()
		conn.Close()
		return
	}
	s.all[c] = struct{}{}
	s.wg.Add(2)
	s.mu.Unlock()
	go c.readLoop()
	go c.writeLoop()
}

// Close stops the listeners and disconnects every client.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	for _, l := range s.lis {
		l.Close()
	}
	for c := range s.all {
		c.conn.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}

// Stats returns the counters.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.Clients = len(s.all)
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
	id     string // registered identity ("" until registered); set under s.mu
	authed bool
	holder holder // authenticated clients

	// Outbound queue, guarded by s.mu.
	out      [][]byte
	outBytes int
	closing  bool // write what is queued, then close (replaced)
	gone     bool
	wake     chan struct{}

	tokens float64 // rate limit (read loop only)
	last   time.Time
}

func (c *srvClient) readLoop() {
	s := c.s
	defer s.wg.Done()
	defer c.drop()
	r := bufio.NewReaderSize(c.conn, 4096)
	c.conn.SetReadDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	if err := c.register(r); err != nil {
		if isTimeout(err) {
			s.count(func(st *ServerStats) { st.HandshakeTimeouts++ })
		}
		s.log.Info("signaling: client refused", "addr", c.conn.RemoteAddr(), "err", err)
		return
	}
	s.log.Info("signaling: client registered", "identity", c.id, "authenticated", c.authed, "addr", c.conn.RemoteAddr())
	for {
		if s.cfg.IdleTimeout > 0 {
			c.conn.SetReadDeadline(time.Now().Add(s.cfg.IdleTimeout))
		} else {
			c.conn.SetReadDeadline(time.Time{})
		}
		line, err := readLine(r)
		if err != nil {
			switch {
			case isTimeout(err):
				s.count(func(st *ServerStats) { st.IdleTimeouts++ })
			case !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed):
				s.count(func(st *ServerStats) { st.Malformed++ })
			}
			s.log.Info("signaling: client read", "identity", c.id, "err", err)
			return
		}
		if !c.allow() {
			s.count(func(st *ServerStats) { st.RateLimited++ })
			continue
		}
		if len(line) == 0 || (len(line) == 1 && line[0] == '\r') {
			continue // a keepalive
		}
		to, blob, err := parseLine(line)
		if err != nil {
			s.count(func(st *ServerStats) { st.Malformed++ })
			continue // GNS's server ignores weird input too
		}
		s.forward(c, to, blob)
	}
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

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
		if !isTimeout(err) && !errors.Is(err, io.EOF) {
			s.count(func(st *ServerStats) { st.Malformed++ })
		}
		return err
	}
	id, certBytes, isHello, err := parseHello(line)
	if !isHello {
		// GNS's server strips the identity line and takes it on trust.
		id := strings.TrimSpace(string(line))
		if s.cfg.NoTrivial {
			s.count(func(st *ServerStats) { st.Refused++ })
			return errors.New("trivial protocol refused")
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
	if old != nil && old.authed {
		prev = &old.holder
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
	c.id, c.authed, c.holder = id, authed, h
	if authed {
		delete(s.reserved, id)
		c.queueLocked([]byte(authOK + "\n")) // before any signal
	}
	s.clients[id] = c
	s.st.Registered++
	return nil
}

// queueLocked queues a line for the write loop (s.mu held).
func (c *srvClient) queueLocked(line []byte) {
	c.out = append(c.out, line)
	c.outBytes += len(line)
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// forward queues a signal from c to the client holding to.
func (s *Server) forward(from *srvClient, to string, blob []byte) {
	line := appendLine(make([]byte, 0, len(from.id)+2+2*len(blob)), from.id, blob)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.clients[from.id] != from {
		return // replaced; its connection is closing
	}
	dst := s.clients[to]
	switch {
	case dst == nil || dst.closing:
		s.st.NoRecipient++
	case s.cfg.IsolateTrivial && dst.authed != from.authed:
		s.st.Isolated++
	case len(dst.out) >= s.cfg.QueueLen || dst.outBytes+len(line) > s.cfg.QueueBytes:
		s.st.QueueDropped++
	default:
		dst.queueLocked(line)
		s.st.Forwarded++
	}
}

func (c *srvClient) writeLoop() {
	s := c.s
	defer s.wg.Done()
	var batch [][]byte
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
			for i, l := range batch {
				buf.Write(l)
				batch[i] = nil
			}
			c.conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout))
			if _, err := c.conn.Write(buf.Bytes()); err != nil {
				if isTimeout(err) {
					s.count(func(st *ServerStats) { st.SlowReaders++ })
				}
				c.conn.Close() // the read loop sees it and drops the client
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
		if c.authed && c.holder.caSigned && s.cfg.ReserveFor > 0 {
			s.reserveLocked(c.id, reservation{c.holder, time.Now().Add(s.cfg.ReserveFor)})
		}
	}
	delete(s.all, c)
	c.gone, c.out = true, nil
	s.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	s.log.Info("signaling: client gone", "identity", c.id, "addr", c.conn.RemoteAddr())
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
