package backtest

import (
	"errors"
	"fmt"
	"image/color"
	"io"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PlotWindow is the range of minutes [From, To) that Plot draws.
type PlotWindow struct{ From, To int }

// palette colours the contenders in table order: baseline, configured, oracle, others.
var palette = []color.Color{
	color.RGBA{R: 214, G: 39, B: 40, A: 255},
	color.RGBA{R: 31, G: 119, B: 180, A: 255},
	color.RGBA{R: 90, G: 90, B: 90, A: 255},
	color.RGBA{R: 44, G: 160, B: 44, A: 255},
	color.RGBA{R: 148, G: 103, B: 189, A: 255},
}

// Plot draws, as a PNG, three aligned panels over the window: the load (requests/s), the
// Ready replicas of each contender, and each contender's SLO-violation minutes. res must
// have been recorded (Options.Record).
func Plot(w io.Writer, tr Trace, res Result, win PlotWindow, title string) error {
	if win.From < 0 || win.To > len(tr) || win.From >= win.To {
		return fmt.Errorf("plot window minutes %d..%d: must lie within the trace's %d minutes", win.From, win.To, len(tr))
	}
	if len(res.Policies) == 0 || res.Policies[0].Ready == nil {
		return errors.New("plot: the backtest was not recorded")
	}
	tpm := res.Ticks / res.Minutes
	// The x axis is in hours since the trace's start, or in minutes for up to 3 hours.
	unit, xlabel := 60.0, "hours since the trace's start"
	if win.To-win.From <= 180 {
		unit, xlabel = 1, "minutes since the trace's start"
	}
	hours := func(minute float64) float64 { return minute / unit }

	load := plot.New()
	load.Title.Text = title
	load.Y.Label.Text = "load (req/s)"
	pts := make(plotter.XYs, 0, win.To-win.From)
	for m := win.From; m < win.To; m++ {
		pts = append(pts, plotter.XY{X: hours(float64(m)), Y: tr[m] / 60})
	}
	l, err := plotter.NewLine(pts)
	if err != nil {
		return fmt.Errorf("plot load: %w", err)
	}
	l.Color = color.Black
	l.StepStyle = plotter.PostStep
	load.Add(plotter.NewGrid(), l)

	replicas := plot.New()
	replicas.Y.Label.Text = "Ready replicas"
	replicas.Legend.Top, replicas.Legend.Left = true, true
	violations := plot.New()
	violations.Y.Label.Text = "SLO violated"
	violations.X.Label.Text = xlabel
	violations.Y.Min, violations.Y.Max = -0.7, float64(len(res.Policies))-0.3
	var ticks []plot.Tick
	for i, p := range res.Policies {
		c := palette[i%len(palette)]
		pts := make(plotter.XYs, 0, (win.To-win.From)*tpm)
		for t := win.From * tpm; t < win.To*tpm; t++ {
			pts = append(pts, plotter.XY{X: hours(float64(t) / float64(tpm)), Y: float64(p.Ready[t])})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("plot replicas of %s: %w", p.Name, err)
		}
		// Wider first, so that a policy that matches the baseline leaves it visible.
		l.Color, l.Width, l.StepStyle = c, vg.Points(max(1.0, 2.4-1.2*float64(i))), plotter.PostStep
		if p.Name == OracleName {
			l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		}
		replicas.Add(l)
		replicas.Legend.Add(p.Name, l)

		// One bar per run of consecutive violation minutes, on the contender's row.
		y := float64(len(res.Policies) - 1 - i)
		ticks = append(ticks, plot.Tick{Value: y, Label: p.Name})
		for m := win.From; m < win.To; {
			if !p.Violation[m] {
				m++
				continue
			}
			end := m
			for end < win.To && p.Violation[end] {
				end++
			}
			bar, err := plotter.NewLine(plotter.XYs{{X: hours(float64(m)), Y: y}, {X: hours(float64(end)), Y: y}})
			if err != nil {
				return fmt.Errorf("plot violations of %s: %w", p.Name, err)
			}
			bar.Color, bar.Width = c, vg.Points(9)
			violations.Add(bar)
			m = end
		}
	}
	replicas.Add(plotter.NewGrid())
	violations.Y.Tick.Marker = plot.ConstantTicks(ticks)
	xmin, xmax := hours(float64(win.From)), hours(float64(win.To))
	for _, p := range []*plot.Plot{load, replicas, violations} {
		p.X.Min, p.X.Max = xmin, xmax
	}

	const width, height = 12 * vg.Inch, 8 * vg.Inch
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(100))
	dc := draw.New(img)
	// Heights 40%, 40%, 20%: split the canvas by hand, then align the y axes.
	top := draw.Crop(dc, 0, 0, height*0.6, 0)
	mid := draw.Crop(dc, 0, 0, height*0.2, -height*0.4)
	bot := draw.Crop(dc, 0, 0, 0, -height*0.8)
	pad := vg.Points(6)
	canvases := []draw.Canvas{top, mid, bot}
	plots := []*plot.Plot{load, replicas, violations}
	// Align the data areas: the widest y axis sets the left margin of all three.
	var left vg.Length
	for i, p := range plots {
		dca := draw.Crop(canvases[i], pad, -pad, pad, -pad)
		canvases[i] = dca
		left = max(left, p.DataCanvas(dca).Min.X-dca.Min.X)
	}
	for i, p := range plots {
		shift := left - (p.DataCanvas(canvases[i]).Min.X - canvases[i].Min.X)
		p.Draw(draw.Crop(canvases[i], shift, 0, 0, 0))
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("write plot: %w", err)
	}
	return nil
}
