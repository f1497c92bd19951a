package signaling

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"time"
)

// The authenticated protocol's words (see doc.go).
const (
	authHello     = "NETMSG-SIGNAL/1"
	authChallenge = "CHALLENGE"
	authProof     = "PROOF"
	authOK        = "OK"
	authErr       = "ERR"
	errReplaced   = "replaced" // the reason of an ERR line that ends a replaced client
	proofDomain   = "netmsg-signal/1\x00"
	challengeLen  = 32
)

// proofMessage is what an authenticated client signs: a domain tag, its
// identity and the server's challenge, so a proof is good for one
// registration with one server only.
func proofMessage(identity string, challenge []byte) []byte {
	m := append([]byte(proofDomain), identity...)
	m = append(m, 0)
	return append(m, challenge...)
}

// parseHello parses the authenticated client's first line (without its
// newline): "NETMSG-SIGNAL/1 <identity> <hex of the certificate>". ok is
// false when the line is not a hello at all (then it is the trivial
// protocol's identity line); err reports a malformed hello.
func parseHello(line []byte) (identity string, cert []byte, ok bool, err error) {
	rest, ok := strings.CutPrefix(string(line), authHello+" ")
	if !ok {
		return "", nil, false, nil
	}
	identity, certHex, found := strings.Cut(rest, " ")
	if !found {
		return "", nil, true, errors.New("hello without a certificate")
	}
	if err := CheckIdentity(identity); err != nil {
		return "", nil, true, err
	}
	certHex = strings.TrimSuffix(certHex, "\r")
	if len(certHex) == 0 || len(certHex) > 2*MaxBlobSize {
		return "", nil, true, errors.New("bad certificate size")
	}
	cert, err = hex.DecodeString(certHex)
	if err != nil {
		return "", nil, true, fmt.Errorf("bad certificate hex: %w", err)
	}
	return identity, cert, true, nil
}

// parseWordHex parses "<word> <hex of n bytes>" (CHALLENGE and PROOF
// lines, without the newline).
func parseWordHex(line []byte, word string, n int) ([]byte, error) {
	h, ok := strings.CutPrefix(string(line), word+" ")
	if !ok {
		return nil, fmt.Errorf("expected %s, got %q", word, clip(string(line)))
	}
	h = strings.TrimSuffix(h, "\r")
	if len(h) != 2*n {
		return nil, fmt.Errorf("%s of %d hex digits, want %d", word, len(h), 2*n)
	}
	b, err := hex.DecodeString(h)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", word, err)
	}
	return b, nil
}

