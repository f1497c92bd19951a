// Package snp is the reliability engine of one netmsg connection: the
// "steam networking protocol" (SNP) layer of GameNetworkingSockets (GNS),
// wire-compatible with it. It queues messages on lanes, applies Nagle,
// segments messages into packets (frames encoded by package wire), tracks
// the packets in flight, acks and nacks what it receives, retransmits lost
// reliable data, reassembles and delivers messages, paces sending and
// estimates RTT, quality and the available rate.
//
// The engine is a pure state machine (see Conn): it is given the time and an
// input and returns packet payloads and the time it next wants to run. The
// connection layer owns the packet header, the 16-bit wire packet number,
// encryption, keepalives and timeouts.
//
// # Congestion control
//
// When SendRateMin equals SendRateMax the rate is fixed, exactly as in GNS.
// Otherwise the engine runs a delay- and loss-based AIMD in the style of
// Google Congestion Control (the WebRTC controller, built for real-time
// media over UDP): once per smoothed RTT (at least 20 ms) it looks at the
// fraction of data packets reported lost and at the queuing delay (latest
// RTT minus the minimum RTT of the last 10 s). Loss is congestion only above
// the path's own random loss, the lowest loss fraction of the last 16
// samples of at least 200 packets (congestion loss stops once the rate is
// below the bottleneck; random loss does not), capped at 20%: loss above
// that baseline by more than the sample's noise cuts the rate by the
// excess, by half at most; queuing delay
// above max(25 ms, min RTT) cuts it by 15%; otherwise, if the application
// actually used the rate, it grows: doubling during start-up, then 8% per
// interval. We chose this over a BBR-style model because game traffic is
// mostly application-limited and bursty, which starves a delivery-rate model
// of the samples it needs; a loss/delay rule that learns the random loss of
// the path reacts to real congestion within an RTT or two, keeps queues,
// and so latency, short, never falls below the configured minimum, and is
// simple to reason about and test.
// Pacing is a token bucket with a one-packet burst allowance, as in GNS.
//
// # Memory
//
// Every queue is bounded: unsent bytes by SendBufferSize (ErrSendBufferFull),
// sent-but-unacked reliable bytes by 4 x SendBufferSize (new data waits), the
// packet record by 4096 packets, the receiver's packet gaps by 62, reliable
// stream holes per lane by 128/100, buffered unreliable segments by 20,
// received messages by RecvBufferSize/RecvBufferMessages, and reliable data
// held behind a hole by 2 MiB + 64 KiB (maxBufferedRel). Buffers are released
// when a connection goes idle.
package snp
