package netmsg

import (
	"crypto/ed25519"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/internal/conn"
)

// lookupHost is a Host with only its connection table, and a way to add
// and remove bare connections with chosen handles.
type lookupHost struct {
	t *testing.T
	h *Host
}

func newLookupHost(t *testing.T) *lookupHost {
	return &lookupHost{t: t, h: &Host{conns: map[ConnHandle]*hostConn{}, shards: 1}}
}

func (lh *lookupHost) add(id ConnHandle) *hostConn {
	lh.t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	c, err := conn.Dial(conn.Config{Identity: "str:lookup", Key: key}, time.Now(), uint32(id), netip.MustParseAddrPort("127.0.0.1:1"))
	if err != nil {
		lh.t.Fatal(err)
	}
	hc := &hostConn{handle: id, c: c, hidx: -1}
	lh.h.mu.Lock()
	lh.h.addConnLocked(id, hc)
	lh.h.mu.Unlock()
	return hc
}

func (lh *lookupHost) remove(hc *hostConn) {
	lh.h.mu.Lock()
	hc.mu.Lock()
	lh.h.removeLocked(hc)
	hc.mu.Unlock()
	lh.h.mu.Unlock()
}

// TestLookupConnCache pins the cache in front of the connection table:
// a lookup finds the connection in the table under that handle, never
// one removed since, also when a new connection takes a removed one's
// handle or shares its cache slot, and also while connections come and go
// on other goroutines.
func TestLookupConnCache(t *testing.T) {
	lh := newLookupHost(t)
	h := lh.h
	const a, b = ConnHandle(0x10001), ConnHandle(0x20001) // one cache slot
	if h.lookupConn(a) != nil {
		t.Fatal("found a connection in an empty table")
	}
	ha := lh.add(a)
	for range 2 { // the second from the cache
		if got := h.lookupConn(a); got != ha {
			t.Fatalf("lookup(a) = %p, want %p", got, ha)
		}
	}
	hb := lh.add(b)
	if got := h.lookupConn(b); got != hb {
		t.Fatalf("lookup(b) = %p, want %p", got, hb)
	}
	if got := h.lookupConn(a); got != ha {
		t.Fatalf("lookup(a) after b took the slot = %p, want %p", got, ha)
	}
	lh.remove(ha)
	if got := h.lookupConn(a); got != nil {
		t.Fatalf("lookup(a) after its removal = %p, want nil", got)
	}
	ha2 := lh.add(a) // the handle taken again
	if got := h.lookupConn(a); got != ha2 {
		t.Fatalf("lookup(a) after the handle was reused = %p, want the new %p", got, ha2)
	}
	// A cached entry removed without its slot cleared (as when a lookup
	// stored it just after removeLocked cleared the slot) is not taken.
	lh.remove(hb)
	h.recent.slot(b).Store(hb)
	if got := h.lookupConn(b); got != nil {
		t.Fatalf("lookup(b) from a stale cache entry = %p, want nil", got)
	}

	// Concurrent: lookups never return a connection after its removal
	// returned, nor one under another handle.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c := ConnHandle(0x1_0001 + (i+g)%8*0x1_0000)
				if hc := h.lookupConn(c); hc != nil && ConnHandle(hc.c.LocalID()) != c {
					t.Errorf("lookup(%#x) found connection %#x", c, hc.c.LocalID())
					return
				}
			}
		}()
	}
	for i := range 2000 {
		c := ConnHandle(0x1_0001 + i%8*0x1_0000)
		hc := h.lookupConn(c)
		if hc != nil {
			lh.remove(hc)
			if got := h.lookupConn(c); got != nil {
				t.Fatalf("round %d: lookup(%#x) after its removal = %p", i, c, got)
			}
		} else {
			hc = lh.add(c)
			if got := h.lookupConn(c); got != hc {
				t.Fatalf("round %d: lookup(%#x) = %p, want %p", i, c, got, hc)
			}
		}
	}
	close(stop)
	wg.Wait()
}
