package main

import (
	"fmt"
	"github.com/netmsg-go/netmsg/bench/machine"
	"slices"
	"strings"
	"time"
)

// formatReport renders the results of one or more runs as markdown: the
// machine, the command, with several runs a table of the main figures'
// medians, each run's table with a column per setup, and how each figure
// was taken.
func formatReport(m machine.Machine, c config, rs []*results) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Signaling: %d nodes on NATS and one node, %d clients\n\n", c.Nodes, c.Clients)
	for _, l := range m.Lines() {
		fmt.Fprintf(&b, "%s  \n", l)
	}
	fmt.Fprintf(&b, "open files limit (RLIMIT_NOFILE) of every process: %d\n\n", rs[0].Nofile)
	if len(rs) > 1 {
		fmt.Fprintf(&b, "## Median of %d runs (min-max)\n\n", len(rs))
		writeSummary(&b, rs)
	}
	for i, r := range rs {
		if len(rs) > 1 {
			fmt.Fprintf(&b, "\n## Run %d\n\n", i+1)
		}
		writeTable(&b, c, r)
	}
	writeMethod(&b, c, rs[0])
	return b.String()
}

// columns are the setups of r, with their headings.
func columns(r *results) ([]*setupResult, []string) {
	var cols []*setupResult
	var heads []string
	if r.Cluster != nil {
		cols = append(cols, r.Cluster)
		heads = append(heads, fmt.Sprintf("%d nodes on NATS", r.Cluster.Nodes))
	}
	if r.Single != nil {
		cols = append(cols, r.Single)
		heads = append(heads, "1 node")
	}
	return cols, heads
}

