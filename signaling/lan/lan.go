package lan

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/netmsg-go/netmsg/internal/crypto"
	"github.com/netmsg-go/netmsg/internal/pb"
	"github.com/netmsg-go/netmsg/signaling"
	"github.com/netmsg-go/netmsg/transport"
)

// Defaults and limits (our tuning, not a protocol's).
const (
	// DefaultPort is the UDP port of the default group.
	DefaultPort = 29017

	// DefaultInterval is how often a Conn announces itself.
	DefaultInterval = 5 * time.Second
	// minInterval bounds the announcement rate a Config may ask for.
	minInterval = 100 * time.Millisecond

	// minTTL and maxTTL clamp how long an entry lasts, whatever its
	// announcement asks.
	minTTL = time.Second
	maxTTL = 10 * time.Minute

	defaultMaxPeers       = 256
	defaultQueueLen       = 256
	defaultPendingLen     = 64
	defaultPendingTimeout = 3 * time.Second
	defaultRate           = 100 // announcements and signed signals checked per second
	defaultBurst          = 200
	defaultMaxSkew        = 5 * time.Minute

	// queryInterval is how often a Conn asks for one identity it has
	// signals for but no announcement from.
	queryInterval = time.Second
	// replyRate and replyBurst bound the announcements a Conn unicasts
	// (to a peer it just heard of, or one that asked).
	replyRate  = 20
	replyBurst = 20
)

// DefaultGroup is the IPv4 multicast group and port a Conn uses unless
// Config.Group says otherwise: 239.255.77.77, in the IPv4 Local Scope
// 239.255.0.0/16 (RFC 2365), the administratively scoped range meant for
// a site's own use, so it needs no assignment and a site's border routers
// do not forward it; announcements are sent with a TTL of 1 besides, so
// they stay on the link.
var DefaultGroup = netip.AddrPortFrom(netip.AddrFrom4([4]byte{239, 255, 77, 77}), DefaultPort)

// Errors.
var (
	// ErrBadConfig is wrapped by New's errors for an invalid Config.
	ErrBadConfig = errors.New("lan: invalid config")
	// ErrPendingFull: Send to an identity not heard on the LAN yet, with
	// Config.PendingLen signals already waiting for announcements.
	ErrPendingFull = errors.New("lan: too many signals wait for peers not heard yet")
)

// Config configures a Conn. Only Identity is required; every other zero
// field has the default it documents.
type Config struct {
	// Identity is this peer's identity, as its Host's ("str:alice").
	Identity string

	// Key and Certificate, both or neither, turn authentication on: the
	// Conn signs its announcements and signals with Key and sends the
	// certificate (GNS's serialized CertificateSigned, what a Host's
	// Config.Certificate holds) with its announcements, and it accepts
	// from peers only what their certificates and signatures prove (see
	// the package doc). The certificate must name Identity and Key's
	// public key. Without them, identities are taken on trust.
	Key         ed25519.PrivateKey
	Certificate []byte
	// TrustedCAs are the CAs whose certificates peers may present.
	TrustedCAs []ed25519.PublicKey
	// AllowUnsigned accepts peers' certificates no trusted CA signed:
	// such a certificate binds an identity to a key for as long as its
	// holder announces it, as on the signaling server.
	AllowUnsigned bool
	// AppID, if peers' certificates list app IDs, must be among them.
	AppID uint32
	// MaxSkew is how far the time in a signed datagram may be from ours
	// (default 5 minutes): a recorded one is refused after that.
	MaxSkew time.Duration

	// Group is the multicast group and port announcements go to and are
	// heard on; default DefaultGroup. It must be IPv4 multicast.
	Group netip.AddrPort
	// Broadcast also sends announcements to each interface's IPv4
	// broadcast address (or, on injected sockets, to 255.255.255.255 at
	// Group's port). Without it, only interfaces that cannot multicast
	// get broadcasts.
	Broadcast bool
	// Interfaces names the network interfaces to announce on; default
	// every interface that is up, has an IPv4 address and is not
	// loopback, looked up again at every announcement.
	Interfaces []string

	// Interval is how often the Conn announces itself (default 5 s, at
	// least 100 ms; a jitter of ±10% keeps peers from announcing in
	// step). A new Conn announces at once, again after 500 ms and after 1
	// s, then every Interval.
	Interval time.Duration
	// TTL is how long peers keep this Conn's entry without hearing from
	// it: default 3 Intervals and a second, at most 10 minutes; it must
	// lie in [1 s, 10 min], where peers clamp it too.
	TTL time.Duration

	// MaxPeers bounds the table of peers (default 256); announcements of
	// new identities beyond it are refused and counted.
	MaxPeers int
	// QueueLen bounds the received signals not yet read by Recv (default
	// 256); more are dropped and counted.
	QueueLen int
	// PendingLen bounds the signals Send holds for identities not heard
	// yet (default 64), PendingTimeout how long each waits (default 3 s).
	PendingLen     int
	PendingTimeout time.Duration
	// Rate and Burst bound how many announcements and signed signals per
	// second the Conn checks (a token bucket; default 100/s, burst 200):
	// more are dropped and counted, so a flood costs bounded CPU.
	Rate  float64
	Burst int

	// PacketConn and DiscoveryConn, both or neither, replace the UDP
	// sockets (for tests over netsim): PacketConn sends announcements (to
	// Group, and 255.255.255.255 with Broadcast) and signals and receives
	// signals and replies; DiscoveryConn receives what is sent to Group
	// (the caller joins it). The Conn closes them. Default: a UDP socket
	// on an ephemeral port and one on Group's port, shared with other
	// processes, joined to Group on each interface.
	PacketConn, DiscoveryConn transport.PacketConn

	// Now is the clock (default time.Now). The Conn waits with the
	// runtime's timers, so inside a testing/synctest bubble it runs on
	// fake time.
	Now func() time.Time
	// Logger receives the logs; nil means slog.Default().
	Logger *slog.Logger
	// Rand is the source of the instance number and jitter (default
	// crypto/rand).
	Rand io.Reader
}

