package netmsg

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/netmsg-go/netmsg/netsim"
)

// gatherHost registers h's Collector in a fresh pedantic registry and
// gathers it.
func gatherHost(t *testing.T, h *Host) map[string][]*dto.Metric {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(h.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]*dto.Metric{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf.GetMetric()
	}
	return out
}

// metricValue returns the value of the metric name whose labels include
// the pairs given (name, value, ...): a gauge's or counter's value, a
// histogram's count.
func metricValue(t *testing.T, ms map[string][]*dto.Metric, name string, labels ...string) float64 {
	t.Helper()
next:
	for _, m := range ms[name] {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount())
		}
	}
	t.Fatalf("no metric %s%v", name, labels)
	return 0
}

// TestHostCollector: a Host's Collector passes a pedantic registry and
// the linter; its figures move with traffic over the in-memory network
// (20 ms RTT, 10% loss from alice to bob): connections and sessions
// connected, datagrams and bytes each way, packets lost and
// retransmitted, one RTT near 20 ms and one queue time per connected
// connection; after the session closes, no connection is connected.
func TestHostCollector(t *testing.T) {
	bubble(t, func(t *testing.T) {
		nw, _ := netsim.New(netsim.Config{Link: netsim.LinkConfig{Delay: 10 * time.Millisecond}, Seed: 3})
		defer nw.Close()
		ps := newMsgPeers(t, nw, 2)
		defer closeAll(ps)
		alice, bob := ps[0], ps[1]
		nw.SetLink(alice.LocalAddr(), bob.LocalAddr(), netsim.LinkConfig{Delay: 10 * time.Millisecond, LossPercent: 10})

		if problems, err := testutil.CollectAndLint(alice.Collector()); err != nil || len(problems) > 0 {
			t.Fatalf("lint: %v %v", err, problems)
		}
		before := gatherHost(t, alice.Host)
		if n := metricValue(t, before, "netmsg_host_connections", "state", "connected"); n != 0 {
			t.Fatalf("%v connected connections before any traffic", n)
		}
		payload := make([]byte, 1000)
		for range 200 {
			if err := alice.m.SendMessageToUser(bob.id, payload, SendReliable, 0); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, time.Minute, "a session request", func() bool { return len(bob.gotRequests()) > 0 })
		bob.m.AcceptSessionWithUser(alice.id)
		for range 200 {
			_, m := recvText(t, bob, 0)
			m.Release()
		}
		time.Sleep(2 * time.Second) // acks and the loss reports
		after := gatherHost(t, alice.Host)
		for _, c := range []struct {
			name   string
			labels []string
			min    float64
		}{
			{"netmsg_host_connections", []string{"state", "connected"}, 1},
			{"netmsg_host_sessions", []string{"state", "connected"}, 1},
			{"netmsg_host_conn_packets", []string{"kind", "sent"}, 100},
			{"netmsg_host_conn_packets", []string{"kind", "lost"}, 1},
			{"netmsg_host_conn_packets", []string{"kind", "retransmitted"}, 1},
			{"netmsg_host_rtt_seconds", nil, 1},
			{"netmsg_host_queue_time_seconds", nil, 1},
		} {
			if v := metricValue(t, after, c.name, c.labels...); v < c.min {
				t.Errorf("%s%v = %v, want at least %v", c.name, c.labels, v, c.min)
			}
		}
		for _, dir := range []string{"in", "out"} {
			for _, name := range []string{"netmsg_host_datagrams_total", "netmsg_host_bytes_total"} {
				if b, a := metricValue(t, before, name, "direction", dir), metricValue(t, after, name, "direction", dir); a <= b {
					t.Errorf("%s{direction=%s}: %v before, %v after", name, dir, b, a)
				}
			}
		}
		if v := metricValue(t, after, "netmsg_host_bytes_total", "direction", "out"); v < 200*1000 {
			t.Errorf("%v bytes out, want at least the 200 kB sent", v)
		}
		rtt := after["netmsg_host_rtt_seconds"][0].GetHistogram()
		if s := rtt.GetSampleSum(); rtt.GetSampleCount() != 1 || s < 0.018 || s > 0.1 {
			t.Errorf("RTT histogram: %d samples summing to %v s, want one near 0.02", rtt.GetSampleCount(), s)
		}
		if n := metricValue(t, after, "netmsg_host_p2p_routes", "route", "direct"); n != 0 {
			t.Errorf("%v P2P routes on a direct UDP session", n)
		}

		alice.m.CloseSessionWithUser(bob.id)
		time.Sleep(time.Second)
		closed := gatherHost(t, alice.Host)
		if n := metricValue(t, closed, "netmsg_host_connections", "state", "connected"); n != 0 {
			t.Errorf("%v connected connections after the session closed", n)
		}
		if n := metricValue(t, closed, "netmsg_host_sessions", "state", "connected"); n != 0 {
			t.Errorf("%v connected sessions after the session closed", n)
		}
	})
}