// ClientConfig is what an authenticated client proves: an identity, the
// Ed25519 key its certificate binds to it, and the certificate (GNS's
// serialized CertificateSigned, as Host configuration and `netmsg cert`
// use).
type ClientConfig struct {
	Identity    string
	Key         ed25519.PrivateKey
	Certificate []byte
	// TLSConfig verifies a wss:// server (nil: the system's roots).
	TLSConfig *tls.Config
	// DialContext opens the connection to the server's address (for
	// ws:// and wss:// URLs, the HTTP client's TCP connection), for the
	// first connection and every reconnection; network is "tcp". nil
	// means a net.Dialer. A proxy, or a test's in-memory network, goes
	// here.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Timeouts and bounds of the TCP clients.
const (
	dialTimeout  = 5 * time.Second
	writeTimeout = 5 * time.Second
	backoffMin   = 100 * time.Millisecond
	backoffMax   = 5 * time.Second
	// keepaliveInterval: an authenticated client with nothing to send
	// writes an empty line this often, so a server's IdleTimeout does not
	// drop it. (The trivial client sends nothing GNS's client would not.)
	keepaliveInterval = 30 * time.Second
	// clientQueueLen and clientQueueBytes bound the lines waiting to be
	// written to the server (GNS's client keeps 32).
	clientQueueLen   = 64
	clientQueueBytes = 1 << 20
)

// The server's address, for Dial, DialTrivial and DialURL, is a URL whose
// scheme picks the transport: "tcp://host:port", "ws://host:port/path"
// or "wss://host:port/path" (WebSocket, one text message per line; see
// Server.ListenWS); a plain "host:port" is TCP.

// DialURL connects to the signaling server at url: with the authenticated
// protocol when cfg has a key or a certificate (as Dial), with the
// trivial one otherwise (as DialTrivial).
func DialURL(ctx context.Context, url string, cfg ClientConfig) (Conn, error) {
	if cfg.Key == nil && cfg.Certificate == nil {
		if err := CheckIdentity(cfg.Identity); err != nil {
			return nil, err
		}
		return dial(ctx, &client{addr: url, id: cfg.Identity, tls: cfg.TLSConfig, dialer: cfg.DialContext})
	}
	return Dial(ctx, url, cfg)
}

// DialTrivial connects to a signaling server with GNS's trivial protocol
// (examples/trivial_signaling_client.cpp): the identity on the first line,
// then one "<identity> <hex>" line per signal each way. The server takes
// the identity on trust. The client reconnects by itself, with backoff,
// if the server drops it; Send fails with ErrNotUp meanwhile.
func DialTrivial(ctx context.Context, addr, identity string) (Conn, error) {
	if err := CheckIdentity(identity); err != nil {
		return nil, err
	}
	return dial(ctx, &client{addr: addr, id: identity})
}

// Dial connects to a netmsg signaling server with the authenticated
// protocol: the server registers cfg.Identity only after the client proved
// it holds the key of a certificate naming that identity. It reconnects
// (and proves again) as DialTrivial does; if a newer authenticated
// connection takes the identity over, the server tells this one, which
// stops: Recv and Send then return ErrReplaced.
func Dial(ctx context.Context, addr string, cfg ClientConfig) (Conn, error) {
	if err := CheckIdentity(cfg.Identity); err != nil {
		return nil, err
	}
	if len(cfg.Key) != ed25519.PrivateKeySize || len(cfg.Certificate) == 0 {
		return nil, errors.New("signaling: Dial needs a key and a certificate")
	}
	if len(cfg.Certificate) > MaxBlobSize {
		return nil, fmt.Errorf("signaling: certificate larger than %d bytes", MaxBlobSize)
	}
	c := &client{addr: addr, id: cfg.Identity, auth: &cfg, tls: cfg.TLSConfig, dialer: cfg.DialContext}
	return dial(ctx, c)
}

// client is a TCP Conn of either protocol. A reader goroutine reads
// signals and reconnects; a writer goroutine drains the send queue, so
// Send never waits for the network.
type client struct {
	addr string
	id   string
	auth *ClientConfig // nil: the trivial protocol
	tls  *tls.Config   // wss://
	in   *inbox
	// dialer is ClientConfig.DialContext (nil: a net.Dialer).
	dialer func(ctx context.Context, network, addr string) (net.Conn, error)

	mu       sync.Mutex
	conn     net.Conn // nil while reconnecting
	out      [][]byte // lines waiting for the writer (for conn)
	outBytes int
	closed   bool
	err      error         // why the client stopped (ErrClosed, ErrReplaced)
	refusal  string        // the reason the server gave when it closed the last connection, if any
	ice      *iceSet       // the last ICE line (authenticated clients)
	iceTimer *time.Timer   // asks for fresh credentials
	iceReady chan struct{} // closed when ice is first set
	iceNews  chan struct{} // closed (and replaced) each time ice is set
	wake     chan struct{} // the writer has work (cap 1)
	done     chan struct{} // closed by Close
	ctx      context.Context
	cancel   context.CancelFunc // ends a reconnection in progress
	wg       sync.WaitGroup
}

func dial(ctx context.Context, c *client) (*client, error) {
	c.in = newInbox(0)
	c.done = make(chan struct{})
	c.iceReady = make(chan struct{})
	c.iceNews = make(chan struct{})
	c.wake = make(chan struct{}, 1)
	conn, r, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.conn = conn
	c.wg.Add(2)
	go c.run(conn, r)
	go c.writer()
	return c, nil
}

// connect dials and registers.
func (c *client) connect(ctx context.Context) (net.Conn, *bufio.Reader, error) {
	conn, err := dialTransport(ctx, c.addr, c.tls, c.dialer)
	if err != nil {
		return nil, nil, err
	}
	r := bufio.NewReaderSize(conn, 4096)
	if err := c.register(ctx, conn, r); err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, r, nil
}

func (c *client) register(ctx context.Context, conn net.Conn, r *bufio.Reader) error {
	deadline := time.Now().Add(dialTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	conn.SetDeadline(deadline)
	defer conn.SetDeadline(time.Time{})
	// Cancelling ctx interrupts the exchange.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if c.auth == nil {
		if _, err := conn.Write([]byte(c.id + "\n")); err != nil {
			return fmt.Errorf("signaling: %w", err)
		}
		return nil
	}
	hello := authHello + " " + c.id + " " + hex.EncodeToString(c.auth.Certificate) + "\n"
	if _, err := conn.Write([]byte(hello)); err != nil {
		return fmt.Errorf("signaling: %w", err)
	}
	line, err := readLine(r)
	if err != nil {
		return fmt.Errorf("signaling: waiting for the challenge: %w", err)
	}
	if reason, ok := strings.CutPrefix(string(line), authErr+" "); ok {
		return fmt.Errorf("%w: %s", ErrRefused, clip(reason))
	}
	ch, err := parseWordHex(line, authChallenge, challengeLen)
	if err != nil {
		return fmt.Errorf("signaling: %w", err)
	}
	sig := ed25519.Sign(c.auth.Key, proofMessage(c.id, ch))
	if _, err := conn.Write([]byte(authProof + " " + hex.EncodeToString(sig) + "\n")); err != nil {
		return fmt.Errorf("signaling: %w", err)
	}
	line, err = readLine(r)
	if err != nil {
		return fmt.Errorf("signaling: waiting for the verdict: %w", err)
	}
	if string(line) != authOK {
		reason, _ := strings.CutPrefix(string(line), authErr+" ")
		return fmt.Errorf("%w: %s", ErrRefused, clip(reason))
	}
	// Ask for TURN credentials (see ice.go).
	if _, err := conn.Write([]byte(iceWant + "\n")); err != nil {
		return fmt.Errorf("signaling: %w", err)
	}
	return nil
}

// dialTransport opens a connection to addr, a URL or "host:port" (see
// DialURL).
func dialTransport(ctx context.Context, addr string, tlsConfig *tls.Config, dialer func(ctx context.Context, network, addr string) (net.Conn, error)) (net.Conn, error) {
	scheme, rest, ok := strings.Cut(addr, "://")
	switch {
	case !ok:
	case scheme == "tcp":
		addr = strings.TrimSuffix(rest, "/")
	case scheme == "ws" || scheme == "wss":
		ctx, cancel := context.WithTimeout(ctx, dialTimeout)
		defer cancel()
		return dialWS(ctx, addr, tlsConfig, dialer)
	default:
		return nil, fmt.Errorf("signaling: unknown scheme %q in %q (tcp, ws or wss)", scheme, addr)
	}
	if dialer == nil {
		d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
		dialer = d.DialContext
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	conn, err := dialer(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("signaling: %w", err)
	}
	return conn, nil
}

// readLine reads one line of at most maxLine bytes, without its newline.
// errLineTooLong is readLine's error for a line over maxLine bytes.
var errLineTooLong = errors.New("signaling: line too long")

func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > maxLine {
			return nil, errLineTooLong
		}
		line = append(line, frag...)
		if err == nil {
			return line[:len(line)-1], nil
		}
		if err != bufio.ErrBufferFull {
			return nil, err
		}
	}
}

