package peer

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
)

// quicPeer is quic-go with TLS 1.3 (its only mode): reliable messages are
// length-prefixed on one bidirectional stream, unreliable ones are RFC 9221
// datagrams (enabled only when Options.Unreliable asks). Flow-control
// windows are quic-go's defaults. Nothing but the given address is
// contacted: the sockets are bound to the loopback address, there is no
// STUN, no token store, no qlog.
type quicPeer struct{}

func init() { Register(quicPeer{}) }

// quicALPN is the application protocol both sides offer.
const quicALPN = "netbench"

func (quicPeer) Name() string { return "quic" }

func (quicPeer) Caps() Caps {
	return Caps{
		Reliable:   true,
		Unreliable: true,
		Encrypted:  true,
		Note:       "quic-go v0.65.0, TLS 1.3 (self-signed ECDSA P-256, generated in process), one stream, RFC 9221 datagrams, default windows",
	}
}

func quicConfig(opt Options) *quic.Config {
	return &quic.Config{
		EnableDatagrams:      opt.Unreliable,
		HandshakeIdleTimeout: 5 * time.Second,
		MaxIdleTimeout:       30 * time.Second,
	}
}

// selfSigned makes a throwaway certificate for the server.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "netbench"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func listenLoopbackUDP(addr string) (*net.UDPConn, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	return net.ListenUDP("udp", ua)
}

func (quicPeer) Listen(ctx context.Context, addr string, opt Options) (Listener, error) {
	cert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	uc, err := listenLoopbackUDP(addr)
	if err != nil {
		return nil, err
	}
	tr := &quic.Transport{Conn: wrapLoss(uc, opt)}
	ln, err := tr.Listen(&tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{quicALPN}}, quicConfig(opt))
	if err != nil {
		uc.Close()
		return nil, err
	}
	return &quicListener{ln: ln, tr: tr, uc: uc, opt: opt}, nil
}

type quicListener struct {
	ln  *quic.Listener
	tr  *quic.Transport
	uc  *net.UDPConn
	opt Options
}

func (l *quicListener) Addr() string { return l.uc.LocalAddr().String() }

// Accept waits for a connection and for its stream, which the client opens
// with its first message.
func (l *quicListener) Accept(ctx context.Context) (Conn, error) {
	conn, err := l.ln.Accept(ctx)
	if err != nil {
		return nil, err
	}
	str, err := conn.AcceptStream(ctx)
	if err != nil {
		conn.CloseWithError(0, "")
		return nil, err
	}
	return newQUICConn(conn, str, nil, l.opt), nil
}

func (l *quicListener) Close() error {
	err := l.ln.Close()
	if e := l.tr.Close(); err == nil {
		err = e
	}
	l.uc.Close()
	return err
}

func (quicPeer) Dial(ctx context.Context, addr string, opt Options) (Conn, error) {
	raddr, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, err
	}
	uc, err := listenLoopbackUDP(net.JoinHostPort(raddr.IP.String(), "0"))
	if err != nil {
		return nil, err
	}
	tr := &quic.Transport{Conn: wrapLoss(uc, opt)}
	// The certificate is throwaway and self-signed, so it is not verified;
	// the traffic is still encrypted, which is what the figures need.
	tc := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{quicALPN}, ServerName: "localhost"}
	conn, err := tr.Dial(ctx, raddr, tc, quicConfig(opt))
	if err != nil {
		tr.Close()
		uc.Close()
		return nil, err
	}
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		conn.CloseWithError(0, "")
		tr.Close()
		uc.Close()
		return nil, err
	}
	return newQUICConn(conn, str, func() { tr.Close(); uc.Close() }, opt), nil
}

type quicItem struct {
	b   []byte
	err error
}

type quicConn struct {
	conn    *quic.Conn
	str     *quic.Stream
	fr      *frameReader
	scratch []byte
	after   func() // closes the client's transport; nil on the server

	// With Options.Unreliable, two goroutines read the stream and the
	// datagrams and hand messages to Recv through merged.
	merged    chan quicItem
	done      <-chan struct{}
	cancel    context.CancelFunc
	closeOnce sync.Once
}

func newQUICConn(conn *quic.Conn, str *quic.Stream, after func(), opt Options) *quicConn {
	c := &quicConn{conn: conn, str: str, fr: newFrameReader(str), after: after}
	if opt.Unreliable {
		ctx, cancel := context.WithCancel(context.Background())
		c.cancel = cancel
		c.done = ctx.Done()
		c.merged = make(chan quicItem, 1024)
		go c.readStream(ctx)
		go c.readDatagrams(ctx)
	}
	return c
}

func (c *quicConn) push(ctx context.Context, it quicItem) bool {
	select {
	case c.merged <- it:
		return true
	case <-ctx.Done():
		return false
	}
}

func (c *quicConn) readStream(ctx context.Context) {
	for {
		b, err := c.fr.next()
		if err != nil {
			c.push(ctx, quicItem{err: err})
			return
		}
		if !c.push(ctx, quicItem{b: append([]byte(nil), b...)}) {
			return
		}
	}
}

func (c *quicConn) readDatagrams(ctx context.Context) {
	for {
		b, err := c.conn.ReceiveDatagram(ctx)
		if err != nil {
			c.push(ctx, quicItem{err: err})
			return
		}
		if !c.push(ctx, quicItem{b: b}) {
			return
		}
	}
}

func (c *quicConn) SendReliable(b []byte) error {
	c.scratch = appendFrame(c.scratch[:0], b)
	_, err := c.str.Write(c.scratch)
	return err
}

// SendUnreliable sends one QUIC datagram. quic-go queues up to 32 and then
// blocks, which is its back-pressure.
func (c *quicConn) SendUnreliable(b []byte) error {
	err := c.conn.SendDatagram(b)
	var tl *quic.DatagramTooLargeError
	if errors.As(err, &tl) {
		return ErrTooLarge
	}
	return err
}

func (c *quicConn) Recv() ([]byte, error) {
	if c.merged == nil {
		return c.fr.next()
	}
	select {
	case it := <-c.merged:
		return it.b, it.err
	case <-c.done:
		return nil, net.ErrClosed
	}
}

func (c *quicConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		if c.cancel != nil {
			c.cancel()
		}
		err = c.conn.CloseWithError(0, "")
		if c.after != nil {
			c.after()
		}
	})
	return err
}