// writeTable writes one run's table.
func writeTable(b *strings.Builder, c config, r *results) {
	cols, heads := columns(r)
	row := func(name string, f func(s *setupResult) string) {
		fmt.Fprintf(b, "| %s |", name)
		for _, s := range cols {
			fmt.Fprintf(b, " %s |", f(s))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(b, "| |%s\n|---|%s\n", " "+strings.Join(heads, " | ")+" |", strings.Repeat("---|", len(cols)))
	row("clients held (authenticated)", func(s *setupResult) string {
		return fmt.Sprintf("%s (%s)", thousands(s.Clients), thousands(s.Authd))
	})
	row(fmt.Sprintf("time to connect and register them (%d at a time)", c.Conc), func(s *setupResult) string {
		return fmt.Sprintf("%.1f s (%s/s)", s.Connect.Seconds(), thousands(int(float64(s.Clients)/s.Connect.Seconds())))
	})
	row("nodes' RSS, no clients → clients (after GC)", func(s *setupResult) string {
		return fmt.Sprintf("%s → %s", mibs(s.Base), mibs(s.Loaded))
	})
	row("**resident memory per client** (RSS delta / clients)", func(s *setupResult) string {
		return "**" + perClient(s, s.Loaded) + "**"
	})
	row("same, before the GC", func(s *setupResult) string { return perClient(s, s.LoadedNoGC) })
	perClientOf := func(s *setupResult, f func(procReport) uint64) string {
		var d int64
		for i := range s.Loaded {
			d += int64(f(s.Loaded[i])) - int64(f(s.Base[i]))
		}
		return kib(float64(d) / float64(s.Clients))
	}
	row("of which Go heap in use / goroutine stacks, per client (after GC)", func(s *setupResult) string {
		return perClientOf(s, func(r procReport) uint64 { return r.HeapInuse }) + " / " + perClientOf(s, func(r procReport) uint64 { return r.StackInuse })
	})
	row("goroutines per client", func(s *setupResult) string {
		var d int
		for i := range s.Loaded {
			d += s.Loaded[i].Goroutines - s.Base[i].Goroutines
		}
		return fmt.Sprintf("%.2f", float64(d)/float64(s.Clients))
	})
	row("NATS process RSS, no clients → clients", func(s *setupResult) string {
		if s.Nodes == 1 {
			return "—"
		}
		return fmt.Sprintf("%.1f → %.1f MiB", mib(s.NATSBase.RSS), mib(s.NATSLoaded.RSS))
	})
	kinds := []struct {
		name string
		f    func(s *setupResult) *forwardResult
	}{
		{"different nodes", func(s *setupResult) *forwardResult {
			if s.Nodes == 1 {
				return nil
			}
			return &s.Cross
		}},
		{"the same node", func(s *setupResult) *forwardResult { return &s.Same }},
	}
	for _, k := range kinds {
		row(fmt.Sprintf("**signals/s sustained, clients on %s** (evenly spaced, p99 < %v, none lost)", k.name, sustainP99), func(s *setupResult) string {
			if f := k.f(s); f != nil {
				return "**" + thousands(int(f.Sustained)) + "**"
			}
			return "—"
		})
		row(fmt.Sprintf("signals/s in bursts, clients on %s (%d in flight per pair; the load offers %s/s at most)", k.name, c.Window, thousands(int(float64(c.Pairs)*c.MaxRate))), func(s *setupResult) string {
			if f := k.f(s); f != nil {
				return thousands(int(f.Burst.Rate))
			}
			return "—"
		})
		row(fmt.Sprintf("**forward latency p50 / p99** (p99.9, max) at half the sustained rate, %s", k.name), func(s *setupResult) string {
			if f := k.f(s); f != nil {
				return latency(f.Lat)
			}
			return "—"
		})
	}
	row("signals lost in the forwarding phases (sent − received)", func(s *setupResult) string {
		var l uint64
		for _, f := range []forwardResult{s.Cross, s.Same} {
			for _, p := range append([]phaseResult{f.Burst, f.Lat}, f.Steps...) {
				l += p.Sent - min(p.Sent, p.Received)
			}
		}
		return fmt.Sprintf("%d; server drops: %s", l, drops(s.Drops))
	})
	row("**dead node's identities released**: the others see it dead", func(s *setupResult) string {
		if s.Death == nil {
			return "—"
		}
		var ts []string
		for _, t := range s.Death.SeenDead {
			ts = append(ts, secs(t))
		}
		return "**" + strings.Join(ts, ", ") + "**"
	})
	row("its identity (unsigned key) taken by another key on another node", func(s *setupResult) string {
		if s.Death == nil {
			return "—"
		}
		refused := "refused before the kill"
		if !s.Death.RefusedBefore {
			refused = "NOT refused before the kill"
		}
		return fmt.Sprintf("%s (%s; %s identities on the node)", secs(s.Death.Taken), refused, thousands(s.Death.Identities))
	})
}

// writeMethod writes how each figure was taken.
func writeMethod(b *strings.Builder, c config, r *results) {
	fmt.Fprintf(b, `
How it was measured (sigbench run; see docs/benchmarks.md):

- Each signaling node is a process of its own (`+"`sigbench node`"+`: a signaling.Server with
  default limits, except MaxClients %s and AllowUnsigned for the probe of the death phase);
  the cluster's NATS is a third kind of process holding %d embedded nats-server servers
  routed to each other, one per node (`+"`sigbench nats`"+`); the clients are held by the
  driver process (those of the forwarding phases) and by holder processes of 10,000 at most
  (`+"`sigbench hold`"+`), so the RSS figures are the nodes' alone. Everything shares this machine's
  CPUs: the load generator competes with the nodes and NATS.
- Clients speak the protocols on raw TCP from 127.1.x.y source addresses (at most %d per
  source, the server allowing 128); client i is on node i %% nodes; %.0f%% of them, evenly
  spread, authenticate with CA-signed certificates (an Ed25519 proof), the others use GNS's
  trivial protocol; each client is one TCP connection, idle unless in a pair. Idle
  clients send an empty line (a keepalive) every 20 s, as netmsg's clients do every 30 s, so
  that the server's TCP keepalive probes to clients that connected in the same seconds do not
  go out together (on loopback, while the forwarding phases keep the CPUs busy, such a burst
  of probes overflows the loopback's backlog, and the server drops the clients as dead).
  Memory is VmRSS after runtime.GC and debug.FreeOSMemory in each node, with clients minus
  without.
- Forwarding: %d sender-receiver pairs, %d-byte signals, one write per signal. In bursts: at
  most %d in flight per pair and %.0f/s per sender (under the server's 200/s per client), %v
  warm-up, then the signals received over %v. Sustained: the pairs send evenly spaced at a
  given rate for %v after %v; the rate is found by bisection (log scale, %d steps) between a
  sixteenth of the burst rate and all of it, as the highest with p99 under %v and nothing
  lost in one of two tries (other work on the machine can spoil one); each step starts once
  the previous one's signals have all arrived. Latency: the same pairs send at half the
  sustained rate, evenly spaced, for %v after %v; it is from the sender's write to the
  receiver's read (one process, one clock).
- Death: the last node is killed (SIGKILL) while it holds its clients and a probe identity
  registered with an unsigned certificate (bound to its key while held). Times are from the
  kill until each surviving node's NodesLost grows (polled every 5 ms), and until a client
  with another key registers the probe identity on node 0 (tried every 10 ms). Heartbeat
  %s, DeadAfter %s.
`, thousands(c.Clients+1000), c.Nodes, perSource, 100*c.AuthShare, c.Pairs, blobSize, c.Window, c.MaxRate, c.Warm, c.Dur, c.Step, c.Warm/2, c.Steps, sustainP99, c.Dur, c.Warm,
		orDefault(c.Heartbeat, "1 s (default)"), orDefault(c.DeadAfter, "3 heartbeats (default)"))
	for _, s := range []*setupResult{r.Cluster, r.Single} {
		if s != nil && s.Capped {
			fmt.Fprintf(b, "- %d node(s) hold %s clients, not %s: one process may open %d files at most here (RLIMIT_NOFILE's hard limit, which this machine does not let a process raise).\n",
				s.Nodes, thousands(s.Clients), thousands(c.Clients), r.Nofile)
		}
	}
}

func orDefault(d time.Duration, def string) string {
	if d <= 0 {
		return def
	}
	return d.String()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func mibs(rs []procReport) string {
	var parts []string
	var sum int64
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%.0f", mib(r.RSS)))
		sum += r.RSS
	}
	if len(rs) == 1 {
		return fmt.Sprintf("%.1f MiB", mib(sum))
	}
	return fmt.Sprintf("%s = %.0f MiB", strings.Join(parts, "+"), mib(sum))
}

func perClient(s *setupResult, loaded []procReport) string {
	return kib(perClientBytes(s, loaded))
}

// perClientBytes is the nodes' RSS delta per client.
func perClientBytes(s *setupResult, loaded []procReport) float64 {
	var d int64
	for i := range loaded {
		d += loaded[i].RSS - s.Base[i].RSS
	}
	return float64(d) / float64(s.Clients)
}

func kib(b float64) string { return fmt.Sprintf("%.1f KiB", b/1024) }

func latency(p phaseResult) string {
	if p.Samples == 0 {
		return "no samples"
	}
	return fmt.Sprintf("%s / %s (%s, %s) at %s/s", ms(p.P50), ms(p.P99), ms(p.P999), ms(p.Max), thousands(int(p.Rate)))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/1e6) }

func secs(d time.Duration) string {
	if d < 0 {
		return "never (30 s)"
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func drops(m map[string]uint64) string {
	var parts []string
	for _, k := range []string{"queue", "rate-limited", "no-recipient", "nats-queue", "malformed", "idle-timeouts", "slow-readers"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// thousands writes n with commas: 20,000.
func thousands(n int) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + thousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// writeSummary writes the main figures of several runs: median (min-max)
// per setup.
func writeSummary(b *strings.Builder, rs []*results) {
	_, heads := columns(rs[0])
	rate := func(v float64) string { return thousands(int(v)) }
	msf := func(v float64) string { return fmt.Sprintf("%.2f ms", v) }
	cross := func(f func(*forwardResult) float64) func(*setupResult) (float64, bool) {
		return func(s *setupResult) (float64, bool) { return f(&s.Cross), s.Nodes > 1 }
	}
	same := func(f func(*forwardResult) float64) func(*setupResult) (float64, bool) {
		return func(s *setupResult) (float64, bool) { return f(&s.Same), true }
	}
	sustained := func(f *forwardResult) float64 { return f.Sustained }
	burst := func(f *forwardResult) float64 { return f.Burst.Rate }
	p50 := func(f *forwardResult) float64 { return float64(f.Lat.P50) / 1e6 }
	p99 := func(f *forwardResult) float64 { return float64(f.Lat.P99) / 1e6 }
	rows := []struct {
		name string
		f    func(*setupResult) (float64, bool)
		fmt  func(float64) string
	}{
		{"resident memory per client (after GC)", func(s *setupResult) (float64, bool) { return perClientBytes(s, s.Loaded), true }, func(v float64) string { return kib(v) }},
		{"signals/s sustained, different nodes", cross(sustained), rate},
		{"signals/s sustained, same node", same(sustained), rate},
		{"signals/s in bursts, different nodes", cross(burst), rate},
		{"signals/s in bursts, same node", same(burst), rate},
		{"forward latency p50 at half the sustained rate, different nodes", cross(p50), msf},
		{"forward latency p99 at half the sustained rate, different nodes", cross(p99), msf},
		{"forward latency p50 at half the sustained rate, same node", same(p50), msf},
		{"forward latency p99 at half the sustained rate, same node", same(p99), msf},
		{"dead node's identities released (the later survivor)", func(s *setupResult) (float64, bool) {
			if s.Death == nil {
				return 0, false
			}
			return slices.Max(s.Death.SeenDead).Seconds(), true
		}, func(v float64) string { return fmt.Sprintf("%.2f s", v) }},
	}
	fmt.Fprintf(b, "| |%s\n|---|%s\n", " "+strings.Join(heads, " | ")+" |", strings.Repeat("---|", len(heads)))
	for _, row := range rows {
		fmt.Fprintf(b, "| %s |", row.name)
		for col := range heads {
			var vs []float64
			for _, r := range rs {
				cols, _ := columns(r)
				if v, ok := row.f(cols[col]); ok {
					vs = append(vs, v)
				}
			}
			if len(vs) == 0 {
				b.WriteString(" — |")
				continue
			}
			slices.Sort(vs)
			fmt.Fprintf(b, " %s (%s-%s) |", row.fmt(median(vs)), row.fmt(vs[0]), row.fmt(vs[len(vs)-1]))
		}
		b.WriteString("\n")
	}
}

// median of sorted vs.
func median(vs []float64) float64 {
	n := len(vs)
	if n%2 == 1 {
		return vs[n/2]
	}
	return (vs[n/2-1] + vs[n/2]) / 2
}
