// Package relay is an embeddable STUN and TURN server (RFC 5389, RFC 5766)
// on pion/turn, for development and small deployments: `netmsg relay` runs
// it. It takes static long-term credentials and the TURN REST API's
// expiring ones (a shared secret, as coturn's use-auth-secret). In
// production, coturn serves the same clients with the same credentials
// (the tests run against it too).
//
// A relay serves P2P peers that cannot reach each other directly (two
// symmetric NATs, strict firewalls): each allocates a relayed address on
// the server and the peers' ICE pairs through it. It also answers plain
// STUN binding requests, so one relay address can be a peer's STUN server
// (Config.STUNServers) too.
//
// Its defaults are those a public server can run with: relaying to
// loopback, private, link-local, multicast and other special addresses is
// refused unless Config.AllowPeers lets it; allocations are bounded in
// total, per user and per client address; failed authentications and
// refusals are counted (Stats, and the prometheus.Collector of
// Server.Collector) and logged at a bounded rate.
package relay

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pion/logging"
	"github.com/pion/turn/v5"

	"github.com/netmsg-go/netmsg/internal/udp"
)

// Defaults of Config.
const (
	DefaultMaxAllocations        = 1000
	DefaultMaxAllocationsPerUser = 10
	DefaultMaxAllocationsPerAddr = 10
	// DefaultMaxPermissionsPerAllocation leaves room for a Host that
	// relays to a hundred peers with several addresses each through its
	// one allocation.
	DefaultMaxPermissionsPerAllocation = 500
	// DefaultSocketBuffer is the receive and send buffer (SO_RCVBUF,
	// SO_SNDBUF) the server asks for on the sockets it opens, 4 MiB as a
	// Host's: a relayed datagram crosses two of its sockets, and with the
	// system's default (208 KiB on Linux, about 90 datagrams of 1200
	// bytes) a read loop that waits a millisecond for a core drops a
	// sender's burst at full rate.
	DefaultSocketBuffer = 4 << 20
	// DefaultAllocationLifetime is the lifetime of an allocation whose
	// client asks for none (RFC 5766's 10 minutes, as pion and coturn);
	// a client that is gone stops refreshing and its allocations end at
	// most that long after its last refresh. A client may ask for up to
	// an hour.
	DefaultAllocationLifetime = 10 * time.Minute
	// logInterval is the least time between two log lines of one kind
	// of refusal; the ones in between are counted in the next.
	logInterval = time.Second
)

// ErrConfig is wrapped by NewServer's errors about its configuration.
var ErrConfig = errors.New("relay: invalid configuration")

// Config configures a Server. Its zero value, with one user or auth
// secret, serves on 127.0.0.1:3478.
type Config struct {
	// ListenAddr is the UDP address to serve on ("127.0.0.1:3478";
	// port 0 picks one). Ignored when PacketConn is set.
	ListenAddr string
	// PacketConn, if set, is the socket to serve on; the server owns it
	// from then on (Close closes it, and so does a failing NewServer).
	PacketConn net.PacketConn
	// ListenPacket opens UDP sockets, with net.ListenPacket's contract
	// (nil: net.ListenPacket): the server's at ListenAddr unless
	// PacketConn is given, and each allocation's relayed socket, on the
	// server's listening IP with port 0 ("udp4" or "udp6"). The relayed
	// address put in an allocation is RelayIP with that socket's port.
	// Tests run the relay on the in-memory network by giving
	// netsim.Network.ListenPacket.
	ListenPacket func(network, address string) (net.PacketConn, error)
	// SocketBuffer is the receive and send buffer to ask the kernel for
	// on the sockets the server opens (the one at ListenAddr and every
	// relayed socket): zero means DefaultSocketBuffer, negative leaves the
	// system default. On Linux SO_RCVBUFFORCE passes net.core.rmem_max
	// when the process has CAP_NET_ADMIN; otherwise the kernel caps the
	// size at net.core.rmem_max and wmem_max (see docs/deploy.md).
	SocketBuffer int
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
	// Now returns the current time, for credential expiry and log rate
	// limits (nil: time.Now).
	Now func() time.Time
	// RelayPortMin and RelayPortMax, when both are set, bound the ports
	// of relayed addresses (coturn's min-port and max-port), for a
	// firewall to open; a free one is drawn at random. Default: the port
	// the system picks (its ephemeral range).
	RelayPortMin, RelayPortMax uint16
	// RelayIP is the address put in allocations, where peers send to
	// reach a client. Default: the listening IP (must then be specific,
	// not 0.0.0.0).
	RelayIP netip.Addr
	// MaxAllocations bounds the allocations at once (default
	// DefaultMaxAllocations); more are refused.
	MaxAllocations int
	// MaxAllocationsPerUser bounds the allocations of one user at once
	// (default DefaultMaxAllocationsPerUser; negative: no bound). The
	// user of a TURN REST credential is its part after the expiry (the
	// whole username when it has none), so renewed credentials of one
	// user share the bound.
	MaxAllocationsPerUser int
	// MaxAllocationsPerAddr bounds the allocations from one client IP
	// address at once (default DefaultMaxAllocationsPerAddr; negative: no
	// bound).
	MaxAllocationsPerAddr int
	// MaxPermissionsPerAllocation bounds the peer IP addresses one
	// allocation has permissions for at once (default
	// DefaultMaxPermissionsPerAllocation; negative: no bound): pion keeps
	// a timer for each, and each lives five minutes after its last
	// refresh. A permission refreshed is not counted again.
	MaxPermissionsPerAllocation int
	// AllocationLifetime is the lifetime of an allocation whose client
	// asks for none (default DefaultAllocationLifetime).
	AllocationLifetime time.Duration
	// AllowPeers lists the peer address prefixes a client may relay to
	// although they are special (see PeerRefusal): loopback, private,
	// link-local and the like. Empty: only global unicast addresses (and
	// documentation ranges) are relayed to. Tests that relay to
	// 127.0.0.1 list 127.0.0.0/8 here.
	AllowPeers []netip.Prefix
	// Logger receives refusals and failed authentications at warning
	// level, at most one line per kind a second, and allocations and
	// permissions at debug level (nil: slog.Default()).
	Logger *slog.Logger
}

