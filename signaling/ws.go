package signaling

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// Both protocols go over WebSocket as they go over TCP, one text message
// per line, without its newline (a message that ends in one is taken as
// is; a message holding several lines is several lines). So a browser
// sends and receives lines as plain strings.

// wsConn is a net.Conn over a WebSocket connection, for the line code of
// the server and the clients. One goroutine reads and one writes at a
// time; the deadline setters may be called from any goroutine. A deadline
// that passes ends the connection (coder/websocket closes a connection
// whose read or write is cancelled): the server and clients drop a
// connection whose deadline passed anyway.
type wsConn struct {
	c             *websocket.Conn
	local, remote net.Addr
	done          chan struct{} // closed by Close
	closeOnce     sync.Once

	// Reader state (reader only).
	cur    io.Reader       // the message being read
	curCtx context.Context // the context it reads with
	nl     bool            // a newline is owed after cur
	rctx   *deadlineCtx
	wctx   *deadlineCtx
}

// deadlineCtx is a context cancelled when a movable deadline passes: a
// deadline moved before it passes moves it for the I/O in progress too (as
// a net.Conn's does); once it has passed, moving it makes a fresh context
// for the I/O that follows (the I/O in progress has failed).
type deadlineCtx struct {
	mu     sync.Mutex
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	closed bool
}

func newDeadlineCtx() *deadlineCtx {
	d := &deadlineCtx{}
	d.ctx, d.cancel = context.WithCancelCause(context.Background())
	return d
}

// get returns the context for an I/O starting now.
func (d *deadlineCtx) get() context.Context {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ctx
}

func (d *deadlineCtx) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return
	}
	if d.timer != nil {
		d.timer.Stop()
		d.timer = nil
	}
	if d.ctx.Err() != nil {
		d.ctx, d.cancel = context.WithCancelCause(context.Background())
	}
	if t.IsZero() {
		return
	}
	cancel := d.cancel
	d.timer = time.AfterFunc(time.Until(t), func() { cancel(os.ErrDeadlineExceeded) })
}

func (d *deadlineCtx) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	if d.timer != nil {
		d.timer.Stop()
	}
	d.cancel(net.ErrClosed)
}

// err maps an error of the WebSocket library to what net.Conn users
// expect: os.ErrDeadlineExceeded when the deadline passed.
func (d *deadlineCtx) err(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, os.ErrDeadlineExceeded) {
		return fmt.Errorf("signaling: websocket: %w", os.ErrDeadlineExceeded)
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) || errors.Is(err, net.ErrClosed) {
		return io.EOF
	}
	return err
}

func newWSConn(c *websocket.Conn, local, remote net.Addr) *wsConn {
	c.SetReadLimit(maxLine + 1)
	return &wsConn{c: c, local: local, remote: remote, done: make(chan struct{}), rctx: newDeadlineCtx(), wctx: newDeadlineCtx()}
}

func (w *wsConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if w.cur == nil {
			if w.nl {
				w.nl = false
				p[0] = '\n'
				return 1, nil
			}
			ctx := w.rctx.get()
			_, r, err := w.c.Reader(ctx)
			if err != nil {
				return 0, w.rctx.err(ctx, err)
			}
			w.cur, w.curCtx = r, ctx
			w.nl = true
		}
		n, err := w.cur.Read(p)
		if n > 0 {
			w.nl = p[n-1] != '\n'
		}
		if err == io.EOF {
			w.cur = nil
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			return n, w.rctx.err(w.curCtx, err)
		}
		return n, nil
	}
}

// Write sends each line of p as one message (p is whole lines: the
// server and clients write only those).
func (w *wsConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		line, rest, found := bytes.Cut(p, []byte{'\n'})
		ctx := w.wctx.get()
		if err := w.c.Write(ctx, websocket.MessageText, line); err != nil {
			return n, w.wctx.err(ctx, err)
		}
		n += len(line)
		if found {
			n++
		}
		p = rest
	}
	return n, nil
}

func (w *wsConn) Close() error {
	w.closeOnce.Do(func() {
		w.c.CloseNow()
		w.rctx.stop()
		w.wctx.stop()
		close(w.done)
	})
	return nil
}

func (w *wsConn) LocalAddr() net.Addr  { return w.local }
func (w *wsConn) RemoteAddr() net.Addr { return w.remote }
func (w *wsConn) SetDeadline(t time.Time) error {
	w.rctx.set(t)
	w.wctx.set(t)
	return nil
}
func (w *wsConn) SetReadDeadline(t time.Time) error  { w.rctx.set(t); return nil }
func (w *wsConn) SetWriteDeadline(t time.Time) error { w.wctx.set(t); return nil }

