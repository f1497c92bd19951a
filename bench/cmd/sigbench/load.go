package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netmsg-go/netmsg"
)

// The load side speaks the signaling protocols on raw TCP connections
// (see package signaling's doc): a trivial client writes its identity; an
// authenticated one proves its certificate's key. It holds one reader
// goroutine per connection and no writer, so the process that holds
// 20,000 of them stays small next to the nodes it loads; each connection
// is bound to a source address of its own among 127.1.x.y, so that no
// source holds more than perSource connections (the server's default
// limit per source is 128).

const (
	// writeWait bounds a sender's write: long, so that a node slow to
	// read delays the sender (which then catches up) rather than cut a
	// line in two.
	writeWait = time.Minute
	perSource = 100
	blobSize  = 300 // a typical rendezvous message (BenchmarkServerForward)
	// Protocol words and the proof's domain tag (package signaling's
	// doc, "The authenticated protocol").
	proofDomain = "netmsg-signal/1\x00"
)

// cred is an authenticated client's key and certificate.
type cred struct {
	key  ed25519.PrivateKey
	cert []byte
}

// issue makes a key and a CA-signed certificate for id.
func issue(ca ed25519.PrivateKey, id string) (cred, error) {
	nid, err := netmsg.ParseIdentity(id)
	if err != nil {
		return cred{}, err
	}
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return cred{}, err
	}
	cert, err := netmsg.IssueCertificate(ca, netmsg.CertTemplate{Identity: nid, PublicKey: pub})
	return cred{key, cert}, err
}

// unsigned makes a key and an unsigned certificate for id.
func unsigned(id string) (cred, error) {
	nid, err := netmsg.ParseIdentity(id)
	if err != nil {
		return cred{}, err
	}
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return cred{}, err
	}
	cert, err := netmsg.UnsignedCertificate(nid, key, 0)
	return cred{key, cert}, err
}

// sourceAddr is the k-th source address: 127.1.0.1, 127.1.0.2, ...,
// 127.1.0.250, 127.1.1.1, ...
func sourceAddr(k int) net.IP {
	return net.IPv4(127, 1+byte(k/(250*250)), byte(k/250%250), byte(k%250+1))
}

// client is one connection to a node.
type client struct {
	id     string
	node   int
	authed bool
	conn   net.Conn

	wmu sync.Mutex // serializes writes
	h   atomic.Pointer[func(line []byte)]
}

// dialClient connects from src to addr and registers id (with cr when
// not nil: the authenticated protocol). A refusal is an error holding
// the server's reason.
func dialClient(ctx context.Context, src net.IP, addr, id string, cr *cred) (*client, *bufio.Reader, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: src}, Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	r := bufio.NewReaderSize(conn, 2048)
	c := &client{id: id, conn: conn, authed: cr != nil}
	if cr == nil {
		err = registerTrivial(conn, r, id)
	} else {
		err = authenticate(conn, r, id, cr)
	}
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return c, r, nil
}

// registerTrivial registers id with the trivial protocol, which has no
// answer: so it also signals id itself and waits for that signal, which
// the server forwards only once id is registered. A client that returns
// is registered, so the connections still registering from one source
// are at most those being dialled from it at once (the server refuses
// more than 16).
func registerTrivial(conn net.Conn, r *bufio.Reader, id string) error {
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write([]byte(id + "\n" + id + " 00\n")); err != nil {
		return err
	}
	l, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(l) != id+" 00" {
		return fmt.Errorf("refused: %s", strings.TrimSpace(l))
	}
	return nil
}

func authenticate(conn net.Conn, r *bufio.Reader, id string, cr *cred) error {
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	defer conn.SetDeadline(time.Time{})
	if _, err := conn.Write([]byte("NETMSG-SIGNAL/1 " + id + " " + hex.EncodeToString(cr.cert) + "\n")); err != nil {
		return err
	}
	l, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	ch, ok := strings.CutPrefix(strings.TrimSpace(l), "CHALLENGE ")
	if !ok {
		return fmt.Errorf("refused: %s", strings.TrimSpace(l))
	}
	chb, err := hex.DecodeString(ch)
	if err != nil {
		return err
	}
	m := append(append(append([]byte(proofDomain), id...), 0), chb...)
	if _, err := conn.Write([]byte("PROOF " + hex.EncodeToString(ed25519.Sign(cr.key, m)) + "\n")); err != nil {
		return err
	}
	l, err = r.ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(l) != "OK" {
		return fmt.Errorf("refused: %s", strings.TrimSpace(l))
	}
	return nil
}

