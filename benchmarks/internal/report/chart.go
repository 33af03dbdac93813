package report

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/steernet/steer/benchmarks/internal/stats"
)

// Chart draws medians of throughput and RR latency per variant into an SVG file (PNG when path
// ends in .png): the secondary-path variants, then the primary path without and with Steer
// ("eth0: ..."), then a Service's client to its backend ("Service: ..."). A variant that fails is a zero bar marked "(fails)"; ranges are in the tables.
func Chart(r *Report, path string) error {
	variants, series := chartSeries(r)
	if len(variants) == 0 {
		return errors.New("no dataplane figures")
	}
	tput, err := bars("Throughput, one TCP stream", "Gbit/s", variants, series,
		[]Metric{Fwd, Rev}, []string{"client→pod (a→b)", "pod→client (b→a)"})
	if err != nil {
		return err
	}
	lat, err := bars("Request/response latency, p50", "µs", variants, series,
		[]Metric{UDP50, TCP50}, []string{"UDP", "TCP"})
	if err != nil {
		return err
	}
	w, h := 9*vg.Inch, 8*vg.Inch
	var img interface {
		vg.CanvasSizer
		io.WriterTo
	} = vgsvg.New(w, h)
	if strings.HasSuffix(path, ".png") {
		img = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
	}
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(8), PadBottom: vg.Points(8),
		PadLeft: vg.Points(8), PadRight: vg.Points(8), PadY: vg.Points(16)}
	cs := plot.Align([][]*plot.Plot{{tput}, {lat}}, tiles, dc)
	tput.Draw(cs[0][0])
	lat.Draw(cs[1][0])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := img.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// chartSeries lists the variants of both path sets with their series.
func chartSeries(r *Report) ([]string, map[string]map[Metric]stats.Series) {
	var names []string
	all := map[string]map[Metric]stats.Series{}
	sets := []struct {
		p      *PathSet
		prefix string
	}{{r.Secondary, ""}, {r.Primary, "eth0: "}}
	if r.Service != nil {
		sets = append(sets, struct {
			p      *PathSet
			prefix string
		}{r.Service.Paths, "Service: "})
	}
	for _, set := range sets {
		if set.p == nil {
			continue
		}
		for _, v := range set.p.Variants {
			names = append(names, set.prefix+v)
			all[set.prefix+v] = set.p.Series[v]
		}
	}
	return names, all
}

// bars is a grouped bar chart of two metrics' medians. A tick names what fails for a variant.
func bars(title, unit string, variants []string, series map[string]map[Metric]stats.Series, ms []Metric, legend []string) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = unit
	p.Legend.Top = true
	const width = vg.Length(14)
	failing := make([][]string, len(variants))
	top := 0.0
	for i, m := range ms {
		vals := make(plotter.Values, len(variants))
		for j, v := range variants {
			if vs := series[v][m].Values(); len(vs) > 0 {
				vals[j] = stats.Summarise(vs).Median
				top = max(top, vals[j])
			} else if len(series[v][m]) > 0 {
				failing[j] = append(failing[j], legend[i])
			}
		}
		b, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return nil, err
		}
		b.Offset = width * vg.Length(2*i-1) / 2
		b.Color = plotutil.Color(i)
		b.LineStyle.Width = 0
		p.Add(b)
		p.Legend.Add(legend[i], b)
	}
	ticks := make([]string, len(variants))
	for j, v := range variants {
		switch len(failing[j]) {
		case 0:
			ticks[j] = v
		case len(ms):
			ticks[j] = v + " (fails)"
		default:
			ticks[j] = fmt.Sprintf("%s (%s fails)", v, strings.Join(failing[j], ", "))
		}
	}
	p.NominalX(ticks...)
	p.X.Tick.Label.Rotation = 0.35
	p.X.Tick.Label.XAlign = draw.XRight
	p.Y.Min, p.Y.Max = 0, top*1.25 // room for the legend above the bars
	p.Add(plotter.NewGrid())
	return p, nil
}
