package backtest

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// PlotFronts draws, as a PNG, GPU-hours (x) against SLO-violation minutes (y): every HPA
// setting of c (grey) and their Pareto front (a line), the configured policy's front over
// budgets (a line) and the policy as written (highlighted), the oracle, and horizontal lines
// at the budget and at the benchmark budget B. The y axis ends a little above the larger of
// 4 x B and 1.5 x the configured policy's violation minutes; the points above it are
// counted in the title.
func PlotFronts(w io.Writer, c Comparison, title string) error {
	yMax := max(4*c.Criterion.B, 1.5*float64(c.Configured.SLOViolationMinutes), float64(c.BudgetMinutes))
	yMax = math.Max(1.1*yMax, 5)
	xy := func(o Outcome) plotter.XY { return plotter.XY{X: o.GPUHours, Y: float64(o.SLOViolationMinutes)} }

	p := plot.New()
	p.X.Label.Text = "GPU-hours"
	p.Y.Label.Text = "SLO-violation minutes"
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	var grid plotter.XYs
	above, aboveFront := 0, 0
	for _, s := range c.HPA {
		if float64(s.SLOViolationMinutes) > yMax {
			above++
			continue
		}
		grid = append(grid, xy(s.Outcome))
	}
	p.Title.Text = fmt.Sprintf("%s\n%d HPA settings and their Pareto front, %s", title, len(c.HPA), c.Configured.Name)
	grey, red, blue := color.RGBA{R: 170, G: 170, B: 170, A: 255}, palette[0], palette[1]
	if len(grid) > 0 {
		s, err := plotter.NewScatter(grid)
		if err != nil {
			return fmt.Errorf("plot hpa settings: %w", err)
		}
		s.Color, s.Radius = grey, vg.Points(2.5)
		p.Add(s)
		p.Legend.Add("HPA settings", s)
	}
	var front plotter.XYs
	for _, i := range c.HPAFront {
		if float64(c.HPA[i].SLOViolationMinutes) <= yMax {
			front = append(front, xy(c.HPA[i].Outcome))
		}
	}
	if len(front) > 0 {
		l, s, err := plotter.NewLinePoints(front)
		if err != nil {
			return fmt.Errorf("plot hpa front: %w", err)
		}
		l.Color, s.Color, s.Radius = red, red, vg.Points(2.5)
		p.Add(l, s)
		p.Legend.Add("HPA Pareto front", l, s)
	}
	var pts plotter.XYs
	for _, f := range c.Front {
		if float64(f.SLOViolationMinutes) <= yMax {
			pts = append(pts, xy(f.Outcome))
		} else {
			aboveFront++
		}
	}
	if len(pts) > 0 {
		l, s, err := plotter.NewLinePoints(pts)
		if err != nil {
			return fmt.Errorf("plot %s front: %w", c.Configured.Name, err)
		}
		l.Color, s.Color, s.Radius = blue, blue, vg.Points(2.5)
		p.Add(l, s)
		p.Legend.Add(c.Configured.Name+" front (objective budgets)", l, s)
	}
	if above+aboveFront > 0 {
		p.Title.Text += fmt.Sprintf("; above %.0f minutes, not shown: %d HPA settings, %d of the %s front", yMax, above, aboveFront, c.Configured.Name)
	}
	for _, m := range []struct {
		name  string
		o     Outcome
		color color.Color
		shape draw.GlyphDrawer
	}{
		{c.Configured.Name + " as written", c.Configured.Outcome, blue, draw.PyramidGlyph{}},
		{OracleName, c.Oracle, color.Black, draw.BoxGlyph{}},
	} {
		s, err := plotter.NewScatter(plotter.XYs{xy(m.o)})
		if err != nil {
			return fmt.Errorf("plot %s: %w", m.name, err)
		}
		s.Color, s.Shape, s.Radius = m.color, m.shape, vg.Points(6)
		p.Add(s)
		p.Legend.Add(m.name, s)
	}
	p.Y.Min, p.Y.Max = 0, yMax
	xMin, xMax := p.X.Min, p.X.Max
	for _, h := range []struct {
		name   string
		y      float64
		dashed bool
	}{
		{fmt.Sprintf("budget: %d minutes", c.BudgetMinutes), float64(c.BudgetMinutes), false},
		{fmt.Sprintf("B: %s minutes", strconv.FormatFloat(math.Round(100*c.Criterion.B)/100, 'f', -1, 64)), c.Criterion.B, true},
	} {
		l, err := plotter.NewLine(plotter.XYs{{X: xMin, Y: h.y}, {X: xMax, Y: h.y}})
		if err != nil {
			return fmt.Errorf("plot %s: %w", h.name, err)
		}
		l.Color = color.RGBA{R: 44, G: 160, B: 44, A: 255}
		if h.dashed {
			l.Dashes = []vg.Length{vg.Points(5), vg.Points(3)}
		}
		p.Add(l)
		p.Legend.Add(h.name, l)
	}

	img := vgimg.NewWith(vgimg.UseWH(9*vg.Inch, 6*vg.Inch), vgimg.UseDPI(100))
	p.Draw(draw.New(img))
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("write fronts plot: %w", err)
	}
	return nil
}
