package signaling

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
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

// ClientConfig is what an authenticated client proves: an identity, the
// Ed25519 key its certificate binds to it, and the certificate (GNS's
// serialized CertificateSigned, as Host configuration and `netmsg cert`
// use).
type ClientConfig struct {
	Identity    string
	Key         ed25519.PrivateKey
	Certificate []byte
}

// Timeouts of the TCP clients.
const (
	dialTimeout  = 5 * time.Second
	writeTimeout = 5 * time.Second
	backoffMin   = 100 * time.Millisecond
	backoffMax   = 5 * time.Second
)

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
// it holds the key of a certificate naming that identity.
func Dial(ctx context.Context, addr string, cfg ClientConfig) (Conn, error) {
	if err := CheckIdentity(cfg.Identity); err != nil {
		return nil, err
	}
	if len(cfg.Key) != ed25519.PrivateKeySize || len(cfg.Certificate) == 0 {
		return nil, errors.New("signaling: Dial needs a key and a certificate")
	}
	c := &client{addr: addr, id: cfg.Identity, auth: &cfg}
	return dial(ctx, c)
}

type client struct {
	addr string
	id   string
	auth *ClientConfig // nil: the trivial protocol
	in   *inbox

	mu     sync.Mutex
	conn   net.Conn // nil while reconnecting
	closed bool
	buf    []byte
	done   chan struct{}
	wg     sync.WaitGroup
}

func dial(ctx context.Context, c *client) (*client, error) {
	c.in = newInbox(0)
	c.done = make(chan struct{})
	conn, r, err := c.connect(ctx)
	if err != nil {
		return nil, err
	}
	c.conn = conn
	c.wg.Add(1)
	go c.run(conn, r)
	return c, nil
}

// connect dials and registers.
func (c *client) connect(ctx context.Context) (net.Conn, *bufio.Reader, error) {
	d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("signaling: %w", err)
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
	if c.auth == nil {
		_, err := conn.Write([]byte(c.id + "\n"))
		return err
	}
	hello := authHello + " " + c.id + " " + hex.EncodeToString(c.auth.Certificate) + "\n"
	if _, err := conn.Write([]byte(hello)); err != nil {
		return fmt.Errorf("signaling: %w", err)
	}
	line, err := readLine(r)
	if err != nil {
		return fmt.Errorf("signaling: waiting for the challenge: %w", err)
	}
	word, arg, _ := strings.Cut(string(line), " ")
	if word == authErr {
		return fmt.Errorf("%w: %s", ErrRefused, arg)
	}
	ch, err := hex.DecodeString(arg)
	if word != authChallenge || err != nil || len(ch) != challengeLen {
		return fmt.Errorf("signaling: bad challenge %q", clip(string(line)))
	}
	sig := ed25519.Sign(c.auth.Key, proofMessage(c.id, ch))
	if _, err := conn.Write([]byte(authProof + " " + hex.EncodeToString(sig) + "\n")); err != nil {
		return fmt.Errorf("signaling: %w", err)
	}
	line, err = readLine(r)
	if err != nil {
		return fmt.Errorf("signaling: waiting for the verdict: %w", err)
	}
	if word, arg, _ := strings.Cut(string(line), " "); word != authOK {
		return fmt.Errorf("%w: %s", ErrRefused, arg)
	}
	return nil
}

// readLine reads one line of at most maxLine bytes, without its newline.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > maxLine {
			return nil, errors.New("signaling: line too long")
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

// run reads signals until the connection drops, then reconnects, until
// Close.
func (c *client) run(conn net.Conn, r *bufio.Reader) {
	defer c.wg.Done()
	backoff := backoffMin
	for {
		for {
			line, err := readLine(r)
			if err != nil {
				break
			}
			backoff = backoffMin
			from, blob, err := parseLine(line)
			if err != nil {
				continue // as GNS's client: a bad line is skipped
			}
			c.in.push(from, blob)
		}
		conn.Close()
		c.mu.Lock()
		c.conn = nil
		closed := c.closed
		c.mu.Unlock()
		if closed {
			return
		}
		for {
			select {
			case <-c.done:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, backoffMax)
			ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
			nc, nr, err := c.connect(ctx)
			cancel()
			if err != nil {
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

func (c *client) Send(to string, blob []byte) error {
	if err := CheckIdentity(to); err != nil {
		return err
	}
	if len(blob) > MaxBlobSize {
		return ErrTooLarge
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	if c.conn == nil {
		return ErrNotUp
	}
	c.buf = appendLine(c.buf[:0], to, blob)
	c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := c.conn.Write(c.buf); err != nil {
		c.conn.Close() // the reader sees it and reconnects
		return fmt.Errorf("signaling: %w", err)
	}
	return nil
}

func (c *client) Recv(ctx context.Context) (string, []byte, error) { return c.in.pop(ctx) }

func (c *client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.conn != nil {
		c.conn.Close()
	}
	close(c.done)
	c.mu.Unlock()
	c.wg.Wait()
	c.in.close()
	return nil
}
