package netmsg

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/snp"
	"github.com/netmsg-go/netmsg/netsim"
)

// TestReleaseTwiceNoDoublePool: a second Release of a Message is a
// counted no-op, so the pool never holds it twice: after releasing
// messages twice, the messages received next are all distinct Messages
// with distinct buffers and intact payloads.
func TestReleaseTwiceNoDoublePool(t *testing.T) {
	const first, second, size = 20, 200, 64
	payload := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, size) }
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: time.Millisecond}})
		defer nw.Close()
		ps := newMsgPeers(t, nw, 2)
		defer closeAll(ps)
		alice, bob := ps[0], ps[1]
		openSession(t, alice, bob)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		recv := func(i int) *Message {
			t.Helper()
			m, err := bob.m.Receive(ctx, 0)
			if err != nil {
				t.Fatalf("message %d: %v", i, err)
			}
			if !bytes.Equal(m.Payload, payload(i)) {
				t.Fatalf("message %d: payload %x", i, m.Payload)
			}
			return m
		}

		before := doubleReleases.Load()
		for i := range first {
			if err := alice.m.SendMessageToUser(bob.id, payload(i), SendReliable, 0); err != nil {
				t.Fatalf("send %d: %v", i, err)
			}
			m := recv(i)
			m.Release()
			m.Release()
		}
		if got := doubleReleases.Load() - before; got != first {
			t.Fatalf("%d double releases counted, want %d", got, first)
		}

		// Hold every message received now: none may share a Message or
		// a buffer with another.
		held := make([]*Message, 0, second)
		seenMsg := make(map[*Message]int)
		seenBuf := make(map[*byte]int)
		for i := range second {
			if err := alice.m.SendMessageToUser(bob.id, payload(first+i), SendReliable, 0); err != nil {
				t.Fatalf("send %d: %v", first+i, err)
			}
			m := recv(first + i)
			if j, ok := seenMsg[m]; ok {
				t.Fatalf("message %d is the same Message as message %d", first+i, j)
			}
			if j, ok := seenBuf[&m.Payload[0]]; ok {
				t.Fatalf("message %d shares its buffer with message %d", first+i, j)
			}
			seenMsg[m], seenBuf[&m.Payload[0]] = first+i, first+i
			held = append(held, m)
		}
		for i, m := range held {
			if !bytes.Equal(m.Payload, payload(first+i)) {
				t.Fatalf("held message %d changed: %x", first+i, m.Payload)
			}
			m.Release()
		}
		if got := doubleReleases.Load() - before; got != first {
			t.Fatalf("%d double releases counted after single releases, want %d", got, first)
		}
	})
}

// TestReleaseTwicePoolUnit is the same at the pool: Messages released
// twice come back from newMessage once each.
func TestReleaseTwicePoolUnit(t *testing.T) {
	const n = 100
	before := doubleReleases.Load()
	for range n {
		m := newMessage(&snp.Message{Data: []byte{1}})
		m.Release()
		m.Release()
	}
	if got := doubleReleases.Load() - before; got != n {
		t.Fatalf("%d double releases counted, want %d", got, n)
	}
	seen := make(map[*Message]bool)
	for i := range 4 * n {
		m := newMessage(&snp.Message{Data: []byte{2}})
		if seen[m] {
			t.Fatalf("newMessage %d returned a Message already live", i)
		}
		seen[m] = true
	}
	var nilMsg *Message
	nilMsg.Release()
}
