// Package schedheap is the scheduling queue shared by the in-memory network
// (netsim) and the fake-network wrapper (internal/fakenet): a binary
// min-heap of items ordered by a due time and a tie-breaking sequence
// number, written out rather than built on container/heap to avoid boxing
// in the hot path.
package schedheap

import "time"

// Item is what a Heap orders: by due time, then by order (the sequence in
// which items were scheduled, so equal times keep their order).
type Item interface {
	SchedKey() (at time.Duration, order uint64)
}

// Heap is a min-heap of items. The zero value is empty and ready. It is not
// safe for concurrent use.
type Heap[T Item] []T

func (h Heap[T]) less(i, j int) bool {
	ai, oi := h[i].SchedKey()
	aj, oj := h[j].SchedKey()
	if ai != aj {
		return ai < aj
	}
	return oi < oj
}

// Push adds x.
func (h *Heap[T]) Push(x T) {
	*h = append(*h, x)
	s := *h
	i := len(s) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !s.less(i, p) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

// Pop removes and returns the earliest item. The heap must not be empty.
func (h *Heap[T]) Pop() T {
	s := *h
	x := s[0]
	last := len(s) - 1
	s[0] = s[last]
	var zero T
	s[last] = zero
	s = s[:last]
	*h = s
	i := 0
	for {
		l := 2*i + 1
		if l >= len(s) {
			break
		}
		m := l
		if r := l + 1; r < len(s) && s.less(r, l) {
			m = r
		}
		if !s.less(m, i) {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	return x
}
