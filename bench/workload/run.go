package workload

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"sync/atomic"
	"time"

	"github.com/netmsg-go/netmsg/bench/peer"
)

// Control messages share the data messages' first 8 bytes: a little-endian
// u64 "sequence" at the top of the range, which no data message reaches,
// followed by a body.
const (
	seqEnd    = ^uint64(0)     // body: u64 data messages sent
	seqHello  = ^uint64(0) - 1 // body: workload id
	seqReady  = ^uint64(0) - 2 // body: none
	seqResult = ^uint64(0) - 3 // body: JSON recvStats
	seqBye    = ^uint64(0) - 4 // body: none
	// firstControl is the lowest control sequence.
	firstControl = seqBye
)

// Timing of the control protocol on peers whose SendReliable is not
// reliable (raw UDP): resend every controlRetry, give up after controlTries.
const (
	controlRetry = 20 * time.Millisecond
	controlTries = 250
	// linger is how long the server keeps answering a repeated end marker
	// after sending its result, when the client does not say bye.
	linger = 2 * time.Second
)

func control(seq uint64, body []byte) []byte {
	b := binary.LittleEndian.AppendUint64(make([]byte, 0, 8+len(body)), seq)
	return append(b, body...)
}

// recvStats is the receiver's (server's) account of a run, sent back to the
// client in the result message.
type recvStats struct {
	Received       uint64  `json:"received"`
	Sent           uint64  `json:"sent"`
	WindowMessages uint64  `json:"window_messages"`
	WindowSeconds  float64 `json:"window_seconds"`
	OutOfOrder     uint64  `json:"out_of_order"`
	Error          string  `json:"error,omitempty"`
}