// withDefaults fills the zero fields of a copy of c and checks it.
func (c Config) withDefaults() (Config, error) {
	bad := func(format string, args ...any) (Config, error) {
		return c, fmt.Errorf("%w: %s", ErrBadConfig, fmt.Sprintf(format, args...))
	}
	if err := signaling.CheckIdentity(c.Identity); err != nil {
		return bad("Identity: %v", err)
	}
	if (len(c.Key) == 0) != (len(c.Certificate) == 0) {
		return bad("Key and Certificate go together")
	}
	if len(c.Key) != 0 && len(c.Key) != ed25519.PrivateKeySize {
		return bad("Key of %d bytes, want an Ed25519 private key", len(c.Key))
	}
	if len(c.Certificate) > maxCertLen {
		return bad("Certificate of %d bytes, at most %d", len(c.Certificate), maxCertLen)
	}
	if !c.Group.IsValid() {
		c.Group = DefaultGroup
	}
	if !c.Group.Addr().Is4() || !c.Group.Addr().IsMulticast() || c.Group.Port() == 0 {
		return bad("Group %v is not an IPv4 multicast group and port", c.Group)
	}
	if (c.PacketConn == nil) != (c.DiscoveryConn == nil) {
		return bad("PacketConn and DiscoveryConn go together")
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.TTL == 0 {
		c.TTL = min(3*c.Interval+time.Second, maxTTL)
	}
	if c.MaxSkew == 0 {
		c.MaxSkew = defaultMaxSkew
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = defaultMaxPeers
	}
	if c.QueueLen == 0 {
		c.QueueLen = defaultQueueLen
	}
	if c.PendingLen == 0 {
		c.PendingLen = defaultPendingLen
	}
	if c.PendingTimeout == 0 {
		c.PendingTimeout = defaultPendingTimeout
	}
	if c.Rate == 0 {
		c.Rate = defaultRate
	}
	if c.Burst == 0 {
		c.Burst = defaultBurst
	}
	switch {
	case c.Interval < minInterval:
		return bad("Interval %v under %v", c.Interval, minInterval)
	case c.TTL < minTTL || c.TTL > maxTTL:
		return bad("TTL %v outside [%v, %v]", c.TTL, minTTL, maxTTL)
	case c.MaxSkew < 0, c.MaxPeers < 0, c.QueueLen < 0, c.PendingLen < 0, c.PendingTimeout < 0, c.Rate < 0, c.Burst < 0:
		return bad("a negative limit")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	return c, nil
}

// Stats counts what a Conn did. Every datagram it refuses is counted in
// one of the fields from Malformed on.
type Stats struct {
	AnnouncementsSent  uint64 // datagrams: to the group, broadcast, or unicast replies
	AnnouncementsHeard uint64 // accepted (new, refreshed or goodbye)
	QueriesSent        uint64
	QueriesAnswered    uint64
	SignalsSent        uint64 // to a peer's address
	SignalsReceived    uint64 // queued for Recv
	PeersAdded         uint64
	PeersLeft          uint64 // said goodbye
	PeersExpired       uint64 // not heard for their TTL

	Malformed      uint64 // not a datagram of this protocol, or truncated
	RateLimited    uint64 // over Config.Rate
	BadSignature   uint64 // a certificate or signature that does not check out: forged
	Unsigned       uint64 // unsigned, while authentication is on
	Takeover       uint64 // an identity another key holds
	Stale          uint64 // older than what we have, or outside MaxSkew: a replay or a late copy
	TableFull      uint64 // a new identity with MaxPeers in the table
	Conflict       uint64 // another instance announcing our identity
	UnknownSender  uint64 // a signed signal from an identity we have no key for
	NotForUs       uint64 // a signal to another identity
	QueueFull      uint64 // a signal Recv had no room for
	PendingDropped uint64 // a signal whose peer was not heard in time, or no room to wait
	WriteErrors    uint64 // the socket refused a datagram
}

// Peer is a peer in a Conn's table.
type Peer struct {
	Identity string
	Addr     netip.AddrPort // where its signals go
	// Authenticated: its certificate and signature checked out; CASigned:
	// a trusted CA signed that certificate.
	Authenticated, CASigned bool
	Expires                 time.Time
}

// Conn is signaling without a server: peers on one LAN announce their
// identities by multicast, learn each other's addresses, and send each
// other signals directly. It satisfies signaling.Conn and
// netmsg.Signaling. All methods are safe for concurrent use.
//
// A Conn runs three goroutines until Close: one reads the discovery
// socket, one the unicast socket, one announces and expires entries.
type Conn struct {
	cfg      Config
	log      *slog.Logger
	id       string
	auth     bool
	pol      crypto.PeerPolicy // Now is set per check
	instance uint64
	uni      packetConn
	disc     packetConn
	ann      announcer
	in       chan received
	kick     chan struct{}
	done     chan struct{}
	wg       sync.WaitGroup
	jitter   [8]byte // seed of the announcement jitter

	// mu guards the fields below.
	mu        sync.Mutex
	closed    bool
	tab       *table
	seq       uint64 // announcements sent
	burst     int    // startup announcements sent
	nextAnn   time.Time
	pending   []pendingSignal
	lastQuery map[string]time.Time // by target; entries live while signals wait
	verify    bucket
	reply     bucket
	st        Stats
}

type received struct {
	from string
	blob []byte
}

type pendingSignal struct {
	to       string
	b        []byte
	deadline time.Time
}

// New starts a Conn: it opens its sockets (or takes Config's), announces
// itself and listens. It returns an error wrapping ErrBadConfig for an
// invalid Config, or the socket's error.
func New(cfg Config) (*Conn, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	c := &Conn{
		cfg: cfg, log: cfg.Logger, id: cfg.Identity, auth: len(cfg.Key) > 0,
		in: make(chan received, cfg.QueueLen), kick: make(chan struct{}, 1), done: make(chan struct{}),
		tab: newTable(cfg.MaxPeers, minTTL, maxTTL), lastQuery: map[string]time.Time{},
	}
	var b [8]byte
	if _, err := io.ReadFull(cfg.Rand, b[:]); err != nil {
		return nil, fmt.Errorf("lan: random: %w", err)
	}
	c.instance = binary.BigEndian.Uint64(b[:])
	if _, err := io.ReadFull(cfg.Rand, c.jitter[:]); err != nil {
		return nil, fmt.Errorf("lan: random: %w", err)
	}
	if len(cfg.TrustedCAs) > 0 {
		cas := make([]crypto.CA, len(cfg.TrustedCAs))
		for i, k := range cfg.TrustedCAs {
			cas[i] = crypto.CA{PublicKey: k}
		}
		ts, err := crypto.NewTrustStore(cas...)
		if err != nil {
			return nil, fmt.Errorf("%w: TrustedCAs: %v", ErrBadConfig, err)
		}
		c.pol.Trust = ts
	}
	c.pol.AllowUnsigned, c.pol.AppID = cfg.AllowUnsigned, cfg.AppID
	if c.auth {
		// Our own certificate must be one we could prove.
		var cert pb.CertificateSigned
		if proto.Unmarshal(cfg.Certificate, &cert) != nil {
			return nil, fmt.Errorf("%w: Certificate does not parse", ErrBadConfig)
		}
		pol := c.pol
		pol.AllowUnsigned, pol.Now, pol.ExpectedIdentity = true, cfg.Now(), c.id
		msg := []byte("netmsg-lan/1 self-check")
		if got, _, err := crypto.VerifyProof(&pol, &cert, msg, ed25519.Sign(cfg.Key, msg)); err != nil || got != c.id {
			return nil, fmt.Errorf("%w: Certificate does not bind Identity %q to Key (%v)", ErrBadConfig, c.id, err)
		}
	}
	now := cfg.Now()
	c.verify = bucket{rate: cfg.Rate, burst: float64(cfg.Burst), tokens: float64(cfg.Burst), last: now}
	c.reply = bucket{rate: replyRate, burst: replyBurst, tokens: replyBurst, last: now}
	if cfg.PacketConn != nil {
		c.uni, c.disc = &tpConn{pc: cfg.PacketConn}, &tpConn{pc: cfg.DiscoveryConn}
		c.ann = &groupAnnouncer{uni: c.uni, group: cfg.Group, broadcast: cfg.Broadcast}
	} else {
		c.uni, c.disc, c.ann, err = openSockets(cfg)
		if err != nil {
			return nil, err
		}
	}
	c.nextAnn = now
	c.wg.Add(3)
	go c.readLoop(c.disc)
	go c.readLoop(c.uni)
	go c.run()
	return c, nil
}

// LocalAddr returns the address of the socket signals come to.
func (c *Conn) LocalAddr() netip.AddrPort { return c.uni.LocalAddr() }

// Identity returns the identity the Conn announces.
func (c *Conn) Identity() string { return c.id }

// Send sends blob to the peer known by identity to: straight to its
// address when its announcement was heard, else held for up to
// Config.PendingTimeout while the Conn asks the LAN for it. It returns
// signaling.ErrBadIdentity, signaling.ErrTooLarge, ErrPendingFull, or
// signaling.ErrClosed after Close. A nil error does not mean the peer
// will get it.
func (c *Conn) Send(to string, blob []byte) error {
	if err := signaling.CheckIdentity(to); err != nil {
		return err
	}
	if len(blob) > signaling.MaxBlobSize {
		return signaling.ErrTooLarge
	}
	now := c.cfg.Now()
	s := signal{Instance: c.instance, TimeMs: now.UnixMilli(), From: c.id, To: to, Blob: blob}
	b := appendSignal(make([]byte, 0, maxDatagram), &s, c.auth)
	if c.auth {
		b = sign(b, c.cfg.Key)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return signaling.ErrClosed
	}
	if e := c.tab.m[to]; e != nil {
		c.st.SignalsSent++
		addr := e.addr
		c.mu.Unlock()
		c.write(b, addr)
		return nil
	}
	if len(c.pending) >= c.cfg.PendingLen {
		c.st.PendingDropped++
		c.mu.Unlock()
		return ErrPendingFull
	}
	c.pending = append(c.pending, pendingSignal{to, b, now.Add(c.cfg.PendingTimeout)})
	var q []byte
	if last, ok := c.lastQuery[to]; !ok || now.Sub(last) >= queryInterval {
		c.lastQuery[to] = now
		c.st.QueriesSent++
		q = appendQuery(nil, &query{Instance: c.instance, From: c.id, Target: to})
	}
	c.mu.Unlock()
	if q != nil {
		c.announce(q)
	}
	c.wake()
	return nil
}

// Recv waits for the next signal and returns its sender's identity and
// blob (the caller owns it). It returns ctx's error when ctx ends first,
// and signaling.ErrClosed once the Conn is closed.
func (c *Conn) Recv(ctx context.Context) (string, []byte, error) {
	select {
	case <-c.done:
		return "", nil, signaling.ErrClosed
	default:
	}
	select {
	case r := <-c.in:
		return r.from, r.blob, nil
	case <-c.done:
		return "", nil, signaling.ErrClosed
	case <-ctx.Done():
		return "", nil, ctx.Err()
	}
}

// Close says goodbye on the LAN (a last announcement with TTL 0, to the
// group and to each known peer), stops the goroutines and closes the
// sockets. A pending Recv returns signaling.ErrClosed. It always returns
// nil.
func (c *Conn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	bye := c.announcementLocked(c.cfg.Now(), 0)
	var addrs []netip.AddrPort
	for _, e := range c.tab.m {
		addrs = append(addrs, e.addr)
	}
	c.pending = nil
	c.mu.Unlock()
	c.announce(bye)
	for _, a := range addrs {
		c.write(bye, a)
	}
	close(c.done)
	c.uni.Close()
	c.disc.Close()
	c.wg.Wait()
	return nil
}

// Peers returns the table, sorted by identity.
func (c *Conn) Peers() []Peer {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]Peer, 0, len(c.tab.m))
	for _, e := range c.tab.m {
		out = append(out, Peer{Identity: e.id, Addr: e.addr, Authenticated: e.key != "", CASigned: e.caSigned, Expires: e.expires})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Identity < out[j].Identity })
	return out
}

