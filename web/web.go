// Package web holds netmsg's browser module, netmsg.js: the Messages API
// for a browser tab, over WebRTC to netmsg Hosts and other tabs, through
// a netmsg signaling server over WebSocket (see docs/browser.md). `netmsg
// signal --http` and `netmsg demo --web` serve it at /netmsg.js.
package web

import (
	"bytes"
	_ "embed"
	"net/http"
	"time"
)

// Module is the source of netmsg.js, an ES module with no dependencies.
//
//go:embed netmsg.js
var Module []byte

var modTime = time.Now()

// Handler serves Module (at any path; mount it at /netmsg.js), to pages
// of any origin (module scripts are fetched with CORS).
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("Cache-Control", "no-cache")
		http.ServeContent(w, r, "netmsg.js", modTime, bytes.NewReader(Module))
	})
}
