package signaling

import (
	"net/http"
	"slices"
	"time"

	"github.com/netmsg-go/netmsg/internal/statuspage"
)

// Status is a snapshot of a Server for people: what the status page shows
// and its JSON endpoint serves.
type Status struct {
	Node          string    `json:"node"`  // this node's id in its cluster ("" when alone)
	Peers         []string  `json:"peers"` // the other nodes seen now
	Clients       int       `json:"clients"`
	Trivial       int       `json:"trivial"`
	Authenticated int       `json:"authenticated"`
	Registering   int       `json:"registering"`
	Identities    int       `json:"identities"` // held on this node
	Remote        int       `json:"remote"`     // held on other nodes
	SignalsIn     uint64    `json:"signals_in"`
	SignalsOut    uint64    `json:"signals_out"`
	Dropped       uint64    `json:"dropped"` // signals and lines dropped, all reasons
	Refused       uint64    `json:"refused"` // connections refused or dropped, all reasons
	Time          time.Time `json:"time"`
}

// Status returns a snapshot. Safe for concurrent use.
func (s *Server) Status() Status {
	st := s.Stats()
	out := Status{
		Clients: st.Clients, Trivial: st.Trivial, Authenticated: st.Authenticated, Registering: st.Pending,
		Identities: st.Trivial + st.Authenticated, SignalsIn: st.Received, SignalsOut: st.Forwarded + st.ClusterOut,
		Dropped: st.NoRecipient + st.Isolated + st.RateLimited + st.QueueDropped + st.Malformed,
		Refused: st.Refused + st.AuthFailed + st.TakeoverRefused + st.PendingEvicted + st.AbsentFloods +
			st.HandshakeTimeouts + st.IdleTimeouts + st.SlowReaders,
		Time:  time.Now(),
		Peers: []string{},
	}
	s.mu.Lock()
	out.Remote = len(s.remote)
	if s.cl != nil {
		out.Node = s.cl.node
		for n := range s.cl.peers {
			out.Peers = append(out.Peers, n)
		}
	}
	s.mu.Unlock()
	slices.Sort(out.Peers)
	return out
}

// StatusHandler serves a small live status page at "/" (HTML rendered
// with the current values, and a script with no external asset that
// polls "/status.json" every second, computes signals per second and
// draws them on a chart of the last two minutes) and Status as JSON at
// "/status.json". Mount it where it is reached only by operators.
func (s *Server) StatusHandler() http.Handler {
	return statuspage.Handler(statusPage, func() any { return s.Status() })
}

var statusPage = statuspage.Parse("status", `<!doctype html>
<html><head><meta charset="utf-8"><title>netmsg signal</title>
{{template "style"}}</head>
<body>
<h1>netmsg signal <span class="dim" id="node">{{if .Node}}node {{.Node}}{{else}}single node{{end}}</span></h1>
<table>
<tr><td>other nodes of the cluster</td><td class="v" id="nodes">{{len .Peers}}</td><td class="dim" id="peers">{{range .Peers}}{{.}} {{end}}</td></tr>
<tr><td>connected clients</td><td class="v" id="clients">{{.Clients}}</td><td class="dim" id="split">{{.Trivial}} trivial, {{.Authenticated}} authenticated, {{.Registering}} registering</td></tr>
<tr><td>identities here / elsewhere</td><td class="v" id="identities">{{.Identities}}</td><td class="dim" id="remote">{{.Remote}} on other nodes</td></tr>
<tr><td>signals per second</td><td class="v" id="rate">0</td><td class="dim" id="totals">{{.SignalsIn}} in, {{.SignalsOut}} out</td></tr>
<tr><td>dropped / refused</td><td class="v" id="dropped">{{.Dropped}}</td><td class="dim" id="refused">{{.Refused}} connections refused or dropped</td></tr>
</table>
<canvas id="chart" width="600" height="160"></canvas>
<p class="dim">updated <span id="updated">0</span> times; signals out per second over the last two minutes</p>
{{template "chart"}}<script>
(function(){
  var last=null, rates=[], polls=0;
  function poll(){
    fetch('status.json',{cache:'no-store'}).then(function(r){return r.json();}).then(function(s){
      var rate=0;
      if(last){var dt=(Date.parse(s.time)-Date.parse(last.time))/1000; if(dt>0)rate=(s.signals_out-last.signals_out)/dt;}
      last=s; rates.push(rate); if(rates.length>120)rates.shift();
      set('node', s.node?'node '+s.node:'single node');
      set('nodes', s.peers.length); set('peers', s.peers.join(' '));
      set('clients', s.clients);
      set('split', s.trivial+' trivial, '+s.authenticated+' authenticated, '+s.registering+' registering');
      set('identities', s.identities); set('remote', s.remote+' on other nodes');
      set('rate', rate.toFixed(1)); set('totals', s.signals_in+' in, '+s.signals_out+' out');
      set('dropped', s.dropped); set('refused', s.refused+' connections refused or dropped');
      set('updated', ++polls); draw(rates,'#36c','/s');
    }).catch(function(){});
  }
  poll(); setInterval(poll,1000);
})();
</script>
</body></html>
`)
