package backtest

import (
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
</body></html>
`))

// WriteHTML writes a self-contained HTML report: the summary line, the table of WriteTable,
// and the plot (a PNG, embedded) when png is not empty.
func WriteHTML(w io.Writer, title, summary string, res Result, png []byte) error {
	type row struct {
		PolicyResult
		Ratio string
		P99   float64
	}
	oracleHours := math.NaN()
	if o, ok := res.Policy(OracleName); ok {
		oracleHours = o.GPUHours
	}
	data := struct {
		Title, Summary string
		Rows           []row
		PNG            template.URL
	}{Title: title, Summary: summary}
	for _, p := range res.Policies {
		r := row{PolicyResult: p, Ratio: "-", P99: float64(p.P99QueueingDelay)}
		if oracleHours > 0 {
			r.Ratio = fmt.Sprintf("%.3f", p.GPUHours/oracleHours)
		}
		data.Rows = append(data.Rows, r)
	}
	if len(png) > 0 {
		data.PNG = template.URL(base64.StdEncoding.EncodeToString(png))
	}
	if err := reportPage.Execute(w, data); err != nil {
		return fmt.Errorf("write html report: %w", err)
	}
	return nil
}
