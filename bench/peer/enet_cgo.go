//go:build cgo && !noenet

package peer

/*
#cgo LDFLAGS: -lenet
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <enet/enet.h>

// benchQueue counts the packets ENet holds for one peer and their payload
// bytes: added when a packet is queued, taken off by the packet's free
// callback (a reliable packet is freed once acknowledged, an unreliable one
// once sent or dropped).
typedef struct { size_t outstanding, packets; } benchQueue;

static void benchFreed(ENetPacket *p) {
	benchQueue *q = (benchQueue *)p->userData;
	if (q != NULL) {
		q->outstanding -= p->dataLength;
		q->packets--;
	}
}

// benchSend queues one packet of n bytes on channel 0. It returns 0, or -1
// when ENet refused it.
static int benchSend(ENetPeer *peer, benchQueue *q, const void *b, size_t n, enet_uint32 flags) {
	ENetPacket *p = enet_packet_create(b, n, flags);
	if (p == NULL) return -1;
	p->userData = q;
	p->freeCallback = benchFreed;
	q->outstanding += n;
	q->packets++;
	if (enet_peer_send(peer, 0, p) < 0) {
		if (p->referenceCount == 0) enet_packet_destroy(p);
		return -1;
	}
	return 0;
}

// benchRecv services the host and takes up to max received packets in one
// call: those of at most copyMax bytes are copied into buf (cap bytes),
// one after the other, their lengths into lens, and destroyed; it stops at
// the first larger packet, which it returns in *big (the caller destroys
// it), at the first other event, which it returns in *other, and when the
// host has no event. It returns the number of packets copied, or -1 when
// ENet failed.
static int benchRecv(ENetHost *h, uint8_t *buf, size_t cap, size_t copyMax, size_t *lens, int max,
		ENetPacket **big, ENetEvent *other) {
	int n = 0;
	size_t off = 0;
	*big = NULL;
	other->type = ENET_EVENT_TYPE_NONE;
	while (n < max) {
		ENetEvent ev;
		int r = enet_host_service(h, &ev, 0);
		if (r < 0) return n > 0 ? n : -1;
		if (r == 0) break;
		if (ev.type != ENET_EVENT_TYPE_RECEIVE) {
			*other = ev;
			break;
		}
		size_t len = ev.packet->dataLength;
		if (len > copyMax || len > cap - off) {
			*big = ev.packet;
			break;
		}
		memcpy(buf + off, ev.packet->data, len);
		off += len;
		lens[n++] = len;
		enet_packet_destroy(ev.packet);
	}
	return n;
}

// benchWait waits up to ms milliseconds for the host's socket to be
// readable. It returns 1 when it is, 0 on timeout, -1 on error.
static int benchWait(ENetHost *h, enet_uint32 ms) {
	enet_uint32 cond = ENET_SOCKET_WAIT_RECEIVE;
	if (enet_socket_wait(h->socket, &cond, ms) < 0) return -1;
	return (cond & ENET_SOCKET_WAIT_RECEIVE) ? 1 : 0;
}

// Fake loss (W6): the intercept hook drops a fraction of the datagrams the
// host receives, so each side's loss applies to what its peer sent. One
// slot per host with loss; a slot's host is written last when it is taken
// and first when it is freed.
typedef struct {
	ENetHost *host;
	uint32_t threshold; // drop when the next 32 random bits are below it
	uint64_t rng;       // xorshift64 state, used only under the host's lock
} benchLoss;

#define BENCH_LOSS_SLOTS 16
static benchLoss benchLosses[BENCH_LOSS_SLOTS];

static int ENET_CALLBACK benchIntercept(ENetHost *h, ENetEvent *ev) {
	(void)ev;
	for (int i = 0; i < BENCH_LOSS_SLOTS; i++) {
		benchLoss *l = &benchLosses[i];
		if (__atomic_load_n(&l->host, __ATOMIC_ACQUIRE) != h) continue;
		uint64_t x = l->rng;
		x ^= x << 13; x ^= x >> 7; x ^= x << 17;
		l->rng = x;
		return (uint32_t)(x >> 32) < l->threshold ? 1 : 0;
	}
	return 0;
}

// benchSetLoss makes h drop the fraction threshold/2^32 of the datagrams it
// receives. It returns -1 when every slot is taken.
static int benchSetLoss(ENetHost *h, uint32_t threshold, uint64_t seed) {
	for (int i = 0; i < BENCH_LOSS_SLOTS; i++) {
		benchLoss *l = &benchLosses[i];
		ENetHost *none = NULL;
		if (__atomic_load_n(&l->host, __ATOMIC_ACQUIRE) != NULL) continue;
		l->threshold = threshold;
		l->rng = seed ? seed : 0x9e3779b97f4a7c15ULL;
		if (!__atomic_compare_exchange_n(&l->host, &none, h, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) continue;
		h->intercept = benchIntercept;
		return 0;
	}
	return -1;
}

static void benchClearLoss(ENetHost *h) {
	for (int i = 0; i < BENCH_LOSS_SLOTS; i++) {
		ENetHost *want = h;
		__atomic_compare_exchange_n(&benchLosses[i].host, &want, NULL, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED);
	}
}

static enet_uint32 benchHostIP(ENetHost *h) { return h->address.host; }
static enet_uint16 benchHostPort(ENetHost *h) { return h->address.port; }
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"time"
	"unsafe"
)

// enetPeer is ENet 1.3.17 (the C library, through cgo), the reference peer
// of BENCH.md: one connection with one channel; reliable messages use
// ENET_PACKET_FLAG_RELIABLE (ENet fragments what exceeds its MTU),
// unreliable ones ENET_PACKET_FLAG_UNSEQUENCED. ENet has no encryption.
//
// An ENetHost is single-threaded; each connection owns one host and calls
// ENet only under its mutex. Nothing runs in the background: the host is
// serviced by the sender (every enetServiceEvery bytes, and while it waits
// for back-pressure) and by Recv.
type enetPeer struct{}

func init() { Register(enetPeer{}) }

var enetInit = sync.OnceValue(func() error {
	if C.enet_initialize() != 0 {
		return errors.New("enet: enet_initialize failed")
	}
	return nil
})

func (enetPeer) Name() string { return enetName }

func (enetPeer) Caps() Caps {
	return Caps{Reliable: true, Unreliable: true, Note: enetNote}
}

// errENetClosed is returned by a call on a closed connection.
var errENetClosed = errors.New("enet: connection closed")

// enetWaitMS is the longest a waiting call sleeps on the socket before it
// services the host again (ENet's timers: acknowledgements, resends, pings).
const enetWaitMS = 1

func enetAddress(addr string) (C.ENetAddress, error) {
	var a C.ENetAddress
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return a, err
	}
	if !ap.Addr().Unmap().Is4() {
		return a, fmt.Errorf("enet: %v: ENet 1.3 speaks IPv4 only", ap)
	}
	ip := ap.Addr().Unmap().As4()
	// ENetAddress.host is in network byte order: the bytes as they are.
	a.host = C.enet_uint32(*(*uint32)(unsafe.Pointer(&ip[0])))
	a.port = C.enet_uint16(ap.Port())
	return a, nil
}

// newENetConn creates a host (bound to bind, or to an ephemeral port when
// bind is nil) for one peer with one channel, and its connection state.
func newENetConn(bind *C.ENetAddress, opt Options) (*enetConn, error) {
	if err := enetInit(); err != nil {
		return nil, err
	}
	h := C.enet_host_create(bind, 1, 1, 0, 0)
	if h == nil {
		return nil, errors.New("enet: enet_host_create failed")
	}
	c := &enetConn{host: h, noDelay: opt.NoDelay}
	c.q = (*C.benchQueue)(C.calloc(1, C.size_t(unsafe.Sizeof(C.benchQueue{}))))
	if opt.Loss > 0 {
		seed := uint64(opt.Seed)
		if seed == 0 {
			seed = rand.Uint64()
		}
		thr := C.uint32_t(math.Min(opt.Loss*(1<<32), math.MaxUint32))
		if C.benchSetLoss(h, thr, C.uint64_t(seed)) != 0 {
			C.enet_host_destroy(h)
			C.free(unsafe.Pointer(c.q))
			return nil, errors.New("enet: too many hosts with fake loss in this process")
		}
		c.loss = true
	}
	return c, nil
}

func (enetPeer) Listen(ctx context.Context, addr string, opt Options) (Listener, error) {
	a, err := enetAddress(addr)
	if err != nil {
		return nil, err
	}
	c, err := newENetConn(&a, opt)
	if err != nil {
		return nil, err
	}
	return &enetListener{c: c}, nil
}

type enetListener struct {
	c *enetConn
}

func (l *enetListener) Addr() string {
	var ip [4]byte
	*(*uint32)(unsafe.Pointer(&ip[0])) = uint32(C.benchHostIP(l.c.host))
	return netip.AddrPortFrom(netip.AddrFrom4(ip), uint16(C.benchHostPort(l.c.host))).String()
}

// Accept services the host until a peer has connected and returns the
// connection, which owns the host.
func (l *enetListener) Accept(ctx context.Context) (Conn, error) {
	if err := l.c.waitConnect(ctx); err != nil {
		return nil, err
	}
	return l.c, nil
}

// Close does nothing: the accepted connection owns the host (an
// unaccepted one is left to process exit).
func (l *enetListener) Close() error { return nil }

func (enetPeer) Dial(ctx context.Context, addr string, opt Options) (Conn, error) {
	a, err := enetAddress(addr)
	if err != nil {
		return nil, err
	}
	c, err := newENetConn(nil, opt)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.peer = C.enet_host_connect(c.host, &a, 1, 0)
	c.mu.Unlock()
	if c.peer == nil {
		c.Close()
		return nil, errors.New("enet: enet_host_connect failed")
	}
	if err := c.waitConnect(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// enetConn is one ENet host with its one peer.
type enetConn struct {
	noDelay bool
	loss    bool // the host has a fake-loss slot

	// life is read-locked while a goroutine waits on the host's socket
	// without holding mu; Close write-locks it before destroying the host.
	// Lock order: life, then mu.
	life sync.RWMutex

	mu           sync.Mutex // guards every field below and every ENet call on host
	host         *C.ENetHost
	peer         *C.ENetPeer
	q            *C.benchQueue   // C memory, freed after the host
	held         *C.ENetPacket   // returned by the last Recv, destroyed at the next
	inbox        []*C.ENetPacket // received while servicing for a send
	sinceService int             // bytes queued since the host was last serviced
	ended        error           // the peer disconnected or timed out
	closed       bool

	// The batch Recv returns from: nbatch messages copied into buf,
	// lens[i] bytes at offs[i], next the one to return. Only the goroutine
	// that calls Recv uses them.
	buf          []byte
	lens         [enetBatch]C.size_t
	offs         [enetBatch]int
	nbatch, next int
}

// waitConnect services the host until its peer is connected.
func (c *enetConn) waitConnect(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return errENetClosed
		}
		var ev C.ENetEvent
		r := C.enet_host_service(c.host, &ev, 0)
		if r > 0 {
			switch ev._type {
			case C.ENET_EVENT_TYPE_CONNECT:
				c.peer = ev.peer
				c.mu.Unlock()
				return nil
			case C.ENET_EVENT_TYPE_RECEIVE:
				C.enet_packet_destroy(ev.packet) // none can come before CONNECT
			}
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		if r < 0 {
			return errors.New("enet: enet_host_service failed")
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !c.wait() {
			return errENetClosed
		}
	}
}

// wait sleeps until the socket is readable or enetWaitMS has passed. It
// reports false if the connection is closed.
func (c *enetConn) wait() bool {
	c.life.RLock()
	defer c.life.RUnlock()
	c.mu.Lock()
	h, closed := c.host, c.closed
	c.mu.Unlock()
	if closed || h == nil {
		return false
	}
	C.benchWait(h, enetWaitMS)
	return true
}

// serviceLocked services the host until it has no event: received packets
// go to the inbox, a disconnect ends the connection.
func (c *enetConn) serviceLocked() error {
	for range 1 << 16 {
		var ev C.ENetEvent
		r := C.enet_host_service(c.host, &ev, 0)
		if r < 0 {
			return errors.New("enet: enet_host_service failed")
		}
		if r == 0 {
			break
		}
		c.eventLocked(&ev)
	}
	c.sinceService = 0
	return c.ended
}

// eventLocked handles an event that Recv does not return at once.
func (c *enetConn) eventLocked(ev *C.ENetEvent) {
	switch ev._type {
	case C.ENET_EVENT_TYPE_RECEIVE:
		c.inbox = append(c.inbox, ev.packet)
	case C.ENET_EVENT_TYPE_DISCONNECT:
		if ev.peer == c.peer && c.ended == nil {
			c.ended = errors.New("enet: peer disconnected")
		}
	}
}

func (c *enetConn) send(b []byte, flags C.enet_uint32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return errENetClosed
	}
	if c.ended != nil {
		return c.ended
	}
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	if C.benchSend(c.peer, c.q, p, C.size_t(len(b)), flags) != 0 {
		return fmt.Errorf("enet: enet_peer_send of %d bytes failed", len(b))
	}
	c.sinceService += len(b)
	switch {
	case c.noDelay:
		C.enet_host_flush(c.host)
	case c.sinceService >= enetServiceEvery:
		if err := c.serviceLocked(); err != nil {
			return err
		}
	}
	for c.fullLocked() {
		if err := c.serviceLocked(); err != nil {
			return err
		}
		if !c.fullLocked() {
			break
		}
		c.mu.Unlock()
		ok := c.wait()
		c.mu.Lock()
		if !ok || c.closed {
			return errENetClosed
		}
	}
	return nil
}

// fullLocked reports whether ENet holds as much of this connection's data
// as the sender lets it (enetSendLimit, enetSendPackets).
func (c *enetConn) fullLocked() bool {
	return c.q.outstanding > enetSendLimit || c.q.packets > enetSendPackets
}

func (c *enetConn) SendReliable(b []byte) error {
	return c.send(b, C.ENET_PACKET_FLAG_RELIABLE)
}

func (c *enetConn) SendUnreliable(b []byte) error {
	return c.send(b, C.ENET_PACKET_FLAG_UNSEQUENCED)
}

// enetBatch is how many small packets Recv takes from ENet in one cgo call,
// copying them into a buffer of enetBatchBytes; a packet above
// enetCopyMax is returned in place (ENet's memory, no copy).
const (
	enetBatch      = 256
	enetBatchBytes = 256 << 10
	enetCopyMax    = 4 << 10
)

// Recv returns the next received message. Small packets are taken from
// ENet in batches and copied into the connection's buffer; a large one is
// returned in ENet's memory and destroyed at the next Recv.
func (c *enetConn) Recv() ([]byte, error) {
	if c.next < c.nbatch { // only the Recv goroutine touches the batch
		off := c.offs[c.next]
		b := c.buf[off : off+int(c.lens[c.next])]
		c.next++
		return b, nil
	}
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, errENetClosed
		}
		if c.held != nil {
			C.enet_packet_destroy(c.held)
			c.held = nil
		}
		var pkt *C.ENetPacket
		if len(c.inbox) > 0 {
			pkt = c.inbox[0]
			c.inbox[0] = nil
			c.inbox = c.inbox[1:]
		} else {
			if c.buf == nil {
				c.buf = make([]byte, enetBatchBytes)
			}
			var ev C.ENetEvent
			n := C.benchRecv(c.host, (*C.uint8_t)(unsafe.Pointer(&c.buf[0])), enetBatchBytes, enetCopyMax,
				&c.lens[0], enetBatch, &pkt, &ev)
			if n < 0 {
				c.mu.Unlock()
				return nil, errors.New("enet: enet_host_service failed")
			}
			if ev._type != C.ENET_EVENT_TYPE_NONE {
				c.eventLocked(&ev)
			}
			if pkt != nil {
				c.inbox = append(c.inbox, pkt) // after the copied ones
				pkt = nil
			}
			if n > 0 {
				c.mu.Unlock()
				off := 0
				for i := range int(n) {
					c.offs[i] = off
					off += int(c.lens[i])
				}
				c.nbatch, c.next = int(n), 1
				return c.buf[:c.lens[0]], nil
			}
			if len(c.inbox) > 0 {
				c.mu.Unlock()
				continue
			}
		}
		if pkt != nil {
			c.held = pkt
			b := unsafe.Slice((*byte)(unsafe.Pointer(pkt.data)), int(pkt.dataLength))
			c.mu.Unlock()
			return b, nil
		}
		ended := c.ended
		c.mu.Unlock()
		if ended != nil {
			return nil, ended
		}
		if !c.wait() {
			return nil, errENetClosed
		}
	}
}

// enetLinger bounds how long Close services the host for a graceful
// disconnect (ENet sends what is queued first).
const enetLinger = 200 * time.Millisecond

// Close disconnects once the queued packets are sent (for up to
// enetLinger), then destroys the host.
func (c *enetConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	if c.peer != nil && c.ended == nil {
		C.enet_peer_disconnect_later(c.peer, 0)
		deadline := time.Now().Add(enetLinger)
		for time.Now().Before(deadline) {
			var ev C.ENetEvent
			r := C.enet_host_service(c.host, &ev, 1)
			if r < 0 {
				break
			}
			if r > 0 && ev._type == C.ENET_EVENT_TYPE_RECEIVE {
				C.enet_packet_destroy(ev.packet)
			}
			if r > 0 && ev._type == C.ENET_EVENT_TYPE_DISCONNECT {
				break
			}
		}
	}
	if c.held != nil {
		C.enet_packet_destroy(c.held)
		c.held = nil
	}
	for _, p := range c.inbox {
		C.enet_packet_destroy(p)
	}
	c.inbox = nil
	c.mu.Unlock()

	c.life.Lock() // no goroutine waits on the socket any more
	c.mu.Lock()
	if c.loss {
		C.benchClearLoss(c.host)
	}
	C.enet_host_destroy(c.host) // frees the packets it still holds (benchFreed uses q)
	c.host, c.peer = nil, nil
	C.free(unsafe.Pointer(c.q))
	c.q = nil
	c.mu.Unlock()
	c.life.Unlock()
	return nil
}
