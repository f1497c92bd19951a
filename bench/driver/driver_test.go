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
