package signaling_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/netmsg-go/netmsg/signaling"
)

// memAddress is a server address on the in-memory network of the
// restart tests: the listener serving it now, if any, and every dial
// attempt's time. A dial while nothing listens fails at once, as a TCP
// connection to a closed port is refused.
type memAddress struct {
	mu    sync.Mutex
	l     *memListener
	dials map[string][]time.Time // by client
}

func (a *memAddress) serve(l *memListener) {
	a.mu.Lock()
	a.l = l
	a.mu.Unlock()
}

func (a *memAddress) dialTimes(client string) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]time.Time(nil), a.dials[client]...)
}

// dialer returns client's ClientConfig.DialContext; its connections come
// from address from.
func (a *memAddress) dialer(client, from string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return a.dial(ctx, client, memAddr(from), network)
	}
}

func (a *memAddress) dial(ctx context.Context, client string, from net.Addr, network string) (net.Conn, error) {
	a.mu.Lock()
	if a.dials == nil {
		a.dials = map[string][]time.Time{}
	}
	a.dials[client] = append(a.dials[client], time.Now())
	l := a.l
	a.mu.Unlock()
	if l == nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	}
	srv, cli := net.Pipe()
	select {
	case l.ch <- memConn{srv, from}:
		return cli, nil
	case <-l.done:
		return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestClientReconnectBackoff: a client whose server goes away tries again
// with jittered exponential backoff: each wait is between half and all of
// a bound that starts at 100 ms and doubles up to 5 s, never more; Send
// fails with ErrNotUp meanwhile; once a server listens at the address
// again the client is back within the bound, and signals flow again.
func TestClientReconnectBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var addr memAddress
		start := func() *signaling.Server {
			s, err := signaling.NewServer(signaling.ServerConfig{})
			if err != nil {
				t.Fatal(err)
			}
			l := newMemListener()
			go s.Serve(l)
			addr.serve(l)
			return s
		}
		s := start()
		dial := func(id, from string) signaling.Conn {
			c, err := signaling.DialURL(context.Background(), "tcp://server:1", signaling.ClientConfig{Identity: id, DialContext: addr.dialer(id, from)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })
			return c
		}
		alice, bob := dial("str:alice", "10.0.0.1:1"), dial("str:bob", "10.0.0.2:1")
		synctest.Wait()
		exchange := func(what string) {
			t.Helper()
			if err := alice.Send("str:bob", []byte(what)); err != nil {
				t.Fatalf("%s: send: %v", what, err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if from, b, err := bob.Recv(ctx); err != nil || from != "str:alice" || string(b) != what {
				t.Fatalf("%s: bob got %q %q %v", what, from, b, err)
			}
		}
		exchange("before")

		addr.serve(nil)
		s.Close()
		down := time.Now()
		synctest.Wait()
		if err := alice.Send("str:bob", []byte("x")); !errors.Is(err, signaling.ErrNotUp) {
			t.Errorf("send while the server is down: %v, want ErrNotUp", err)
		}
		time.Sleep(time.Minute)
		for _, id := range []string{"str:alice", "str:bob"} {
			dials := addr.dialTimes(id)[1:] // the first connection, then the attempts
			if len(dials) < 60/5 {
				t.Fatalf("%s: %d attempts in a minute down", id, len(dials))
			}
			prev, bound := down, 100*time.Millisecond
			var gaps []time.Duration
			for k, d := range dials {
				gap := d.Sub(prev)
				gaps = append(gaps, gap)
				if gap < bound/2 || gap > bound {
					t.Errorf("%s: wait %d was %v, want %v-%v", id, k, gap, bound/2, bound)
				}
				prev, bound = d, min(2*bound, 5*time.Second)
			}
			t.Logf("%s: %d attempts, waits %v", id, len(dials), gaps)
		}

		s = start()
		defer s.Close()
		back := time.Now()
		waitUp := func(c signaling.Conn) {
			for c.Send("str:nobody", []byte("ping")) != nil {
				if time.Since(back) > 5*time.Second+time.Second {
					t.Fatal("not reconnected within the 5 s bound")
				}
				time.Sleep(10 * time.Millisecond)
			}
		}
		waitUp(alice)
		waitUp(bob)
		t.Logf("both back %v after the server", time.Since(back))
		time.Sleep(100 * time.Millisecond)
		exchange("after")
	})
}
