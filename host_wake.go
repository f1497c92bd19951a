package netmsg

import "time"

// wakeHeap orders the Host's connections by their next wake-up, so the
// timer goroutine finds the due ones in O(log n) instead of scanning every
// connection on each wake (10,000 idle sessions cost nothing until one of
// them is due). Each hostConn knows its index (hidx, -1 when absent), so a
// changed wake-up moves it in place. Guarded by the Host's wakeMu.
//
// It is a 4-ary heap whose entries carry their key: with 10,000 sessions
// the connections are cold in the cache, and a binary heap that compared
// through the pointers missed the cache at each of its 14 levels (the
// heap was 10% of W7's server CPU). A node's four children share a cache
// line or two, and the depth is halved; only a moved entry's hidx is
// written through its pointer.
type wakeHeap []wakeEnt

type wakeEnt struct {
	ns int64 // the connection's wakeNs
	hc *hostConn
}

const wakeArity = 4

func (w wakeHeap) place(i int, e wakeEnt) {
	w[i] = e
	e.hc.hidx = i
}

func (w wakeHeap) up(i int) {
	e := w[i]
	for i > 0 {
		p := (i - 1) / wakeArity
		if w[p].ns <= e.ns {
			break
		}
		w.place(i, w[p])
		i = p
	}
	w.place(i, e)
}

func (w wakeHeap) down(i int) {
	e := w[i]
	n := len(w)
	for {
		c := wakeArity*i + 1
		if c >= n {
			break
		}
		m := c
		for j := c + 1; j < min(c+wakeArity, n); j++ {
			if w[j].ns < w[m].ns {
				m = j
			}
		}
		if w[m].ns >= e.ns {
			break
		}
		w.place(i, w[m])
		i = m
	}
	w.place(i, e)
}

// set gives hc the wake-up t (zero: none) and places it accordingly.
func (w *wakeHeap) set(hc *hostConn, t time.Time) {
	if t.Equal(hc.wake) && (t.IsZero() == (hc.hidx < 0)) {
		return
	}
	hc.wake = t
	hc.wakeNs = t.UnixNano()
	if t.IsZero() {
		hc.wakeAt.Store(0)
	} else {
		hc.wakeAt.Store(hc.wakeNs)
	}
	switch {
	case t.IsZero():
		w.remove(hc)
	case hc.hidx < 0:
		hc.hidx = len(*w)
		*w = append(*w, wakeEnt{hc.wakeNs, hc})
		w.up(hc.hidx)
	default:
		i := hc.hidx
		old := (*w)[i].ns
		(*w)[i].ns = hc.wakeNs
		if hc.wakeNs < old {
			w.up(i)
		} else {
			w.down(i)
		}
	}
}

// remove takes hc out of the heap if it is in it.
func (w *wakeHeap) remove(hc *hostConn) {
	i := hc.hidx
	if i < 0 {
		return
	}
	s := *w
	last := len(s) - 1
	moved := s[last]
	s[last] = wakeEnt{}
	*w = s[:last]
	hc.hidx = -1
	hc.wakeAt.Store(0)
	if i != last {
		s[i] = moved
		moved.hc.hidx = i
		if i > 0 && moved.ns < s[(i-1)/wakeArity].ns {
			w.up(i)
		} else {
			w.down(i)
		}
	}
}

// due returns the connection with the earliest wake-up if it is at or
// before now.
func (w wakeHeap) due(now time.Time) *hostConn {
	if len(w) == 0 || w[0].ns > now.UnixNano() {
		return nil
	}
	return w[0].hc
}

// next returns the earliest wake-up (zero: none).
func (w wakeHeap) next() time.Time {
	if len(w) == 0 {
		return time.Time{}
	}
	return w[0].hc.wake
}