// run reads signals until the connection drops, then reconnects (with
// jittered exponential backoff), until Close or replacement.
func (c *client) run(conn net.Conn, r *bufio.Reader) {
	defer c.wg.Done()
	backoff := backoffMin
	for {
		reason := "" // what the server said before it closed this connection
		for {
			line, err := readLine(r)
			if err != nil {
				break
			}
			backoff = backoffMin
			// "ERR" has no ':', so it is never an identity: both protocols
			// carry the server's reasons this way.
			if c.auth != nil && strings.HasPrefix(string(line), iceWord+" ") {
				c.gotICE(string(line))
				continue
			}
			if why, ok := strings.CutPrefix(string(line), authErr+" "); ok {
				reason = clip(why)
				if c.auth != nil {
					break
				}
				continue
			}
			from, blob, err := parseLine(line)
			if err != nil {
				continue // as GNS's client: a bad line is skipped
			}
			c.in.push(from, blob)
		}
		conn.Close()
		c.mu.Lock()
		c.conn, c.out, c.outBytes = nil, nil, 0
		c.refusal = reason
		if c.auth != nil && reason == errReplaced {
			c.stopLocked(ErrReplaced)
		}
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return
		}
		for {
			wait := backoff/2 + rand.N(backoff/2+1)
			select {
			case <-c.done:
				return
			case <-time.After(wait):
			}
			backoff = min(2*backoff, backoffMax)
			ctx, cancel := context.WithTimeout(c.ctx, dialTimeout)
			nc, nr, err := c.connect(ctx)
			cancel()
			if err != nil {
				if errors.Is(err, ErrRefused) {
					c.mu.Lock()
					c.refusal = clip(strings.TrimPrefix(err.Error(), ErrRefused.Error()+": "))
					c.mu.Unlock()
				}
				continue
			}
			c.mu.Lock()
			if c.closed {
				c.mu.Unlock()
				nc.Close()
				return
			}
			c.conn = nc
			c.mu.Unlock()
			conn, r = nc, nr
			break
		}
	}
}

