package main

import (
	"context"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestDemoWeb: `netmsg demo --web` serves a page from which headless
// Chromium joins alice, bob and carol: its table shows the three
// sessions connected with a route and a ping, the chat shows their
// answers, and their dots arrive. With NETMSG_DEMO_SCREENSHOT=file.png it
// saves a screenshot (docs/demo-web.png).
func TestDemoWeb(t *testing.T) {
	var bin string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			bin = p
			break
		}
	}
	if bin == "" {
		if os.Getenv("NETMSG_REQUIRE_CHROMIUM") != "" {
			t.Fatal("chromium not installed and NETMSG_REQUIRE_CHROMIUM is set")
		}
		t.Skip("chromium not installed")
	}
	if testing.Short() {
		t.Skip("short")
	}
	ctx, cancel := context.WithCancel(context.Background())
	urls := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- runDemoWeb(ctx, "127.0.0.1:0", io.Discard, func(u string) { urls <- u }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	var url string
	select {
	case url = <-urls:
	case err := <-done:
		t.Fatal(err)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(bin), chromedp.NoSandbox,
		chromedp.Flag("headless", true), chromedp.DisableGPU, chromedp.WindowSize(900, 620),
		chromedp.Flag("disable-features", "WebRtcHideLocalIpsWithMdns"))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	bctx, cancelT := context.WithTimeout(bctx, 60*time.Second)
	defer cancelT()
	if _, err := chromedp.Run(bctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll("tr.session")].map(r => r.textContent)`))
		if err != nil {
			t.Fatal(err)
		}
		log, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.getElementById("log").textContent`))
		ok := len(rows) == 3 && strings.Contains(log, "I am alice") && strings.Contains(log, "I am carol")
		for _, r := range rows {
			ok = ok && strings.Contains(r, "connected") && strings.Contains(r, "direct") && strings.Contains(r, " ms")
		}
		if ok {
			t.Logf("sessions: %q", rows)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page shows %q, chat %q", rows, log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if f := os.Getenv("NETMSG_DEMO_SCREENSHOT"); f != "" {
		time.Sleep(1500 * time.Millisecond) // dots spread over the field
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
