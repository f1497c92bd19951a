package snp

import (
	"errors"
	"time"
)

// ErrLanesShrink is returned by Reconfigure for a configuration with fewer
// lanes than the engine has: lanes may be added or changed, never removed
// (GNS's ConfigureConnectionLanes has the same rule).
var ErrLanesShrink = errors.New("snp: lanes cannot be removed")

// Reconfigure applies cfg's tunables to a running engine: NagleTime,
// SendBufferSize, SendRateMin and SendRateMax, the receive limits,
// MaxMessageSize, and Lanes (a lane's priority and weight change; lanes may
// be added; nil keeps the lanes). Zero fields take their defaults, as in
// New. MaxPayload, PeerVersion and the packet numbers keep the values the
// engine started with. Data already queued keeps its place.
func (c *Conn) Reconfigure(cfg Config) error {
	lanes := cfg.Lanes
	cfg.Lanes = []Lane{{}} // fill's default; the lanes are set below
	cfg.MaxPayload = c.cfg.MaxPayload
	cfg.PeerVersion = c.cfg.PeerVersion
	cfg.FirstPktNum, cfg.PeerFirstPktNum = c.cfg.FirstPktNum, c.cfg.PeerFirstPktNum
	if err := cfg.fill(); err != nil {
		return err
	}
	if lanes != nil {
		if len(lanes) < len(c.lanes) {
			return ErrLanesShrink
		}
		if len(lanes) > MaxLanes {
			return ErrBadLane
		}
	}
	rateChanged := cfg.SendRateMin != c.cfg.SendRateMin || cfg.SendRateMax != c.cfg.SendRateMax
	cfg.Lanes = c.cfg.Lanes
	c.cfg = cfg
	if rateChanged {
		c.pace.rate = min(max(c.pace.rate, float64(cfg.SendRateMin)), float64(cfg.SendRateMax))
		if cfg.SendRateMin == cfg.SendRateMax {
			c.pace.rate = float64(cfg.SendRateMin)
		}
	}
	if lanes != nil {
		c.configureLanes(lanes)
	}
	return nil
}

// configureLanes gives the lanes their priorities and weights, adding the
// new ones.
func (c *Conn) configureLanes(lanes []Lane) {
	for len(c.lanes) < len(lanes) {
		var l sendLane
		l.init(Lane{})
		c.lanes = append(c.lanes, l)
	}
	c.prioClasses = c.prioClasses[:0]
	for i, cfg := range lanes {
		l := &c.lanes[i]
		l.prio = cfg.Priority
		l.weight = uint64(cfg.Weight)
		if l.weight == 0 {
			l.weight = 1
		}
		c.addPrio(l.Priority())
	}
	c.cfg.Lanes = append([]Lane(nil), lanes...)
}

// Priority is the lane's priority.
func (l *sendLane) Priority() int { return l.prio }

// LaneStats is the state of one send lane (GNS's
// SteamNetConnectionRealTimeLaneStatus_t).
type LaneStats struct {
	PendingUnreliable int           // bytes queued, not sent
	PendingReliable   int           // bytes queued, not sent (retransmissions included)
	SentUnacked       int           // reliable bytes sent, not acked
	QueueTime         time.Duration // estimated wait of a message queued now on this lane
}

// LaneStats appends the state of each send lane to dst and returns it. A
// lane's queue time counts what is ahead of it: the data of lanes of a more
// urgent priority, and of lanes of its own priority in proportion to their
// weights.
func (c *Conn) LaneStats(dst []LaneStats) []LaneStats {
	rate := c.pace.rate
	for i := range c.lanes {
		l := &c.lanes[i]
		unrel := len(l.ubuf) - l.unsentUnrelOff()
		rel := int(l.endPos-l.sentPos) + int(l.retxBytes)
		ls := LaneStats{
			PendingUnreliable: unrel,
			PendingReliable:   rel,
			SentUnacked:       int(l.sentPos-l.ackedBelow) - int(l.retxBytes),
		}
		if ls.SentUnacked < 0 {
			ls.SentUnacked = 0
		}
		if rate > 0 {
			ahead := 0.0
			var sameWeight uint64
			for j := range c.lanes {
				o := &c.lanes[j]
				pend := float64(len(o.ubuf) - o.unsentUnrelOff() + int(o.endPos-o.sentPos) + int(o.retxBytes))
				switch {
				case o.prio < l.prio:
					ahead += pend
				case o.prio == l.prio && pend > 0 && j != i:
					sameWeight += o.weight
				}
			}
			own := float64(unrel + rel)
			// Lanes of equal priority share the rate by weight: this lane's
			// data drains at weight/(weights of the busy lanes) of it.
			share := float64(l.weight) / float64(l.weight+sameWeight)
			ls.QueueTime = time.Duration((ahead/rate + own/(rate*share)) * float64(time.Second))
		}
		dst = append(dst, ls)
	}
	return dst
}

// Config returns the engine's configuration (a copy).
func (c *Conn) Config() Config {
	cfg := c.cfg
	cfg.Lanes = append([]Lane(nil), c.cfg.Lanes...)
	return cfg
}
