package netsim

import (
	"fmt"
	"time"
)

// Tuning constants of the simulator (ours, not from any protocol).
const (
	// DefaultRecvQueue is the receive queue length, in datagrams, of an
	// endpoint when Config.RecvQueue is zero. It plays the part of a socket
	// receive buffer; it is larger than Linux's default (about 200 KiB, ~160
	// full-size datagrams) so that a benchmark reader that falls briefly
	// behind does not lose datagrams.
	DefaultRecvQueue = 4096

	// DefaultReorderDelay is how long a datagram picked for reordering is
	// held back when LinkConfig.ReorderDelay is zero.
	DefaultReorderDelay = 10 * time.Millisecond

	// DefaultQueueBytes is the bottleneck queue of a rate-limited link when
	// LinkConfig.QueueBytes is zero: 64 KiB, the order of a small router's
	// per-port buffer.
	DefaultQueueBytes = 64 << 10

	// maxUDPPayload is the largest payload an IPv4 UDP datagram can carry
	// (65535 - 20 byte IP header - 8 byte UDP header). Larger datagrams are
	// dropped as if by MTU even when LinkConfig.MTU is zero.
	maxUDPPayload = 65507
)

// Config configures a Network. The zero value is valid: seed 0, perfect
// links (no delay, no loss, no limit) and DefaultRecvQueue.
//
// There is no clock to inject: the network reads the time package, so the
// fake clock of a testing/synctest bubble is the way to control time.
type Config struct {
	// Seed seeds every random choice of the network (loss, jitter,
	// reordering, duplication). Each direction between two addresses has
	// its own generator derived from Seed and the two addresses, so what
	// happens on one direction depends only on Seed, the link conditions
	// and the sequence of datagrams written on that direction, not on how
	// the writers of other directions are interleaved with it.
	Seed uint64

	// Link is the default for every direction that has no conditions of
	// its own (see Network.SetLink). The zero value is a perfect link.
	Link LinkConfig

	// RecvQueue is the length, in datagrams, of each endpoint's receive
	// queue; a datagram that arrives while it is full is dropped and
	// counted in Stats.DroppedRecvQueue. Zero means DefaultRecvQueue.
	RecvQueue int
}

// LinkConfig is the conditions of one direction of a link: from one address
// to another. The zero value is a perfect link: no delay, no loss, no rate
// limit, no MTU below the UDP maximum.
//
// For every datagram written, the link applies, in this order: the MTU
// check, the Drop filter, random loss, the rate limit and its queue, then
// delay, jitter, reordering and duplication. Each step that drops the
// datagram counts it in its own Stats field; later steps never see it.
//
// A LinkConfig is copied when it is set; changing it later (Network.SetLink,
// Network.SetDefault) affects datagrams written after the change, never ones
// already in flight.
type LinkConfig struct {
	// Delay is the one-way latency added to every datagram.
	Delay time.Duration

	// Jitter adds a uniformly random extra delay in [0, Jitter] to each
	// datagram, so latency lies in [Delay, Delay+Jitter]. Datagrams may
	// overtake each other when Jitter exceeds their spacing (as on a real
	// path); such overtaking is not counted as Reordered.
	Jitter time.Duration

	// LossPercent is the probability, in percent (0 to 100), that a
	// datagram is lost.
	LossPercent float64

	// Drop, if not nil, is asked about every datagram that passed the MTU
	// check; if it returns true the datagram is dropped and counted in
	// DroppedFilter. seq is the datagram's index on this direction: 0 for
	// the first datagram ever written from this source to this
	// destination, counting every datagram written (including the ones
	// dropped by MTU or by this filter). b is the datagram; Drop must not
	// keep it or modify it. Drop is called with the network's lock held: it
	// must be quick and must not call methods of the Network or its
	// endpoints. See DropSeqs for the common case.
	Drop func(seq uint64, b []byte) bool

	// ReorderPercent is the probability, in percent, that a datagram is
	// held back by an extra ReorderDelay, so that datagrams written after
	// it may arrive first. Such datagrams are counted in Reordered.
	ReorderPercent float64

	// ReorderDelay is the extra delay of a reordered datagram. Zero means
	// DefaultReorderDelay.
	ReorderDelay time.Duration

	// DuplicatePercent is the probability, in percent, that a datagram is
	// delivered twice. The copy gets its own jitter and is counted in
	// Duplicated (and in Delivered when it arrives).
	DuplicatePercent float64

	// Rate, if positive, is the bandwidth of the link in bytes per second
	// (datagram payload bytes; no header overhead is added). Datagrams are
	// serialized one after another at this rate through a FIFO queue
	// before Delay and Jitter apply.
	Rate int64

	// QueueBytes bounds the rate limiter's queue: a datagram that would make
	// the bytes waiting or being serialized exceed QueueBytes is dropped
	// (tail drop) and counted in DroppedQueue. Zero means
	// DefaultQueueBytes. It has no effect without Rate.
	QueueBytes int

	// MTU, if positive, is the largest datagram payload the link carries;
	// larger datagrams are dropped and counted in DroppedMTU (as IP does
	// with the don't-fragment bit). Zero means no limit below the UDP
	// maximum of 65507 bytes.
	MTU int
}

