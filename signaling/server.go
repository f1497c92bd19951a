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
	// names, so nobody can take over an identity someone registered that
	// way, but anyone may register a new identity.
	AllowUnsigned bool
	// AppID, if the certificates list app IDs, must be among them.
	AppID uint32
	// NoTrivial refuses GNS's trivial protocol, whose clients claim an
	// identity without proof. With trivial clients allowed, an identity
	// held by an authenticated client cannot be taken by a trivial one.
	NoTrivial bool
	// MaxClients bounds the connected clients (default 10,000).
	MaxClients int
	// QueueLen bounds the signals waiting to be written to one client
	// (default 256); more are dropped and counted.
	QueueLen int
	// Rate and Burst limit the signals one client may send (per second,
	// token bucket; default 200/s and 400). Excess signals are dropped and
	// counted.
	Rate  float64
	Burst int
	// HandshakeTimeout bounds registration (default 10 s).
	HandshakeTimeout time.Duration
	// Logger receives one line per client event; nil discards them.
	Logger *slog.Logger
}

// ServerStats counts what a Server did.
type ServerStats struct {
	Clients, Trivial, Authenticated int // connected now
	Registered                      uint64
	Forwarded                       uint64
	NoRecipient                     uint64 // signals to an identity nobody holds
	RateLimited                     uint64
	QueueDropped                    uint64 // the recipient did not read fast enough
	Malformed                       uint64 // bad lines
	AuthFailed                      uint64 // authentication refused
	Refused                         uint64 // over MaxClients, trivial when refused, or taking an authenticated identity
}

// Server is a signaling server speaking GNS's trivial protocol and
// netmsg's authenticated one on one TCP port (see doc.go).
type Server struct {
	cfg   ServerConfig
	trust *crypto.TrustStore
	log   *slog.Logger

	mu      sync.Mutex
	clients map[string]*srvClient // by registered identity
	all     map[*srvClient]struct{}
	lis     []net.Listener
	closed  bool
	st      ServerStats
	wg      sync.WaitGroup
}

// NewServer returns a Server; call Serve to run it.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.MaxClients <= 0 {
		cfg.MaxClients = 10000
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 256
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
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{cfg: cfg, log: log, clients: map[string]*srvClient{}, all: map[*srvClient]struct{}{}}
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

