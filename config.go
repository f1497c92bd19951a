package netmsg

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"time"

	"github.com/netmsg-go/netmsg/transport"
)

// GNS's defaults and limits for the connection configuration values, from
// the DEFINE_CONNECTON_DEFAULT_CONFIGVAL and DEFINE_GLOBAL_CONFIGVAL lines of
// src/steamnetworkingsockets/clientlib/csteamnetworkingsockets.cpp (name,
// default, min, max), and the constants they use.
const (
	defaultTimeoutInitial   = 10 * time.Second // TimeoutInitial 10000 ms
	defaultTimeoutConnected = 10 * time.Second // TimeoutConnected 10000 ms
	maxTimeout              = math.MaxInt32 * time.Millisecond

	defaultSendBufferSize = 512 * 1024 // SendBufferSize, 4 KiB..256 MiB
	minSendBufferSize     = 4 * 1024
	maxBufferSize         = 0x10000000 // 256 MiB, GNS's upper bound for all the sizes below

	defaultRecvBufferSize = 1024 * 1024 // RecvBufferSize, 4 KiB..256 MiB
	minRecvBufferSize     = 4 * 1024

	defaultRecvBufferMessages = 1000 // RecvBufferMessages, 2..256 Mi
	minRecvBufferMessages     = 2

	defaultRecvMaxMessageSize = 512 * 1024 // RecvMaxMessageSize, 64 B..256 MiB
	minRecvMaxMessageSize     = 64

	// defaultMaxMessageSize is k_cbMaxSteamNetworkingSocketsMessageSizeSend
	// (steamnetworkingtypes.h), the largest message GNS sends.
	defaultMaxMessageSize = 512 * 1024

	// defaultSendRateMin is GNS's SendRateMin, 256 KiB/s (GNS's SendRateMax
	// has the same default, which fixes the rate). Ours is a tuning choice:
	// defaultSendRateMax lets congestion control find the path's rate.
	// Each is 1 KiB/s..maxSendRate. GNS caps the setting at 256 MiB/s; we
	// allow 4 GiB/s, since one core moves more than that on loopback.
	defaultSendRateMin = 256 * 1024
	defaultSendRateMax = 1 << 30
	maxSendRate        = 4 << 30
	minSendRate        = 1024

	defaultNagleTime = 5 * time.Millisecond // NagleTime 5000 us, 0..20000 us
	maxNagleTime     = 20 * time.Millisecond

	// MTU_PacketSize 1300, from k_cbSteamNetworkingSocketsMinMTUPacketSize
	// to k_cbSteamNetworkingSocketsMaxUDPMsgLen (steamnetworkingsockets_internal.h).
	defaultMTUPacketSize = 1300
	minMTUPacketSize     = 200
	maxMTUPacketSize     = 1300

	defaultFakeReorderLag = 15 * time.Millisecond // FakePacketReorder_Time 15 ms
	defaultFakeDupLag     = 10 * time.Millisecond // FakePacketDup_TimeMax 10 ms
	defaultFakeRateBurst  = 16 * 1024             // FakeRateLimit_*_Burst 16 KiB

	// defaultSessionIdleTimeout is k_usecSteamNetworkingP2PSessionIdleTimeout
	// (csteamnetworkingmessages.cpp).
	defaultSessionIdleTimeout = 3 * time.Minute
)

// ErrBadConfig is wrapped by every error a Config or ConnConfig fails
// validation with. Use errors.Is to test for it.
var ErrBadConfig = errors.New("netmsg: bad config")

func configErr(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...)
}

