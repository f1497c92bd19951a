package relay

import "github.com/prometheus/client_golang/prometheus"

// Collector returns a prometheus.Collector of the server's Stats, for the
// program to register (netmsg relay --http serves it on /metrics):
//
//	netmsg_relay_allocations                      gauge, live allocations
//	netmsg_relay_allocations_created_total        counter
//	netmsg_relay_relayed_packets_total{direction} counter, direction "to_peer" or "from_peer"
//	netmsg_relay_relayed_bytes_total{direction}   counter
//	netmsg_relay_auth_failures_total{reason}      counter, reason "unknown_user", "expired" or "bad_password"
//	netmsg_relay_refusals_total{reason}           counter, reason "quota_server", "quota_user", "quota_address", "quota_permissions" or "peer_address"
//
// Each scrape reads the counters; the collector holds no state of its own
// and may be registered in several registries.
func (s *Server) Collector() prometheus.Collector { return collector{s} }

var (
	descAllocations = prometheus.NewDesc("netmsg_relay_allocations", "Live TURN allocations.", nil, nil)
	descCreated     = prometheus.NewDesc("netmsg_relay_allocations_created_total", "TURN allocations made.", nil, nil)
	descPackets     = prometheus.NewDesc("netmsg_relay_relayed_packets_total", "Datagrams relayed, to peers (from clients) and from peers (received on relayed addresses).", []string{"direction"}, nil)
	descBytes       = prometheus.NewDesc("netmsg_relay_relayed_bytes_total", "Payload bytes relayed, to peers and from peers.", []string{"direction"}, nil)
	descAuth        = prometheus.NewDesc("netmsg_relay_auth_failures_total", "Requests refused authentication, by reason.", []string{"reason"}, nil)
	descRefusals    = prometheus.NewDesc("netmsg_relay_refusals_total", "Allocations refused by a quota, and permissions refused by a quota or for their peer address, by reason.", []string{"reason"}, nil)
)

type collector struct{ s *Server }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAllocations, descCreated, descPackets, descBytes, descAuth, descRefusals} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	counter := func(d *prometheus.Desc, v uint64, label ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label...)
	}
	ch <- prometheus.MustNewConstMetric(descAllocations, prometheus.GaugeValue, float64(st.Allocations))
	counter(descCreated, st.AllocationsCreated)
	counter(descPackets, st.PacketsToPeers, "to_peer")
	counter(descPackets, st.PacketsFromPeers, "from_peer")
	counter(descBytes, st.BytesToPeers, "to_peer")
	counter(descBytes, st.BytesFromPeers, "from_peer")
	counter(descAuth, st.AuthUnknownUser, "unknown_user")
	counter(descAuth, st.AuthExpired, "expired")
	counter(descAuth, st.AuthBadPassword, "bad_password")
	counter(descRefusals, st.RefusedTotal, "quota_server")
	counter(descRefusals, st.RefusedUser, "quota_user")
	counter(descRefusals, st.RefusedAddr, "quota_address")
	counter(descRefusals, st.RefusedPeers, "peer_address")
	counter(descRefusals, st.RefusedPermissions, "quota_permissions")
}