// read hands each line to the client's handler until the connection
// ends.
func (c *client) read(r *bufio.Reader) {
	for {
		l, err := r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				continue
			}
			return
		}
		if h := c.h.Load(); h != nil {
			(*h)(l[:len(l)-1])
		}
	}
}

// pair is a sender and a receiver; the blob carries a sequence number
// and the send time.
type pair struct {
	from, to   *client
	sent, recv atomic.Uint64
	wake       chan struct{} // a signal arrived (cap 1)

	mu  sync.Mutex
	lat []time.Duration // forward latencies seen (latency phase)
}

// zeroHex is the hex of the blob's bytes after the header.
var zeroHex = bytes.Repeat([]byte("0"), 2*(blobSize-16))

// appendSignal appends the line sending p's signal seq of phase ph,
// stamped now.
func (p *pair) appendSignal(b []byte, ph uint32, seq uint64, now int64) []byte {
	var h [16]byte
	binary.LittleEndian.PutUint64(h[:8], uint64(ph)<<48|seq)
	binary.LittleEndian.PutUint64(h[8:], uint64(now))
	b = append(b, p.to.id...)
	b = append(b, ' ')
	b = hex.AppendEncode(b, h[:])
	b = append(b, zeroHex...)
	return append(b, '\n')
}

// parseHeader reads the phase and the send time from a received line
// "<from> <hex>".
func parseHeader(line []byte) (ph uint32, t int64, ok bool) {
	i := bytes.IndexByte(line, ' ')
	if i < 0 || len(line) < i+1+32 {
		return 0, 0, false
	}
	var h [16]byte
	if _, err := hex.Decode(h[:], line[i+1:i+33]); err != nil {
		return 0, 0, false
	}
	return uint32(binary.LittleEndian.Uint64(h[:8]) >> 48), int64(binary.LittleEndian.Uint64(h[8:])), true
}

// phases numbers the phases, so that a signal of an earlier one arriving
// late is not counted in the next.
var phases atomic.Uint32

// epoch is the zero of the stamps (monotonic).
var epoch = time.Now()

func stamp() int64 { return int64(time.Since(epoch)) }

// phaseResult is what one phase measured.
type phaseResult struct {
	Pairs     int
	Rate      float64 // signals received per second in the window
	Sent      uint64  // in the whole phase
	Received  uint64
	P50, P99  time.Duration // latency phase only
	P999, Max time.Duration
	Samples   int
}

// install sets the receivers' handlers for ps in phase ph: count, wake
// the sender, and with lat record the latency of the signals sent from
// stamp since on. Signals of other phases are ignored.
func install(ps []*pair, ph uint32, total *atomic.Uint64, lat bool, since int64) {
	for _, p := range ps {
		h := func(line []byte) {
			sph, t, ok := parseHeader(line)
			if !ok || sph != ph {
				return
			}
			p.recv.Add(1)
			total.Add(1)
			select {
			case p.wake <- struct{}{}:
			default:
			}
			if lat && t >= since {
				d := time.Duration(stamp() - t)
				p.mu.Lock()
				p.lat = append(p.lat, d)
				p.mu.Unlock()
			}
		}
		p.to.h.Store(&h)
	}
}

// settle waits until total has not moved for 300 ms (what was sent has
// arrived, or the rest is lost), for 30 s at most, then removes the
// handlers, so that the next phase starts on an idle system.
func settle(ps []*pair, total *atomic.Uint64) {
	deadline := time.Now().Add(30 * time.Second)
	last, since := total.Load(), time.Now()
	for time.Since(since) < 300*time.Millisecond && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		if n := total.Load(); n != last {
			last, since = n, time.Now()
		}
	}
	for _, p := range ps {
		p.to.h.Store(nil)
	}
}