// FakeNetwork describes simulated bad network conditions for one direction
// of traffic, for testing. The zero value simulates nothing. GNS offers the
// same knobs (its FakePacket* and FakeRateLimit* settings), but only for the
// whole process; netmsg sets them per host and per connection.
//
// When packets are lost, delayed, reordered or duplicated is decided with
// the Host's Config.Rand, so a seeded reader gives a reproducible run.
type FakeNetwork struct {
	// LossPercent is the chance, 0 to 100, that a packet is dropped.
	LossPercent float64

	// Lag delays every packet by this much. Default 0.
	Lag time.Duration

	// Jitter adds a further random delay, uniform in [0, Jitter), to each
	// packet; as in GNS it never reorders packets (use ReorderPercent).
	// Default 0.
	Jitter time.Duration

	// ReorderPercent is the chance, 0 to 100, that a packet is held back by
	// ReorderLag so that later packets overtake it.
	ReorderPercent float64

	// ReorderLag is how long a reordered packet is held back. Default 15 ms
	// (GNS's FakePacketReorder_Time) when ReorderPercent is set.
	ReorderLag time.Duration

	// DuplicatePercent is the chance, 0 to 100, that a packet is delivered
	// twice.
	DuplicatePercent float64

	// DuplicateLag is the largest extra delay of the duplicate copy, which
	// is random in [0, DuplicateLag]. Default 10 ms (GNS's
	// FakePacketDup_TimeMax) when DuplicatePercent is set.
	DuplicateLag time.Duration

	// RateLimit caps the throughput in bytes per second, with a token
	// bucket of RateBurst bytes; packets over it wait in a queue of up to
	// 250 ms and are dropped beyond it (GNS drops at once). 0, the
	// default, means no limit.
	RateLimit int

	// RateBurst is the size of the RateLimit bucket in bytes. Default
	// 16 KiB (GNS's FakeRateLimit_*_Burst) when RateLimit is set.
	RateBurst int
}

// IsZero reports whether f simulates nothing (it is the zero value).
func (f FakeNetwork) IsZero() bool { return f == FakeNetwork{} }

// withDefaults returns f with the defaults of its enabled features filled
// in, or an error naming the first invalid field; dir ("FakeSend" or
// "FakeRecv") prefixes the field names.
func (f FakeNetwork) withDefaults(dir string) (FakeNetwork, error) {
	for _, p := range []struct {
		name string
		v    float64
	}{
		{"LossPercent", f.LossPercent},
		{"ReorderPercent", f.ReorderPercent},
		{"DuplicatePercent", f.DuplicatePercent},
	} {
		if !(p.v >= 0 && p.v <= 100) { // also catches NaN
			return f, configErr("%s.%s %v is outside 0..100", dir, p.name, p.v)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"Lag", f.Lag},
		{"Jitter", f.Jitter},
		{"ReorderLag", f.ReorderLag},
		{"DuplicateLag", f.DuplicateLag},
	} {
		if d.v < 0 {
			return f, configErr("%s.%s %v is negative", dir, d.name, d.v)
		}
	}
	if f.RateLimit < 0 {
		return f, configErr("%s.RateLimit %d is negative", dir, f.RateLimit)
	}
	if f.RateBurst < 0 {
		return f, configErr("%s.RateBurst %d is negative", dir, f.RateBurst)
	}
	if f.ReorderPercent > 0 && f.ReorderLag == 0 {
		f.ReorderLag = defaultFakeReorderLag
	}
	if f.DuplicatePercent > 0 && f.DuplicateLag == 0 {
		f.DuplicateLag = defaultFakeDupLag
	}
	if f.RateLimit > 0 && f.RateBurst == 0 {
		f.RateBurst = defaultFakeRateBurst
	}
	return f, nil
}

