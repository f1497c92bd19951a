package signaling

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"
)

// HubConfig sets the faults of an in-memory Hub. The zero value delivers
// every signal at once, exactly once, in order.
type HubConfig struct {
	// LossPercent, DuplicatePercent and ReorderPercent are probabilities,
	// in percent, that a signal is dropped, delivered twice, or held back
	// by ReorderDelay so later ones overtake it.
	LossPercent, DuplicatePercent, ReorderPercent float64
	// Delay is added to every signal; ReorderDelay to reordered ones
	// (default 50 ms).
	Delay, ReorderDelay time.Duration
	// Seed makes the faults reproducible.
	Seed uint64
	// QueueLen bounds each peer's unread signals (default 256); more are
	// dropped and counted.
	QueueLen int
}

// HubStats counts what a Hub did.
type HubStats struct {
	Sent, Delivered, Lost, Duplicated, Reordered uint64
	NoRecipient                                  uint64 // sent to an identity nobody had connected as
	Overflow                                     uint64 // dropped because the recipient's queue was full
}

// Hub is an in-memory signaling service for tests and the demo: peers of
// one process connect to it by identity and exchange signals, with
// optional loss, duplication, reordering and delay. Delays use the
// runtime's timers, so a Hub made inside a testing/synctest bubble runs on
// the bubble's fake clock.
type Hub struct {
	mu    sync.Mutex
	cfg   HubConfig
	rng   *rand.Rand
	conns map[string]*hubConn
	st    HubStats
	// pending holds delayed signals by due time, then sending order.
	pending []pendingSignal
	seq     uint64
}

// NewHub returns an empty Hub.
func NewHub(cfg HubConfig) (*Hub, error) {
	for _, p := range []float64{cfg.LossPercent, cfg.DuplicatePercent, cfg.ReorderPercent} {
		if p < 0 || p > 100 {
			return nil, fmt.Errorf("signaling: hub: percentage %v out of [0, 100]", p)
		}
	}
	if cfg.Delay < 0 || cfg.ReorderDelay < 0 {
		return nil, fmt.Errorf("signaling: hub: negative delay")
	}
	if cfg.ReorderDelay == 0 {
		cfg.ReorderDelay = 50 * time.Millisecond
	}
	return &Hub{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0x5167)), conns: map[string]*hubConn{}}, nil
}

// Connect attaches a peer as identity. A later Connect with the same
// identity takes its signals over (as GNS's trivial server does); the
// earlier Conn is closed and its Recv returns ErrReplaced.
func (h *Hub) Connect(identity string) (Conn, error) {
	if err := CheckIdentity(identity); err != nil {
		return nil, err
	}
	c := &hubConn{hub: h, id: identity, in: newInbox(h.cfg.QueueLen)}
	h.mu.Lock()
	old := h.conns[identity]
	h.conns[identity] = c
	h.mu.Unlock()
	if old != nil {
		old.in.close(ErrReplaced)
	}
	return c, nil
}

// Stats returns the Hub's counters.
func (h *Hub) Stats() HubStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.st
}

func (h *Hub) send(from *hubConn, to string, blob []byte) error {
	if err := CheckIdentity(to); err != nil {
		return err
	}
	if len(blob) > MaxBlobSize {
		return ErrTooLarge
	}
	b := append([]byte(nil), blob...)
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.conns[from.id] != from {
		return ErrClosed
	}
	h.st.Sent++
	if h.chance(h.cfg.LossPercent) {
		h.st.Lost++
		return nil
	}
	copies := 1
	if h.chance(h.cfg.DuplicatePercent) {
		h.st.Duplicated++
		copies = 2
	}
	for range copies {
		d := h.cfg.Delay
		if h.chance(h.cfg.ReorderPercent) {
			h.st.Reordered++
			d += h.cfg.ReorderDelay
		}
		if d == 0 {
			h.deliverLocked(from.id, to, b)
			continue
		}
		// Signals due at the same time keep the order they were sent
		// in: each timer delivers every signal due by then, in order.
		h.seq++
		due := time.Now().Add(d)
		i := sort.Search(len(h.pending), func(i int) bool {
			p := h.pending[i]
			return p.due.After(due) || (p.due.Equal(due) && p.seq > h.seq)
		})
		h.pending = slices.Insert(h.pending, i, pendingSignal{due, h.seq, from.id, to, b})
		time.AfterFunc(d, h.flush)
	}
	return nil
}

type pendingSignal struct {
	due      time.Time
	seq      uint64
	from, to string
	blob     []byte
}

// flush delivers every delayed signal that is due.
func (h *Hub) flush() {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := time.Now()
	n := 0
	for n < len(h.pending) && !h.pending[n].due.After(now) {
		p := h.pending[n]
		h.deliverLocked(p.from, p.to, p.blob)
		n++
	}
	h.pending = slices.Delete(h.pending, 0, n)
}

func (h *Hub) chance(pct float64) bool { return pct > 0 && h.rng.Float64()*100 < pct }

func (h *Hub) deliverLocked(from, to string, b []byte) {
	c := h.conns[to]
	switch {
	case c == nil:
		h.st.NoRecipient++
	case c.in.push(from, b):
		h.st.Delivered++
	default:
		h.st.Overflow++
	}
}

type hubConn struct {
	hub *Hub
	id  string
	in  *inbox
}

func (c *hubConn) Send(to string, blob []byte) error { return c.hub.send(c, to, blob) }

func (c *hubConn) Recv(ctx context.Context) (string, []byte, error) { return c.in.pop(ctx) }

// Identity returns the identity the Conn was connected to the Hub with.
func (c *hubConn) Identity() string { return c.id }

func (c *hubConn) Close() error {
	c.hub.mu.Lock()
	if c.hub.conns[c.id] == c {
		delete(c.hub.conns, c.id)
	}
	c.hub.mu.Unlock()
	c.in.close(nil)
	return nil
}