// saturate makes every sender send as fast as the window allows (at most
// window signals in flight per pair, at most maxRate per sender, under the
// server's per-client limit) for warm+dur, and measures the signals
// received per second in the last dur.
func saturate(ps []*pair, window int, maxRate float64, warm, dur time.Duration) phaseResult {
	var total atomic.Uint64
	ph := phases.Add(1)
	install(ps, ph, &total, false, 0)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range ps {
		p.sent.Store(0)
		p.recv.Store(0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			tokens, last := float64(window), time.Now()
			var sent, lost uint64
			stuck := time.Time{}
			for {
				select {
				case <-stop:
					p.sent.Store(sent)
					return
				default:
				}
				now := time.Now()
				tokens = min(float64(window), tokens+now.Sub(last).Seconds()*maxRate)
				last = now
				inFlight := int(sent - lost - p.recv.Load())
				n := min(window-inFlight, int(tokens))
				if n <= 0 {
					if inFlight < window {
						time.Sleep(time.Duration(float64(time.Second) / maxRate))
						continue
					}
					if stuck.IsZero() {
						stuck = now
					} else if now.Sub(stuck) > time.Second {
						lost += uint64(inFlight) // dropped somewhere: count them gone
						stuck = time.Time{}
						continue
					}
					select {
					case <-p.wake:
					case <-stop:
					case <-time.After(100 * time.Millisecond):
					}
					continue
				}
				stuck = time.Time{}
				// One write per signal, as a client that sends a signal
				// now and then does (no batching of lines here).
				tokens -= float64(n)
				for range n {
					buf = p.appendSignal(buf[:0], ph, sent, stamp())
					sent++
					p.from.wmu.Lock()
					p.from.conn.SetWriteDeadline(time.Now().Add(writeWait))
					_, err := p.from.conn.Write(buf)
					p.from.wmu.Unlock()
					if err != nil {
						p.sent.Store(sent)
						<-stop
						return
					}
				}
			}
		}()
	}
	time.Sleep(warm)
	t0, r0 := time.Now(), total.Load()
	time.Sleep(dur)
	t1, r1 := time.Now(), total.Load()
	close(stop)
	wg.Wait()
	settle(ps, &total)
	res := phaseResult{Pairs: len(ps), Rate: float64(r1-r0) / t1.Sub(t0).Seconds()}
	for _, p := range ps {
		res.Sent += p.sent.Load()
		res.Received += p.recv.Load()
	}
	return res
}

// steady makes the senders send rate signals per second in all, evenly
// spread, for warm+dur, and measures the forward latency (send to
// receipt, both in this process) of the signals sent in the last dur.
func steady(ps []*pair, rate float64, warm, dur time.Duration) phaseResult {
	var total atomic.Uint64
	for _, p := range ps {
		p.sent.Store(0)
		p.recv.Store(0)
		p.mu.Lock()
		p.lat = p.lat[:0]
		p.mu.Unlock()
	}
	interval := time.Duration(float64(time.Second) * float64(len(ps)) / rate)
	start := time.Now().Add(50 * time.Millisecond)
	ph := phases.Add(1)
	install(ps, ph, &total, true, stamp()+int64(50*time.Millisecond+warm))
	end := start.Add(warm + dur)
	var wg sync.WaitGroup
	for i, p := range ps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := start.Add(interval * time.Duration(i) / time.Duration(len(ps)))
			var buf []byte
			var seq uint64
			for next.Before(end) {
				time.Sleep(time.Until(next))
				buf = p.appendSignal(buf[:0], ph, seq, stamp())
				seq++
				p.from.wmu.Lock()
				p.from.conn.SetWriteDeadline(time.Now().Add(writeWait))
				_, err := p.from.conn.Write(buf)
				p.from.wmu.Unlock()
				if err != nil {
					break
				}
				next = next.Add(interval)
			}
			p.sent.Store(seq)
		}()
	}
	wg.Wait()
	settle(ps, &total)
	res := phaseResult{Pairs: len(ps), Rate: rate}
	var all []time.Duration
	for _, p := range ps {
		res.Sent += p.sent.Load()
		res.Received += p.recv.Load()
		p.mu.Lock()
		all = append(all, p.lat...)
		p.mu.Unlock()
	}
	res.Samples = len(all)
	if len(all) == 0 {
		return res
	}
	slices.Sort(all)
	q := func(f float64) time.Duration { return all[min(len(all)-1, int(f*float64(len(all))))] }
	res.P50, res.P99, res.P999, res.Max = q(0.50), q(0.99), q(0.999), all[len(all)-1]
	return res
}
