package snp

import (
	"cmp"
	"slices"
)

// span is the half-open range [b, e) of stream positions or packet numbers.
type span struct{ b, e int64 }

// rangeSet is a sorted set of disjoint, non-adjacent spans. It is small in
// practice (bounded by its users), so a slice with linear scans from the end
// is faster than a tree. The zero value is empty.
type rangeSet struct{ s []span }

func (r *rangeSet) len() int    { return len(r.s) }
func (r *rangeSet) empty() bool { return len(r.s) == 0 }

// add inserts [b, e), merging with overlapping or adjacent spans.
func (r *rangeSet) add(b, e int64) {
	if b >= e {
		return
	}
	s := r.s
	n := len(s)
	// Fast path: append at the end.
	if n == 0 || s[n-1].e < b {
		r.s = append(s, span{b, e})
		return
	}
	if s[n-1].e == b {
		s[n-1].e = e
		return
	}
	// i: first span with e >= b (may merge).
	i := 0
	for i < n && s[i].e < b {
		i++
	}
	// j: first span with b > e (not merged).
	j := i
	for j < n && s[j].b <= e {
		j++
	}
	if i == j {
		s = append(s, span{})
		copy(s[i+1:], s[i:])
		s[i] = span{b, e}
		r.s = s
		return
	}
	nb, ne := min(b, s[i].b), max(e, s[j-1].e)
	s[i] = span{nb, ne}
	r.s = append(s[:i+1], s[j:]...)
}

// remove deletes [b, e) from the set.
func (r *rangeSet) remove(b, e int64) {
	if b >= e {
		return
	}
	s := r.s
	// The first span that ends past b (a receive lane's holes number
	// hundreds at high loss, and new data at the stream's end overlaps
	// none).
	i0, _ := slices.BinarySearchFunc(s, b, func(x span, b int64) int { return cmp.Compare(x.e, b+1) })
	for i := i0; i < len(s); i++ {
		x := s[i]
		if x.e <= b {
			continue
		}
		if x.b >= e {
			break
		}
		switch {
		case x.b >= b && x.e <= e: // covered: delete
			s = append(s[:i], s[i+1:]...)
			i--
		case x.b < b && x.e > e: // split
			s = append(s, span{})
			copy(s[i+2:], s[i+1:])
			s[i] = span{x.b, b}
			s[i+1] = span{e, x.e}
			r.s = s
			return
		case x.b < b: // trim tail
			s[i].e = b
		default: // trim head
			s[i].b = e
		}
	}
	r.s = s
}

// splits reports whether removing [b, e) would split a span in two.
func (r *rangeSet) splits(b, e int64) bool {
	for _, x := range r.s {
		if x.b < b && x.e > e {
			return true
		}
	}
	return false
}

// overlaps reports whether any of [b, e) is in the set.
func (r *rangeSet) overlaps(b, e int64) bool {
	for i := len(r.s) - 1; i >= 0; i-- {
		x := r.s[i]
		if x.e <= b {
			return false
		}
		if x.b < e {
			return true
		}
	}
	return false
}
