package snp

import (
	"math/bits"
	"sync"
	"unsafe"
)

// slicePool recycles the backing arrays of the engine's queues that grow
// under a burst and are let go when they empty (the received-message
// ring, a send lane's reliable stream and unreliable queue, a receive
// lane's reassembly buffer). Letting go of them keeps an idle connection
// small; taking them back from here instead of the allocator keeps a busy
// one, whose queues empty and refill many times a second, from making
// garbage at the rate it moves data.
//
// The arrays are powers of two from 1<<poolMinShift elements; class k
// holds arrays of 1<<(poolMinShift+k) elements, kept as a pointer to
// their first element (so that putting one does not allocate).
type slicePool[T any] struct {
	cls [poolClasses]sync.Pool
	// plain is set for element types without pointers, whose arrays go
	// back to the pool as they are.
	plain bool
}

const (
	poolMinShift = 6  // 64 elements
	poolClasses  = 16 // up to 64<<15 = 2M elements
)

func poolClass(n int) int {
	if n <= 1<<poolMinShift {
		return 0
	}
	return bits.Len(uint(n-1)) - poolMinShift
}

// get returns an empty slice with a capacity of at least n: a power of
// two of at least 64, pooled when within the classes.
func (p *slicePool[T]) get(n int) []T {
	k := poolClass(n)
	size := 1 << (poolMinShift + k)
	if k >= poolClasses {
		// Beyond the pool, still a power of two: a caller that grows
		// an array one step at a time (a receive lane's reassembly
		// buffer past 2 MiB) must not copy it at every step.
		return make([]T, 0, size)
	}
	if v := p.cls[k].Get(); v != nil {
		return unsafe.Slice(v.(*T), size)[:0]
	}
	return make([]T, 0, size)
}

// put gives s's array back (cleared, unless plain) if it is of a pooled
// size. Nothing
// may use s or any slice of its array afterwards.
func (p *slicePool[T]) put(s []T) {
	c := cap(s)
	if c < 1<<poolMinShift || c&(c-1) != 0 {
		return
	}
	k := poolClass(c)
	if k >= poolClasses {
		return
	}
	s = s[:c]
	if !p.plain {
		clear(s)
	}
	p.cls[k].Put(&s[0])
}

// grow returns s with room for need more elements: s itself if it has
// it, else a pooled array of at least twice its capacity holding a copy
// of s, whose own array goes back to the pool.
func (p *slicePool[T]) grow(s []T, need int) []T {
	if len(s)+need <= cap(s) {
		return s
	}
	ns := append(p.get(max(len(s)+need, 2*cap(s))), s...)
	p.put(s)
	return ns
}

var (
	messagePool slicePool[Message]                 // msgQueue rings
	bytePool    = slicePool[byte]{plain: true}     // stream and queue buffers
	unrelPool   = slicePool[unrelMsg]{plain: true} // unreliable send queues
)