// ConnConfig holds the tunables of one connection. A Config embeds one, the
// defaults for every connection of its Host; a connection may be given its
// own ConnConfig, whose zero fields then take the Host's values. The zero
// value works: every zero field means its default, given on each field
// (the defaults are GNS's).
//
// A ConnConfig is not modified by netmsg and may be shared; do not change
// it while a Host or connection that was given it is being created.
type ConnConfig struct {
	// TimeoutInitial is how long a connection may take to connect before it
	// fails with EndMiscTimeout. Default 10 s (GNS
	// k_ESteamNetworkingConfig_TimeoutInitial).
	TimeoutInitial time.Duration

	// TimeoutConnected is how long a connected connection may go without
	// hearing from the peer before it fails. Default 10 s (GNS
	// k_ESteamNetworkingConfig_TimeoutConnected).
	TimeoutConnected time.Duration

	// SendBufferSize is the most data, in bytes, that may be queued to be
	// sent on a connection; a send beyond it fails with
	// ResultLimitExceeded. Default 512 KiB; 4 KiB to 256 MiB (GNS
	// k_ESteamNetworkingConfig_SendBufferSize). Reliable data sent and not
	// yet acked is kept apart from it, up to 4 x SendBufferSize.
	SendBufferSize int

	// RecvBufferSize is the most data, in bytes, of received messages that
	// may wait to be read on a connection; beyond it, packets carrying more
	// are dropped, to be retransmitted later. Default 1 MiB; 4 KiB to
	// 256 MiB (GNS k_ESteamNetworkingConfig_RecvBufferSize). Reliable data
	// that arrives behind a lost packet is held apart from it, up to
	// 2 MiB + 64 KiB per connection (a peer's default window), as GNS
	// holds it apart too.
	RecvBufferSize int

	// RecvBufferMessages is the most received messages that may wait to be
	// read on a connection. Default 1000; 2 to 256 Mi (GNS
	// k_ESteamNetworkingConfig_RecvBufferMessages).
	RecvBufferMessages int

	// RecvMaxMessageSize is the largest message, in bytes, accepted from the
	// peer; a larger one is a protocol error that closes the connection.
	// Default 512 KiB; 64 B to 256 MiB (GNS
	// k_ESteamNetworkingConfig_RecvMaxMessageSize).
	RecvMaxMessageSize int

	// MaxMessageSize is the largest message, in bytes, that may be sent; a
	// larger send fails with ResultInvalidParam. Default 512 KiB (GNS's
	// fixed k_cbMaxSteamNetworkingSocketsMessageSizeSend), which is also the
	// largest allowed: 1 B to 512 KiB.
	// Peers running GNS refuse messages over their RecvMaxMessageSize, by
	// default 512 KiB. A message must also fit in SendBufferSize.
	MaxMessageSize int

	// SendRateMin and SendRateMax bound the send rate, in bytes per second,
	// that congestion control may choose. SendRateMin defaults to 256 KiB/s
	// (GNS k_ESteamNetworkingConfig_SendRateMin) and SendRateMax to 1 GiB/s;
	// each is 1 KiB/s to 4 GiB/s. GNS defaults both to 256 KiB/s, which
	// fixes the rate; set them equal for that behaviour. When they differ,
	// the rate adapts to loss and delay between them (see internal/snp's
	// package documentation). If only one is set and it crosses the other's default,
	// the other follows it; setting both with SendRateMin > SendRateMax is
	// an error.
	SendRateMin int
	SendRateMax int

	// NagleTime is how long a message sent without SendNoNagle may wait for
	// more data to share its packet. Default 5 ms; at most 20 ms (GNS
	// k_ESteamNetworkingConfig_NagleTime). Use DisableNagle for no wait.
	NagleTime time.Duration

	// DisableNagle turns the Nagle wait off, as GNS's NagleTime 0 does:
	// every send is put on the wire as soon as the send rate allows.
	// NagleTime must then be left 0.
	DisableNagle bool

	// MTUPacketSize is the largest UDP payload, in bytes, netmsg sends.
	// Default 1300; 200 to 1300 (GNS k_ESteamNetworkingConfig_MTU_PacketSize).
	MTUPacketSize int

	// FakeSend simulates bad network conditions on packets this side sends,
	// FakeRecv on packets it receives. Default: none. They apply to the
	// Host's socket as a whole: set them in Config; a per-connection
	// ConnConfig must leave them zero (ErrBadConfig otherwise).
	FakeSend FakeNetwork
	FakeRecv FakeNetwork
}