// Serve accepts clients on l until Close. It returns nil after Close.
func (s *Server) Serve(l net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		l.Close()
		return ErrClosed
	}
	s.lis = append(s.lis, l)
	s.mu.Unlock()
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
		c := &srvClient{s: s, conn: conn, wake: make(chan struct{}, 1), tokens: float64(s.cfg.Burst), last: time.Now()}
		s.mu.Lock()
		if s.closed || len(s.all) >= s.cfg.MaxClients {
			s.st.Refused++
			s.mu.Unlock()
			conn.Close()
			continue
		}
		s.all[c] = struct{}{}
		s.wg.Add(2)
		s.mu.Unlock()
		go c.readLoop()
		go c.writeLoop()
	}
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
	id     string // registered identity ("" until registered)
	authed bool

	// Outbound queue, guarded by s.mu.
	out    [][]byte
	wake   chan struct{}
	gone   bool
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
		s.log.Info("signaling: client refused", "addr", c.conn.RemoteAddr(), "err", err)
		return
	}
	c.conn.SetReadDeadline(time.Time{})
	s.log.Info("signaling: client registered", "identity", c.id, "authenticated", c.authed, "addr", c.conn.RemoteAddr())
	for {
		line, err := readLine(r)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				s.count(func(st *ServerStats) { st.Malformed++ })
			}
			return
		}
		if !c.allow() {
			s.count(func(st *ServerStats) { st.RateLimited++ })
			continue
		}
		to, blob, err := parseLine(line)
		if err != nil {
			s.count(func(st *ServerStats) { st.Malformed++ })
			continue // GNS's server ignores weird input too
		}
		s.forward(c, to, blob)
	}
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
		return err
	}
	word, rest, _ := strings.Cut(string(line), " ")
	if word != authHello {
		id := strings.TrimSpace(string(line))
		if s.cfg.NoTrivial {
			s.count(func(st *ServerStats) { st.Refused++ })
			return errors.New("trivial protocol refused")
		}
		if err := CheckIdentity(id); err != nil {
			s.count(func(st *ServerStats) { st.Malformed++ })
			return err
		}
		return c.take(id, false)
	}
	fail := func(why string) error {
		s.count(func(st *ServerStats) { st.AuthFailed++ })
		c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		c.conn.Write([]byte(authErr + " " + why + "\n"))
		return errors.New(why)
	}
	id, certHex, _ := strings.Cut(rest, " ")
	if CheckIdentity(id) != nil {
		return fail("bad identity")
	}
	certBytes, err := hex.DecodeString(certHex)
	var cert pb.CertificateSigned
	if err != nil || proto.Unmarshal(certBytes, &cert) != nil {
		return fail("bad certificate")
	}
	challenge := make([]byte, challengeLen)
	rand.Read(challenge)
	c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.conn.Write([]byte(authChallenge + " " + hex.EncodeToString(challenge) + "\n")); err != nil {
		return err
	}
	line, err = readLine(r)
	if err != nil {
		return err
	}
	word, sigHex, _ := strings.Cut(string(line), " ")
	sig, err := hex.DecodeString(sigHex)
	if word != authProof || err != nil {
		return fail("bad proof")
	}
	pol := &crypto.PeerPolicy{Trust: s.trust, AllowUnsigned: s.cfg.AllowUnsigned, AppID: s.cfg.AppID, Now: time.Now(), ExpectedIdentity: id}
	got, _, err := crypto.VerifyProof(pol, &cert, proofMessage(id, challenge), sig)
	if err != nil {
		return fail(err.Error())
	}
	if got != id {
		return fail(fmt.Sprintf("the certificate names %q, not %q", got, id))
	}
	if err := c.take(id, true); err != nil {
		return err
	}
	c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err = c.conn.Write([]byte(authOK + "\n"))
	return err
}

// take registers c as id. A later registration replaces an earlier one (as
// GNS's server does), except that a trivial client cannot replace an
// authenticated one.
func (c *srvClient) take(id string, authed bool) error {
	s := c.s
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.clients[id]
	if old != nil && old.authed && !authed {
		s.st.Refused++
		return fmt.Errorf("%s is held by an authenticated client", id)
	}
	if old != nil {
		old.conn.Close() // its read loop unregisters nothing: the entry is ours now
	}
	c.id, c.authed = id, authed
	s.clients[id] = c
	s.st.Registered++
	return nil
}

// forward queues a signal from c to the client holding to.
func (s *Server) forward(from *srvClient, to string, blob []byte) {
	line := appendLine(make([]byte, 0, len(from.id)+2+2*len(blob)), from.id, blob)
	s.mu.Lock()
	defer s.mu.Unlock()
	dst := s.clients[to]
	switch {
	case dst == nil:
		s.st.NoRecipient++
	case len(dst.out) >= s.cfg.QueueLen:
		s.st.QueueDropped++
	default:
		dst.out = append(dst.out, line)
		s.st.Forwarded++
		select {
		case dst.wake <- struct{}{}:
		default:
		}
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
		gone := c.gone
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
			c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := c.conn.Write(buf.Bytes()); err != nil {
				c.conn.Close() // a stuck reader: let it go
			}
			continue
		}
		<-c.wake
	}
}

// drop unregisters c and stops its writer.
func (c *srvClient) drop() {
	s := c.s
	c.conn.Close()
	s.mu.Lock()
	if c.id != "" && s.clients[c.id] == c {
		delete(s.clients, c.id)
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
