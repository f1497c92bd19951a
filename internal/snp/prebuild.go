package snp

import "time"

// AckSent takes every packet sent so far as acknowledged, as an ack from
// the peer naming them all would (without an RTT sample). It is for load
// generators that make a connection's datagrams ahead of time (the
// connection layer's Prebuild); a live connection never needs it.
func (c *Conn) AckSent(now time.Time) {
	latest := c.nextPktNum - 1
	if latest < c.cfg.FirstPktNum {
		return
	}
	c.ackRange(c.minWait, latest+1)
	if latest > c.minWait {
		c.minWait = latest
		c.probes = 0
	}
	c.trimInflight()
	c.cc.update(c.us(now), &c.rtt, &c.pace, c.cfg)
}