// Stats returns the counters.
func (c *Conn) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.st
}

func (c *Conn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// announcementLocked builds our announcement with the given TTL (0: a
// goodbye), signed when authentication is on.
func (c *Conn) announcementLocked(now time.Time, ttl time.Duration) []byte {
	c.seq++
	a := announcement{Instance: c.instance, Seq: c.seq, TimeMs: now.UnixMilli(), TTLms: uint32(ttl / time.Millisecond),
		Port: c.uni.LocalAddr().Port(), ID: c.id, Cert: c.cfg.Certificate}
	b := appendAnnouncement(make([]byte, 0, 128+len(a.Cert)), &a)
	if c.auth {
		b = sign(b, c.cfg.Key)
	}
	return b
}

// announce sends b to the group (and broadcast addresses).
func (c *Conn) announce(b []byte) {
	n, err := c.ann.announce(b)
	c.mu.Lock()
	if b[len(magic)+1] == byte(kindAnnounce) {
		c.st.AnnouncementsSent += uint64(n)
	}
	if err != nil {
		c.st.WriteErrors++
	}
	c.mu.Unlock()
	if err != nil {
		c.log.Debug("lan: announce", "err", err)
	}
}

// write sends b to one address.
func (c *Conn) write(b []byte, to netip.AddrPort) {
	if err := c.uni.WriteTo(b, to); err != nil {
		c.mu.Lock()
		c.st.WriteErrors++
		c.mu.Unlock()
	}
}

// run announces on schedule, expires entries and pending signals.
func (c *Conn) run() {
	defer c.wg.Done()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		case <-c.kick:
		}
		now := c.cfg.Now()
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return
		}
		var ann []byte
		if !now.Before(c.nextAnn) {
			ann = c.announcementLocked(now, c.cfg.TTL)
			c.nextAnn = now.Add(c.nextIntervalLocked())
		}
		for _, e := range c.tab.expire(now) {
			c.st.PeersExpired++
			c.log.Info("lan: peer expired", "identity", e.id, "addr", e.addr)
		}
		c.expirePendingLocked(now)
		wake := c.nextAnn
		if w := c.tab.next(); !w.IsZero() && w.Before(wake) {
			wake = w
		}
		if len(c.pending) > 0 && c.pending[0].deadline.Before(wake) {
			wake = c.pending[0].deadline
		}
		c.mu.Unlock()
		if ann != nil {
			c.announce(ann)
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(max(wake.Sub(now), time.Millisecond))
	}
}

