package backtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/prescale/prescale/scaler/prom"
)

// PrometheusLoad is a load history to read from Prometheus.
type PrometheusLoad struct {
	// Client reaches Prometheus' HTTP API. prom.Options.Client builds it from the settings
	// prescale run reaches Prometheus with: URL, authentication, TLS and headers.
	Client api.Client
	// Query must give one series: the arrival rate in requests/s, e.g.
	// sum(rate(inference_requests_total[1m])).
	Query string
	// From and To bound the history; To is exclusive and From..To must be whole minutes.
	From, To time.Time
	// Step is the resolution of the range queries; it must divide a minute. 0 means 1m.
	Step time.Duration
	// PointsPerQuery caps each range query; 0 means prom.MaxPointsPerQuery.
	PointsPerQuery int
}

// LoadStats says how complete a Prometheus history was.
type LoadStats struct {
	Queries int // range queries made
	Points  int // steps asked for
	Missing int // steps without a sample, counted as 0 requests
}

// Load reads the history with range queries of at most PointsPerQuery points each, and
// returns it as a per-minute trace: each minute's count is the mean rate of its steps times
// 60. Each step [s, s+Step) takes the query's value at its end, s+Step, where a rate over
// [1m] (with Step 1m) covers exactly that minute. Steps without a sample count as 0 requests and are counted in LoadStats.Missing. A
// query that returns more than one series, a NaN or negative rate, or a failed request is an
// error.
func (l PrometheusLoad) Load(ctx context.Context) (Trace, LoadStats, error) {
	var st LoadStats
	step := l.Step
	if step == 0 {
		step = time.Minute
	}
	switch {
	case step <= 0 || time.Minute%step != 0:
		return nil, st, fmt.Errorf("step %v: must divide a minute", step)
	case !l.To.After(l.From):
		return nil, st, fmt.Errorf("range %v to %v: to must be after from", l.From, l.To)
	case l.To.Sub(l.From)%time.Minute != 0:
		return nil, st, fmt.Errorf("range %v to %v: must be whole minutes", l.From, l.To)
	}
	per := l.PointsPerQuery
	if per <= 0 || per > prom.MaxPointsPerQuery {
		per = prom.MaxPointsPerQuery
	}
	if l.Client == nil {
		return nil, st, errors.New("no prometheus client")
	}
	papi := promv1.NewAPI(l.Client)

	stepsPerMinute := int(time.Minute / step)
	st.Points = int(l.To.Sub(l.From) / step)
	sums := make([]float64, st.Points/stepsPerMinute)
	seen := make([]bool, st.Points)
	// Step i ends at From + (i+1) x Step: the steps' ends from From + Step to To.
	chunks, err := prom.Chunks(l.From.Add(step), l.To, step, per)
	if err != nil {
		return nil, st, fmt.Errorf("range query %q: %w", l.Query, err)
	}
	for _, r := range chunks {
		v, _, _, err := papi.QueryRange(ctx, l.Query, r)
		st.Queries++
		if err != nil {
			return nil, st, fmt.Errorf("range query %q from %s to %s: %w", l.Query, r.Start.UTC().Format(time.RFC3339), r.End.UTC().Format(time.RFC3339), err)
		}
		m, ok := v.(model.Matrix)
		if !ok {
			return nil, st, fmt.Errorf("range query %q: want a matrix, got %s", l.Query, v.Type())
		}
		if len(m) > 1 {
			return nil, st, fmt.Errorf("range query %q: want one series (wrap it in sum(...)), got %d", l.Query, len(m))
		}
		if len(m) == 0 {
			continue
		}
		for _, s := range m[0].Values {
			i := int(s.Timestamp.Time().Sub(l.From)/step) - 1
			rate := float64(s.Value)
			switch {
			case i < 0 || i >= st.Points:
				continue
			case math.IsNaN(rate) || math.IsInf(rate, 0) || rate < 0:
				return nil, st, fmt.Errorf("range query %q at %s: rate %v is not a finite non-negative number", l.Query, s.Timestamp.Time().UTC().Format(time.RFC3339), rate)
			}
			if !seen[i] {
				seen[i] = true
				sums[i/stepsPerMinute] += rate
			}
		}
	}
	for _, ok := range seen {
		if !ok {
			st.Missing++
		}
	}
	if st.Missing == st.Points {
		return nil, st, errors.New("prometheus history is empty: the load query has no sample in the range")
	}
	tr := make(Trace, len(sums))
	for i, s := range sums {
		tr[i] = s / float64(stepsPerMinute) * 60
	}
	return tr, st, nil
}