// Stats counts what a Server did. Counters only grow.
type Stats struct {
	Allocations        int    // live now
	AllocationsCreated uint64 // made since the start

	AuthFailed      uint64 // requests refused authentication, the sum of the three below
	AuthUnknownUser uint64 // a username neither a static user nor a TURN REST one
	AuthExpired     uint64 // a TURN REST credential past its expiry
	AuthBadPassword uint64 // a known or well-formed username with a wrong password (or a forged credential)

	Refused      uint64 // allocations refused, the sum of the three below
	RefusedTotal uint64 // over MaxAllocations
	RefusedUser  uint64 // over MaxAllocationsPerUser
	RefusedAddr  uint64 // over MaxAllocationsPerAddr

	RefusedPeers       uint64 // permissions and channel bindings refused for their peer address
	RefusedPermissions uint64 // permissions and channel bindings over MaxPermissionsPerAllocation

	PacketsToPeers, BytesToPeers     uint64 // relayed from clients to peers
	PacketsFromPeers, BytesFromPeers uint64 // received from peers on relayed addresses (pion drops those without a permission)
	// LocalDropped counts datagrams from one allocation to another of
	// this server (handed over in process) dropped because the receiving
	// one had 2048 waiting, as a full socket buffer drops them.
	LocalDropped uint64
}

// Server is a running STUN and TURN server. Its methods are safe for
// concurrent use. It runs pion's goroutines: one reading the server's
// socket (which calls the auth, quota, permission and channel handlers,
// and forwards ChannelData on bound channels itself: channels.go) and one
// per allocation reading its relayed socket; pion's timers end
// allocations, permissions and channel bindings. Its mutexes (quota, perms, logs) guard
// the fields grouped with them and are never held two at once.
type Server struct {
	cfg  Config
	conn net.PacketConn
	srv  *turn.Server
	keys map[string][]byte // static users' long-term keys
	log  *slog.Logger

	// secretIdx is the index in cfg.AuthSecrets of the secret that
	// authenticates the request pion's read loop is handling, found by
	// secretConn for secretUser; only that loop touches them.
	secretIdx  int
	secretUser string
	// allocUsername is the username of the Allocate request the read
	// loop is handling, for onAllocationCreated; only that loop touches it.
	allocUsername string

	quota struct {
		sync.Mutex
		total  int
		byUser map[string]int
		byAddr map[netip.Addr]int
		// username is the username each allocation (by client address)
		// was made with: a TURN REST credential that expired since is
		// still good for that allocation's requests, as in coturn.
		username map[string]string
	}

	// perms holds the peer IPs each allocation (by client address) has a
	// permission for, kept from pion's permission events.
	perms struct {
		sync.Mutex
		byClient map[string]map[netip.Addr]struct{}
	}

	logs struct {
		sync.Mutex
		last       map[string]time.Time
		suppressed map[string]int
	}

	authUnknown, authExpired, authBadPassword atomic.Uint64
	refusedTotal, refusedUser, refusedAddr    atomic.Uint64
	refusedPeers, refusedPerms, created       atomic.Uint64
	pktsTo, bytesTo, pktsFrom, bytesFrom      atomic.Uint64
	localDropped                              atomic.Uint64

	batch batching // of the sockets wrapped in batchConns
	// local maps each relayed address (netip.AddrPort, RelayIP and port)
	// whose socket is a batchConn to its *relayedConn (relayedConn.WriteTo,
	// onChannelCreated).
	local sync.Map
	// chans are the channel bindings the server's reader forwards
	// (channels.go).
	chans channels

	closeOnce sync.Once
	closeErr  error
}

