package signaling

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Refusal reasons the server writes on an "ERR <reason>" line before it
// closes a connection it will not serve. A client reports them (ErrRefused
// with the reason); GNS's trivial client sees a line from an identity
// ("ERR") it cannot parse and ignores it.
const (
	reasonFull       = "server full"
	reasonAddr       = "too many connections from your address"
	reasonAddrPend   = "too many registrations in progress from your address"
	reasonAbsent     = "too many signals to absent identities"
	reasonShutdown   = "shutdown"
	reasonNoTrivial  = "trivial protocol refused"
	refuseLinger     = time.Second // how long a refused connection is drained before it is closed
	maxLingering     = 256         // refused connections drained at once; beyond, they are closed at once
	logBurst         = 5           // lines of one kind logged at once ...
	logEvery         = time.Second // ... and then one per logEvery
	ipv6PrefixBits   = 64          // IPv6 sources are grouped by /64, as one host usually holds one
	refuseDrainBytes = 64 << 10    // what is read from a refused connection at most
)

// addrKey groups connections by source for the per-address limits: the
// IPv4 address, or the IPv6 /64. An address that is not IP (an in-memory
// pipe) is its own group.
func addrKey(a net.Addr) string {
	if a == nil {
		return ""
	}
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	default:
		host, _, err := net.SplitHostPort(a.String())
		if err != nil {
			return a.String()
		}
		ip, err = netip.ParseAddr(host)
		if err != nil {
			return host
		}
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(ipv6PrefixBits)
		return p.String()
	}
	return ip.String()
}

// logLimiter lets through logBurst lines of one kind and then one per
// logEvery, and says how many it suppressed in between: a flood of
// refusals costs a few log lines a second, not one per attempt. Safe for
// concurrent use.
type logLimiter struct {
	log *slog.Logger
	now func() time.Time

	mu    sync.Mutex
	kinds map[string]*logKind
}

type logKind struct {
	tokens     float64
	last       time.Time
	suppressed uint64
}

func newLogLimiter(l *slog.Logger) *logLimiter {
	return &logLimiter{log: l, now: time.Now, kinds: map[string]*logKind{}}
}

// logf logs msg at level under the rate limit of kind.
func (l *logLimiter) logf(level slog.Level, kind, msg string, args ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	now := l.now()
	l.mu.Lock()
	k := l.kinds[kind]
	if k == nil {
		if len(l.kinds) > 64 {
			clear(l.kinds) // kinds are a handful of constants; never let them grow
		}
		k = &logKind{tokens: logBurst, last: now}
		l.kinds[kind] = k
	}
	k.tokens = min(logBurst, k.tokens+now.Sub(k.last).Seconds()/logEvery.Seconds())
	k.last = now
	if k.tokens < 1 {
		k.suppressed++
		l.mu.Unlock()
		return
	}
	k.tokens--
	sup := k.suppressed
	k.suppressed = 0
	l.mu.Unlock()
	if sup > 0 {
		args = append(args, "suppressed", sup)
	}
	l.log.Log(context.Background(), level, msg, args...)
}
