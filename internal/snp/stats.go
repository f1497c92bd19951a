package snp

import "time"

type counters struct {
	pktsSent, pktsRecv, bytesSent, bytesRecv     int64
	pktsDup, pktsDiscarded, pktsBad              int64
	pktsAcked, pktsLost, pktsRetransmitted       int64
	bytesRetransmitted, acksSent                 int64
	tailProbes, tailCopies                       int64
	msgsSentRel, msgsSentUnrel                   int64
	msgsRecvRel, msgsRecvUnrel                   int64
	unreliableDroppedSend, unreliableDroppedRecv int64
}

// meter turns counters into per-second rates over windows of about a second.
type meter struct {
	t0                                 int64
	sent, recv, bSent, bRecv, maxRecv  int64
	acked, lost                        int64
	outPkts, outBytes, inPkts, inBytes float32
	qualLocal, qualRemote              float32
	started                            bool
}

// Stats is a snapshot of a connection's engine. The first group maps onto
// GNS's SteamNetConnectionRealTimeStatus_t; rates and qualities are measured
// over windows of about one second (-1: not known yet).
type Stats struct {
	Ping                    int     // smoothed RTT in ms (m_nPing), -1 before a sample
	ConnectionQualityLocal  float32 // fraction of the peer's packets we received
	ConnectionQualityRemote float32 // fraction of our packets the peer acked
	OutPacketsPerSec        float32
	OutBytesPerSec          float32
	InPacketsPerSec         float32
	InBytesPerSec           float32
	SendRateBytesPerSecond  int           // the current send rate (pacing / congestion estimate)
	PendingUnreliable       int           // bytes queued, not sent
	PendingReliable         int           // bytes queued, not sent (retransmissions included)
	SentUnackedReliable     int           // bytes sent, not acked
	QueueTime               time.Duration // estimated wait of a message queued now

	SmoothedRTT, MinRTT time.Duration // -1 before a sample

	PacketsSent, PacketsRecv, BytesSent, BytesRecv int64
	PacketsDuplicate                               int64 // dropped as duplicate or too old
	PacketsDiscarded                               int64 // dropped unacked: beyond receive limits
	PacketsBad                                     int64 // protocol violations
	PacketsAcked, PacketsLost                      int64 // data packets whose fate is known
	PacketsRetransmitted, BytesRetransmitted       int64
	TailProbes                                     int64 // tail-loss probes sent
	TailCopies                                     int64 // small tails sent twice on a lossy path (Conn.copyTail)
	AcksSent                                       int64
	MessagesSentReliable, MessagesSentUnreliable   int64
	MessagesRecvReliable, MessagesRecvUnreliable   int64
	UnreliableDroppedSend                          int64 // NoDelay messages dropped
	UnreliableDroppedRecv                          int64 // partial or overflowing messages dropped

	// Sizes of the bounded records (for tests and memory checks).
	InFlightPackets      int // sender's packet record
	PacketGaps           int // receiver's packet gaps (<= 62)
	ReliableStreamGaps   int // most holes of any receive lane (<= 30)
	BufferedUnrelSegs    int // (<= 20)
	ReceiveQueue         int // messages waiting for Receive
	ReceiveBufferedBytes int // reliable bytes buffered out of order or partial
}

// Stats returns a snapshot at now. It advances the rate windows.
func (c *Conn) Stats(now time.Time) Stats {
	t := c.us(now)
	m := &c.m
	if !m.started {
		m.started, m.t0 = true, t
		m.qualLocal, m.qualRemote = -1, -1
		m.maxRecv = c.rec.max
	} else if el := t - m.t0; el >= int64(time.Second/time.Microsecond) {
		s := float32(el) / 1e6
		m.outPkts = float32(c.st.pktsSent-m.sent) / s
		m.outBytes = float32(c.st.bytesSent-m.bSent) / s
		m.inPkts = float32(c.st.pktsRecv-m.recv) / s
		m.inBytes = float32(c.st.bytesRecv-m.bRecv) / s
		if span := c.rec.max - m.maxRecv; span > 0 {
			m.qualLocal = min(1, float32(c.st.pktsRecv-m.recv)/float32(span))
		}
		if n := c.st.pktsAcked - m.acked + c.st.pktsLost - m.lost; n > 0 {
			m.qualRemote = float32(c.st.pktsAcked-m.acked) / float32(n)
		}
		m.t0, m.sent, m.bSent, m.recv, m.bRecv = t, c.st.pktsSent, c.st.bytesSent, c.st.pktsRecv, c.st.bytesRecv
		m.maxRecv, m.acked, m.lost = c.rec.max, c.st.pktsAcked, c.st.pktsLost
	}
	s := Stats{
		Ping:                    -1,
		ConnectionQualityLocal:  m.qualLocal,
		ConnectionQualityRemote: m.qualRemote,
		OutPacketsPerSec:        m.outPkts,
		OutBytesPerSec:          m.outBytes,
		InPacketsPerSec:         m.inPkts,
		InBytesPerSec:           m.inBytes,
		SendRateBytesPerSecond:  int(c.pace.rate),
		QueueTime:               time.Duration(c.queueTime(0)) * time.Microsecond,
		SmoothedRTT:             -1,
		MinRTT:                  -1,
		PacketsSent:             c.st.pktsSent,
		PacketsRecv:             c.st.pktsRecv,
		BytesSent:               c.st.bytesSent,
		BytesRecv:               c.st.bytesRecv,
		PacketsDuplicate:        c.st.pktsDup,
		PacketsDiscarded:        c.st.pktsDiscarded,
		PacketsBad:              c.st.pktsBad,
		PacketsAcked:            c.st.pktsAcked,
		PacketsLost:             c.st.pktsLost,
		PacketsRetransmitted:    c.st.pktsRetransmitted,
		BytesRetransmitted:      c.st.bytesRetransmitted,
		TailProbes:              c.st.tailProbes,
		TailCopies:              c.st.tailCopies,
		AcksSent:                c.st.acksSent,
		MessagesSentReliable:    c.st.msgsSentRel,
		MessagesSentUnreliable:  c.st.msgsSentUnrel,
		MessagesRecvReliable:    c.st.msgsRecvRel,
		MessagesRecvUnreliable:  c.st.msgsRecvUnrel,
		UnreliableDroppedSend:   c.st.unreliableDroppedSend,
		UnreliableDroppedRecv:   c.st.unreliableDroppedRecv,
		InFlightPackets:         c.inflight.n,
		PacketGaps:              len(c.rec.gaps),
		BufferedUnrelSegs:       len(c.useg),
		ReceiveQueue:            c.inbox.n,
		ReceiveBufferedBytes:    c.bufferedRel,
	}
	if c.rtt.srtt >= 0 {
		s.Ping = int(c.rtt.srtt / 1000)
		s.SmoothedRTT = time.Duration(c.rtt.srtt) * time.Microsecond
		s.MinRTT = time.Duration(c.rtt.min) * time.Microsecond
	}
	for i := range c.lanes {
		l := &c.lanes[i]
		s.PendingReliable += int(l.endPos-l.sentPos) + int(l.retxBytes)
		s.PendingUnreliable += len(l.ubuf) - l.unsentUnrelOff()
		s.SentUnackedReliable += int(l.sentUnacked())
	}
	for i := range c.rlanes {
		s.ReliableStreamGaps = max(s.ReliableStreamGaps, c.rlanes[i].gaps.len())
	}
	return s
}

// PeerPktNumMax is the highest packet number received from the peer.
func (c *Conn) PeerPktNumMax() int64 { return c.rec.max }