// Lane configures one send lane of a connection (GNS's
// ConfigureConnectionLanes arguments).
type Lane struct {
	// Priority: lanes with a lower value are served first; a lane is
	// served only when no lane of a lower value has data to send.
	Priority int
	// Weight shares the send rate between lanes of equal priority, in
	// proportion. 0 means 1.
	Weight uint16
}

// withDefaults returns c with every zero field filled in from parent, or
// from the defaults when parent is nil, and checks every value. parent must
// itself be the result of withDefaults. The error wraps ErrBadConfig and
// names the first bad field.
func (c *ConnConfig) withDefaults(parent *ConnConfig) (ConnConfig, error) {
	def := parent
	if def == nil {
		def = &ConnConfig{
			TimeoutInitial:     defaultTimeoutInitial,
			TimeoutConnected:   defaultTimeoutConnected,
			SendBufferSize:     defaultSendBufferSize,
			RecvBufferSize:     defaultRecvBufferSize,
			RecvBufferMessages: defaultRecvBufferMessages,
			RecvMaxMessageSize: defaultRecvMaxMessageSize,
			MaxMessageSize:     defaultMaxMessageSize,
			SendRateMin:        defaultSendRateMin,
			SendRateMax:        defaultSendRateMax,
			NagleTime:          defaultNagleTime,
			MTUPacketSize:      defaultMTUPacketSize,
		}
	}
	var out ConnConfig
	if c != nil {
		out = *c
	}

	for _, d := range []struct {
		name string
		v    *time.Duration
		def  time.Duration
		max  time.Duration
	}{
		{"TimeoutInitial", &out.TimeoutInitial, def.TimeoutInitial, maxTimeout},
		{"TimeoutConnected", &out.TimeoutConnected, def.TimeoutConnected, maxTimeout},
	} {
		if *d.v < 0 {
			return out, configErr("%s %v is negative", d.name, *d.v)
		}
		if *d.v > d.max {
			return out, configErr("%s %v is above %v", d.name, *d.v, d.max)
		}
		if *d.v == 0 {
			*d.v = d.def
		}
	}

	minSet, maxSet := out.SendRateMin != 0, out.SendRateMax != 0
	for _, n := range []struct {
		name     string
		v        *int
		def      int
		min, max int
	}{
		{"SendBufferSize", &out.SendBufferSize, def.SendBufferSize, minSendBufferSize, maxBufferSize},
		{"RecvBufferSize", &out.RecvBufferSize, def.RecvBufferSize, minRecvBufferSize, maxBufferSize},
		{"RecvBufferMessages", &out.RecvBufferMessages, def.RecvBufferMessages, minRecvBufferMessages, maxBufferSize},
		{"RecvMaxMessageSize", &out.RecvMaxMessageSize, def.RecvMaxMessageSize, minRecvMaxMessageSize, maxBufferSize},
		{"MaxMessageSize", &out.MaxMessageSize, def.MaxMessageSize, 1, defaultMaxMessageSize},
		{"SendRateMin", &out.SendRateMin, def.SendRateMin, minSendRate, maxSendRate},
		{"SendRateMax", &out.SendRateMax, def.SendRateMax, minSendRate, maxSendRate},
		{"MTUPacketSize", &out.MTUPacketSize, def.MTUPacketSize, minMTUPacketSize, maxMTUPacketSize},
	} {
		if *n.v == 0 {
			*n.v = n.def
			continue
		}
		if *n.v < n.min || *n.v > n.max {
			return out, configErr("%s %d is outside %d..%d", n.name, *n.v, n.min, n.max)
		}
	}
	if out.SendRateMin > out.SendRateMax {
		switch {
		case minSet && maxSet:
			return out, configErr("SendRateMin %d is above SendRateMax %d", out.SendRateMin, out.SendRateMax)
		case maxSet:
			out.SendRateMin = out.SendRateMax
		default:
			out.SendRateMax = out.SendRateMin
		}
	}

	switch {
	case out.NagleTime < 0:
		return out, configErr("NagleTime %v is negative", out.NagleTime)
	case out.NagleTime > maxNagleTime:
		return out, configErr("NagleTime %v is above %v", out.NagleTime, maxNagleTime)
	case out.DisableNagle && out.NagleTime != 0:
		return out, configErr("NagleTime %v is set together with DisableNagle", out.NagleTime)
	case out.DisableNagle:
	case out.NagleTime == 0:
		out.NagleTime, out.DisableNagle = def.NagleTime, def.DisableNagle
	}

	for _, f := range []struct {
		name string
		v    *FakeNetwork
		def  FakeNetwork
	}{
		{"FakeSend", &out.FakeSend, def.FakeSend},
		{"FakeRecv", &out.FakeRecv, def.FakeRecv},
	} {
		if f.v.IsZero() {
			*f.v = f.def
			continue
		}
		if parent != nil {
			return out, configErr("%s is the Host's (Config), not a connection's", f.name)
		}
		filled, err := f.v.withDefaults(f.name)
		if err != nil {
			return out, err
		}
		*f.v = filled
	}
	return out, nil
}

