package demo

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

var (
	hpaColor      = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	prescaleColor = color.RGBA{R: 31, G: 119, B: 180, A: 255}
)

// writePlot draws the run as a PNG at path: the load, both services' Ready replicas
// (and prescale's forecast plan), and both queueing delays against the SLO.
func writePlot(path string, res Result) error {
	if len(res.Rows) == 0 {
		return fmt.Errorf("no tick to plot")
	}
	minute := func(r Row) float64 { return r.Time.Minutes() }
	const delayCap = 60.0 // seconds: an infinite or very long delay is drawn at the top
	series := func(f func(Row) float64) plotter.XYs {
		pts := make(plotter.XYs, 0, len(res.Rows))
		for _, r := range res.Rows {
			if y := f(r); !math.IsNaN(y) {
				pts = append(pts, plotter.XY{X: minute(r), Y: y})
			}
		}
		return pts
	}
	line := func(p *plot.Plot, name string, c color.Color, width float64, dashed bool, pts plotter.XYs) error {
		if len(pts) == 0 {
			return nil
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		l.Color, l.Width, l.StepStyle = c, vg.Points(width), plotter.PostStep
		if dashed {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		p.Add(l)
		if name != "" {
			p.Legend.Add(name, l)
		}
		return nil
	}

	load := plot.New()
	load.Title.Text = fmt.Sprintf("prescale demo: the same load, a real HPA beside prescale (%d model minutes)", res.Minutes)
	load.Y.Label.Text = "load (req/s)"
	replicas := plot.New()
	replicas.Y.Label.Text = "Ready replicas"
	delay := plot.New()
	delay.Y.Label.Text = "queueing delay (s, cut at 60)"
	delay.X.Label.Text = "model minutes since the run's start"
	delay.Y.Max = delayCap
	for _, p := range []*plot.Plot{load, replicas, delay} {
		p.Legend.Top, p.Legend.Left = true, true
		p.Add(plotter.NewGrid())
	}
	clip := func(d float64) float64 { return min(d, delayCap) }
	slo := sloDelay.Seconds()
	for _, err := range []error{
		line(load, "arrivals", color.Black, 1.5, false, series(func(r Row) float64 { return r.HPA.Lambda })),
		line(replicas, "HPA", hpaColor, 2.4, false, series(func(r Row) float64 { return float64(r.HPA.Ready) })),
		line(replicas, "prescale", prescaleColor, 1.6, false, series(func(r Row) float64 { return float64(r.Prescale.Ready) })),
		line(replicas, "prescale's forecast plan", prescaleColor, 1, true, series(func(r Row) float64 {
			if !r.Planned {
				return math.NaN()
			}
			return float64(r.Forecast)
		})),
		line(delay, "HPA", hpaColor, 2.4, false, series(func(r Row) float64 { return clip(r.HPA.Delay) })),
		line(delay, "prescale", prescaleColor, 1.6, false, series(func(r Row) float64 { return clip(r.Prescale.Delay) })),
		line(delay, fmt.Sprintf("SLO %gs", slo), color.Gray{Y: 120}, 1, true, series(func(Row) float64 { return slo })),
	} {
		if err != nil {
			return err
		}
	}

	const width, height = 12 * vg.Inch, 8 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(100))
	dc := draw.New(img)
	plots := [][]*plot.Plot{{load}, {replicas}, {delay}}
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(6), PadY: vg.Points(6)}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write plot %s: %w", path, err)
	}
	return f.Close()
}
