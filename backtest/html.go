package backtest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"math"
)

var reportPage = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>prescale backtest: {{.Title}}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{padding:.3em .8em;border-bottom:1px solid #ccc;text-align:right}td:first-child,th:first-child{text-align:left}</style>
</head><body>
<h1>prescale backtest</h1>
<p><b>{{.Title}}</b>: {{.Summary}}</p>
<table><tr><th>policy</th><th>GPU-hours</th><th>x oracle</th><th>under-provisioned min</th><th>SLO-violation min</th><th>scale events</th><th>peak queue</th><th>p99 queueing delay</th></tr>
{{range .Rows}}<tr><td>{{.Name}}</td><td>{{printf "%.1f" .GPUHours}}</td><td>{{.Ratio}}</td><td>{{.UnderProvisionedMinutes}}</td><td>{{.SLOViolationMinutes}}</td><td>{{.ScaleEvents}}</td><td>{{printf "%.0f" .PeakQueue}}</td><td>{{printf "%.2f" .P99}} s</td></tr>
{{end}}</table>
{{if .PNG}}<p><img alt="load, Ready replicas and SLO violations" src="data:image/png;base64,{{.PNG}}" width="1200"></p>{{end}}
{{if .Objective}}<h2>Objective</h2>
<pre>{{.Objective}}</pre>
{{if .Fronts}}<p><img alt="GPU-hours against SLO-violation minutes: the HPA settings and their Pareto front, the policy's front over objective budgets, the oracle" src="data:image/png;base64,{{.Fronts}}" width="900"></p>{{end}}
<h3>HPA Pareto front</h3>
<table><tr><th>setting</th><th>GPU-hours</th><th>SLO-violation min</th><th>scale events</th></tr>
{{range .HPAFront}}<tr><td>{{.}}</td><td>{{printf "%.1f" .GPUHours}}</td><td>{{.SLOViolationMinutes}}</td><td>{{.ScaleEvents}}</td></tr>
{{end}}</table>
{{if .Front}}<h3>{{.Name}} front: its objective's budget replaced</h3>
<table><tr><th>budget</th><th>GPU-hours</th><th>SLO-violation min</th><th>scale events</th></tr>
{{range .Front}}<tr><td>{{printf "%.3g" .Percent}}%</td><td>{{printf "%.1f" .GPUHours}}</td><td>{{.SLOViolationMinutes}}</td><td>{{.ScaleEvents}}</td></tr>
{{end}}</table>{{end}}{{end}}
</body></html>
`))

// Report is what WriteHTML shows.
type Report struct {
	Title, Summary string
	Result         Result
	// PNG is the plot of Plot, left out when empty.
	PNG []byte
	// Comparison, when set, adds the objective's answer (WriteComparison), the fronts'
	// tables and FrontsPNG, the plot of PlotFronts.
	Comparison *Comparison
	FrontsPNG  []byte
}

// WriteHTML writes a self-contained HTML report: the summary line, the table of WriteTable,
// the plot (a PNG, embedded) when there is one, and the objective comparison when there is
// one.
func WriteHTML(w io.Writer, r Report) error {
	type row struct {
		PolicyResult
		Ratio string
		P99   float64
	}
	type frontRow struct {
		FrontPoint
		Percent float64
	}
	res := r.Result
	oracleHours := math.NaN()
	if o, ok := res.Policy(OracleName); ok {
		oracleHours = o.GPUHours
	}
	data := struct {
		Title, Summary string
		Rows           []row
		PNG, Fronts    template.URL
		Objective      string
		Name           string
		HPAFront       []HPASetting
		Front          []frontRow
	}{Title: r.Title, Summary: r.Summary}
	for _, p := range res.Policies {
		row := row{PolicyResult: p, Ratio: "-", P99: float64(p.P99QueueingDelay)}
		if oracleHours > 0 {
			row.Ratio = fmt.Sprintf("%.3f", p.GPUHours/oracleHours)
		}
		data.Rows = append(data.Rows, row)
	}
	if len(r.PNG) > 0 {
		data.PNG = template.URL(base64.StdEncoding.EncodeToString(r.PNG))
	}
	if c := r.Comparison; c != nil {
		var text bytes.Buffer
		if err := WriteComparison(&text, *c); err != nil {
			return err
		}
		data.Objective, data.Name = text.String(), c.Configured.Name
		for _, i := range c.HPAFront {
			data.HPAFront = append(data.HPAFront, c.HPA[i])
		}
		for _, f := range c.Front {
			data.Front = append(data.Front, frontRow{FrontPoint: f, Percent: 100 * f.Budget})
		}
		if len(r.FrontsPNG) > 0 {
			data.Fronts = template.URL(base64.StdEncoding.EncodeToString(r.FrontsPNG))
		}
	}
	if err := reportPage.Execute(w, data); err != nil {
		return fmt.Errorf("write html report: %w", err)
	}
	return nil
}
