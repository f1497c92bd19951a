package signaling

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
)

// Limits of the signaling protocols.
const (
	// MaxBlobSize is the largest blob a signal carries. GNS's rendezvous
	// messages are under 1 KiB; a certificate chain and many candidates fit
	// well within this.
	MaxBlobSize = 16 << 10

	// MaxIdentityLen is the longest identity string accepted (GNS renders
	// an identity in at most 128 characters).
	MaxIdentityLen = 128

	// maxLine is the longest line either protocol carries: an identity, a
	// space, the hex of a blob, the newline.
	maxLine = MaxIdentityLen + 1 + 2*MaxBlobSize + 1

	// defaultQueueLen is how many received signals a client keeps unread
	// before it drops new ones.
	defaultQueueLen = 256
)

// Errors.
var (
	// ErrClosed: the Conn was closed.
	ErrClosed = errors.New("signaling: closed")
	// ErrTooLarge: a blob over MaxBlobSize.
	ErrTooLarge = fmt.Errorf("signaling: blob larger than %d bytes", MaxBlobSize)
	// ErrBadIdentity: not an identity string the protocols can carry.
	ErrBadIdentity = errors.New("signaling: invalid identity")
	// ErrRefused: the server refused an authenticated registration (its
	// reason follows).
	ErrRefused = errors.New("signaling: refused by the server")
	// ErrNotUp: a TCP client is reconnecting.
	ErrNotUp = errors.New("signaling: not connected to the server (reconnecting)")
	// ErrQueueFull: a TCP client's send queue is full.
	ErrQueueFull = errors.New("signaling: send queue full (the server is not reading)")
	// ErrReplaced ends a Conn whose identity a newer connection took
	// over (a Hub's Connect, or an authenticated client on a netmsg
	// server); such a Conn does not reconnect. It wraps ErrClosed.
	ErrReplaced = fmt.Errorf("%w: replaced by a newer connection with the same identity", ErrClosed)
)

// Conn is one peer's attachment to a signaling service: the interface a
// netmsg Host uses (GNS's connection signaling, in Go's shape). Signals are
// best effort: one may be dropped, duplicated or reordered, and the P2P
// layer above copes (it retries and acknowledges).
type Conn interface {
	// Send queues blob for the peer known by identity to and returns
	// without waiting for the network. It returns ErrBadIdentity or
	// ErrTooLarge for what no server would carry, ErrNotUp while a TCP
	// client reconnects, ErrQueueFull when its server does not keep up,
	// and ErrClosed (or ErrReplaced) once the Conn has ended. A nil error
	// does not mean the peer will get it.
	Send(to string, blob []byte) error
	// Recv waits for the next signal and returns its sender's identity and
	// blob (the caller owns it). It returns ctx's error when ctx ends
	// first, and ErrClosed (or ErrReplaced, which wraps it) once the Conn
	// has ended.
	Recv(ctx context.Context) (from string, blob []byte, err error)
	// Close ends the attachment; a pending Recv returns ErrClosed.
	Close() error
	// Identity returns the identity this Conn is registered with (a Host
	// given the Conn checks it against its own).
	Identity() string
}

// CheckIdentity reports whether s can name a peer on the wire: 1 to
// MaxIdentityLen printable characters without spaces, with a "type:"
// prefix, as GNS renders identities.
func CheckIdentity(s string) error {
	if s == "" || len(s) > MaxIdentityLen || !strings.Contains(s, ":") {
		return fmt.Errorf("%w: %q", ErrBadIdentity, clip(s))
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: %q", ErrBadIdentity, clip(s))
		}
	}
	return nil
}

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// appendLine appends "<id> <hex of blob>\n": the line both protocols use
// for a signal (the id is the destination from a client, the source to a
// client).
func appendLine(b []byte, id string, blob []byte) []byte {
	b = append(b, id...)
	b = append(b, ' ')
	b = hex.AppendEncode(b, blob)
	return append(b, '\n')
}

// parseLine splits a signal line (without its newline) into the identity
// and the blob. GNS's trivial server splits at the first space and strips
// the identity; the hex is taken as is.
func parseLine(line []byte) (id string, blob []byte, err error) {
	sp := -1
	for i, c := range line {
		if c == ' ' {
			sp = i
			break
		}
	}
	if sp < 0 {
		return "", nil, errors.New("signaling: line without a space")
	}
	id = strings.TrimSpace(string(line[:sp]))
	if err := CheckIdentity(id); err != nil {
		return "", nil, err
	}
	h := line[sp+1:]
	if n := len(h); n > 0 && h[n-1] == '\r' {
		h = h[:n-1]
	}
	if len(h) > 2*MaxBlobSize {
		return "", nil, ErrTooLarge
	}
	blob = make([]byte, hex.DecodedLen(len(h)))
	if _, err := hex.Decode(blob, h); err != nil {
		return "", nil, fmt.Errorf("signaling: bad hex: %w", err)
	}
	return id, blob, nil
}

// signal is one received signal.
type signal struct {
	from string
	blob []byte
}

// inbox is a bounded queue of received signals with a blocking pop.
type inbox struct {
	mu      sync.Mutex
	q       []signal
	max     int
	ready   chan struct{} // signalled (cap 1) when q gains an item or closes
	closed  bool
	err     error // what pop returns once closed
	dropped uint64
}

func newInbox(max int) *inbox {
	if max <= 0 {
		max = defaultQueueLen
	}
	return &inbox{max: max, ready: make(chan struct{}, 1)}
}

// push queues a signal; it drops it (and counts) when the queue is full or
// closed.
func (b *inbox) push(from string, blob []byte) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || len(b.q) >= b.max {
		b.dropped++
		return false
	}
	b.q = append(b.q, signal{from, blob})
	select {
	case b.ready <- struct{}{}:
	default:
	}
	return true
}

func (b *inbox) pop(ctx context.Context) (string, []byte, error) {
	for {
		b.mu.Lock()
		if len(b.q) > 0 {
			s := b.q[0]
			b.q[0] = signal{}
			b.q = b.q[1:]
			if len(b.q) > 0 {
				select {
				case b.ready <- struct{}{}:
				default:
				}
			}
			b.mu.Unlock()
			return s.from, s.blob, nil
		}
		if b.closed {
			err := b.err
			b.mu.Unlock()
			return "", nil, err
		}
		b.mu.Unlock()
		select {
		case <-b.ready:
		case <-ctx.Done():
			return "", nil, ctx.Err()
		}
	}
}

// close ends the inbox: pop returns err (ErrClosed if nil) and queued
// signals are discarded. The first close's error stays.
func (b *inbox) close(err error) {
	if err == nil {
		err = ErrClosed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.err = err
	}
	b.closed = true
	b.q = nil
	select {
	case b.ready <- struct{}{}:
	default:
	}
}
