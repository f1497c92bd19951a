package netmsg

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netmsg-go/netmsg/netsim"
)

// holder returns who holds h's role of reading.
func (h *Host) holder() roleHolder {
	h.role.mu.Lock()
	defer h.role.mu.Unlock()
	return h.role.holder
}

// TestReadRoleReceiver follows the role of reading through a ping-pong
// over the in-memory network: a receiver blocked in Receive takes it from
// the reader goroutine (which waits in its read), reads its message
// itself, leaves the role free when it has it, takes it again without the
// reader at the next Receive, and the reader takes it back roleReclaim
// after the receiver stopped receiving. (The rounds take less than
// roleReclaim: the link's delay is short.)
func TestReadRoleReceiver(t *testing.T) {
	bubble(t, func(t *testing.T) {
		cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: roleReclaim / 5})
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		c := connectWait(t, cli, srv)
		s := serverConn(t, srv)
		ctx := context.Background()
		synctest.Wait()
		if got := srv.holder(); got != heldByReader {
			t.Fatalf("before any receive: holder %d, want the reader (%d)", got, heldByReader)
		}

		type result struct {
			m   *Message
			err error
		}
		recv := func() chan result {
			ch := make(chan result, 1)
			go func() {
				m, err := srv.Receive(ctx, s)
				ch <- result{m, err}
			}()
			return ch
		}
		for i := range 3 {
			ch := recv()
			synctest.Wait()
			if got := srv.holder(); got != heldByReceiver {
				t.Fatalf("round %d: a receiver blocked in Receive: holder %d, want a receiver (%d)", i, got, heldByReceiver)
			}
			if _, err := cli.SendMessageToConnection(c, numbered(uint64(i), 64), SendReliableNoNagle); err != nil {
				t.Fatal(err)
			}
			r := <-ch
			if r.err != nil || binary.LittleEndian.Uint64(r.m.Payload) != uint64(i) {
				t.Fatalf("round %d: Receive: %v %v", i, r.m, r.err)
			}
			r.m.Release()
			if got := srv.holder(); got != roleFree {
				t.Fatalf("round %d: after Receive: holder %d, want free (%d)", i, got, roleFree)
			}
		}
		time.Sleep(3 * roleReclaim)
		synctest.Wait()
		if got := srv.holder(); got != heldByReader {
			t.Fatalf("%v after the last Receive: holder %d, want the reader (%d)", 3*roleReclaim, got, heldByReader)
		}
		// The reader reads again: a message waits in the queue for a
		// receive that does not block.
		if _, err := cli.SendMessageToConnection(c, numbered(9, 64), SendReliableNoNagle); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		ms := srv.ReceiveMessagesOnConnection(s, 10)
		if len(ms) != 1 || binary.LittleEndian.Uint64(ms[0].Payload) != 9 {
			t.Fatalf("with the reader back: %d messages", len(ms))
		}
		ms[0].Release()
	})
}

// TestReadRoleEnds checks that a receiver holding the role of reading
// returns when its context ends and when the Host closes, leaving the
// role to the reader goroutine (or nobody once closed) and no goroutine
// behind.
func TestReadRoleEnds(t *testing.T) {
	bubble(t, func(t *testing.T) {
		cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: time.Millisecond})
		defer nw.Close()
		defer cli.Close()
		connectWait(t, cli, srv)
		s := serverConn(t, srv)

		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := srv.Receive(ctx, s)
			errc <- err
		}()
		synctest.Wait()
		if got := srv.holder(); got != heldByReceiver {
			t.Fatalf("holder %d, want a receiver", got)
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("Receive after cancel: %v", err)
		}
		time.Sleep(3 * roleReclaim)
		synctest.Wait()
		if got := srv.holder(); got != heldByReader {
			t.Fatalf("after the cancelled receive: holder %d, want the reader", got)
		}

		// The same with the Host closing under the receiver; a batch
		// receive this time.
		go func() {
			_, err := srv.ReceiveBatch(context.Background(), s, 8)
			errc <- err
		}()
		synctest.Wait()
		if got := srv.holder(); got != heldByReceiver {
			t.Fatalf("holder %d, want a receiver", got)
		}
		srv.Close()
		if err := <-errc; err == nil {
			t.Fatal("ReceiveBatch returned no error after Close")
		}
		synctest.Wait() // every goroutine of srv has ended, or the bubble reports it
	})
}