// NewServer starts a server. Its errors about the configuration wrap
// ErrConfig.
func NewServer(cfg Config) (*Server, error) {
	if len(cfg.Users) == 0 && len(cfg.AuthSecrets) == 0 {
		return nil, fmt.Errorf("%w: at least one user or auth secret is required", ErrConfig)
	}
	for _, sec := range cfg.AuthSecrets {
		if sec == "" {
			return nil, fmt.Errorf("%w: empty auth secret", ErrConfig)
		}
	}
	for _, p := range cfg.AllowPeers {
		if !p.IsValid() {
			return nil, fmt.Errorf("%w: invalid AllowPeers prefix", ErrConfig)
		}
	}
	if (cfg.RelayPortMin == 0) != (cfg.RelayPortMax == 0) || cfg.RelayPortMin > cfg.RelayPortMax {
		return nil, fmt.Errorf("%w: relay port range %d-%d", ErrConfig, cfg.RelayPortMin, cfg.RelayPortMax)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Realm == "" {
		cfg.Realm = "netmsg"
	}
	if cfg.MaxAllocations <= 0 {
		cfg.MaxAllocations = DefaultMaxAllocations
	}
	if cfg.MaxAllocationsPerUser == 0 {
		cfg.MaxAllocationsPerUser = DefaultMaxAllocationsPerUser
	}
	if cfg.MaxAllocationsPerAddr == 0 {
		cfg.MaxAllocationsPerAddr = DefaultMaxAllocationsPerAddr
	}
	if cfg.MaxPermissionsPerAllocation == 0 {
		cfg.MaxPermissionsPerAllocation = DefaultMaxPermissionsPerAllocation
	}
	if cfg.AllocationLifetime <= 0 {
		cfg.AllocationLifetime = DefaultAllocationLifetime
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ListenPacket == nil {
		cfg.ListenPacket = net.ListenPacket
	}
	conn := cfg.PacketConn
	if conn == nil {
		addr := cfg.ListenAddr
		if addr == "" {
			addr = "127.0.0.1:3478"
		}
		var err error
		if conn, err = cfg.ListenPacket("udp", addr); err != nil {
			return nil, fmt.Errorf("relay: %w", err)
		}
		setBuffers(conn, cfg.SocketBuffer)
	}
	la, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: the socket's address %v is no IP address and port", ErrConfig, conn.LocalAddr())
	}
	relayIP := cfg.RelayIP
	if !relayIP.IsValid() {
		relayIP = la.Addr().Unmap()
	}
	if !relayIP.IsValid() || relayIP.IsUnspecified() {
		conn.Close()
		return nil, fmt.Errorf("%w: RelayIP is required when listening on every interface", ErrConfig)
	}
	s := &Server{cfg: cfg, conn: conn, keys: map[string][]byte{}, log: cfg.Logger}
	for u, p := range cfg.Users {
		s.keys[u] = turn.GenerateAuthKey(u, cfg.Realm, p)
	}
	s.quota.byUser = map[string]int{}
	s.quota.byAddr = map[netip.Addr]int{}
	s.quota.username = map[string]string{}
	s.perms.byClient = map[string]map[netip.Addr]struct{}{}
	s.logs.last = map[string]time.Time{}
	s.logs.suppressed = map[string]int{}

	var serveConn net.PacketConn = batched(&s.batch, conn, serverBatch, serverGRO)
	if bc, ok := serveConn.(*batchConn); ok {
		bc.forward = func(b []byte, from netip.AddrPort) bool { return s.forward(bc, b, from) }
	}
	if len(cfg.AuthSecrets) > 1 {
		serveConn = &secretConn{PacketConn: serveConn, s: s}
	}
	bindIP := la.Addr().Unmap()
	listen := func(network string) (net.PacketConn, net.Addr, error) {
		pc, err := listenRelayed(cfg, network, bindIP)
		if err != nil {
			return nil, nil, err
		}
		setBuffers(pc, cfg.SocketBuffer)
		pc = batched(&s.batch, pc, relayedBatch, relayedGRO)
		ap, err := netip.ParseAddrPort(pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			return nil, nil, fmt.Errorf("relay: relayed socket's address %v: %w", pc.LocalAddr(), err)
		}
		return pc, &net.UDPAddr{IP: relayIP.AsSlice(), Port: int(ap.Port())}, nil
	}
	srv, err := turn.NewServer(turn.ServerConfig{
		Realm:              cfg.Realm,
		LoggerFactory:      quietLogger{},
		AuthHandler:        s.authenticate,
		QuotaHandler:       s.admit,
		AllocationLifetime: cfg.AllocationLifetime,
		EventHandler: turn.EventHandler{
			OnAuth:              s.onAuth,
			OnAllocationCreated: s.onAllocationCreated,
			OnAllocationDeleted: s.onAllocationDeleted,
			OnPermissionCreated: s.onPermissionCreated,
			OnPermissionDeleted: s.onPermissionDeleted,
			OnChannelCreated:    s.onChannelCreated,
			OnChannelDeleted:    s.onChannelDeleted,
		},
		PacketConnConfigs: []turn.PacketConnConfig{{
			PacketConn:            serveConn,
			RelayAddressGenerator: &relays{s: s, listen: listen},
			PermissionHandler:     s.permit,
		}},
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("relay: %w", err)
	}
	s.srv = srv
	return s, nil
}

// Addr is the address clients use for STUN and TURN.
func (s *Server) Addr() netip.AddrPort {
	a, _ := netip.ParseAddrPort(s.conn.LocalAddr().String())
	return a
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Allocations:        s.srv.AllocationCount(),
		AllocationsCreated: s.created.Load(),
		AuthUnknownUser:    s.authUnknown.Load(),
		AuthExpired:        s.authExpired.Load(),
		AuthBadPassword:    s.authBadPassword.Load(),
		RefusedTotal:       s.refusedTotal.Load(),
		RefusedUser:        s.refusedUser.Load(),
		RefusedAddr:        s.refusedAddr.Load(),
		RefusedPeers:       s.refusedPeers.Load(),
		RefusedPermissions: s.refusedPerms.Load(),
		PacketsToPeers:     s.pktsTo.Load(),
		BytesToPeers:       s.bytesTo.Load(),
		PacketsFromPeers:   s.pktsFrom.Load(),
		BytesFromPeers:     s.bytesFrom.Load(),
		LocalDropped:       s.localDropped.Load(),
	}
	st.AuthFailed = st.AuthUnknownUser + st.AuthExpired + st.AuthBadPassword
	st.Refused = st.RefusedTotal + st.RefusedUser + st.RefusedAddr
	return st
}

// Close stops the server and its relays, and closes its socket (also one
// given as Config.PacketConn). It may be called more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.srv.Close() })
	return s.closeErr
}