// Config configures a Host. The zero value works: every zero field means
// its default, given on each field (the network defaults are GNS's). A
// Config is not modified by netmsg and may be shared; do not change it
// while a Host is being created from it.
type Config struct {
	// ConnConfig holds the defaults for every connection of the Host, so
	// that e.g. cfg.NagleTime sets the Nagle time of all of them. A
	// connection can be given its own ConnConfig, whose zero fields take
	// these values.
	ConnConfig

	// Limits bound the incoming connections and session requests not yet
	// proven by their peers (half-open): see Limits for the defaults.
	Limits

	// SessionIdleTimeout is how long a Messages session may go unused
	// (nothing sent or received, nothing queued) before it is closed with
	// EndIdleTimeout and no callback. Default 3 min (GNS
	// k_usecSteamNetworkingP2PSessionIdleTimeout).
	SessionIdleTimeout time.Duration

	// Now returns the current time. nil means time.Now's clock, read
	// through its monotonic part only (a third cheaper: the Host reads
	// it per message sent): the wall time it gives runs with the
	// monotonic clock from when the Host started. Tests give a fake
	// clock here.
	Now func() time.Time

	// Rand is the source of randomness for keys, nonces, connection IDs and
	// the fake network conditions. nil means crypto/rand.Reader.
	Rand io.Reader

	// Logger receives the Host's logs. nil means slog.Default().
	Logger *slog.Logger

	// Identity is the Host's identity, which its certificate binds to its
	// key. The zero value means GNS's default for a host without one: the
	// localhost address identity "ip:::1".
	Identity Identity

	// PrivateKey is the Host's Ed25519 identity key. nil means a new
	// random key (fine with unsigned certificates).
	PrivateKey ed25519.PrivateKey

	// Certificate is the Host's certificate, signed by a certificate
	// authority (see the netmsg cert command), in GNS's serialized form.
	// nil means an unsigned certificate made from PrivateKey and Identity,
	// which peers accept unless they require a CA.
	Certificate []byte

	// TrustedCAs are the public keys of the certificate authorities whose
	// signatures the Host accepts. With none, peers' unsigned certificates
	// are accepted (GNS's behaviour without a CA); with some, a peer must
	// present a certificate signed by one of them.
	TrustedCAs []ed25519.PublicKey

	// AppID is the application ID; a peer's signed certificate must allow
	// it. Default 0.
	AppID uint32

	// ListenAddr is the local address of the Host's UDP socket. The zero
	// value means any address, IPv4 and IPv6, on a port the system picks.
	// Ignored when PacketConn is set.
	ListenAddr netip.AddrPort

	// PacketConn, if not nil, is used instead of a UDP socket: the
	// in-memory network of package netsim in tests, or another transport.
	// The Host closes it when it is closed.
	PacketConn transport.PacketConn

	// OnConnectionStatusChanged is called when a connection of the
	// connection-oriented API changes state (GNS's
	// SteamNetConnectionStatusChangedCallback_t): a new incoming
	// connection (Connecting, to be accepted), Connected, ClosedByPeer,
	// ProblemDetectedLocally. Called in order, from one goroutine of the
	// Host, never from the packet path; it may call the Host's methods.
	OnConnectionStatusChanged func(ConnStatusChanged)

	// OnRouteChanged, beyond GNS, is called when the route of a connected
	// P2P connection or Messages session changes: another ICE path took
	// over (direct to relayed and back, or another address). Its first
	// route is reported by the state Connected instead. Same goroutine
	// and order rules as OnConnectionStatusChanged. nil means none.
	OnRouteChanged func(RouteChanged)

	// OnSessionRequest is called when a peer with no session sends a
	// message (GodotSteam's network_messages_session_request signal, with
	// the peer's identity). Call AcceptSessionWithUser (from any goroutine)
	// to accept; if it is nil or does not accept, the request is ignored and
	// will be repeated while the peer keeps sending.
	//
	// Like OnSessionFailed, it is called in order, from one goroutine of
	// the Host, never from the packet path; it may call the Host's methods.
	// nil means no callback.
	OnSessionRequest func(peer Identity)

	// OnSessionFailed is called when a session fails to connect or breaks
	// in an unusual way (GodotSteam's network_messages_session_failed
	// signal; the reason is info.EndReason). It is not called when the peer
	// closes the session or the session times out for being idle.
	//
	// Called in order, from one goroutine of the Host, never from the
	// packet path. nil means no callback.
	OnSessionFailed func(info ConnectionInfo)

	// OnSessionConnected, beyond the seed (GNS has no such callback, and
	// its users miss it), is called when a Messages session becomes
	// connected: both sides can now exchange messages without a queue.
	// Same goroutine and order rules as OnSessionFailed. nil means none.
	OnSessionConnected func(info ConnectionInfo)

	// OnSessionClosedByPeer, beyond the seed, is called when the peer
	// closes a session (CloseSessionWithUser, the last channel closed, or
	// its idle timeout), which the seed deliberately does not report. The
	// session is gone; the next send makes a new one. nil means none.
	OnSessionClosedByPeer func(info ConnectionInfo)

	// Signaling carries the rendezvous messages of P2P sessions: with it,
	// SendMessageToUser reaches peers of any identity (not only ip:) the
	// way GNS does, through signaling and ICE. The Host reads it until the
	// Host closes; the caller closes it after. See package signaling. nil:
	// only ip: identities can be reached (directly over UDP).
	Signaling Signaling

	// STUNServers are asked for the address this Host's socket has as seen
	// from outside (behind a NAT), which is then offered to P2P peers as a
	// server-reflexive candidate (GNS's P2P_STUN_ServerList). Default
	// none: netmsg never contacts a public server on its own. When empty
	// and Signaling hands out servers (package signaling's authenticated
	// Conn, from a server with TURN credentials), the Host asks those.
	STUNServers []netip.AddrPort

	// TURNServers are relays the Host allocates an address on when it
	// first makes a P2P connection; peers that cannot reach each other
	// directly then talk through them (GNS's P2P_TURN_ServerList). The
	// first allocation that succeeds is used; one its server lost (the
	// server restarted or went away) is made again, on another server
	// first, and the sessions move to it. Default none. When empty and
	// Signaling hands out servers with short-lived credentials, the Host
	// uses those, with the newest credentials when it allocates (and
	// retries a refused allocation with the next ones).
	TURNServers []TURNServer

	// P2PRelayOnly makes ICE use only paths through TURNServers: the same
	// as P2PICEEnable = ICEEnableRelay (GNS's way to force the relay), for
	// strict networks and for tests. It wins over P2PICEEnable.
	P2PRelayOnly bool

	// P2PICEEnable says which kinds of ICE candidates this Host gathers
	// and offers its P2P peers (GNS's P2P_Transport_ICE_Enable bitmask, its
	// values): ICEEnableRelay the TURN allocation's relayed address,
	// ICEEnablePrivate host addresses on private networks (RFC 1918,
	// link-local, unique-local; netmsg counts loopback here too),
	// ICEEnablePublic host addresses on public networks and the
	// server-reflexive addresses STUNServers report. STUN is asked only
	// with ICEEnablePublic, TURN only with ICEEnableRelay; with neither
	// Private nor Public, only paths through the relay are checked. Zero
	// (the default) is ICEEnableAll, as GNS's default. GNS's value 0
	// ("disabled") has no equivalent here: a Host without Signaling makes
	// no P2P sessions at all.
	P2PICEEnable ICEEnable

	// WebRTC configures Messages sessions with browser peers, over WebRTC
	// through Signaling (see WebRTCConfig and docs/browser.md). The zero
	// value takes them.
	WebRTC WebRTCConfig

	// gnsLanes, for tests, makes the Host behave as a GNS peer towards
	// netmsg's lane extension: it offers and agrees to no extra lanes, so
	// every Messages channel travels on lane 0.
	gnsLanes bool

	// presentExpired, for tests, lets a Host start with an expired
	// certificate of its own, to check that peers refuse it.
	presentExpired bool
}

