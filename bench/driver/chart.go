package driver

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// lowerIsBetter reports whether a workload's main figure is a time (W4,
// W6b: RTT p50), so that its chart bar is the baseline's figure divided by
// the peer's.
func lowerIsBetter(w string) bool { return w == "W4" || w == "W6b" }

// chartRatio is a cell's bar: its ratio to the baseline in the same run,
// inverted for lowerIsBetter workloads so that higher is better everywhere;
// ok is false when the cell has no ratio.
func chartRatio(c Cell) (s Stat, ok bool) {
	r := c.Ratio
	if r.N == 0 || r.Median <= 0 {
		return Stat{}, false
	}
	if !lowerIsBetter(c.Workload) {
		return r, true
	}
	return Stat{Median: 1 / r.Median, Min: 1 / r.Max, Max: 1 / r.Min, N: r.N}, true
}

// palette is the peers' bar colours, in the order of the peers.
var palette = []color.RGBA{
	{0x4e, 0x79, 0xa7, 0xff}, {0xf2, 0x8e, 0x2b, 0xff}, {0xe1, 0x57, 0x59, 0xff},
	{0x76, 0xb7, 0xb2, 0xff}, {0x59, 0xa1, 0x4f, 0xff}, {0xed, 0xc9, 0x48, 0xff},
	{0xb0, 0x7a, 0xa1, 0xff}, {0xff, 0x9d, 0xa7, 0xff}, {0x9c, 0x75, 0x5f, 0xff},
}

// Chart writes a grouped bar chart of the cells: per workload, one bar per
// peer, its figure as a ratio to the baseline's in the same run (median of
// the runs, written above the bar with the min-max), inverted
// for the RTT workloads so that higher is better everywhere. The machine
// is written under the plot. format is "svg", "png" or "pdf".
func Chart(w io.Writer, format string, cells []Cell, peers, workloads []string, baseline string, m Machine) error {
	by := map[[2]string]Cell{}
	for _, c := range cells {
		by[[2]string{c.Peer, c.Workload}] = c
	}
	p := plot.New()
	runs := 0
	for _, c := range cells {
		runs = max(runs, c.Ratio.N)
	}
	p.Title.Text = fmt.Sprintf("netbench: each peer's figure / %s's in the same run\nmedian of %d runs, (min-max) above each bar; RTT workloads: %s's p50 / the peer's", baseline, runs, baseline)
	p.Title.TextStyle.Font.Size = vg.Points(11)
	p.Y.Label.Text = fmt.Sprintf("x %s (higher is better)", baseline)
	p.X.Label.Text = strings.Join(wrap(m.Lines(), 110), "\n")
	p.X.Label.TextStyle.Font.Size = vg.Points(8)
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.TextStyle.Font.Size = vg.Points(9)
	p.Add(plotter.NewGrid())

	names := make([]string, len(workloads))
	for i, wl := range workloads {
		names[i] = wl
		if lowerIsBetter(wl) {
			names[i] = wl + " (1/RTT p50)"
		}
	}
	barW := vg.Points(math.Max(4, math.Min(18, 300/float64(len(peers)*max(1, len(workloads))))))
	ymax := 1.0
	for i, pe := range peers {
		vals := make(plotter.Values, len(workloads))
		var lbl plotter.XYLabels
		for j, wl := range workloads {
			c := by[[2]string{pe, wl}]
			s, ok := chartRatio(c)
			if !ok {
				// No bar: unsupported, failed or unavailable.
				lbl.XYs = append(lbl.XYs, plotter.XY{X: float64(j), Y: 0})
				lbl.Labels = append(lbl.Labels, "-")
				continue
			}
			vals[j] = s.Median
			ymax = math.Max(ymax, s.Median)
			lbl.XYs = append(lbl.XYs, plotter.XY{X: float64(j), Y: s.Median})
			t := fmt.Sprintf("%.2f", s.Median)
			if s.N > 1 {
				t += fmt.Sprintf(" (%.2f-%.2f)", s.Min, s.Max)
			}
			lbl.Labels = append(lbl.Labels, t)
		}
		bars, err := plotter.NewBarChart(vals, barW)
		if err != nil {
			return err
		}
		bars.Color = palette[i%len(palette)]
		bars.LineStyle.Width = 0
		bars.Offset = barW * vg.Length(float64(i)-float64(len(peers)-1)/2)
		p.Add(bars)
		p.Legend.Add(pe, bars)
		if len(lbl.XYs) > 0 {
			l, err := plotter.NewLabels(lbl)
			if err != nil {
				return err
			}
			for k := range l.TextStyle {
				l.TextStyle[k].Font.Size = vg.Points(6)
				l.TextStyle[k].Rotation = math.Pi / 2
				l.TextStyle[k].XAlign = draw.XLeft
				l.TextStyle[k].YAlign = draw.YCenter
			}
			l.Offset = vg.Point{X: bars.Offset, Y: vg.Points(2)}
			p.Add(l)
		}
	}
	one := plotter.NewFunction(func(float64) float64 { return 1 })
	one.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	one.LineStyle.Color = color.Gray{0x60}
	p.Add(one)
	p.Y.Max = ymax * 1.6 // room for the labels and the legend
	p.NominalX(names...)
	wd := vg.Length(math.Max(22, 3.2*float64(len(workloads))*math.Max(1, float64(len(peers))/4))) * vg.Centimeter
	wt, err := p.WriterTo(wd, 14*vg.Centimeter, format)
	if err != nil {
		return err
	}
	_, err = wt.WriteTo(w)
	return err
}

// wrap breaks lines longer than n at spaces.
func wrap(lines []string, n int) []string {
	var out []string
	for _, l := range lines {
		for len(l) > n {
			i := strings.LastIndex(l[:n], " ")
			if i <= 0 {
				break
			}
			out = append(out, l[:i])
			l = "    " + l[i+1:]
		}
		out = append(out, l)
	}
	return out
}
