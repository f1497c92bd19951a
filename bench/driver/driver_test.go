package driver

import (
	"context"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netmsg-go/netmsg/bench/workload"
)

func TestSummarizeAndTable(t *testing.T) {
	rec := func(run int, p, w string, main float64) Record {
		r := workload.Result{Peer: p, Workload: w, Delivery: "reliable"}
		switch w {
		case "W1":
			r.MsgsPerSec = main
		case "W4":
			r.RTTP50us, r.RTTP99us = main, 2*main
		}
		return Record{Run: run, Result: r}
	}
	recs := []Record{
		rec(1, "a", "W1", 100), rec(1, "b", "W1", 200),
		rec(2, "a", "W1", 50), rec(2, "b", "W1", 150),
		rec(3, "a", "W1", 100), rec(3, "b", "W1", 400),
		rec(1, "a", "W4", 10), rec(1, "b", "W4", 30),
		{Run: 1, Result: workload.Result{Peer: "b", Workload: "W5", Unsupported: "no unreliable mode"}},
		{Run: 1, Result: workload.Result{Peer: "a", Workload: "W5", Error: "boom"}},
	}
	peers, wls := []string{"a", "b"}, []string{"W1", "W4", "W5"}
	cells := Summarize(recs, peers, wls, "a")
	get := func(p, w string) Cell {
		for _, c := range cells {
			if c.Peer == p && c.Workload == w {
				return c
			}
		}
		t.Fatalf("no cell %s %s", p, w)
		return Cell{}
	}
	if c := get("b", "W1"); c.Main != (Stat{Median: 200, Min: 150, Max: 400, N: 3}) || c.Ratio != (Stat{Median: 3, Min: 2, Max: 4, N: 3}) {
		t.Errorf("b W1 = %+v", c)
	}
	if c := get("b", "W4"); c.Main.Median != 30 || c.Second.Median != 60 || c.Ratio.Median != 3 {
		t.Errorf("b W4 = %+v", c)
	}
	if c := get("a", "W5"); c.Failed != 1 || c.Main.N != 0 {
		t.Errorf("a W5 = %+v", c)
	}
	tab := Table(cells, peers, wls, "a")
	for _, want := range []string{"| b | 200 (150-400) | 30.0 / 60.0 | no unreliable mode |", "FAILED (1): boom", "| b | 3.00x (2.00-4.00) | 3.00x | - |"} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
}

// TestTwoProcesses builds netbench and runs raw W4 (the shortest workload)
// as two OS processes.
func TestTwoProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "netbench")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/netbench").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recs, err := Run(ctx, Config{Binary: bin, Peers: []string{"raw", "kcp"}, Workloads: []string{"W4", "W5"}, Runs: 1, Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 4 {
		t.Fatalf("%d records, want 4", len(recs))
	}
	for _, r := range recs {
		if r.Result.Error != "" {
			t.Errorf("%s %s: %s (stderr %q)", r.Result.Peer, r.Result.Workload, r.Result.Error, r.Stderr)
		}
	}
	if r := recs[0].Result; r.Rounds != 10000 || r.RTTP50us <= 0 {
		t.Errorf("raw W4: %+v", r)
	}
}

func TestMarkdownAndChart(t *testing.T) {
	rec := func(run int, p, w string, main float64) Record {
		r := workload.Result{Peer: p, Workload: w, Delivery: "reliable"}
		switch w {
		case "W1":
			r.MsgsPerSec = main
		case "W4":
			r.RTTP50us, r.RTTP99us = main, 2*main
		}
		return Record{Run: run, Result: r}
	}
	var recs []Record
	for run := 1; run <= 3; run++ {
		recs = append(recs, rec(run, "enet", "W1", 100), rec(run, "fast", "W1", 150*float64(run)), rec(run, "enet", "W4", 40), rec(run, "fast", "W4", 20))
	}
	recs = append(recs, Record{Run: 1, Result: workload.Result{Peer: "none", Workload: "W1", Unsupported: "unavailable"}})
	peers, wls := []string{"enet", "fast", "none"}, []string{"W1", "W4"}
	cells := Summarize(recs, peers, wls, "enet")
	m := ThisMachine([]string{"netbench", "run", "--peers", "enet,fast", "--note", "two words"})
	m.Finish()
	if m.CPUs <= 0 || m.Go == "" || m.Started.IsZero() {
		t.Errorf("machine: %+v", m)
	}
	md := Markdown(cells, peers, wls, "enet", 3, m, map[string]string{"fast": "a fast peer"})
	for _, want := range []string{"`netbench run --peers enet,fast --note \"two words\"`", "load average before", "| fast | 3.00x (1.50-4.50) | 0.50x (0.50-0.50) |", "- fast: a fast peer"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	// The chart inverts W4 (higher is better): fast's bar is 2.00.
	if s, ok := chartRatio(cells[4]); !ok || cells[4].Peer != "fast" || s.Median != 2 {
		t.Errorf("chart ratio of %+v = %+v, %v", cells[4], s, ok)
	}
	var svg strings.Builder
	if err := Chart(&svg, "svg", cells, peers, wls, "enet", m); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "fast", "W4 (1/RTT p50)", "3.00 (1.50-4.50)", "2.00 (2.00-2.00)", "two words"} {
		if !strings.Contains(svg.String(), want) {
			t.Errorf("svg lacks %q", want)
		}
	}
	var png strings.Builder
	if err := Chart(&png, "png", cells, peers, wls, "enet", m); err != nil || !strings.HasPrefix(png.String(), "\x89PNG") {
		t.Errorf("png: %v, %d bytes", err, png.Len())
	}
}