// tcpAddr parses "ip:port" (http.Request.RemoteAddr) into a *net.TCPAddr,
// so the per-source limits see WebSocket clients as they see TCP ones.
func tcpAddr(s string) net.Addr {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return &net.TCPAddr{}
	}
	return net.TCPAddrFromAddrPort(ap)
}

// WebSocketHandler returns an http.Handler that serves both protocols
// over WebSocket at any path it is mounted on, with the limits and
// counters of the TCP port (the source of a client is the HTTP
// connection's remote address). Any origin may connect: the protocols
// carry no ambient credential (cookie) a page from another origin could
// abuse, and browsers are among the clients. Each request's handler
// returns when its client has gone.
func (s *Server) WebSocketHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
		if err != nil {
			return // Accept wrote the HTTP error
		}
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		wc := newWSConn(c, local, tcpAddr(r.RemoteAddr))
		s.serveConn(wc)
		<-wc.done
	})
}

// ListenWS serves both protocols over WebSocket on the TCP address addr,
// at path (default "/"), with TLS when tlsConfig is not nil, in the
// background until Close. It returns the address listened on. Before a
// connection becomes a client, it is bounded as one: the TLS handshake
// and the HTTP request must be done within HandshakeTimeout, and the TCP
// connections of one source on this port (clients or not yet) are at most
// MaxClientsPerAddr+MaxPendingPerAddr, MaxClients+MaxPending in all; more
// are closed at once and counted (RefusedAddr, RefusedFull). A program
// that mounts WebSocketHandler in its own http.Server sets such bounds
// there.
func (s *Server) ListenWS(addr, path string, tlsConfig *tls.Config) (net.Addr, error) {
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		return nil, fmt.Errorf("signaling: websocket path %q does not start with /", path)
	}
	tl, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("signaling: %w", err)
	}
	var l net.Listener = &limitListener{Listener: tl, s: s, per: map[string]int{}}
	if tlsConfig != nil {
		l = tls.NewListener(l, tlsConfig)
	}
	mux := http.NewServeMux()
	mux.Handle(path, s.WebSocketHandler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: s.cfg.HandshakeTimeout, MaxHeaderBytes: 8 << 10,
		ErrorLog: log.New(io.Discard, "", 0), IdleTimeout: s.cfg.HandshakeTimeout}
	if err := s.addListener(l, true); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.https = append(s.https, hs)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		hs.Serve(l)
	}()
	return l.Addr(), nil
}

// dialWS connects to a ws:// or wss:// URL.
func dialWS(ctx context.Context, url string, tlsConfig *tls.Config, dialer func(ctx context.Context, network, addr string) (net.Conn, error)) (net.Conn, error) {
	opts := &websocket.DialOptions{}
	if tlsConfig != nil || dialer != nil {
		opts.HTTPClient = &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConfig, Proxy: http.ProxyFromEnvironment, DialContext: dialer}}
	}
	c, resp, err := websocket.Dial(ctx, url, opts)
	if err != nil {
		return nil, fmt.Errorf("signaling: %w", err)
	}
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	return newWSConn(c, nil, nil), nil
}

// limitListener bounds the TCP connections of a WebSocket port, by
// source and in all, before they become clients.
type limitListener struct {
	net.Listener
	s *Server

	mu    sync.Mutex
	per   map[string]int
	total int
}

func (l *limitListener) Accept() (net.Conn, error) {
	cfg := &l.s.cfg
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		key := addrKey(c.RemoteAddr())
		l.mu.Lock()
		full := l.total >= cfg.MaxClients+cfg.MaxPending
		over := l.per[key] >= cfg.MaxClientsPerAddr+cfg.MaxPendingPerAddr
		if !full && !over {
			l.per[key]++
			l.total++
		}
		l.mu.Unlock()
		if full || over {
			c.Close()
			l.s.count(func(st *ServerStats) {
				st.Refused++
				if full {
					st.RefusedFull++
				} else {
					st.RefusedAddr++
				}
			})
			l.s.logs.logf(slog.LevelInfo, "ws-limit", "signaling: websocket connection refused", "addr", c.RemoteAddr(), "full", full)
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetKeepAliveConfig(net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 10 * time.Second, Count: 3})
		}
		return &countedConn{Conn: c, release: func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.total--
			if l.per[key]--; l.per[key] <= 0 {
				delete(l.per, key)
			}
		}}, nil
	}
}

// countedConn releases its place in a limitListener once, when closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