// nextIntervalLocked returns the wait before the next announcement: 500
// ms and 1 s after the first, then Interval ±10%.
func (c *Conn) nextIntervalLocked() time.Duration {
	c.burst++
	switch c.burst {
	case 1:
		return min(500*time.Millisecond, c.cfg.Interval)
	case 2:
		return min(time.Second, c.cfg.Interval)
	}
	// A cheap generator seeded from Rand: the jitter need not be secret.
	x := binary.BigEndian.Uint64(c.jitter[:]) + c.seq*0x9e3779b97f4a7c15
	x ^= x >> 31
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 29
	frac := float64(x%2001)/10000 - 0.1 // [-0.1, 0.1]
	return c.cfg.Interval + time.Duration(frac*float64(c.cfg.Interval))
}

// expirePendingLocked drops the held signals whose time is up (they are
// in deadline order: each was added with the same timeout).
func (c *Conn) expirePendingLocked(now time.Time) {
	n := 0
	for n < len(c.pending) && !now.Before(c.pending[n].deadline) {
		n++
	}
	if n == 0 {
		return
	}
	c.st.PendingDropped += uint64(n)
	c.pending = append(c.pending[:0], c.pending[n:]...)
	for to := range c.lastQuery {
		if !c.waitingLocked(to) {
			delete(c.lastQuery, to)
		}
	}
}

