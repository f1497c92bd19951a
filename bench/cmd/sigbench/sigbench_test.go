package main

import (
	"bytes"
	"context"
	"github.com/netmsg-go/netmsg/bench/machine"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMain lets the test binary act as sigbench's children: run starts
// them as `<binary> node ...`, `<binary> nats ...`, `<binary> hold ...`.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "node", "nats", "hold":
			main()
			os.Exit(0)
		}
	}
	os.Exit(m.Run())
}

// TestSmall runs the small mode (300 clients, three nodes on an embedded
// NATS cluster, then one node) and checks that every figure was taken:
// all clients registered, signals forwarded without loss, latencies
// measured, the killed node's identity released.
func TestSmall(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	c := smallConfig(config{AuthShare: 0.5, Nodes: 3, Single: true, Window: 16, MaxRate: 180, Conc: 64, Binary: self})
	// On a machine busy with other work, a step of the search may fail;
	// the test checks that each figure is taken, not its value.
	var progress syncBuffer
	c.Log = &progress
	defer func() {
		if t.Failed() {
			t.Logf("progress:\n%s", progress.String())
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	r, err := run(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*setupResult{r.Cluster, r.Single} {
		if s == nil {
			t.Fatal("a setup is missing")
		}
		if s.Clients != 300 || s.Authd != 150 {
			t.Errorf("%d nodes: %d clients (%d authenticated), want 300 (150)", s.Nodes, s.Clients, s.Authd)
		}
		kinds := []forwardResult{s.Same}
		if s.Nodes > 1 {
			kinds = append(kinds, s.Cross)
		}
		for i, f := range kinds {
			for j, p := range append([]phaseResult{f.Burst, f.Lat}, f.Steps...) {
				if p.Received == 0 || p.Received != p.Sent {
					t.Errorf("%d nodes, kind %d, phase %d: sent %d, received %d", s.Nodes, i, j, p.Sent, p.Received)
				}
			}
			if f.Sustained <= 0 || f.Sustained > f.Burst.Rate {
				t.Errorf("%d nodes, kind %d: sustained %.0f/s, burst %.0f/s", s.Nodes, i, f.Sustained, f.Burst.Rate)
			}
			if p := f.Lat; p.Samples == 0 || p.P50 <= 0 || p.P99 < p.P50 {
				t.Errorf("%d nodes, kind %d: latency %+v", s.Nodes, i, p)
			}
		}
		for i := range s.Loaded {
			if s.Loaded[i].RSS <= 0 || s.Loaded[i].Server == nil {
				t.Errorf("%d nodes: node %d reported %+v", s.Nodes, i, s.Loaded[i])
			}
		}
	}
	d := r.Cluster.Death
	if d == nil || !d.RefusedBefore || d.Taken <= 0 || len(d.SeenDead) != 2 || d.SeenDead[0] <= 0 || d.SeenDead[1] <= 0 {
		t.Errorf("death phase: %+v", d)
	}
	rep := formatReport(machine.This([]string{"sigbench", "run", "--small"}), c, []*results{r, r})
	for _, want := range []string{"3 nodes on NATS", "1 node", "signals/s sustained, clients on different nodes", "resident memory per client", "dead node's identities released", "Median of 2 runs", "## Run 2"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report without %q:\n%s", want, rep)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
