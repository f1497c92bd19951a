package snp

import "time"

// sendRateBurst is k_flSendRateBurstOverageAllowance
// (k_cbSteamNetworkingSocketsMaxEncryptedPayloadSend): the token bucket
// holds at most one full packet while idle.
const sendRateBurst = 1248

// pacer is a token bucket: tokens (bytes) accumulate at rate and each packet
// spends its size. A packet with data may go while tokens >= 0.
type pacer struct {
	rate   float64 // bytes/s
	tokens float64
	last   int64 // µs
}

func (p *pacer) init(cfg Config, t int64) {
	p.rate = float64(cfg.SendRateMin)
	p.tokens = sendRateBurst
	p.last = t
}

func (p *pacer) accumulate(t int64) {
	if t <= p.last {
		return
	}
	p.tokens += p.rate * float64(t-p.last) / 1e6
	// While busy, allow catching up after a late wake-up, but not much.
	if lim := max(4*sendRateBurst, p.rate/100); p.tokens > lim {
		p.tokens = lim
	}
	p.last = t
}

// capIdle limits the reserve when there is nothing to send, so an idle
// connection cannot burst later (GNS does the same).
func (p *pacer) capIdle() {
	if p.tokens > sendRateBurst {
		p.tokens = sendRateBurst
	}
}

func (p *pacer) spend(n int) { p.tokens -= float64(n) }

// readyAt returns when tokens reach zero.
func (p *pacer) readyAt() int64 {
	if p.tokens >= 0 {
		return p.last
	}
	return p.last + int64(-p.tokens/p.rate*1e6) + 1
}

// rttEstimator keeps the smoothed RTT (RFC 6298 gains) and the minimum RTT
// over the last minRTTWindow.
type rttEstimator struct {
	srtt, rttvar int64 // µs; srtt < 0: no sample yet
	latest       int64
	min, minAt   int64
}

const minRTTWindow = 10 * time.Second

func (r *rttEstimator) init() { r.srtt, r.min = -1, -1 }

func (r *rttEstimator) sample(rtt, t int64) {
	r.latest = rtt
	if r.srtt < 0 {
		r.srtt, r.rttvar = rtt, rtt/2
	} else {
		d := r.srtt - rtt
		if d < 0 {
			d = -d
		}
		r.rttvar += (d - r.rttvar) / 4
		r.srtt += (rtt - r.srtt) / 8
	}
	if r.min < 0 || rtt <= r.min || t-r.minAt > int64(minRTTWindow/time.Microsecond) {
		r.min, r.minAt = rtt, t
	}
}

// rto is GNS's retry timeout: 3 x smoothed RTT plus the receiver's maximum
// ack delay and some slack; one second before the first sample.
func (r *rttEstimator) rto() int64 {
	if r.srtt < 0 {
		return int64(rtoNoRTT / time.Microsecond)
	}
	return 3*r.srtt + int64(rtoSlack/time.Microsecond)
}

// congestion adapts the send rate between SendRateMin and SendRateMax from
// loss and queuing delay, once per interval (max(smoothed RTT, 20 ms)):
//
//   - loss above 10% of the packets whose fate became known: rate *= 1 - loss/2
//   - else queuing delay (latest RTT - min RTT) above max(25 ms, min RTT):
//     rate *= 0.85
//   - else, if the sender used at least half the rate: with loss below 2%
//     the rate doubles during start-up, then grows by 8%; with loss between
//     2% and 10% (random loss, not congestion) it grows by 4%.
//
// See the package documentation for why.
type congestion struct {
	start       int64
	acked, lost int
	sent        int
	slowStart   bool
	started     bool
}

const (
	ccMinInterval = 20 * time.Millisecond
	ccDelayTarget = 25 * time.Millisecond
	ccLossClean   = 0.02 // below: grow at full speed
	ccLossCut     = 0.10 // above: cut; between the two: grow gently
)

func (cc *congestion) onSend(n int) { cc.sent += n }
func (cc *congestion) onAck(int)    { cc.acked++ }
func (cc *congestion) onLoss()      { cc.lost++ }

func (cc *congestion) update(t int64, rtt *rttEstimator, p *pacer, cfg Config) {
	if cfg.SendRateMin == cfg.SendRateMax {
		p.rate = float64(cfg.SendRateMin)
		return
	}
	if !cc.started {
		cc.started, cc.slowStart, cc.start = true, true, t
		return
	}
	iv := max(rtt.srtt, int64(ccMinInterval/time.Microsecond))
	el := t - cc.start
	if el < iv || cc.acked+cc.lost == 0 {
		return
	}
	r := p.rate
	loss := float64(cc.lost) / float64(cc.acked+cc.lost)
	qd := rtt.latest - rtt.min
	appLimited := float64(cc.sent) < 0.5*r*float64(el)/1e6
	switch {
	case loss > ccLossCut:
		r *= 1 - loss/2
		cc.slowStart = false
	case rtt.min >= 0 && qd > max(int64(ccDelayTarget/time.Microsecond), rtt.min):
		r *= 0.85
		cc.slowStart = false
	case loss < ccLossClean && !appLimited:
		if cc.slowStart {
			r *= 2
		} else {
			r *= 1.08
		}
	case !appLimited:
		// Loss in the tolerated band (random loss, not congestion, as
		// long as the queuing delay stays low): keep probing, gently.
		r *= 1.04
		cc.slowStart = false
	}
	p.rate = min(max(r, float64(cfg.SendRateMin)), float64(cfg.SendRateMax))
	cc.start, cc.acked, cc.lost, cc.sent = t, 0, 0, 0
}