func (c *Conn) waitingLocked(to string) bool {
	for _, p := range c.pending {
		if p.to == to {
			return true
		}
	}
	return false
}

// takePendingLocked removes and returns the signals held for id.
func (c *Conn) takePendingLocked(id string) [][]byte {
	var out [][]byte
	n := 0
	for _, p := range c.pending {
		if p.to == id {
			out = append(out, p.b)
			continue
		}
		c.pending[n] = p
		n++
	}
	clear(c.pending[n:])
	c.pending = c.pending[:n]
	delete(c.lastQuery, id)
	return out
}

// readLoop reads datagrams from pc until it is closed.
func (c *Conn) readLoop(pc packetConn) {
	defer c.wg.Done()
	buf := make([]byte, maxDatagram+1)
	for {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			select {
			case <-c.done:
				return
			default:
			}
			if errors.Is(err, transport.ErrClosed) || isClosed(err) {
				return
			}
			c.log.Debug("lan: read", "err", err)
			continue
		}
		c.handle(buf[:n], from)
	}
}

// handle takes one datagram from the network.
func (c *Conn) handle(b []byte, from netip.AddrPort) {
	k, _, _, err := parseHeader(b)
	if err != nil || len(b) > maxDatagram {
		c.count(func(st *Stats) { st.Malformed++ })
		return
	}
	switch k {
	case kindAnnounce:
		c.handleAnnouncement(b, from)
	case kindQuery:
		c.handleQuery(b, from)
	case kindSignal:
		c.handleSignal(b, from)
	default:
		c.count(func(st *Stats) { st.Malformed++ })
	}
}

