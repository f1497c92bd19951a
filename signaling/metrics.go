package signaling

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds what ServerStats cannot: the forward-latency histogram.
type metrics struct {
	latency prometheus.Histogram
}

func newMetrics() metrics {
	return metrics{latency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "netmsg_signal_forward_latency_seconds",
		Help: "Time from a signal's arrival to its write to the recipient's connection.",
		// 25 µs to 0.8 s.
		Buckets: prometheus.ExponentialBuckets(25e-6, 2, 16),
	})}
}

var (
	descClients = prometheus.NewDesc("netmsg_signal_clients",
		"Connected clients by protocol (registering: not registered yet).", []string{"protocol"}, nil)
	descIdentities = prometheus.NewDesc("netmsg_signal_identities",
		"Identities held by connected clients.", nil, nil)
	descReserved = prometheus.NewDesc("netmsg_signal_reserved_identities",
		"Identities reserved for CA-signed certificates after their holders left.", nil, nil)
	descRegistrations = prometheus.NewDesc("netmsg_signal_registrations_total",
		"Registrations accepted.", nil, nil)
	descIn = prometheus.NewDesc("netmsg_signal_signals_in_total",
		"Well-formed signals received from registered clients.", nil, nil)
	descOut = prometheus.NewDesc("netmsg_signal_signals_out_total",
		"Signals queued for their recipients.", nil, nil)
	descDropped = prometheus.NewDesc("netmsg_signal_signals_dropped_total",
		"Signals and lines dropped, by reason.", []string{"reason"}, nil)
	descQueueDrops = prometheus.NewDesc("netmsg_signal_queue_drops_total",
		"Signals dropped because the recipient's queue was full (it does not read fast enough).", nil, nil)
	descRefused = prometheus.NewDesc("netmsg_signal_refusals_total",
		"Connections refused or dropped, by reason.", []string{"reason"}, nil)
	descClusterDrops = prometheus.NewDesc("netmsg_signal_cluster_queue_drops_total",
		"Messages for NATS (signals, claims, releases) dropped because the publish queue was full.", nil, nil)
	descClusterSignals = prometheus.NewDesc("netmsg_signal_cluster_signals_total",
		"Signals sent to and received from other nodes of the cluster.", []string{"direction"}, nil)
	descPeers = prometheus.NewDesc("netmsg_signal_cluster_peers",
		"Other signaling nodes this one sees in its cluster (0 when alone).", nil, nil)
)

// Describe sends the descriptions of the Server's metrics (it is a
// prometheus.Collector: register it in a prometheus.Registry to export
// them).
func (s *Server) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(s, ch) }

// Collect sends the Server's metrics: clients by protocol, identities,
// signals in, out and dropped by reason, refusals by reason, the
// forward-latency histogram and the cluster's peers. Safe for concurrent
// use.
func (s *Server) Collect(ch chan<- prometheus.Metric) {
	st := s.Stats()
	gauge := func(d *prometheus.Desc, v int, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(descClients, st.Trivial, "trivial")
	gauge(descClients, st.Authenticated, "authenticated")
	gauge(descClients, st.Pending, "registering")
	gauge(descIdentities, st.Trivial+st.Authenticated)
	gauge(descReserved, st.Reserved)
	counter(descRegistrations, st.Registered)
	counter(descIn, st.Received)
	counter(descOut, st.Forwarded)
	for _, d := range []struct {
		reason string
		v      uint64
	}{
		{"no_recipient", st.NoRecipient}, {"isolated", st.Isolated}, {"rate_limited", st.RateLimited},
		{"queue_full", st.QueueDropped}, {"malformed", st.Malformed},
	} {
		counter(descDropped, d.v, d.reason)
	}
	counter(descQueueDrops, st.QueueDropped)
	for _, r := range []struct {
		reason string
		v      uint64
	}{
		{"full", st.RefusedFull}, {"per_address", st.RefusedAddr}, {"trivial", st.RefusedTrivial},
		{"auth_failed", st.AuthFailed}, {"takeover", st.TakeoverRefused}, {"pending_evicted", st.PendingEvicted},
		{"absent_flood", st.AbsentFloods}, {"handshake_timeout", st.HandshakeTimeouts},
		{"idle_timeout", st.IdleTimeouts}, {"slow_reader", st.SlowReaders}, {"read_error", st.ReadErrors},
	} {
		counter(descRefused, r.v, r.reason)
	}
	gauge(descPeers, st.Peers)
	counter(descClusterDrops, st.ClusterDropped)
	counter(descClusterSignals, st.ClusterOut, "out")
	counter(descClusterSignals, st.ClusterIn, "in")
	s.metrics.latency.Collect(ch)
}

// ErrNotReady is what Ready returns while the Server cannot serve.
var ErrNotReady = errors.New("signaling: not ready")

// Ready reports whether the Server serves: it listens (Listen, ListenWS or
// Serve was called), is not closed, and, in a cluster, is connected to
// NATS. /readyz answers with it.
func (s *Server) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return ErrClosed
	case len(s.lis) == 0:
		return fmt.Errorf("%w: not listening", ErrNotReady)
	case s.cl != nil && !s.cl.connected():
		return fmt.Errorf("%w: not connected to NATS", ErrNotReady)
	}
	return nil
}
