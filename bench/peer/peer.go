// Package peer is the small connection abstraction the benchmark workloads
// run over, with one implementation per library under test.
//
// A Peer makes one connection between two endpoints: a server that Listens
// and Accepts exactly the connections it needs, and a client that Dials. The
// workloads only need messages: SendReliable (ordered, exactly once, with the
// library's own back-pressure), SendUnreliable, and one Recv that returns the
// next message from either kind. A library adapter (netmsg's included, later)
// implements Peer, Listener and Conn and registers itself with Register.
package peer

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
)

// ErrNoUnreliable is returned by Conn.SendUnreliable when the library has no
// unreliable mode (kcp-go).
var ErrNoUnreliable = errors.New("peer: no unreliable mode")

// ErrTooLarge is returned by a send whose message exceeds what the library
// can carry in that mode (raw UDP beyond one datagram, a QUIC datagram beyond
// the path MTU).
var ErrTooLarge = errors.New("peer: message too large for this mode")

// Caps describes what a peer's connections really do, so the workloads can
// check and report honestly.
type Caps struct {
	// Reliable reports whether SendReliable is reliable and ordered. When
	// false (raw UDP) the receiver counts losses instead of failing on them,
	// control messages are retried, and figures are marked unreliable.
	Reliable bool
	// Unreliable reports whether SendUnreliable exists.
	Unreliable bool
	// MaxReliable is the largest message SendReliable accepts; 0 means no
	// limit the workloads reach.
	MaxReliable int
	// Encrypted reports whether traffic is encrypted.
	Encrypted bool
	// Note is a short description of the configuration, shown in reports
	// (for example "fast mode NoDelay(1,10,2,1), wnd 1024, no crypto").
	Note string
	// Unavailable, when not empty, says why this build cannot run the peer
	// at all (ENet without cgo or libenet); every workload reports it
	// instead of figures.
	Unavailable string
}

// Options are the per-connection settings a workload asks for. The zero
// value is a plain reliable connection.
type Options struct {
	// Unreliable asks for the unreliable mode to be enabled (QUIC datagrams).
	// Workloads that never call SendUnreliable leave it false, so a library
	// that has to do extra work to offer both kinds only does it when asked.
	Unreliable bool
	// NoDelay marks a latency workload (ping-pong): every message must go on
	// the wire at once, with no Nagle or coalescing delay.
	NoDelay bool
	// Loss, in [0, 1), drops that fraction of the datagrams each side sends,
	// at random, before they reach the socket (the W6 hook). Libraries that
	// have their own fake-loss knob (netmsg) may use it instead. Loss > 0 may
	// take a library off its fastest socket path (a wrapped net.PacketConn
	// loses GSO/recvmmsg); reports must say so.
	Loss float64
	// Seed seeds the fake loss; 0 picks a random seed.
	Seed int64
}

// Peer is one library under test. Its methods may be called concurrently.
type Peer interface {
	// Name is the short name used on the command line ("raw", "kcp", "quic").
	Name() string
	// Caps reports what the connections do.
	Caps() Caps
	// Listen binds addr (for example "127.0.0.1:0") and returns a listener.
	Listen(ctx context.Context, addr string, opt Options) (Listener, error)
	// Dial connects to a listener's address. When Dial returns, SendReliable
	// may be called; the connection may not yet be confirmed by the server
	// (the workloads exchange a hello first).
	Dial(ctx context.Context, addr string, opt Options) (Conn, error)
}

// Listener accepts connections.
type Listener interface {
	// Addr is the bound address, "host:port".
	Addr() string
	// Accept waits for the next connection. It may wait for the client's
	// first message (the workloads always send a hello first).
	Accept(ctx context.Context) (Conn, error)
	// Close stops listening. Accepted connections stay open.
	Close() error
}

// Conn is one connection. SendReliable and SendUnreliable are called from
// one goroutine, Recv from one goroutine (possibly a different one); Close may
// be called from any goroutine at any time and makes a blocked Recv or send
// return an error.
type Conn interface {
	// SendReliable sends b as one reliable, ordered message. It blocks while
	// the library's send buffer is full (back-pressure), and returns once b
	// may be reused.
	SendReliable(b []byte) error
	// SendUnreliable sends b as one unreliable message, or returns
	// ErrNoUnreliable. It may block for back-pressure, as the library does.
	SendUnreliable(b []byte) error
	// Recv returns the next message received, of either kind. The slice is
	// valid until the next call of Recv or Close.
	Recv() ([]byte, error)
	// Close closes the connection and frees its resources.
	Close() error
}

var (
	registryMu sync.Mutex
	registry   = map[string]Peer{}
)

// Register makes a peer available by name. It panics on a duplicate name.
func Register(p Peer) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[p.Name()]; dup {
		panic("peer: duplicate peer " + p.Name())
	}
	registry[p.Name()] = p
}

// Lookup returns the peer registered under name.
func Lookup(name string) (Peer, error) {
	registryMu.Lock()
	defer registryMu.Unlock()
	p, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("peer: unknown peer %q (have %v)", name, namesLocked())
	}
	return p, nil
}

// Names lists the registered peers, sorted.
func Names() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	return namesLocked()
}

func namesLocked() []string {
	n := make([]string, 0, len(registry))
	for k := range registry {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
