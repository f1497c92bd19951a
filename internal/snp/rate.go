package snp

import (
	"math"
	"slices"
	"time"
)

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

// spendAck spends for a packet without data (acks, an answer to an ack
// request): from the tokens there are, never into debt. Acks are not paced
// (they go when due), and a receiver of a bulk transfer sends thousands of
// them a second while its own rate, with no data of its own to raise it,
// stays at SendRateMin: spent as data, they left it seconds in debt, and
// the first message it then had to send waited that long.
func (p *pacer) spendAck(n int) {
	if p.tokens > 0 {
		p.tokens = max(p.tokens-float64(n), 0)
	}
}

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

// pto is the tail-loss probe timeout for a peer that holds its acks for
// up to ackDelay: the smoothed RTT, four deviations (at least ptoVarMin)
// and ackDelay, at least ptoMin; one second before the first sample.
func (r *rttEstimator) pto(ackDelay int64) int64 {
	if r.srtt < 0 {
		return int64(rtoNoRTT / time.Microsecond)
	}
	return max(r.srtt+max(4*r.rttvar, int64(ptoVarMin/time.Microsecond))+ackDelay, int64(ptoMin/time.Microsecond))
}

// congestion adapts the send rate between SendRateMin and SendRateMax from
// loss and queuing delay, once per interval (max(smoothed RTT, 20 ms)).
// Loss counts as congestion only above the path's own random loss: the
// baseline is the lowest loss fraction of the last lossHistory intervals
// (at most ccBaseCap: more random loss than that is treated as congestion).
//
//   - loss above the baseline by more than the noise of the interval's
//     sample (3% plus 2.5 standard deviations at the larger of the two
//     fractions): rate *= 1 - excess, halved at most (ccMaxCut)
//   - else queuing delay (latest RTT - min RTT) above max(25 ms, min RTT):
//     rate *= 0.85
//   - else, if the sender used at least half the rate: the rate doubles
//     during start-up, then grows by 8%.
//
// See the package documentation for why.
type congestion struct {
	start       int64
	acked, lost int
	sent        int
	slowStart   bool
	started     bool

	lossHist [lossHistory]float64 // loss fraction of recent intervals (pooled)
	poolLost int                  // lost packets of the intervals not yet in lossHist
	poolN    int                  // their packets (acked + lost)
	lossN    int                  // how many of lossHist are filled
	lossNext int                  // the next slot to fill
}

const (
	ccMinInterval = 20 * time.Millisecond
	ccDelayTarget = 25 * time.Millisecond
	ccBaseCap     = 0.20 // the most loss taken as the path's own
	ccMargin      = 0.03 // excess loss always tolerated
	ccMinSample   = 200  // packets a sample of the baseline pools
	lossHistory   = 16
	// ccMaxCut bounds one interval's cut for loss: a burst lost in one
	// interval (a receiver's socket buffer overflowing for a moment)
	// halves the rate at most, where 1 - loss cut it to a fifth or less
	// and the 8% growth took seconds to come back.
	ccMaxCut = 0.5
)

func (cc *congestion) onSend(n int) { cc.sent += n }
func (cc *congestion) onAck(int)    { cc.acked++ }
func (cc *congestion) onLoss()      { cc.lost++ }

// baseLoss is the random loss of the path as far as recent intervals
// tell: the lowest of their loss fractions (congestion loss stops when the
// rate drops below the bottleneck's; random loss does not), capped at
// ccBaseCap; with no history yet, cur (capped) itself.
func (cc *congestion) baseLoss(cur float64) float64 {
	if cc.lossN == 0 {
		return min(cur, ccBaseCap)
	}
	return min(slices.Min(cc.lossHist[:cc.lossN]), ccBaseCap)
}

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
	n := cc.acked + cc.lost
	if el < iv || n == 0 {
		return
	}
	r := p.rate
	loss := float64(cc.lost) / float64(n)
	base := cc.baseLoss(loss)
	// The baseline's samples pool consecutive intervals up to
	// ccMinSample packets: the lowest of many small samples is far below
	// the loss they share (of 16 samples of 20 packets at 10% random
	// loss, one almost surely has none), and a baseline of 0 then takes
	// the path's random loss for congestion.
	cc.poolLost += cc.lost
	cc.poolN += n
	if cc.poolN >= ccMinSample {
		cc.lossHist[cc.lossNext] = float64(cc.poolLost) / float64(cc.poolN)
		cc.lossNext = (cc.lossNext + 1) % lossHistory
		cc.lossN = min(cc.lossN+1, lossHistory)
		cc.poolLost, cc.poolN = 0, 0
	}
	// The noise of a sample of n packets, taken at the larger of the two
	// fractions (a small sample's high loss is weak evidence).
	pv := min(max(base, loss, 0.05), 0.5)
	margin := ccMargin + 2.5*math.Sqrt(pv*(1-pv)/float64(n))
	excess := loss - base
	qd := rtt.latest - rtt.min
	appLimited := float64(cc.sent) < 0.5*r*float64(el)/1e6
	switch {
	case excess > margin:
		r *= 1 - min(excess, ccMaxCut)
		cc.slowStart = false
	case rtt.min >= 0 && qd > max(int64(ccDelayTarget/time.Microsecond), rtt.min):
		r *= 0.85
		cc.slowStart = false
	case !appLimited:
		// No congestion seen (random loss at the path's usual level
		// is not congestion while the queuing delay stays low).
		if cc.slowStart {
			r *= 2
		} else {
			r *= 1.08
		}
	}
	p.rate = min(max(r, float64(cfg.SendRateMin)), float64(cfg.SendRateMax))
	cc.start, cc.acked, cc.lost, cc.sent = t, 0, 0, 0
}
