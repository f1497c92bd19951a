// Package relay is an embeddable STUN and TURN server (RFC 5389, RFC 5766)
// on pion/turn, with long-term credentials, for development and small
// deployments: `netmsg relay` runs it. In production, run coturn (the tests
// run against it too).
//
// A relay serves P2P peers that cannot reach each other directly (two
// symmetric NATs, strict firewalls): each allocates a relayed address on
// the server and the peers' ICE pairs through it. It also answers plain
// STUN binding requests, so one relay address can be a peer's STUN server
// (Config.STUNServers) too.
package relay

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

	"github.com/netmsg-go/netmsg/netsim"
)

// Config configures a Server.
type Config struct {
	// ListenAddr is the UDP address to serve on ("127.0.0.1:3478";
	// port 0 picks one). Ignored when PacketConn is set.
	ListenAddr string
	// PacketConn, if set, is the socket to serve on.
	PacketConn net.PacketConn
	// Realm of the long-term credentials (default "netmsg").
	Realm string
	// Users maps user names to passwords (static long-term credentials).
	Users map[string]string
	// AuthSecrets are shared secrets of the TURN REST API scheme (coturn's
	// use-auth-secret / static-auth-secret): the server accepts a username
	// "<unix expiry>[:<user>]" whose password is RESTCredential's for any
	// of them, until that expiry; expired credentials are refused on every
	// request, Refresh included, as coturn does. Several secrets allow
	// rotation: a new one first, the old one removed once the credentials
	// made with it have expired. A Server needs Users or AuthSecrets.
	AuthSecrets []string
	// Now returns the current time, for credential expiry (nil: time.Now).
	Now func() time.Time
	// RelayIP is the address put in allocations, where peers send to
	// reach a client. Default: the listening IP (must then be specific,
	// not 0.0.0.0).
	RelayIP netip.Addr
	// MaxAllocations bounds the allocations at once (default 1000); more
	// are refused.
	MaxAllocations int
	// Network, for tests and the demo, runs the relay on netmsg's
	// in-memory network instead of real sockets: it listens there at
	// ListenAddr and allocates relayed addresses at RelayIP.
	Network *netsim.Network
}

// Stats counts what a Server did.
type Stats struct {
	Allocations int    // live now
	AuthFailed  uint64 // requests refused authentication: unknown user, expired credential or wrong password
	Refused     uint64 // allocations over MaxAllocations
}

// Server is a running STUN and TURN server.
type Server struct {
	srvPtr atomic.Pointer[turn.Server] // set once NewServer returns; its handlers may run before
	srv    *turn.Server
	conn   net.PacketConn
	cfg    Config
	keys   map[string][]byte // static users' long-term keys
	// secretIdx is the index in cfg.AuthSecrets of the secret that
	// authenticates the request pion's read loop is handling, found by
	// secretConn; only that loop touches it.
	secretIdx  int
	secretUser string
	authFailed atomic.Uint64
	refused    atomic.Uint64
	closeOnce  sync.Once
}

// NewServer starts a server.
func NewServer(cfg Config) (*Server, error) {
	if len(cfg.Users) == 0 && len(cfg.AuthSecrets) == 0 {
		return nil, errors.New("relay: at least one user or auth secret is required")
	}
	for _, sec := range cfg.AuthSecrets {
		if sec == "" {
			return nil, errors.New("relay: empty auth secret")
		}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Realm == "" {
		cfg.Realm = "netmsg"
	}
	if cfg.MaxAllocations <= 0 {
		cfg.MaxAllocations = 1000
	}
	conn := cfg.PacketConn
	if conn == nil && cfg.Network != nil {
		ap, err := netip.ParseAddrPort(cfg.ListenAddr)
		if err != nil {
			return nil, fmt.Errorf("relay: ListenAddr: %w", err)
		}
		ep, err := cfg.Network.Listen(ap)
		if err != nil {
			return nil, fmt.Errorf("relay: %w", err)
		}
		conn = ep.PacketConn()
	}
	if conn == nil {
		addr := cfg.ListenAddr
		if addr == "" {
			addr = "127.0.0.1:3478"
		}
		var err error
		if conn, err = net.ListenPacket("udp", addr); err != nil {
			return nil, fmt.Errorf("relay: %w", err)
		}
	}
	la, _ := netip.ParseAddrPort(conn.LocalAddr().String())
	relayIP := cfg.RelayIP
	if !relayIP.IsValid() {
		relayIP = la.Addr().Unmap()
	}
	if !relayIP.IsValid() || relayIP.IsUnspecified() {
		conn.Close()
		return nil, errors.New("relay: RelayIP is required when listening on every interface")
	}
	keys := map[string][]byte{}
	for u, p := range cfg.Users {
		keys[u] = turn.GenerateAuthKey(u, cfg.Realm, p)
	}
	s := &Server{conn: conn, cfg: cfg, keys: keys}
	var serveConn net.PacketConn = conn
	if len(cfg.AuthSecrets) > 1 {
		serveConn = &secretConn{PacketConn: conn, s: s}
	}
	var gen turn.RelayAddressGenerator = &turn.RelayAddressGeneratorStatic{
		RelayAddress: net.IP(relayIP.AsSlice()),
		Address:      la.Addr().Unmap().String(),
	}
	if cfg.Network != nil {
		gen = &netsimRelays{nw: cfg.Network, ip: relayIP}
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:         cfg.Realm,
		LoggerFactory: quietLogger{},
		AuthHandler:   s.authenticate,
		EventHandler: turn.EventHandler{
			OnAuth: func(_, _ net.Addr, _, _, _, _ string, verdict bool) {
				if !verdict {
					s.authFailed.Add(1)
				}
			},
		},
		QuotaHandler: func(string, string, net.Addr) bool {
			if srv := s.srvPtr.Load(); srv != nil && srv.AllocationCount() >= cfg.MaxAllocations {
				s.refused.Add(1)
				return false
			}
			return true
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            serveConn,
			RelayAddressGenerator: gen,
		}},
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("relay: %w", err)
	}
	s.srv = srv
	s.srvPtr.Store(srv)
	return s, nil
}

// Addr is the address clients use for STUN and TURN.
func (s *Server) Addr() netip.AddrPort {
	a, _ := netip.ParseAddrPort(s.conn.LocalAddr().String())
	return a
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	return Stats{Allocations: s.srv.AllocationCount(), AuthFailed: s.authFailed.Load(), Refused: s.refused.Load()}
}

// Close stops the server and its relays.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() { err = s.srv.Close() })
	return err
}

// quietLogger keeps pion's logs out of the application's output.
type quietLogger struct{}

func (quietLogger) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("", logging.LogLevelDisabled, nilWriter{})
}

type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }

// netsimRelays allocates relayed addresses on the in-memory network.
type netsimRelays struct {
	nw *netsim.Network
	ip netip.Addr
}

func (g *netsimRelays) Validate() error { return nil }

func (g *netsimRelays) AllocatePacketConn(conf turn.AllocateListenerConfig) (net.PacketConn, net.Addr, error) {
	ep, err := g.nw.Listen(netip.AddrPortFrom(g.ip, 0))
	if err != nil {
		return nil, nil, err
	}
	pc := ep.PacketConn()
	return pc, pc.LocalAddr(), nil
}

func (g *netsimRelays) AllocateListener(turn.AllocateListenerConfig) (net.Listener, net.Addr, error) {
	return nil, nil, errors.New("relay: no TCP relays on the in-memory network")
}

func (g *netsimRelays) AllocateConn(turn.AllocateConnConfig) (net.Conn, error) {
	return nil, errors.New("relay: no TCP relays on the in-memory network")
}
