package relay

import (
	"net/http"
	"time"

	"github.com/netmsg-go/netmsg/internal/statuspage"
)

// Status is a snapshot of a Server for people: what the status page shows
// and its JSON endpoint serves.
type Status struct {
	Addr             string    `json:"addr"`        // the STUN and TURN address
	Allocations      int       `json:"allocations"` // live now
	Created          uint64    `json:"created"`     // allocations made since the start
	BytesToPeers     uint64    `json:"bytes_to_peers"`
	BytesFromPeers   uint64    `json:"bytes_from_peers"`
	PacketsToPeers   uint64    `json:"packets_to_peers"`
	PacketsFromPeers uint64    `json:"packets_from_peers"`
	AuthFailed       uint64    `json:"auth_failed"` // requests refused authentication (unknown, expired, bad password)
	Refused          uint64    `json:"refused"`     // allocations over a quota, and permissions refused
	Time             time.Time `json:"time"`
}

// Status returns a snapshot. Safe for concurrent use.
func (s *Server) Status() Status {
	st := s.Stats()
	return Status{
		Addr: s.Addr().String(), Allocations: st.Allocations, Created: st.AllocationsCreated,
		BytesToPeers: st.BytesToPeers, BytesFromPeers: st.BytesFromPeers,
		PacketsToPeers: st.PacketsToPeers, PacketsFromPeers: st.PacketsFromPeers,
		AuthFailed: st.AuthFailed, Refused: st.Refused + st.RefusedPeers + st.RefusedPermissions,
		Time: time.Now(),
	}
}

// StatusHandler serves a small live status page at "/" (HTML rendered
// with the current values, and a script with no external asset that
// polls "/status.json" every second, computes the relayed throughput and
// draws it on a chart of the last two minutes) and Status as JSON at
// "/status.json". Mount it where it is reached only by operators.
func (s *Server) StatusHandler() http.Handler {
	return statuspage.Handler(statusPage, func() any { return s.Status() })
}

var statusPage = statuspage.Parse("status", `<!doctype html>
<html><head><meta charset="utf-8"><title>netmsg relay</title>
{{template "style"}}</head>
<body>
<h1>netmsg relay <span class="dim" id="addr">{{.Addr}}</span></h1>
<table>
<tr><td>allocations</td><td class="v" id="allocations">{{.Allocations}}</td><td class="dim" id="created">{{.Created}} made since the start</td></tr>
<tr><td>relayed, kB per second</td><td class="v" id="rate">0</td><td class="dim" id="totals">{{.BytesToPeers}} bytes to peers, {{.BytesFromPeers}} from peers</td></tr>
<tr><td>packets per second</td><td class="v" id="prate">0</td><td class="dim" id="ptotals">{{.PacketsToPeers}} to peers, {{.PacketsFromPeers}} from peers</td></tr>
<tr><td>authentication failures</td><td class="v" id="auth">{{.AuthFailed}}</td><td class="dim" id="refused">{{.Refused}} allocations and permissions refused</td></tr>
</table>
<canvas id="chart" width="600" height="160"></canvas>
<p class="dim">updated <span id="updated">0</span> times; relayed kB per second (both ways) over the last two minutes</p>
{{template "chart"}}<script>
(function(){
  var last=null, rates=[], polls=0;
  function poll(){
    fetch('status.json',{cache:'no-store'}).then(function(r){return r.json();}).then(function(s){
      var rate=0, prate=0;
      if(last){var dt=(Date.parse(s.time)-Date.parse(last.time))/1000; if(dt>0){
        rate=(s.bytes_to_peers+s.bytes_from_peers-last.bytes_to_peers-last.bytes_from_peers)/dt/1000;
        prate=(s.packets_to_peers+s.packets_from_peers-last.packets_to_peers-last.packets_from_peers)/dt;}}
      last=s; rates.push(rate); if(rates.length>120)rates.shift();
      set('addr', s.addr);
      set('allocations', s.allocations); set('created', s.created+' made since the start');
      set('rate', rate.toFixed(1)); set('totals', s.bytes_to_peers+' bytes to peers, '+s.bytes_from_peers+' from peers');
      set('prate', prate.toFixed(1)); set('ptotals', s.packets_to_peers+' to peers, '+s.packets_from_peers+' from peers');
      set('auth', s.auth_failed); set('refused', s.refused+' allocations and permissions refused');
      set('updated', ++polls); draw(rates,'#393',' kB/s');
    }).catch(function(){});
  }
  poll(); setInterval(poll,1000);
})();
</script>
</body></html>
`)
