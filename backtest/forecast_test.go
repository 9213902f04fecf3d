package backtest

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/prescale/prescale/policy"
)

// predictive returns the example policy with its forecast's load query and horizon set.
func predictive(tb testing.TB, query string, horizon *policy.AutoDuration) *policy.Policy {
	tb.Helper()
	p := examplePolicy(tb)
	if p.Forecast == nil {
		tb.Fatal("the example policy has no forecast")
	}
	f := *p.Forecast
	f.Load.Query, f.Horizon = query, horizon
	p.Forecast = &f
	return p
}

func TestDeciderForecast(t *testing.T) {
	par := DefaultParams()
	tests := []struct {
		name        string
		query       string
		horizon     *policy.AutoDuration
		wantHorizon time.Duration
		wantErr     string
	}{
		// startup 180 s + tick 15 s + the 30 s that rate(...[1m]) trails demand, plus the 45 s
		// that a forecast made on a minute's last tick serves
		{name: "horizon auto is the startup plus one tick plus the query's lag", query: "sum(rate(inference_objective_request_total[1m]))",
			horizon: &policy.AutoDuration{Auto: true}, wantHorizon: 270 * time.Second},
		{name: "horizon unset is auto", query: "sum(rate(inference_objective_request_total[1m]))", wantHorizon: 270 * time.Second},
		// a 2-minute window trails by a minute
		{name: "a longer window, a longer lag", query: "sum(rate(inference_objective_request_total[2m]))", wantHorizon: 300 * time.Second},
		{name: "a set horizon is kept", query: "sum(rate(inference_objective_request_total[1m]))",
			horizon: &policy.AutoDuration{Duration: 2 * time.Minute}, wantHorizon: 165 * time.Second},
		{name: "a load query on none of the model's series", query: "sum(rate(http_requests_total[1m]))",
			wantErr: `forecast.load of policy prescale: query "sum(rate(http_requests_total[1m]))": selector http_requests_total selects no series the model exports`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := newDecider(predictive(t, tc.query, tc.horizon), par, 1, false)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %s...", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if h, ok := d.eng.Horizon(); !ok || d.pq.load == nil || h != tc.wantHorizon {
				t.Errorf("forecast %v, load %v, horizon %v; want a forecast, its query, %v", ok, d.pq.load, h, tc.wantHorizon)
			}
		})
	}
	hpa, err := Baseline(par)
	if err != nil {
		t.Fatal(err)
	}
	if hpa.Forecast != nil {
		t.Error("the hpa baseline has a forecast")
	}
	if d, err := newDecider(hpa, par, 1, true); err != nil {
		t.Errorf("the hpa baseline's decider: %v", err)
	} else if _, ok := d.eng.Horizon(); ok {
		t.Error("the hpa baseline's decider forecasts; want no forecast")
	}
}

// On a steep ramp, the forecast sees the load coming: the predictive policy is less
// under-provisioned than the same policy without the forecast, and mostly Ready ahead of it
// while the ramp lasts.
func TestForecastAheadOfRamp(t *testing.T) {
	par := DefaultParams()
	// 6 hours flat at 600 req/min (perReplica is learned there), then +10% a minute for
	// 30 minutes (x17; +33% per startup, more than the 70% target's headroom of 43% less
	// the tolerance), then flat for an hour.
	var tr Trace
	for range 360 {
		tr = append(tr, 600)
	}
	v := 600.0
	for range 30 {
		v *= 1.1
		tr = append(tr, v)
	}
	for range 60 {
		tr = append(tr, v)
	}
	pred := examplePolicy(t)
	reactive := *examplePolicy(t)
	reactive.Name, reactive.Forecast = "reactive", nil
	res, err := Run(tr, []Contender{{Name: pred.Name, Policy: pred}, {Name: reactive.Name, Policy: &reactive}},
		Options{Params: par, Record: true})
	if err != nil {
		t.Fatal(err)
	}
	p, _ := res.Policy(pred.Name)
	r, _ := res.Policy(reactive.Name)
	if p.UnderProvisionedMinutes >= r.UnderProvisionedMinutes {
		t.Errorf("under-provisioned minutes: predictive %d >= reactive %d", p.UnderProvisionedMinutes, r.UnderProvisionedMinutes)
	}
	var ahead, behind int
	for tick := 360 * par.ticksPerMinute(); tick < 390*par.ticksPerMinute(); tick++ {
		switch {
		case p.Ready[tick] > r.Ready[tick]:
			ahead++
		case p.Ready[tick] < r.Ready[tick]:
			behind++
		}
	}
	if ahead <= behind {
		t.Errorf("during the ramp the predictive policy had more Ready pods at %d ticks and fewer at %d; want more ahead", ahead, behind)
	}
	t.Logf("predictive: %+v; reactive: %+v; ahead at %d ticks, behind at %d", p.Score, r.Score, ahead, behind)
}

func TestRunSaysWhenTheForecastCannotBeBuilt(t *testing.T) {
	// The backtest samples the load once a minute: a season is rounded to whole minutes,
	// and needs 2. 60 s is (60 + 30) / 60 = 1 minute: the policy runs without its forecast
	// (as the same policy without one: the same scores), and the result says so, with why.
	// 90 s is 2 minutes: nothing to say. The baseline never forecasts.
	par := DefaultParams()
	tr := make(Trace, 30)
	for m := range tr {
		tr[m] = float64(100 + 10*m)
	}
	for _, tc := range []struct {
		name   string
		season time.Duration
		want   []string
	}{
		{name: "a season of a minute", season: time.Minute, want: []string{"policy prescale runs without its forecast, which cannot be built at the backtest's load step of 1m0s: " +
			"build the forecaster: fit forecast: invalid forecast options: season: must be at least 2 steps (2m0s), got 1m0s"}},
		{name: "a season of 90 s", season: 90 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := predictive(t, "sum(rate(inference_objective_request_total[1m]))", nil)
			p.Forecast.Method, p.Forecast.Season = "seasonal-naive", &policy.Duration{Duration: tc.season}
			cs, err := Contenders(p, par)
			if err != nil {
				t.Fatal(err)
			}
			res, err := Run(tr, cs, Options{Params: par})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, res.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
			pool, err := RunPool([]PoolMember{{Policy: p, Trace: tr}}, 1000, Options{Params: par})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, pool.Warnings); diff != "" {
				t.Errorf("pool warnings (-want +got):\n%s", diff)
			}
			if tc.want == nil {
				return
			}
			reactive := clonePolicy(p)
			reactive.Forecast = nil
			alone, err := Run(tr, []Contender{{Name: p.Name, Policy: reactive}}, Options{Params: par})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := res.Policy(p.Name); !cmp.Equal(alone.Policies[0].Score, got.Score) {
				t.Errorf("without its forecast: %+v; the same policy without one: %+v", got.Score, alone.Policies[0].Score)
			}
		})
	}
}
