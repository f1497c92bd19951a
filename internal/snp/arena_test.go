package snp

import (
	"testing"
	"time"
)

// TestArenaSlotShared: an engine that drains after every delivery lets go
// of its own arena each time, so with its own arena every message left
// unreleased pins an arena of its own; with a goroutine's ArenaSlot the
// messages of many deliveries (and of several engines run in turn) fill
// one arena after the other, so an unreleased message costs about its
// size.
func TestArenaSlotShared(t *testing.T) {
	now := time.Unix(1, 0)
	a, err := New(Config{}, now)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{}, now)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 64)
	const n = 1000
	arenas := func(slot *ArenaSlot) int {
		seen := map[*arena]bool{}
		buf := make([]Message, 1)
		for i := range n {
			c := a
			if i%2 == 1 {
				c = b
			}
			c.UseArena(slot)
			c.deliver(0, int64(i), true, data)
			c.UseArena(nil)
			if c.Receive(buf) != 1 {
				t.Fatal("no message")
			}
			if buf[0].ar == nil {
				t.Fatal("a 64-byte message not in an arena")
			}
			seen[buf[0].ar] = true
			// never released
		}
		return len(seen)
	}
	if got := arenas(nil); got != n {
		t.Errorf("own arenas: %d arenas for %d messages drained one by one, want %d (one each)", got, n, n)
	}
	var slot ArenaSlot
	want := (n*len(data) + arenaSize - 1) / arenaSize
	if got := arenas(&slot); got > want {
		t.Errorf("slot: %d arenas for %d messages of %d bytes, want at most %d", got, n, len(data), want)
	}
	slot.Close()
	if slot.a != nil {
		t.Error("Close kept the arena")
	}
}

// TestArenaReleasedReturns: an arena filled through a slot goes back to
// the pool once the slot moved on and every message in it was released:
// its reference count reaches zero.
func TestArenaReleasedReturns(t *testing.T) {
	c, err := New(Config{}, time.Unix(1, 0))
	if err != nil {
		t.Fatal(err)
	}
	var slot ArenaSlot
	c.UseArena(&slot)
	data := make([]byte, 1200) // a full datagram's message fits an arena
	var ms []Message
	buf := make([]Message, 1)
	for i := range arenaSize/len(data) + 1 {
		c.deliver(0, int64(i), true, data)
		c.Receive(buf)
		ms = append(ms, buf[0])
	}
	first := ms[0].ar
	if first == nil || first == slot.a {
		t.Fatalf("the slot did not move to a new arena after %d messages of %d bytes", len(ms), len(data))
	}
	for i := range ms {
		if ms[i].ar == first {
			ms[i].Release()
		}
	}
	if r := first.refs.Load(); r != 0 {
		t.Errorf("first arena has %d references after its messages were released, want 0", r)
	}
}
