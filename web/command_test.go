package web

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBrowserSignalCommand: the deployment a page uses, end to end. The
// `netmsg signal` command (built from cmd/netmsg, run as its own process)
// serves the module over HTTP and the signaling protocol over WebSocket
// and TCP; a page from another origin imports the module from it and
// exchanges reliable and unreliable messages on three channels with a Go
// Host both ways, the page first and then the Host first.
func TestBrowserSignalCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	bin := chromium(t)
	netmsgBin := filepath.Join(t.TempDir(), "netmsg")
	if out, err := exec.Command("go", "build", "-o", netmsgBin, "../cmd/netmsg").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(netmsgBin, "signal", "--listen", "127.0.0.1:0", "--ws", "127.0.0.1:0/", "--http", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt) // our child, by its PID
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	lines := bufio.NewScanner(stdout)
	var tcp, wsURL, httpURL string
	for (tcp == "" || wsURL == "" || httpURL == "") && lines.Scan() {
		l := lines.Text()
		switch {
		case strings.HasPrefix(l, "listening "):
			tcp, _, _ = strings.Cut(strings.TrimPrefix(l, "listening "), " ")
		case strings.HasPrefix(l, "websocket "):
			wsURL = strings.TrimPrefix(l, "websocket ")
		case strings.HasPrefix(l, "http "):
			httpURL = strings.TrimPrefix(l, "http ")
		}
	}
	if tcp == "" || wsURL == "" || httpURL == "" {
		t.Fatalf("netmsg signal printed tcp %q, websocket %q, http %q", tcp, wsURL, httpURL)
	}
	go func() {
		for lines.Scan() {
		}
	}()

	// The page, from another origin, imports the module from the command.
	page := fmt.Sprintf(`<!doctype html><title>netmsg test</title>
<script type="module">
import * as netmsg from %q;
window.netmsg = netmsg;
window.events = [];
window.ready = true;
</script>`, httpURL+"/netmsg.js")
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, page) }))
	t.Cleanup(hs.Close)
	ctx := startBrowser(t, bin, 2*time.Minute)
	e := &browserEnv{t: t, wsURL: wsURL, tcp: tcp, page: hs.URL + "/", ctx: ctx}
	e.load(ctx)

	h := e.newHost("str:host", nil)
	const n = 50
	eval[bool](t, ctx, connectJS("tab1", e.wsURL, "str:web-cmd1", ""))
	tab1 := mustID(t, "str:web-cmd1")
	eval[bool](t, ctx, sendJS("tab1", "str:host", n))
	hostRecv(t, h, tab1, n)
	hostSend(t, h, tab1, n)
	checkJSRecv(t, eval[[]string](t, ctx, recvJS("tab1", 0, n)), eval[[]string](t, ctx, recvJS("tab1", 2, n/10)), "str:host", n)

	eval[bool](t, ctx, connectJS("tab2", e.wsURL, "str:web-cmd2", ""))
	tab2 := mustID(t, "str:web-cmd2")
	hostSend(t, h, tab2, n)
	checkJSRecv(t, eval[[]string](t, ctx, recvJS("tab2", 0, n)), eval[[]string](t, ctx, recvJS("tab2", 2, n/10)), "str:host", n)
	eval[bool](t, ctx, sendJS("tab2", "str:host", n))
	hostRecv(t, h, tab2, n)
}
