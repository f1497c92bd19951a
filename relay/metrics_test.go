package relay

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// metricValue returns the value of name with the label label=value (or
// no label) in reg, and whether it is there.
func metricValue(t *testing.T, reg prometheus.Gatherer, name, label, value string) (float64, bool) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if label != "" && !hasLabel(m, label, value) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue(), true
			}
			return m.GetGauge().GetValue(), true
		}
	}
	return 0, false
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

// TestRelayCollector scrapes the collector after an allocation that
// relays both ways, an auth failure, a quota refusal and a refused peer.
func TestRelayCollector(t *testing.T) {
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"}, MaxAllocationsPerUser: 1,
		AllowPeers: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(s.Collector()); err != nil {
		t.Fatal(err)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	_, relayed, err := turnClient(t, s.Addr(), "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	checkRelay(t, relayed) // 13 bytes out, 8 back
	if _, _, err := turnClient(t, s.Addr(), "u", "p"); err == nil {
		t.Error("over the user quota")
	}
	if _, _, err := turnClient(t, s.Addr(), "u", "wrong"); err == nil {
		t.Error("wrong password allocated")
	}
	if _, err := relayed.WriteTo([]byte("x"), &net.UDPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 9}); err == nil {
		t.Error("relayed to 10.0.0.1")
	}
	want := []struct {
		name, label, value string
		v                  float64
	}{
		{"netmsg_relay_allocations", "", "", 1},
		{"netmsg_relay_allocations_created_total", "", "", 1},
		{"netmsg_relay_relayed_packets_total", "direction", "to_peer", 1},
		{"netmsg_relay_relayed_bytes_total", "direction", "to_peer", 13},
		{"netmsg_relay_relayed_packets_total", "direction", "from_peer", 1},
		{"netmsg_relay_relayed_bytes_total", "direction", "from_peer", 8},
		{"netmsg_relay_auth_failures_total", "reason", "bad_password", 1},
		{"netmsg_relay_auth_failures_total", "reason", "expired", 0},
		{"netmsg_relay_refusals_total", "reason", "quota_user", 1},
		{"netmsg_relay_refusals_total", "reason", "peer_address", 1},
		{"netmsg_relay_refusals_total", "reason", "quota_server", 0},
	}
	deadline := time.Now().Add(3 * time.Second)
	for _, w := range want {
		for {
			got, ok := metricValue(t, reg, w.name, w.label, w.value)
			if ok && got == w.v {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s{%s=%q} = %v (present %v), want %v", w.name, w.label, w.value, got, ok, w.v)
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}