// TestReadRoleManyReceivers runs several connections, each with its own
// blocked receiver (Receive, ReceiveBatch, a poll group, the Messages
// API's Receive), so that the role of reading passes between them and
// the reader goroutine while messages flow both ways: every reliable
// message arrives once and in order.
func TestReadRoleManyReceivers(t *testing.T) {
	const conns, perConn = 6, 300
	bubble(t, func(t *testing.T) {
		cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: 500 * time.Microsecond, Jitter: 200 * time.Microsecond})
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		var cs, ss []ConnHandle
		for range conns {
			cs = append(cs, connectWait(t, cli, srv))
		}
		for _, ev := range srv.seen() {
			if ev.Info.State == StateConnecting {
				ss = append(ss, ev.Conn)
			}
		}
		if len(ss) != conns {
			t.Fatalf("%d server connections, want %d", len(ss), conns)
		}
		g := srv.CreatePollGroup()
		srv.SetConnectionPollGroup(ss[0], g)

		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var wg sync.WaitGroup
		errs := make(chan error, 2*conns)
		// check takes the messages of one connection in order.
		check := func(i int, next *uint64, ms ...*Message) error {
			for _, m := range ms {
				if got := binary.LittleEndian.Uint64(m.Payload); got != *next {
					return fmt.Errorf("connection %d: message %d, want %d", i, got, *next)
				}
				*next++
				m.Release()
			}
			return nil
		}
		for i, s := range ss {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var next uint64
				for next < perConn {
					var ms []*Message
					var err error
					switch i % 3 {
					case 0:
						var m *Message
						if i == 0 {
							m, err = srv.ReceiveOnPollGroup(ctx, g)
						} else {
							m, err = srv.Receive(ctx, s)
						}
						ms = []*Message{m}
					case 1:
						ms, err = srv.ReceiveBatch(ctx, s, 7)
					case 2:
						ms, err = srv.ReceiveBatch(ctx, s, 1)
					}
					if err == nil {
						err = check(i, &next, ms...)
					}
					if err != nil {
						errs <- err
						return
					}
					// Echo every tenth message: traffic both ways.
					if next%10 == 0 {
						if _, err := srv.SendMessageToConnection(s, numbered(next, 32), SendReliableNoNagle); err != nil {
							errs <- err
							return
						}
					}
				}
			}()
		}
		for i, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var echoed uint64
				for k := range uint64(perConn) {
					if _, err := cli.Send(ctx, c, numbered(k, 64), SendReliable); err != nil {
						errs <- fmt.Errorf("send %d on %d: %v", k, i, err)
						return
					}
					if k%16 == 0 {
						time.Sleep(time.Millisecond)
					}
					for _, m := range cli.ReceiveMessagesOnConnection(c, 64) {
						echoed++
						m.Release()
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for _, s := range ss {
			if ms := srv.ReceiveMessagesOnConnection(s, 10); len(ms) != 0 {
				t.Errorf("connection %d: %d messages more than sent", s, len(ms))
			}
		}
	})
}

// TestReadRolePushInterrupts checks that a message pushed onto the queue
// of a receiver that reads the socket with the role, by a goroutine other
// than that receiver (a worker, say), interrupts its read: the receive
// returns at once, not when the next datagram happens to come.
func TestReadRolePushInterrupts(t *testing.T) {
	bubble(t, func(t *testing.T) {
		cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: time.Millisecond})
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		connectWait(t, cli, srv)
		s := serverConn(t, srv)
		hc := srv.lookupConn(s)
		synctest.Wait()

		got := make(chan *Message, 1)
		go func() {
			m, err := srv.Receive(context.Background(), s)
			if err != nil {
				t.Error(err)
			}
			got <- m
		}()
		synctest.Wait()
		if h := srv.holder(); h != heldByReceiver {
			t.Fatalf("holder %d, want a receiver", h)
		}
		start := time.Now()
		m := &Message{conn: hc, Connection: s, Size: 3, Payload: []byte("abc")}
		hc.queued.Add(1)
		hc.recv.inMu.Lock()
		hc.recv.in.push(m)
		hc.recv.inMu.Unlock()
		hc.recv.pushed()
		if r := <-got; r != m {
			t.Fatalf("Receive returned %v, want the pushed message", r)
		}
		if d := time.Since(start); d != 0 {
			t.Errorf("the receive took %v of fake time, want none (it waited for a datagram)", d)
		}
	})
}

// TestReadRoleLongReceive: a receive that holds the role of reading,
// blocked, for more than roleReclaim leaves the reader goroutine waiting
// without its timer (an idle Host does not wake); when the receive gets
// its message, the reader takes the role back within two roleReclaim.
func TestReadRoleLongReceive(t *testing.T) {
	bubble(t, func(t *testing.T) {
		cli, srv, nw := netsimPair(t, netsim.LinkConfig{Delay: time.Millisecond})
		defer nw.Close()
		defer srv.Close()
		defer cli.Close()
		c := connectWait(t, cli, srv)
		s := serverConn(t, srv)
		got := make(chan error, 1)
		go func() {
			m, err := srv.Receive(context.Background(), s)
			if err == nil {
				m.Release()
			}
			got <- err
		}()
		time.Sleep(3 * roleReclaim)
		synctest.Wait()
		srv.role.mu.Lock()
		deep, holder := srv.role.deep, srv.role.holder
		srv.role.mu.Unlock()
		if !deep || holder != heldByReceiver {
			t.Fatalf("a receive blocked for %v: deep %v, holder %d; want the reader waiting without its timer for a receiver", 3*roleReclaim, deep, holder)
		}
		if _, err := cli.SendMessageToConnection(c, numbered(1, 64), SendReliableNoNagle); err != nil {
			t.Fatal(err)
		}
		if err := <-got; err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * roleReclaim)
		synctest.Wait()
		if h := srv.holder(); h != heldByReader {
			t.Fatalf("%v after the receive: holder %d, want the reader", 3*roleReclaim, h)
		}
	})
}
