package netmsg

import "time"

// wakeHeap orders the Host's connections by their next wake-up, so the
// timer goroutine finds the due ones in O(log n) instead of scanning every
// connection on each wake (10,000 idle sessions cost nothing until one of
// them is due). Each hostConn knows its index (hidx, -1 when absent), so a
// changed wake-up moves it in place. Guarded by the Host's lock.
type wakeHeap []*hostConn

func (w wakeHeap) less(i, j int) bool { return w[i].wakeNs < w[j].wakeNs }

func (w wakeHeap) swap(i, j int) {
	w[i], w[j] = w[j], w[i]
	w[i].hidx, w[j].hidx = i, j
}

func (w wakeHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !w.less(i, p) {
			return
		}
		w.swap(i, p)
		i = p
	}
}

func (w wakeHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(w) {
			return
		}
		m := l
		if r := l + 1; r < len(w) && w.less(r, l) {
			m = r
		}
		if !w.less(m, i) {
			return
		}
		w.swap(i, m)
		i = m
	}
}

// set gives hc the wake-up t (zero: none) and places it accordingly.
func (w *wakeHeap) set(hc *hostConn, t time.Time) {
	if t.Equal(hc.wake) && (t.IsZero() == (hc.hidx < 0)) {
		return
	}
	hc.wake = t
	hc.wakeNs = t.UnixNano() // the heap compares these: cheaper than Time.Before
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
		*w = append(*w, hc)
		w.up(hc.hidx)
	default:
		w.up(hc.hidx)
		w.down(hc.hidx)
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
	if i != last {
		s.swap(i, last)
	}
	s[last] = nil
	*w = s[:last]
	hc.hidx = -1
	hc.wakeAt.Store(0)
	if i != last {
		w.up(i)
		w.down(i)
	}
}

// due returns the connection with the earliest wake-up if it is at or
// before now.
func (w wakeHeap) due(now time.Time) *hostConn {
	if len(w) == 0 || w[0].wake.After(now) {
		return nil
	}
	return w[0]
}

// next returns the earliest wake-up (zero: none).
func (w wakeHeap) next() time.Time {
	if len(w) == 0 {
		return time.Time{}
	}
	return w[0].wake
}