// withDefaults returns a copy of c with every zero field set to its default
// (a nil c is the zero Config), or an error wrapping ErrBadConfig that names
// the first invalid field. It is the one place defaults are filled and
// values checked.
func (c *Config) withDefaults() (*Config, error) {
	var out Config
	if c != nil {
		out = *c
	}
	cc, err := out.ConnConfig.withDefaults(nil)
	if err != nil {
		return nil, err
	}
	out.ConnConfig = cc
	if out.Limits, err = out.Limits.withDefaults(); err != nil {
		return nil, err
	}
	switch {
	case out.SessionIdleTimeout < 0:
		return nil, configErr("SessionIdleTimeout %v is negative", out.SessionIdleTimeout)
	case out.SessionIdleTimeout == 0:
		out.SessionIdleTimeout = defaultSessionIdleTimeout
	}
	if out.Now == nil {
		out.Now = monotonicNow()
	}
	if out.Rand == nil {
		out.Rand = rand.Reader
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	switch {
	case out.P2PICEEnable < 0:
		return nil, configErr("P2PICEEnable %d is negative (GNS's default, -1, is the zero value here)", out.P2PICEEnable)
	case out.P2PICEEnable == 0:
		out.P2PICEEnable = ICEEnableAll
	}
	if out.P2PRelayOnly {
		out.P2PICEEnable = ICEEnableRelay
	}
	return &out, nil
}

// ICEEnable is GNS's P2P_Transport_ICE_Enable bitmask: which kinds of ICE
// candidates a Host gathers and shares (Config.P2PICEEnable).
type ICEEnable int32

// The bits of ICEEnable, GNS's values.
const (
	ICEEnableRelay   ICEEnable = 1          // relayed addresses (TURN)
	ICEEnablePrivate ICEEnable = 2          // host addresses on private networks
	ICEEnablePublic  ICEEnable = 4          // public host addresses and server-reflexive (STUN) ones
	ICEEnableAll     ICEEnable = 0x7fffffff // everything (the default)
)

// monotonicNow returns a clock that reads only the monotonic clock (one
// clock read where time.Now makes two): the time at the call, advanced
// by the monotonic time since. Its times compare and subtract with
// time.Now's by their monotonic readings.
func monotonicNow() func() time.Time {
	base := time.Now()
	return func() time.Time { return base.Add(time.Since(base)) }
}
