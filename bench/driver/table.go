package driver

import (
	"fmt"
	"slices"
	"strings"

	"github.com/netmsg-go/netmsg/bench/workload"
)

// Stat is a median with its min and max over the runs.
type Stat struct {
	Median float64 `json:"median"`
	Min    float64 `json:"min"`
	Max    float64 `json:"max"`
	N      int     `json:"n"`
}

func stat(v []float64) Stat {
	if len(v) == 0 {
		return Stat{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Stat{Median: m, Min: s[0], Max: s[len(s)-1], N: len(s)}
}

// Cell is the summary of one peer on one workload.
type Cell struct {
	Peer        string `json:"peer"`
	Workload    string `json:"workload"`
	Delivery    string `json:"delivery,omitempty"`
	Unsupported string `json:"unsupported,omitempty"`
	Failed      int    `json:"failed,omitempty"`
	FirstError  string `json:"first_error,omitempty"`
	// Main is the workload's figure: msg/s (W1, W5), MB/s (W2, W3),
	// RTT p50 µs (W4). Second is RTT p99 µs (W4) or % lost (W5 and
	// unreliable W1-W3).
	Main   Stat `json:"main"`
	Second Stat `json:"second"`
	// Ratio is Main divided by the baseline's Main in the same run.
	Ratio Stat `json:"ratio_to_baseline"`
}

// main and second figures of a result for its workload.
func figures(r workload.Result) (main, second float64) {
	switch r.Workload {
	case "W1", "W5":
		return r.MsgsPerSec, r.LostPct
	case "W4", "W6b":
		return r.RTTP50us, r.RTTP99us
	default:
		return r.MBPerSec, r.LostPct
	}
}

// Summarize reduces the records to one Cell per peer and workload, in the
// order given.
func Summarize(recs []Record, peers, workloads []string, baseline string) []Cell {
	type key struct {
		run int
		w   string
	}
	base := map[key]float64{}
	for _, rc := range recs {
		r := rc.Result
		if r.Peer == baseline && r.Error == "" && r.Unsupported == "" {
			m, _ := figures(r)
			base[key{rc.Run, r.Workload}] = m
		}
	}
	var cells []Cell
	for _, w := range workloads {
		for _, p := range peers {
			c := Cell{Peer: p, Workload: w}
			var mains, seconds, ratios []float64
			for _, rc := range recs {
				r := rc.Result
				if r.Peer != p || r.Workload != w {
					continue
				}
				if r.Unsupported != "" {
					c.Unsupported = r.Unsupported
					continue
				}
				if r.Error != "" {
					c.Failed++
					if c.FirstError == "" {
						c.FirstError = r.Error
					}
					continue
				}
				c.Delivery = r.Delivery
				m, s := figures(r)
				mains = append(mains, m)
				seconds = append(seconds, s)
				if b, ok := base[key{rc.Run, w}]; ok && b > 0 {
					ratios = append(ratios, m/b)
				}
			}
			c.Main, c.Second, c.Ratio = stat(mains), stat(seconds), stat(ratios)
			cells = append(cells, c)
		}
	}
	return cells
}

func group(v float64) string {
	s := fmt.Sprintf("%.0f", v)
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	return b.String()
}

func short(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.0fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}

func rng(s Stat, f func(float64) string) string {
	if s.N < 2 {
		return ""
	}
	return fmt.Sprintf(" (%s-%s)", f(s.Min), f(s.Max))
}

func f1(v float64) string { return fmt.Sprintf("%.1f", v) }
func f2(v float64) string { return fmt.Sprintf("%.2f", v) }

func (c Cell) text() string {
	return strings.Join(strings.Fields(strings.ReplaceAll(c.rawText(), "|", "/")), " ")
}

func (c Cell) rawText() string {
	switch {
	case c.Unsupported != "":
		return c.Unsupported
	case c.Main.N == 0:
		return fmt.Sprintf("FAILED (%d): %s", c.Failed, c.FirstError)
	}
	var t string
	switch c.Workload {
	case "W1":
		t = group(c.Main.Median) + rng(c.Main, short)
	case "W4", "W6b":
		t = f1(c.Main.Median) + rng(c.Main, f1) + " / " + f1(c.Second.Median) + rng(c.Second, f1)
	case "W5":
		t = group(c.Main.Median) + rng(c.Main, short) + ", " + f2(c.Second.Median) + "%" + rng(c.Second, f2) + " lost"
	default:
		t = f1(c.Main.Median) + rng(c.Main, f1)
	}
	if c.Delivery == "unreliable" && c.Workload != "W5" && c.Workload != "W4" && c.Workload != "W6b" {
		t += " unreliable, " + f2(c.Second.Median) + "%" + rng(c.Second, f2) + " lost"
	}
	if c.Workload == "W4" && c.Delivery == "unreliable" {
		t += " (unreliable)"
	}
	if c.Failed > 0 {
		t += fmt.Sprintf(" [%d of %d runs FAILED: %s]", c.Failed, c.Failed+c.Main.N, c.FirstError)
	}
	return t
}

var heads = map[string]string{
	"W1": "W1 msg/s", "W2": "W2 MB/s", "W3": "W3 MB/s",
	"W4": "W4 p50 / p99 µs", "W5": "W5 msg/s, lost",
	"W6a": "W6a MB/s (W2, 10% loss)", "W6b": "W6b p50 / p99 µs (W4, 10% loss)",
}

// Table formats the cells as two markdown tables: the figures (median
// (min-max)) and the ratios to the baseline within each run.
func Table(cells []Cell, peers, workloads []string, baseline string) string {
	by := map[[2]string]Cell{}
	for _, c := range cells {
		by[[2]string{c.Peer, c.Workload}] = c
	}
	var b strings.Builder
	b.WriteString("| peer |")
	for _, w := range workloads {
		b.WriteString(" " + heads[w] + " |")
	}
	b.WriteString("\n|---|")
	for range workloads {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, p := range peers {
		b.WriteString("| " + p + " |")
		for _, w := range workloads {
			b.WriteString(" " + by[[2]string{p, w}].text() + " |")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nRatio to %s in the same run, median (min-max): W1-W3, W5 and W6a throughput (higher is better), W4 and W6b RTT p50 (lower is better).\n\n", baseline)
	b.WriteString("| peer |")
	for _, w := range workloads {
		b.WriteString(" " + w + " |")
	}
	b.WriteString("\n|---|")
	for range workloads {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	for _, p := range peers {
		if p == baseline {
			continue
		}
		b.WriteString("| " + p + " |")
		for _, w := range workloads {
			c := by[[2]string{p, w}]
			r := c.Ratio
			if r.N == 0 {
				b.WriteString(" - |")
				continue
			}
			fmt.Fprintf(&b, " %.2fx%s |", r.Median, rng(r, f2))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// Markdown is a run's whole report: the machine and the command, the
// tables of Table, and each peer's configuration (notes, by peer name).
func Markdown(cells []Cell, peers, workloads []string, baseline string, runs int, m Machine, notes map[string]string) string {
	var b strings.Builder
	l := m.Lines()
	fmt.Fprintf(&b, "netbench, %d runs of %s x %s (figures: median (min-max) of the runs)\n\n", runs, strings.Join(peers, ","), strings.Join(workloads, ","))
	fmt.Fprintf(&b, "- machine: %s\n- date: %s\n- %s\n\n", l[0], l[1], "`"+strings.TrimPrefix(l[2], "command: ")+"`")
	b.WriteString(Table(cells, peers, workloads, baseline))
	b.WriteString("\n")
	for _, p := range peers {
		if n := notes[p]; n != "" {
			fmt.Fprintf(&b, "- %s: %s\n", p, n)
		}
	}
	b.WriteString("\n")
	return b.String()
}