func (c *Conn) count(f func(*Stats)) {
	c.mu.Lock()
	f(&c.st)
	c.mu.Unlock()
}

// checkSigned verifies a signed announcement's certificate and signature
// at now and returns who it proves.
func (c *Conn) checkSigned(now time.Time, a *announcement, body []byte) (holder, error) {
	var cert pb.CertificateSigned
	if err := proto.Unmarshal(a.Cert, &cert); err != nil {
		return holder{}, fmt.Errorf("certificate: %v", err)
	}
	pol := c.pol
	pol.Now, pol.ExpectedIdentity = now, a.ID
	got, caSigned, err := crypto.VerifyProof(&pol, &cert, signedMessage(body), a.Sig)
	if err != nil {
		return holder{}, err
	}
	if got != a.ID {
		return holder{}, fmt.Errorf("the certificate names %q, not %q", got, a.ID)
	}
	var inner pb.Certificate
	if proto.Unmarshal(cert.GetCert(), &inner) != nil {
		return holder{}, errors.New("certificate body")
	}
	return holder{key: string(inner.GetKeyData()), caSigned: caSigned}, nil
}

// fresh reports whether a signed datagram's time is within MaxSkew.
func (c *Conn) fresh(now time.Time, ms int64) bool {
	d := now.Sub(time.UnixMilli(ms))
	return d <= c.cfg.MaxSkew && d >= -c.cfg.MaxSkew
}