// quietLogger keeps pion's logs out of the application's output.
type quietLogger struct{}

func (quietLogger) NewLogger(string) logging.LeveledLogger {
	return logging.NewDefaultLeveledLoggerForScope("", logging.LogLevelDisabled, nilWriter{})
}

type nilWriter struct{}

func (nilWriter) Write(p []byte) (int, error) { return len(p), nil }

// setBuffers asks for socket buffers of size bytes (see
// Config.SocketBuffer) on pc if it is a system socket.
func setBuffers(pc net.PacketConn, size int) {
	if size == 0 {
		size = DefaultSocketBuffer
	}
	if sc, ok := pc.(syscall.Conn); ok && size > 0 {
		_, _, _ = udp.SetBuffers(sc, size, size)
	}
}

// listenRelayed opens a relayed socket on ip: at the port the system
// picks, or at a free one of the configured range: up to 64 random
// draws, then every port of the range in turn from a random start.
func listenRelayed(cfg Config, network string, ip netip.Addr) (net.PacketConn, error) {
	if cfg.RelayPortMin == 0 {
		return cfg.ListenPacket(network, netip.AddrPortFrom(ip, 0).String())
	}
	span := int(cfg.RelayPortMax) - int(cfg.RelayPortMin) + 1
	try := func(off int) (net.PacketConn, error) {
		return cfg.ListenPacket(network, netip.AddrPortFrom(ip, cfg.RelayPortMin+uint16(off)).String())
	}
	var err error
	for range min(64, span) {
		var pc net.PacketConn
		if pc, err = try(rand.IntN(span)); err == nil {
			return pc, nil
		}
	}
	start := rand.IntN(span)
	for i := range span {
		var pc net.PacketConn
		if pc, err = try((start + i) % span); err == nil {
			return pc, nil
		}
	}
	return nil, fmt.Errorf("relay: no free port in %d-%d: %w", cfg.RelayPortMin, cfg.RelayPortMax, err)
}
