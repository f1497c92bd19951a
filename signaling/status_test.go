package signaling_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/netmsg-go/netmsg/signaling"
)

// TestStatusJSON: /status.json follows the server; / renders the
// current values without a script.
func TestStatusJSON(t *testing.T) {
	s, addr := startServer(t, signaling.ServerConfig{})
	hs := httptest.NewServer(s.StatusHandler())
	defer hs.Close()
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b strings.Builder
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			b.Write(buf[:n])
			if err != nil {
				break
			}
		}
		return b.String()
	}
	var st signaling.Status
	if err := json.Unmarshal([]byte(get("/status.json")), &st); err != nil || st.Clients != 0 || st.Node != "" || st.Peers == nil {
		t.Fatalf("status %+v, %v", st, err)
	}
	a := dialRaw(t, addr, "str:a")
	b := dialRaw(t, addr, "str:b")
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.Trivial == 2 })
	a.c.Write([]byte("str:b 00\nstr:nobody 00\n"))
	b.line(t)
	waitStats(t, s, func(st signaling.ServerStats) bool { return st.NoRecipient == 1 })
	if err := json.Unmarshal([]byte(get("/status.json")), &st); err != nil || st.Clients != 2 || st.Identities != 2 ||
		st.SignalsIn != 2 || st.SignalsOut != 1 || st.Dropped != 1 {
		t.Errorf("status %+v, %v", st, err)
	}
	page := get("/")
	for _, want := range []string{`<td class="v" id="clients">2</td>`, "single node", "status.json"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("the page refers to an external asset")
	}
}

// chromium finds Debian's chromium; the test is skipped without it
// unless NETMSG_REQUIRE_CHROMIUM is set.
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("NETMSG_REQUIRE_CHROMIUM") != "" {
		t.Fatal("chromium not installed and NETMSG_REQUIRE_CHROMIUM is set")
	}
	t.Skip("chromium not installed")
	return ""
}

// TestStatusPageBrowser loads the status page of a node of a two-node
// cluster in headless Chromium: it shows the other node and the node's
// clients, and updates as clients come and signals flow. With
// NETMSG_STATUS_SCREENSHOT=file.png it saves a screenshot.
func TestStatusPageBrowser(t *testing.T) {
	bin := chromium(t)
	if testing.Short() {
		t.Skip("short")
	}
	ns := natsServer(t, -1, "")
	nodes, addrs := clusterNodes(t, signaling.ServerConfig{}, ns.ClientURL(), ns.ClientURL())
	hs := httptest.NewServer(nodes[0].StatusHandler())
	defer hs.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("headless", true), chromedp.DisableGPU, chromedp.WindowSize(800, 520))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	text := func(id string) string {
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string]("document.getElementById('"+id+"').textContent"))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		return s
	}
	waitText := func(sel, want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := text(sel)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("#%s shows %q, want %q", sel, got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if _, err := chromedp.Run(ctx, chromedp.Navigate(hs.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitText("clients", "0")
	waitText("nodes", "1")
	if got := text("node"); !strings.HasPrefix(got, "node ") {
		t.Errorf("node %q", got)
	}

	var conns []signaling.Conn
	for i, id := range []string{"str:a", "str:b", "str:c"} {
		c, err := signaling.DialTrivial(context.Background(), addrs[i%2], id)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	waitText("clients", "2") // a and c on node 0
	waitText("remote", "1 on other nodes")
	before := text("updated")
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			conns[0].Send("str:b", []byte("x"))
			conns[2].Send("str:a", []byte("y"))
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for text("rate") == "0.0" || text("rate") == "0" {
		if time.Now().After(deadline) {
			t.Fatal("the rate never moved")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if text("updated") == before {
		t.Error("the page did not update")
	}
	if f := os.Getenv("NETMSG_STATUS_SCREENSHOT"); f != "" {
		time.Sleep(5 * time.Second) // some chart
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-done
}
