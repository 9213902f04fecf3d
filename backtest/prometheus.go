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

	"github.com/prescale/prescale/prom"
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

// The bounds of a Prometheus history. Its instants lie within MinLoadTime..MaxLoadTime, so
// that To - From is a time.Duration; it has at most MaxLoadPoints steps, (To - From) / Step:
// Load holds a flag per step and a sum per minute before it sends a query. 4,000,000 steps
// are 46 days at 1s, 7.6 years at 1m.
var (
	MinLoadTime = time.Unix(0, 0).UTC()
	MaxLoadTime = time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)
)

// MaxLoadPoints bounds the steps of a Prometheus history.
const MaxLoadPoints = 4_000_000

// LoadStats says how complete a Prometheus history was.
type LoadStats struct {
	Queries int // range queries made
	Points  int // steps asked for
	Missing int // steps without a sample, counted as 0 requests
}

// Validate returns every problem with From, To and Step at once, each a *ParamError whose
// Field is "from", "to", "step", "range" (To not after From, or not whole minutes after
// it) or "points" (more than MaxLoadPoints steps, which it counts).
func (l PrometheusLoad) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &ParamError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	inRange := true
	for _, b := range []struct {
		field string
		t     time.Time
	}{{"from", l.From}, {"to", l.To}} {
		if b.t.Before(MinLoadTime) || !b.t.Before(MaxLoadTime) {
			bad(b.field, "must be %s..%s, got %s", MinLoadTime.Format(time.RFC3339), MaxLoadTime.Format(time.RFC3339), b.t.UTC().Format(time.RFC3339Nano))
			inRange = false
		}
	}
	step := l.step()
	if step <= 0 || time.Minute%step != 0 {
		bad("step", "must divide a minute, got %v", step)
		return errors.Join(errs...)
	}
	if !inRange {
		return errors.Join(errs...)
	}
	span := l.To.Sub(l.From)
	switch points := int64(span / step); {
	case span <= 0:
		bad("range", "%s to %s: to must be after from", l.From.UTC().Format(time.RFC3339Nano), l.To.UTC().Format(time.RFC3339Nano))
	case span%time.Minute != 0:
		bad("range", "%s to %s: %v, must be whole minutes", l.From.UTC().Format(time.RFC3339Nano), l.To.UTC().Format(time.RFC3339Nano), span)
	case points > MaxLoadPoints:
		bad("points", "%s to %s at %v is %d points; at most %d (46 days at 1s, 7.6 years at 1m)",
			l.From.UTC().Format(time.RFC3339), l.To.UTC().Format(time.RFC3339), step, points, MaxLoadPoints)
	}
	return errors.Join(errs...)
}

func (l PrometheusLoad) step() time.Duration {
	if l.Step == 0 {
		return time.Minute
	}
	return l.Step
}

// Load reads the history with range queries of at most PointsPerQuery points each, and
// returns it as a per-minute trace: each minute's count is the mean rate of its steps times
// 60. Each step [s, s+Step) takes the query's value at its end, s+Step, where a rate over
// [1m] (with Step 1m) covers exactly that minute. Steps without a sample count as 0 requests and are counted in LoadStats.Missing. A
// range that Validate refuses, a query that returns more than one series, a NaN or negative
// rate or one over MaxRequests a minute, or a failed request is an error.
func (l PrometheusLoad) Load(ctx context.Context) (Trace, LoadStats, error) {
	var st LoadStats
	if err := l.Validate(); err != nil {
		return nil, st, fmt.Errorf("prometheus history: %w", err)
	}
	step := l.step()
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
			case rate*60 > MaxRequests:
				return nil, st, fmt.Errorf("range query %q at %s: rate %v requests/s: at most %g a minute", l.Query, s.Timestamp.Time().UTC().Format(time.RFC3339), rate, MaxRequests)
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