func (c *Conn) handleAnnouncement(b []byte, from netip.AddrPort) {
	a, body, err := parseAnnouncement(b)
	if err != nil || a.Port == 0 {
		c.count(func(st *Stats) { st.Malformed++ })
		return
	}
	if a.Instance == c.instance {
		return // our own, looped back
	}
	now := c.cfg.Now()
	c.mu.Lock()
	switch {
	case a.ID == c.id:
		c.st.Conflict++
		c.mu.Unlock()
		c.log.Warn("lan: another peer announces our identity", "identity", a.ID, "addr", from)
		return
	case !c.verify.take(now):
		c.st.RateLimited++
		c.mu.Unlock()
		return
	case len(a.Sig) == 0 && c.auth:
		c.st.Unsigned++
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	var h holder
	if len(a.Sig) > 0 {
		if !c.fresh(now, a.TimeMs) {
			c.count(func(st *Stats) { st.Stale++ })
			return
		}
		if h, err = c.checkSigned(now, &a, body); err != nil {
			c.count(func(st *Stats) { st.BadSignature++ })
			c.log.Info("lan: announcement refused", "identity", a.ID, "addr", from, "err", err)
			return
		}
	}
	addr := netip.AddrPortFrom(from.Addr(), a.Port)
	var reply []byte
	var flush [][]byte
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	v, e := c.tab.update(now, &a, addr, h)
	switch v {
	case vAdded:
		c.st.AnnouncementsHeard++
		c.st.PeersAdded++
		flush = c.takePendingLocked(a.ID)
		c.st.SignalsSent += uint64(len(flush))
		// Tell the newcomer about us at once, rather than at our next
		// announcement.
		if c.reply.take(now) {
			reply = c.announcementLocked(now, c.cfg.TTL)
			c.st.AnnouncementsSent++
		}
	case vRefreshed:
		c.st.AnnouncementsHeard++
	case vLeft:
		c.st.AnnouncementsHeard++
		c.st.PeersLeft++
	case vIgnored:
	case vStale:
		c.st.Stale++
	case vTakeover:
		c.st.Takeover++
	case vFull:
		c.st.TableFull++
	}
	c.mu.Unlock()
	switch v {
	case vAdded:
		c.log.Info("lan: peer found", "identity", a.ID, "addr", addr, "authenticated", h.key != "")
	case vLeft:
		c.log.Info("lan: peer left", "identity", a.ID, "addr", e.addr)
	case vTakeover:
		c.log.Info("lan: announcement refused: identity held by another key", "identity", a.ID, "addr", from)
	}
	if reply != nil {
		c.write(reply, addr)
	}
	for _, s := range flush {
		c.write(s, addr)
	}
}

func (c *Conn) handleQuery(b []byte, from netip.AddrPort) {
	q, err := parseQuery(b)
	if err != nil {
		c.count(func(st *Stats) { st.Malformed++ })
		return
	}
	if q.Target != c.id || q.Instance == c.instance {
		return
	}
	now := c.cfg.Now()
	c.mu.Lock()
	if c.closed || !c.reply.take(now) {
		if !c.closed {
			c.st.RateLimited++
		}
		c.mu.Unlock()
		return
	}
	c.st.QueriesAnswered++
	c.st.AnnouncementsSent++
	reply := c.announcementLocked(now, c.cfg.TTL)
	c.mu.Unlock()
	c.write(reply, from)
}

func (c *Conn) handleSignal(b []byte, from netip.AddrPort) {
	s, body, err := parseSignal(b)
	if err != nil {
		c.count(func(st *Stats) { st.Malformed++ })
		return
	}
	if s.To != c.id {
		c.count(func(st *Stats) { st.NotForUs++ })
		return
	}
	now := c.cfg.Now()
	c.mu.Lock()
	var key ed25519.PublicKey
	if e := c.tab.m[s.From]; e != nil {
		key = e.publicKey()
	}
	signed := len(s.Sig) > 0
	switch {
	case key == nil && c.auth && signed:
		// We have not heard (or could not check) its announcement.
		c.st.UnknownSender++
		c.mu.Unlock()
		return
	case (key != nil || c.auth) && !signed:
		c.st.Unsigned++
		c.mu.Unlock()
		return
	case key != nil && !c.verify.take(now):
		c.st.RateLimited++
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	// A signed signal from a peer we know only on trust (trivial mode) is
	// taken on trust too: there is no key to check it with.
	if key != nil {
		if !c.fresh(now, s.TimeMs) {
			c.count(func(st *Stats) { st.Stale++ })
			return
		}
		if !ed25519.Verify(key, signedMessage(body), s.Sig) {
			c.count(func(st *Stats) { st.BadSignature++ })
			c.log.Info("lan: signal refused: bad signature", "from", s.From, "addr", from)
			return
		}
	}
	r := received{from: s.From, blob: append([]byte(nil), s.Blob...)}
	select {
	case c.in <- r:
		c.count(func(st *Stats) { st.SignalsReceived++ })
	default:
		c.count(func(st *Stats) { st.QueueFull++ })
	}
}

// bucket is a token bucket on the Conn's clock.
type bucket struct {
	rate, burst, tokens float64
	last                time.Time
}

func (b *bucket) take(now time.Time) bool {
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(b.burst, b.tokens+d.Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