// validate returns an error wrapping ErrInvalidConfig if c is not a valid
// LinkConfig.
func (c *LinkConfig) validate() error {
	bad := func(what string, v any) error {
		return fmt.Errorf("%w: LinkConfig.%s %v", ErrInvalidConfig, what, v)
	}
	switch {
	case c.Delay < 0:
		return bad("Delay", c.Delay)
	case c.Jitter < 0:
		return bad("Jitter", c.Jitter)
	case c.ReorderDelay < 0:
		return bad("ReorderDelay", c.ReorderDelay)
	case !(c.LossPercent >= 0 && c.LossPercent <= 100):
		return bad("LossPercent", c.LossPercent)
	case !(c.ReorderPercent >= 0 && c.ReorderPercent <= 100):
		return bad("ReorderPercent", c.ReorderPercent)
	case !(c.DuplicatePercent >= 0 && c.DuplicatePercent <= 100):
		return bad("DuplicatePercent", c.DuplicatePercent)
	case c.Rate < 0:
		return bad("Rate", c.Rate)
	case c.QueueBytes < 0:
		return bad("QueueBytes", c.QueueBytes)
	case c.MTU < 0:
		return bad("MTU", c.MTU)
	}
	return nil
}

// DropSeqs returns a LinkConfig.Drop filter that drops exactly the datagrams
// with the given sequence numbers on a direction (0 is the first datagram
// written). The returned function is safe for concurrent use.
func DropSeqs(seqs ...uint64) func(seq uint64, b []byte) bool {
	set := make(map[uint64]struct{}, len(seqs))
	for _, s := range seqs {
		set[s] = struct{}{}
	}
	return func(seq uint64, _ []byte) bool {
		_, ok := set[seq]
		return ok
	}
}

// Stats counts what happened to the datagrams of a direction, of an
// endpoint's traffic, or of the whole network. All counts are of datagrams
// unless the name says bytes.
//
// Every datagram written is counted in Sent; each copy made by duplication
// in Duplicated. Each datagram and copy then ends up in exactly one of
// Delivered or a Dropped field, or is still in flight (see InFlight).
type Stats struct {
	Sent           uint64 // datagrams written
	SentBytes      uint64 // payload bytes written
	Delivered      uint64 // datagrams (and copies) put into a receive queue
	DeliveredBytes uint64 // payload bytes delivered

	Duplicated uint64 // extra copies made by DuplicatePercent
	Reordered  uint64 // datagrams held back by ReorderPercent

	DroppedMTU         uint64 // larger than the link's MTU
	DroppedFilter      uint64 // dropped by LinkConfig.Drop
	DroppedLoss        uint64 // lost at random (LossPercent)
	DroppedQueue       uint64 // rate limiter queue full (tail drop)
	DroppedRecvQueue   uint64 // destination's receive queue full
	DroppedUnreachable uint64 // no open endpoint at the destination on arrival
	DroppedClosed      uint64 // in flight when the network was closed
	DroppedNAT         uint64 // refused by a NAT (no mapping, or its filter)
}

// Dropped returns the total of the Dropped fields.
func (s Stats) Dropped() uint64 {
	return s.DroppedMTU + s.DroppedFilter + s.DroppedLoss + s.DroppedQueue +
		s.DroppedRecvQueue + s.DroppedUnreachable + s.DroppedClosed + s.DroppedNAT
}

// InFlight returns the number of datagrams (and copies) neither delivered
// nor dropped yet.
func (s Stats) InFlight() uint64 {
	return s.Sent + s.Duplicated - s.Delivered - s.Dropped()
}

// add adds o to s, field by field.
func (s *Stats) add(o *Stats) {
	s.Sent += o.Sent
	s.SentBytes += o.SentBytes
	s.Delivered += o.Delivered
	s.DeliveredBytes += o.DeliveredBytes
	s.Duplicated += o.Duplicated
	s.Reordered += o.Reordered
	s.DroppedMTU += o.DroppedMTU
	s.DroppedFilter += o.DroppedFilter
	s.DroppedLoss += o.DroppedLoss
	s.DroppedQueue += o.DroppedQueue
	s.DroppedRecvQueue += o.DroppedRecvQueue
	s.DroppedUnreachable += o.DroppedUnreachable
	s.DroppedClosed += o.DroppedClosed
	s.DroppedNAT += o.DroppedNAT
}
