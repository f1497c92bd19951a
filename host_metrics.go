package netmsg

import (
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// The Host's metrics (Host.Collector).
var (
	descHostConns = prometheus.NewDesc("netmsg_host_connections",
		"Connections by state (Messages sessions' connections included).", []string{"state"}, nil)
	descHostSessions = prometheus.NewDesc("netmsg_host_sessions",
		"Messages sessions by the state of their connection (failed: broken, waiting to be closed or restarted).", []string{"state"}, nil)
	descHostDatagrams = prometheus.NewDesc("netmsg_host_datagrams_total",
		"Datagrams received and sent on the Host's socket.", []string{"direction"}, nil)
	descHostBytes = prometheus.NewDesc("netmsg_host_bytes_total",
		"Bytes received and sent on the Host's socket.", []string{"direction"}, nil)
	descHostDropped = prometheus.NewDesc("netmsg_host_datagrams_dropped_total",
		"Datagrams dropped: malformed, for no connection, or refused.", nil, nil)
	descHostSignalsDropped = prometheus.NewDesc("netmsg_host_signals_dropped_total",
		"P2P signals not sent, or received malformed, forged or for no connection.", nil, nil)
	descHostRefused = prometheus.NewDesc("netmsg_host_connects_refused_total",
		"Incoming connections refused.", nil, nil)
	descHostPackets = prometheus.NewDesc("netmsg_host_conn_packets",
		"Data packets of the connections open now, summed: sent, received, lost (sent and never acked) and retransmitted; the sums fall when connections end.", []string{"kind"}, nil)
	descHostRTT = prometheus.NewDesc("netmsg_host_rtt_seconds",
		"Smoothed round-trip times of the connected connections now (one observation each per scrape).", nil, nil)
	descHostQueueTime = prometheus.NewDesc("netmsg_host_queue_time_seconds",
		"Estimated wait of a message queued now on each connected connection (one observation each per scrape).", nil, nil)
	descHostRoutes = prometheus.NewDesc("netmsg_host_p2p_routes",
		"P2P connections by route: direct (from the Host's socket to the peer, or the peer's relay), relayed (through the Host's TURN allocation), none (not found yet or lost).", []string{"route"}, nil)
)

// Buckets of the Host's histograms (netmsg's choice): 1 ms to about 2 s.
var (
	hostRTTBuckets   = prometheus.ExponentialBuckets(0.001, 2, 12)
	hostQueueBuckets = prometheus.ExponentialBuckets(0.001, 2, 12)
)

// hostStates are the states the Host's metrics report, and their labels.
var hostStates = []ConnectionState{StateNone, StateConnecting, StateFindingRoute, StateConnected,
	StateClosedByPeer, StateProblemDetectedLocally, StateFinWait, StateLinger, StateDead}

// stateLabel is a state's label value: its name in snake case.
func stateLabel(s ConnectionState) string { return strings.ReplaceAll(s.String(), " ", "_") }

// Collector returns a prometheus.Collector of the Host's figures, for a
// program that embeds the Host to register (prometheus.Registry.Register;
// prometheus.WrapRegistererWith adds labels, such as the Host's identity,
// when a program runs several). At each scrape it reads, under the Host's
// table lock and then each connection's lock (the Host's lock order),
// connections and Messages sessions by state (a connection's figures
// are read as RealTimeStatus reads them), the socket's datagrams and
// bytes in and out and what was dropped, the data packets of the open
// connections (sent, received, lost, retransmitted), histograms of the
// connected connections' RTT and queue time, and P2P routes direct or
// relayed. Safe for concurrent use; after Close it reports the last
// counters and no connection.
func (h *Host) Collector() prometheus.Collector { return (*hostCollector)(h) }

type hostCollector Host

func (c *hostCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descHostConns, descHostSessions, descHostDatagrams, descHostBytes, descHostDropped,
		descHostSignalsDropped, descHostRefused, descHostPackets, descHostRTT, descHostQueueTime, descHostRoutes} {
		ch <- d
	}
}

// hostFigures is what one scrape reads.
type hostFigures struct {
	conns, sessions              map[ConnectionState]int
	failed                       int
	sent, recv, lost, retransmit int64
	rtt, queue                   []float64
	direct, relayed, noRoute     int
}

func (c *hostCollector) Collect(ch chan<- prometheus.Metric) {
	h := (*Host)(c)
	st := h.Stats()
	f := hostFigures{conns: map[ConnectionState]int{}, sessions: map[ConnectionState]int{}}
	h.mu.Lock()
	now := h.cfg.Now()
	for _, hc := range h.conns {
		f.conns[hc.state]++
		lockConn(hc)
		s := hc.c.Stats(now)
		unlockConn(hc)
		f.sent += s.PacketsSent
		f.recv += s.PacketsRecv
		f.lost += s.PacketsLost
		f.retransmit += s.PacketsRetransmitted
		if hc.state == StateConnected {
			if s.Ping >= 0 {
				f.rtt = append(f.rtt, float64(s.Ping)/1000)
			}
			f.queue = append(f.queue, s.QueueTime.Seconds())
		}
		if p := hc.p2p; p != nil {
			switch sel := p.route.Selected(); {
			case !sel.Valid:
				f.noRoute++
			case sel.Relayed:
				f.relayed++
			default:
				f.direct++
			}
		}
	}
	for _, svc := range h.services {
		if r, ok := svc.(sessionReporter); ok {
			r.sessionStatesLocked(func(st ConnectionState, failed bool) {
				if failed {
					f.failed++
					return
				}
				f.sessions[st]++
			})
		}
	}
	h.mu.Unlock()

	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, s := range hostStates {
		gauge(descHostConns, float64(f.conns[s]), stateLabel(s))
		gauge(descHostSessions, float64(f.sessions[s]), stateLabel(s))
	}
	gauge(descHostSessions, float64(f.failed), "failed")
	counter(descHostDatagrams, st.DatagramsIn, "in")
	counter(descHostDatagrams, st.DatagramsOut, "out")
	counter(descHostBytes, st.BytesIn, "in")
	counter(descHostBytes, st.BytesOut, "out")
	counter(descHostDropped, st.Dropped)
	counter(descHostSignalsDropped, st.SignalsDropped)
	counter(descHostRefused, st.ConnectsRefused)
	gauge(descHostPackets, float64(f.sent), "sent")
	gauge(descHostPackets, float64(f.recv), "received")
	gauge(descHostPackets, float64(f.lost), "lost")
	gauge(descHostPackets, float64(f.retransmit), "retransmitted")
	ch <- constHistogram(descHostRTT, hostRTTBuckets, f.rtt)
	ch <- constHistogram(descHostQueueTime, hostQueueBuckets, f.queue)
	gauge(descHostRoutes, float64(f.direct), "direct")
	gauge(descHostRoutes, float64(f.relayed), "relayed")
	gauge(descHostRoutes, float64(f.noRoute), "none")
}

// constHistogram is the histogram of vs in buckets (upper bounds).
func constHistogram(d *prometheus.Desc, buckets, vs []float64) prometheus.Metric {
	counts := make(map[float64]uint64, len(buckets))
	var sum float64
	for _, v := range vs {
		sum += v
		for _, b := range buckets {
			if v <= b {
				counts[b]++
			}
		}
	}
	return prometheus.MustNewConstHistogram(d, uint64(len(vs)), sum, counts)
}

// sessionReporter is a service with sessions to count (the Messages
// layer): it calls count once per session, with its state or failed. mu is
// held.
type sessionReporter interface {
	sessionStatesLocked(count func(state ConnectionState, failed bool))
}
