// Package statuspage serves the small live status pages of netmsg's
// servers (netmsg signal, netmsg relay): a page rendered with the current
// values, whose script polls a JSON endpoint every second and draws one
// rate on a chart of the last two minutes, with no external asset.
package statuspage

import (
	"encoding/json"
	"html/template"
	"net/http"
)

// shared are the parts every page includes: {{template "style"}} in its
// head, and {{template "chart"}} before its own script, which then calls
// draw(rates, color, unit) after each poll.
const shared = `{{define "style"}}<style>
body{font:14px system-ui,sans-serif;margin:2em;color:#222}
h1{font-size:1.3em}
table{border-collapse:collapse}
td{padding:.2em 1em .2em 0}
td.v{font-weight:600;text-align:right;font-variant-numeric:tabular-nums}
canvas{border:1px solid #ccc;margin-top:1em}
.dim{color:#888}
</style>{{end}}{{define "chart"}}<script>
function set(id,v){document.getElementById(id).textContent=v;}
function draw(rates,color,unit){
  var c=document.getElementById('chart'), g=c.getContext('2d');
  g.clearRect(0,0,c.width,c.height);
  var max=Math.max(1,Math.max.apply(null,rates));
  g.strokeStyle=color; g.lineWidth=2; g.beginPath();
  rates.forEach(function(r,i){
    var x=c.width-(rates.length-1-i)*c.width/119, y=c.height-4-(c.height-8)*r/max;
    if(i==0)g.moveTo(x,y); else g.lineTo(x,y);
  });
  g.stroke(); g.fillStyle='#888'; g.fillText(max.toFixed(0)+unit,4,12);
}
</script>{{end}}`

// Parse returns the page template body with the shared parts defined. It
// panics on a bad template (pages are constants).
func Parse(name, body string) *template.Template {
	return template.Must(template.Must(template.New(name).Parse(shared)).Parse(body))
}

// Handler serves page, executed with status(), at "/" and status() as
// JSON at "/status.json".
func Handler(page *template.Template, status func() any) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/status.json", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(status())
	})
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		page.Execute(w, status())
	})
	return mux
}
