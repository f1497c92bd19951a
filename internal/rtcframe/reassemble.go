package rtcframe

// Reliable puts back together the messages of an ordered, reliable data
// channel, whose fragments arrive in order and back to back. The zero
// value is ready. It is used by one goroutine at a time.
type Reliable struct {
	cur  []byte
	num  uint32
	next byte // the fragment index expected (0: a new message)
}

// Add takes one data frame. It returns the message once its last
// fragment arrived (a copy the caller owns, with the first fragment's
// header in d), or an error when the sequence is broken (a protocol
// violation: the session should end).
func (r *Reliable) Add(d Data) (msg []byte, err error) {
	if r.next == 0 {
		if d.Index != 0 {
			return nil, ErrOrder
		}
		if d.Count == 1 {
			return append(make([]byte, 0, len(d.Payload)), d.Payload...), nil
		}
		r.num = d.Num
		r.cur = append(make([]byte, 0, int(d.Count)*MaxFragment), d.Payload...)
		r.next = 1
		return nil, nil
	}
	if d.Num != r.num || d.Index != r.next {
		return nil, ErrOrder
	}
	r.cur = append(r.cur, d.Payload...)
	r.next++
	if r.next < d.Count {
		return nil, nil
	}
	msg, r.cur, r.next = r.cur, nil, 0
	return msg, nil
}

// Unreliable puts back together the messages of an unordered data
// channel without retransmissions: a message comes whole or not at all.
// At most MaxPartial messages wait for missing fragments; a newer one
// pushes out the oldest. The zero value is ready. It is used by one
// goroutine at a time.
type Unreliable struct {
	partial []*partial // oldest first
}

type partial struct {
	num   uint32
	count byte
	got   int
	size  int
	parts [][]byte
}

// Add takes one data frame and returns a message (the caller's) once all
// its fragments arrived. A fragment that contradicts what came before
// (another count, a duplicate) drops the message.
func (u *Unreliable) Add(d Data) []byte {
	if d.Count == 1 {
		return append(make([]byte, 0, len(d.Payload)), d.Payload...)
	}
	var p *partial
	at := -1
	for i, q := range u.partial {
		if q.num == d.Num {
			p, at = q, i
			break
		}
	}
	if p == nil {
		if len(u.partial) >= MaxPartial {
			copy(u.partial, u.partial[1:])
			u.partial = u.partial[:len(u.partial)-1]
		}
		p = &partial{num: d.Num, count: d.Count, parts: make([][]byte, d.Count)}
		u.partial = append(u.partial, p)
		at = len(u.partial) - 1
	}
	if p.count != d.Count || p.parts[d.Index] != nil {
		u.remove(at)
		return nil
	}
	p.parts[d.Index] = append(make([]byte, 0, len(d.Payload)+1), d.Payload...)
	p.got++
	p.size += len(d.Payload)
	if p.got < int(p.count) {
		return nil
	}
	u.remove(at)
	msg := make([]byte, 0, p.size)
	for _, b := range p.parts {
		msg = append(msg, b...)
	}
	return msg
}

// Pending is how many messages wait for fragments.
func (u *Unreliable) Pending() int { return len(u.partial) }

func (u *Unreliable) remove(i int) {
	copy(u.partial[i:], u.partial[i+1:])
	u.partial[len(u.partial)-1] = nil
	u.partial = u.partial[:len(u.partial)-1]
}
