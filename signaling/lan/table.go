package lan

import (
	"crypto/ed25519"
	"net/netip"
	"time"
)

// holder is who proved an identity: nothing (the trivial trust), or a key
// with a certificate, CA-signed or not.
type holder struct {
	key      string // the Ed25519 public key; empty: not authenticated
	caSigned bool
}

// mayTake reports whether newcomer h may replace the announcements of an
// identity old holds, as on the authenticated signaling server: an
// unauthenticated holder yields to anyone; an authenticated one to a
// CA-signed certificate, or to the same key.
func (old holder) mayTake(h holder) bool {
	return old.key == "" || h.caSigned || (!old.caSigned && old.key == h.key)
}

// entry is what the table knows of one peer.
type entry struct {
	id       string
	addr     netip.AddrPort // where its signals go
	instance uint64
	seq      uint64
	timeMs   int64 // the sender's clock in its latest announcement
	holder
	added   time.Time
	expires time.Time
}

// verdict is what table.update did with an announcement.
type verdict uint8

const (
	vAdded     verdict = iota + 1 // a new peer
	vRefreshed                    // a known peer, maybe at a new address
	vLeft                         // TTL 0: the peer said goodbye
	vIgnored                      // a goodbye from a peer not in the table
	vStale                        // older than what the table has (a replay, or a late copy)
	vTakeover                     // refused: the identity is held by another key
	vFull                         // refused: the table is full
)

// table is the peers heard on the LAN, by identity: a pure state machine
// given the time. Not safe for concurrent use.
type table struct {
	max    int
	minTTL time.Duration
	maxTTL time.Duration
	m      map[string]*entry
}

func newTable(max int, minTTL, maxTTL time.Duration) *table {
	return &table{max: max, minTTL: minTTL, maxTTL: maxTTL, m: make(map[string]*entry)}
}

// update applies announcement a, heard from address addr and proved by
// h, at now. The entry lasts a.TTLms, clamped to [minTTL, maxTTL].
// Announcements of one instance must grow in Seq; another instance (the
// peer restarted) must be later by the sender's clock.
func (t *table) update(now time.Time, a *announcement, addr netip.AddrPort, h holder) (verdict, *entry) {
	e := t.m[a.ID]
	if e != nil {
		if !e.holder.mayTake(h) {
			return vTakeover, e
		}
		if (a.Instance == e.instance && a.Seq <= e.seq) || (a.Instance != e.instance && a.TimeMs <= e.timeMs) {
			return vStale, e
		}
		if a.TTLms == 0 {
			delete(t.m, a.ID)
			return vLeft, e
		}
		e.addr, e.instance, e.seq, e.timeMs, e.holder = addr, a.Instance, a.Seq, a.TimeMs, h
		e.expires = now.Add(t.ttl(a.TTLms))
		return vRefreshed, e
	}
	if a.TTLms == 0 {
		return vIgnored, nil
	}
	if len(t.m) >= t.max {
		t.expire(now)
		if len(t.m) >= t.max {
			return vFull, nil
		}
	}
	e = &entry{id: a.ID, addr: addr, instance: a.Instance, seq: a.Seq, timeMs: a.TimeMs, holder: h, added: now, expires: now.Add(t.ttl(a.TTLms))}
	t.m[a.ID] = e
	return vAdded, e
}

func (t *table) ttl(ms uint32) time.Duration {
	return min(max(time.Duration(ms)*time.Millisecond, t.minTTL), t.maxTTL)
}

// expire removes the entries whose time has come and returns them.
func (t *table) expire(now time.Time) []*entry {
	var gone []*entry
	for id, e := range t.m {
		if !now.Before(e.expires) {
			delete(t.m, id)
			gone = append(gone, e)
		}
	}
	return gone
}

// next returns the earliest expiry, or the zero time with no entries.
func (t *table) next() time.Time {
	var w time.Time
	for _, e := range t.m {
		if w.IsZero() || e.expires.Before(w) {
			w = e.expires
		}
	}
	return w
}

// key returns an entry's public key, or nil if it is not authenticated.
func (e *entry) publicKey() ed25519.PublicKey {
	if e.key == "" {
		return nil
	}
	return ed25519.PublicKey(e.key)
}