// Serve accepts one connection on l and runs the server side of s on it:
// receive and measure (Throughput) or echo (PingPong). It returns when the
// client has its result and has gone, or when ctx ends.
func Serve(ctx context.Context, p peer.Peer, l peer.Listener, s Spec) error {
	c, err := l.Accept(ctx)
	if err != nil {
		return fmt.Errorf("workload: accept: %w", err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	reliable := p.Caps().Reliable

	var st recvStats
	switch s.Kind {
	case Throughput:
		st, err = receive(c, s, reliable)
	case PingPong:
		st, err = echo(c, s)
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("workload: %w (%w)", ctx.Err(), err)
		}
		return err
	}
	res, _ := json.Marshal(st)
	res = control(seqResult, res)
	if err := c.SendReliable(res); err != nil {
		return fmt.Errorf("workload: send result: %w", err)
	}
	// Wait for the client's bye (or its close), answering a repeated end
	// marker when the result was lost; give up after linger.
	t := time.AfterFunc(linger, func() { c.Close() })
	defer t.Stop()
	for {
		b, err := c.Recv()
		if err != nil {
			return nil
		}
		if len(b) < 8 {
			continue
		}
		switch binary.LittleEndian.Uint64(b) {
		case seqBye:
			return nil
		case seqEnd:
			if err := c.SendReliable(res); err != nil {
				return nil
			}
		}
	}
}

// helloReply answers a hello, also a repeated one.
func helloReply(c peer.Conn, b []byte, s Spec) error {
	if got := string(b[8:]); got != s.ID {
		return fmt.Errorf("workload: client runs %q, server %q", got, s.ID)
	}
	return c.SendReliable(control(seqReady, nil))
}

// receive is the receiver of a throughput workload. It checks every data
// message (size; with reliable delivery also sequence == expected) until
// the end marker, and measures from WindowDelay after the first message to
// the end marker.
func receive(c peer.Conn, s Spec, reliablePeer bool) (recvStats, error) {
	var (
		st        recvStats
		checkSeq  = reliablePeer && !s.Unreliable
		expected  uint64 // next sequence, reliable delivery
		nextMax   uint64 // highest sequence seen + 1, unreliable delivery
		started   bool
		inWindow  bool
		windowOn  atomic.Bool
		winStart  time.Time
		winCount0 uint64
		timer     *time.Timer
	)
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	fail := func(format string, a ...any) {
		if st.Error == "" {
			st.Error = fmt.Sprintf(format, a...)
		}
	}
	for {
		b, err := c.Recv()
		if err != nil {
			return st, fmt.Errorf("workload: receive after %d messages: %w", st.Received, err)
		}
		if len(b) < 8 {
			fail("message %d: %d bytes, want %d", st.Received, len(b), s.Size)
			continue
		}
		seq := binary.LittleEndian.Uint64(b)
		if seq >= firstControl {
			switch seq {
			case seqHello:
				if err := helloReply(c, b, s); err != nil {
					return st, err
				}
			case seqEnd:
				end := time.Now()
				if len(b) < 16 {
					return st, errors.New("workload: short end marker")
				}
				st.Sent = binary.LittleEndian.Uint64(b[8:])
				if !inWindow {
					fail("end marker %v after the first message, before the window opened at %v", end.Sub(winStart), WindowDelay)
				} else {
					st.WindowMessages = st.Received - winCount0
					st.WindowSeconds = end.Sub(winStart).Seconds()
				}
				if checkSeq && st.Received != st.Sent {
					fail("received %d messages, sender sent %d", st.Received, st.Sent)
				}
				return st, nil
			}
			continue
		}
		if !started {
			started = true
			winStart = time.Now() // replaced when the window opens
			timer = time.AfterFunc(WindowDelay, func() { windowOn.Store(true) })
		}
		if !inWindow && windowOn.Load() {
			inWindow = true
			winStart = time.Now()
			winCount0 = st.Received
		}
		st.Received++
		if len(b) != s.Size {
			fail("message seq %d: %d bytes, want %d", seq, len(b), s.Size)
		}
		if checkSeq {
			if seq != expected {
				fail("message %d: sequence %d, want %d (reordered, lost or duplicated)", st.Received-1, seq, expected)
			}
			expected = seq + 1
		} else {
			if seq < nextMax {
				st.OutOfOrder++
			} else {
				nextMax = seq + 1
			}
		}
	}
}

// echo is the server of the ping-pong: every data message goes back as it
// came. Received counts them.
func echo(c peer.Conn, s Spec) (recvStats, error) {
	var st recvStats
	for {
		b, err := c.Recv()
		if err != nil {
			return st, fmt.Errorf("workload: echo after %d messages: %w", st.Received, err)
		}
		if len(b) < 8 {
			continue
		}
		switch seq := binary.LittleEndian.Uint64(b); {
		case seq == seqHello:
			if err := helloReply(c, b, s); err != nil {
				return st, err
			}
		case seq == seqEnd:
			if len(b) >= 16 {
				st.Sent = binary.LittleEndian.Uint64(b[8:])
			}
			return st, nil
		case seq >= firstControl:
		default:
			st.Received++
			if err := c.SendReliable(b); err != nil {
				return st, fmt.Errorf("workload: echo send: %w", err)
			}
		}
	}
}

// exchange sends msg and waits for a control message with sequence want,
// returning its body. On a peer whose SendReliable is not reliable, msg is
// resent every controlRetry until the answer comes.
func exchange(c peer.Conn, reliable bool, msg []byte, want uint64) ([]byte, error) {
	if err := c.SendReliable(msg); err != nil {
		return nil, err
	}
	wait := func() ([]byte, error) {
		for {
			b, err := c.Recv()
			if err != nil {
				return nil, err
			}
			if len(b) >= 8 && binary.LittleEndian.Uint64(b) == want {
				return slices.Clone(b[8:]), nil
			}
		}
	}
	if reliable {
		return wait()
	}
	type reply struct {
		b   []byte
		err error
	}
	ch := make(chan reply, 1)
	go func() { b, err := wait(); ch <- reply{b, err} }()
	tick := time.NewTicker(controlRetry)
	defer tick.Stop()
	for range controlTries {
		select {
		case r := <-ch:
			return r.b, r.err
		case <-tick.C:
			if err := c.SendReliable(msg); err != nil {
				return nil, err
			}
		}
	}
	c.Close() // ends the waiting goroutine
	return nil, fmt.Errorf("workload: no answer after %d tries", controlTries)
}

// Run dials addr and runs the client side of s: send (Throughput) or ping
// (PingPong). Failures of the run itself are reported in Result.Error;
// the error return is for failures to run at all.
func Run(ctx context.Context, p peer.Peer, addr string, s Spec) (Result, error) {
	caps := p.Caps()
	r := Result{Peer: p.Name(), Workload: s.ID, Size: s.Size, Encrypted: caps.Encrypted, Loss: s.Loss, Note: caps.Note}
	r.Delivery = "reliable"
	if s.Unreliable || !caps.Reliable {
		r.Delivery = "unreliable"
	}
	if why := Unsupported(caps, s); why != "" {
		r.Unsupported = why
		return r, nil
	}
	c, err := p.Dial(ctx, addr, s.Options())
	if err != nil {
		return r, fmt.Errorf("workload: dial %s: %w", addr, err)
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()

	if _, err := exchange(c, caps.Reliable, control(seqHello, []byte(s.ID)), seqReady); err != nil {
		return r, fmt.Errorf("workload: hello: %w", err)
	}
	switch s.Kind {
	case Throughput:
		err = send(c, s, caps.Reliable, &r)
	case PingPong:
		err = ping(c, s, caps.Reliable, &r)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return r, err
	}
	_ = c.SendReliable(control(seqBye, nil))
	return r, nil
}

// send is the sender of a throughput workload: as fast as the library lets
// it for s.Duration, then the end marker; the figures come back from the
// receiver.
func send(c peer.Conn, s Spec, reliable bool, r *Result) error {
	msg := make([]byte, s.Size)
	for i := range msg {
		msg[i] = byte(i)
	}
	sendFn := c.SendReliable
	if s.Unreliable {
		sendFn = c.SendUnreliable
	}
	// Reading the clock costs about as much as a small send; look at it
	// every 64 small messages.
	every := uint64(1)
	if s.Size < 1024 {
		every = 64
	}
	deadline := time.Now().Add(s.Duration)
	var seq uint64
	for {
		if seq%every == 0 && !time.Now().Before(deadline) {
			break
		}
		binary.LittleEndian.PutUint64(msg, seq)
		if err := sendFn(msg); err != nil {
			return fmt.Errorf("workload: send %d: %w", seq, err)
		}
		seq++
	}
	r.Sent = seq
	body, err := exchange(c, reliable, control(seqEnd, binary.LittleEndian.AppendUint64(nil, seq)), seqResult)
	if err != nil {
		return fmt.Errorf("workload: end marker: %w", err)
	}
	var st recvStats
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("workload: result: %w", err)
	}
	r.Received = st.Received
	r.WindowMessages = st.WindowMessages
	r.WindowSeconds = st.WindowSeconds
	r.OutOfOrder = st.OutOfOrder
	r.Error = st.Error
	if st.Sent != seq && r.Error == "" {
		r.Error = fmt.Sprintf("receiver saw sent=%d, sender sent %d", st.Sent, seq)
	}
	if st.WindowSeconds > 0 {
		r.MsgsPerSec = float64(st.WindowMessages) / st.WindowSeconds
		r.MBPerSec = r.MsgsPerSec * float64(s.Size) / 1e6
	}
	if seq > 0 {
		r.LostPct = 100 * (1 - float64(st.Received)/float64(seq))
	}
	return nil
}

// ping is the pinger: one message out, wait for it back, s.Warmup rounds
// then s.Rounds measured.
func ping(c peer.Conn, s Spec, reliable bool, r *Result) error {
	msg := make([]byte, s.Size)
	for i := range msg {
		msg[i] = byte(i)
	}
	rtts := make([]time.Duration, 0, s.Rounds)
	total := s.Warmup + s.Rounds
	for i := range total {
		seq := uint64(i)
		binary.LittleEndian.PutUint64(msg, seq)
		t0 := time.Now()
		if err := c.SendReliable(msg); err != nil {
			return fmt.Errorf("workload: ping %d: %w", i, err)
		}
		for {
			b, err := c.Recv()
			if err != nil {
				return fmt.Errorf("workload: pong %d: %w", i, err)
			}
			if len(b) < 8 {
				return fmt.Errorf("workload: pong %d: %d bytes", i, len(b))
			}
			got := binary.LittleEndian.Uint64(b)
			if got >= firstControl {
				continue // a late ready
			}
			if got != seq || len(b) != s.Size {
				if reliable {
					return fmt.Errorf("workload: pong %d: sequence %d, %d bytes", i, got, len(b))
				}
				continue // raw UDP: a stray datagram
			}
			break
		}
		if i >= s.Warmup {
			rtts = append(rtts, time.Since(t0))
		}
	}
	body, err := exchange(c, reliable, control(seqEnd, binary.LittleEndian.AppendUint64(nil, uint64(total))), seqResult)
	if err != nil {
		return fmt.Errorf("workload: end marker: %w", err)
	}
	var st recvStats
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("workload: result: %w", err)
	}
	r.Sent = uint64(total)
	r.Received = st.Received
	if reliable && st.Received != uint64(total) {
		r.Error = fmt.Sprintf("echo side received %d pings, pinger sent %d", st.Received, total)
	}
	r.Rounds = len(rtts)
	slices.Sort(rtts)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	var sum time.Duration
	for _, d := range rtts {
		sum += d
	}
	r.RTTP50us = us(Percentile(rtts, 50))
	r.RTTP99us = us(Percentile(rtts, 99))
	if os.Getenv("NETBENCH_PCT") != "" {
		// The tail in more detail (where a W6b p99 comes from).
		fmt.Fprint(os.Stderr, "netbench: rtt percentiles µs:")
		for _, q := range []float64{80, 85, 90, 95, 97, 98, 99, 99.5} {
			fmt.Fprintf(os.Stderr, " p%g %.0f", q, us(rtts[min(int(float64(len(rtts))*q/100), len(rtts)-1)]))
		}
		fmt.Fprintln(os.Stderr)
	}
	r.RTTMinUs = us(rtts[0])
	r.RTTMaxUs = us(rtts[len(rtts)-1])
	r.RTTMeanUs = us(sum / time.Duration(len(rtts)))
	return nil
}

// Percentile is the nearest-rank percentile of sorted values.
func Percentile[T any](sorted []T, p float64) T {
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}
