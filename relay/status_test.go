package relay

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func getBody(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestStatusJSON: /status.json follows the relay (an allocation, data
// relayed both ways, a wrong password); / renders the current values
// without a script and refers to no external asset.
func TestStatusJSON(t *testing.T) {
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"}, AllowPeers: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s.StatusHandler())
	defer hs.Close()
	var st Status
	if err := json.Unmarshal([]byte(getBody(t, hs.URL+"/status.json")), &st); err != nil || st.Allocations != 0 || st.Addr != s.Addr().String() {
		t.Fatalf("status %+v, %v", st, err)
	}
	_, relayed, err := turnClient(t, s.Addr(), "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	checkRelay(t, relayed)
	turnClient(t, s.Addr(), "u", "wrong")
	if err := json.Unmarshal([]byte(getBody(t, hs.URL+"/status.json")), &st); err != nil || st.Allocations != 1 || st.Created != 1 ||
		st.BytesToPeers == 0 || st.BytesFromPeers == 0 || st.PacketsToPeers == 0 || st.AuthFailed != 1 {
		t.Errorf("status %+v, %v", st, err)
	}
	page := getBody(t, hs.URL+"/")
	for _, want := range []string{`<td class="v" id="allocations">1</td>`, `id="auth">1<`, s.Addr().String(), "status.json"} {
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

// TestStatusPageBrowser loads the relay's status page in headless
// Chromium: it shows no allocation, then the one a client makes, and the
// throughput moves while data is relayed. With
// NETMSG_RELAY_STATUS_SCREENSHOT=file.png it saves a screenshot.
func TestStatusPageBrowser(t *testing.T) {
	bin := chromium(t)
	if testing.Short() {
		t.Skip("short")
	}
	s, err := NewServer(Config{ListenAddr: "127.0.0.1:0", Users: map[string]string{"u": "p"}, AllowPeers: loopback})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s.StatusHandler())
	defer hs.Close()

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("headless", true), chromedp.DisableGPU, chromedp.WindowSize(800, 460))
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
	waitText := func(id, want string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			got := text(id)
			if got == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("#%s shows %q, want %q", id, got, want)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	if _, err := chromedp.Run(ctx, chromedp.Navigate(hs.URL+"/")); err != nil {
		t.Fatal(err)
	}
	waitText("allocations", "0")
	_, relayed, err := turnClient(t, s.Addr(), "u", "p")
	if err != nil {
		t.Fatal(err)
	}
	waitText("allocations", "1")
	peer, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	before := text("updated")
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		payload := make([]byte, 1000)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			relayed.WriteTo(payload, peer.LocalAddr())
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for text("rate") == "0.0" || text("rate") == "0" {
		if time.Now().After(deadline) {
			t.Fatal("the throughput never moved")
		}
		time.Sleep(100 * time.Millisecond)
	}
	if text("updated") == before {
		t.Error("the page did not update")
	}
	if f := os.Getenv("NETMSG_RELAY_STATUS_SCREENSHOT"); f != "" {
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
