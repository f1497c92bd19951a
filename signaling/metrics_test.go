package signaling_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/netmsg-go/netmsg/signaling"
)

// metricValue gathers reg and returns the value of the metric name with
// the given label pairs (a histogram's sample count), or -1.
func metricValue(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, lp := range m.GetLabel() {
					if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
						found = true
					}
				}
				if !found {
					continue next
				}
			}
			return value(m)
		}
	}
	return -1
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue()
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	case m.Histogram != nil:
		return float64(m.GetHistogram().GetSampleCount())
	}
	return -1
}

// TestMetrics: the Server is a prometheus.Collector (a pedantic registry
// accepts it) whose values follow what happens: clients by protocol,
// signals in, out and dropped by reason, refusals by reason, the forward
// latency histogram.
func TestMetrics(t *testing.T) {
	s, addr := startServer(t, signaling.ServerConfig{MaxClientsPerAddr: 2})
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(s); err != nil {
		t.Fatal(err)
	}
	if v := metricValue(t, reg, "netmsg_signal_clients", "protocol", "trivial"); v != 0 {
		t.Errorf("trivial clients %v before any", v)
	}
	a := dialRaw(t, addr, "str:a")
	b := dialRaw(t, addr, "str:b")
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Trivial == 2 })
	a.c.Write([]byte("str:b 01\nstr:nobody 02\n"))
	if l := b.line(t); l != "str:a 01" {
		t.Fatalf("b got %q", l)
	}
	third := dialRaw(t, addr, "str:c")
	if l := third.line(t); l != "ERR too many connections from your address" {
		t.Errorf("third told %q", l)
	}
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.NoRecipient == 1 })
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"netmsg_signal_clients", []string{"protocol", "trivial"}, 2},
		{"netmsg_signal_clients", []string{"protocol", "authenticated"}, 0},
		{"netmsg_signal_identities", nil, 2},
		{"netmsg_signal_registrations_total", nil, 2},
		{"netmsg_signal_signals_in_total", nil, 2},
		{"netmsg_signal_signals_out_total", nil, 1},
		{"netmsg_signal_signals_dropped_total", []string{"reason", "no_recipient"}, 1},
		{"netmsg_signal_signals_dropped_total", []string{"reason", "queue_full"}, 0},
		{"netmsg_signal_refusals_total", []string{"reason", "per_address"}, 1},
		{"netmsg_signal_refusals_total", []string{"reason", "full"}, 0},
		{"netmsg_signal_forward_latency_seconds", nil, 1},
		{"netmsg_signal_cluster_peers", nil, 0},
	} {
		if v := metricValue(t, reg, c.name, c.labels...); v != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, v, c.want)
		}
	}
	if err := s.Ready(); err != nil {
		t.Errorf("Ready: %v", err)
	}
	s.Close()
	if err := s.Ready(); err == nil {
		t.Error("Ready after Close")
	}
	n, _ := signaling.NewServer(signaling.ServerConfig{})
	if err := n.Ready(); err == nil {
		t.Error("Ready before listening")
	}
}