// writer writes queued lines to the current connection; an authenticated
// client also writes an empty line after keepaliveInterval of silence.
func (c *client) writer() {
	defer c.wg.Done()
	var buf []byte
	var batch [][]byte
	ka := time.NewTimer(keepaliveInterval)
	defer ka.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-c.wake:
		case <-ka.C:
			if c.auth != nil {
				c.mu.Lock()
				if c.conn != nil && len(c.out) == 0 {
					c.out = append(c.out, []byte{'\n'})
					c.outBytes++
				}
				c.mu.Unlock()
			}
		}
		ka.Reset(keepaliveInterval)
		c.mu.Lock()
		conn := c.conn
		batch, c.out = c.out, batch[:0]
		c.outBytes = 0
		c.mu.Unlock()
		if conn == nil || len(batch) == 0 {
			continue
		}
		buf = buf[:0]
		for i, l := range batch {
			buf = append(buf, l...)
			batch[i] = nil
		}
		conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		if _, err := conn.Write(buf); err != nil {
			conn.Close() // the reader sees it and reconnects
		}
		if cap(buf) > 4*clientQueueBytes {
			buf = nil
		}
	}
}

// Send queues the signal for the writer. It fails with ErrNotUp while the
// client reconnects (wrapping also ErrRefused, with the server's reason,
// when the server said why it closed the connection: "server full", "too
// many connections from your address", "shutdown"...) and ErrQueueFull
// when the server does not keep up.
func (c *client) Send(to string, blob []byte) error {
	if err := CheckIdentity(to); err != nil {
		return err
	}
	if len(blob) > MaxBlobSize {
		return ErrTooLarge
	}
	line := appendLine(make([]byte, 0, len(to)+2+2*len(blob)), to, blob)
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return c.err
	case c.conn == nil && c.refusal != "":
		return fmt.Errorf("%w (%w: %s)", ErrNotUp, ErrRefused, c.refusal)
	case c.conn == nil:
		return ErrNotUp
	case len(c.out) >= clientQueueLen || c.outBytes+len(line) > clientQueueBytes:
		return ErrQueueFull
	}
	c.out = append(c.out, line)
	c.outBytes += len(line)
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return nil
}

func (c *client) Recv(ctx context.Context) (string, []byte, error) { return c.in.pop(ctx) }

// Identity returns the identity the client registered with the server.
func (c *client) Identity() string { return c.id }

// stopLocked ends the client with err (c.mu held): no more sends, no
// reconnection.
func (c *client) stopLocked(err error) {
	if c.closed {
		return
	}
	c.closed, c.err = true, err
	c.cancel()
	if c.iceTimer != nil {
		c.iceTimer.Stop()
	}
	if c.conn != nil {
		c.conn.Close()
	}
	close(c.done)
	c.in.close(err)
}

func (c *client) Close() error {
	c.mu.Lock()
	c.stopLocked(ErrClosed)
	c.mu.Unlock()
	c.wg.Wait()
	return nil
}
