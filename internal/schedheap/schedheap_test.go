package schedheap

import (
	"math/rand/v2"
	"sort"
	"testing"
	"time"
)

type item struct {
	at    time.Duration
	order uint64
}

func (i *item) SchedKey() (time.Duration, uint64) { return i.at, i.order }

// TestOrder: items come out by time, and in push order among equal times.
func TestOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Heap[*item]
	var all []*item
	for n := range 1000 {
		it := &item{at: time.Duration(r.IntN(50)), order: uint64(n)}
		all = append(all, it)
		h.Push(it)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].at < all[j].at })
	for i, want := range all {
		if got := h.Pop(); got != want {
			t.Fatalf("pop %d: got (%v,%d), want (%v,%d)", i, got.at, got.order, want.at, want.order)
		}
	}
	if len(h) != 0 {
		t.Fatalf("%d items left", len(h))
	}
}
