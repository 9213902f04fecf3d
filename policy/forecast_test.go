package policy

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// fc is a forecast input of value v (the planned quantile) at perReplica per.
func fc(v, per float64) *ForecastInput {
	return &ForecastInput{Value: v, Point: v * 0.9, Lo: v * 0.8, Hi: v, PerReplica: per, PerReplicaKnown: true, Method: "holt"}
}

// The forecast floor: one more proposal in the metrics' maximum, before behavior.
func TestDecideForecast(t *testing.T) {
	p := queuePolicy(zeroWindows())
	tests := []struct {
		name       string
		obs        Observation
		fc         *ForecastInput
		want       outcome
		wantMetric string
		wantFc     *ForecastResult
	}{
		{
			// queue 5/5 at 4 pods: within tolerance -> 4; forecast 21/3.5 = 6 -> 6 wins
			name:       "a forecast above the metrics adds replicas",
			obs:        queueAt(4, 5),
			fc:         fc(21, 3.5),
			want:       outcome{Desired: 6, Reason: ReasonDesiredWithinRange, Proposal: 6},
			wantMetric: ForecastMetric,
			wantFc:     &ForecastResult{Method: "holt", Point: 18.900000000000002, Lo: 16.8, Hi: 21, Value: 21, PerReplica: 3.5, Proposal: 6, Won: true},
		},
		{
			// 21.0001/3.5 = 6.00003 -> ceil 7
			name:       "the proposal rounds up",
			obs:        queueAt(4, 5),
			fc:         &ForecastInput{Value: 21.0001, PerReplica: 3.5, PerReplicaKnown: true},
			want:       outcome{Desired: 7, Reason: ReasonDesiredWithinRange, Proposal: 7},
			wantMetric: ForecastMetric,
			wantFc:     &ForecastResult{Value: 21.0001, PerReplica: 3.5, Proposal: 7, Won: true},
		},
		{
			// queue 10/5 at 4 -> 8; forecast 7 -> the metric wins
			name:       "a forecast below the metrics removes nothing",
			obs:        queueAt(4, 10),
			fc:         fc(7*3.5, 3.5),
			want:       outcome{Desired: 8, Reason: ReasonDesiredWithinRange, Proposal: 8},
			wantMetric: "queue",
			wantFc:     &ForecastResult{Method: "holt", Point: 22.05, Lo: 19.6, Hi: 24.5, Value: 24.5, PerReplica: 3.5, Proposal: 7},
		},
		{
			// queue 1/5 at 4 -> 1; forecast 2 -> 2: scale-down stays with the metrics and
			// the windows, the forecast only sets a floor under them
			name:       "a forecast below current still lets the metrics scale down to it",
			obs:        queueAt(4, 1),
			fc:         fc(7, 3.5),
			want:       outcome{Desired: 2, Reason: ReasonDesiredWithinRange, Proposal: 2},
			wantMetric: ForecastMetric,
			wantFc:     &ForecastResult{Method: "holt", Point: 6.3, Lo: 5.6000000000000005, Hi: 7, Value: 7, PerReplica: 3.5, Proposal: 2, Won: true},
		},
		{
			// 15.05/3.5 = 4.3 replicas, ratio 4.3/4 = 1.075 within the tolerance 0.1: the
			// forecast proposes the current 4 (like a metric within tolerance), which
			// holds the queue's scale-down to 1
			name:       "a forecast within tolerance of current proposes current",
			obs:        queueAt(4, 1),
			fc:         &ForecastInput{Value: 15.05, PerReplica: 3.5, PerReplicaKnown: true},
			want:       outcome{Desired: 4, Reason: ReasonDesiredWithinRange, Proposal: 4},
			wantMetric: ForecastMetric,
			wantFc:     &ForecastResult{Value: 15.05, PerReplica: 3.5, Proposal: 4, Won: true},
		},
		{
			// 15.54/3.5 = 4.44, ratio 1.11 just outside: ceil 5
			name:       "a forecast just outside tolerance proposes its replicas",
			obs:        queueAt(4, 1),
			fc:         &ForecastInput{Value: 15.54, PerReplica: 3.5, PerReplicaKnown: true},
			want:       outcome{Desired: 5, Reason: ReasonDesiredWithinRange, Proposal: 5},
			wantMetric: ForecastMetric,
			wantFc:     &ForecastResult{Value: 15.54, PerReplica: 3.5, Proposal: 5, Won: true},
		},
		{
			name:       "a tie goes to the metric",
			obs:        queueAt(4, 10),
			fc:         &ForecastInput{Value: 8 * 3.5, PerReplica: 3.5, PerReplicaKnown: true},
			want:       outcome{Desired: 8, Reason: ReasonDesiredWithinRange, Proposal: 8},
			wantMetric: "queue",
			wantFc:     &ForecastResult{Value: 28, PerReplica: 3.5, Proposal: 8},
		},
		{
			name:       "gated: no floor",
			obs:        queueAt(4, 5),
			fc:         &ForecastInput{Value: 100, PerReplica: 3.5, PerReplicaKnown: true, Gated: true},
			want:       outcome{Desired: 4, Reason: ReasonDesiredWithinRange, Proposal: 4},
			wantMetric: "queue",
			wantFc:     &ForecastResult{Value: 100, Gated: true, Reason: ReasonForecastGated},
		},
		{
			name:       "perReplica not learned yet: no floor",
			obs:        queueAt(4, 5),
			fc:         &ForecastInput{Value: 100},
			want:       outcome{Desired: 4, Reason: ReasonDesiredWithinRange, Proposal: 4},
			wantMetric: "queue",
			wantFc:     &ForecastResult{Value: 100, Reason: ReasonForecastLearning},
		},
		{
			name:       "no forecast: no record",
			obs:        queueAt(4, 5),
			want:       outcome{Desired: 4, Reason: ReasonDesiredWithinRange, Proposal: 4},
			wantMetric: "queue",
		},
		{
			// the metric is missing (a hold), the forecast 6 > 4 still scales up
			name:       "a missing metric with a forecast above current scales up",
			obs:        Observation{SpecReplicas: 4, StatusReplicas: 4, Pods: readyPods("a", "b", "c", "d"), Metrics: []Sample{failed("timeout")}},
			fc:         fc(21, 3.5),
			want:       outcome{Desired: 6, Reason: ReasonDesiredWithinRange, Proposal: 6},
			wantMetric: ForecastMetric,
			wantFc:     &ForecastResult{Method: "holt", Point: 18.900000000000002, Lo: 16.8, Hi: 21, Value: 21, PerReplica: 3.5, Proposal: 6, Won: true},
		},
		{
			// forecast 4 = current: the hold for the missing metric stays
			name:   "a missing metric with a forecast at current holds",
			obs:    Observation{SpecReplicas: 4, StatusReplicas: 4, Pods: readyPods("a", "b", "c", "d"), Metrics: []Sample{failed("timeout")}},
			fc:     &ForecastInput{Value: 14, PerReplica: 3.5, PerReplicaKnown: true},
			want:   outcome{Desired: 4, Reason: ReasonFailedGetMetric},
			wantFc: &ForecastResult{Value: 14, PerReplica: 3.5, Proposal: 4},
		},
		{
			// 1000/3.5 -> 286, capped at maxReplicas 20; the default rate policy allows
			// max(4, 100%) = 8 from 4 first
			name:       "the floor goes through behavior and limits",
			obs:        queueAt(4, 5),
			fc:         &ForecastInput{Value: 1000, PerReplica: 3.5, PerReplicaKnown: true},
			want:       outcome{Desired: 8, Reason: ReasonScaleUpLimit, Proposal: 286, Clamps: []Clamp{{ReasonScaleUpLimit, 286, 8}}},
			wantMetric: ForecastMetric,
			wantFc:     &ForecastResult{Value: 1000, PerReplica: 3.5, Proposal: 286, Won: true},
		},
		{
			name:       "a huge forecast saturates instead of overflowing",
			obs:        queueAt(4, 5),
			fc:         &ForecastInput{Value: 1e12, PerReplica: 1e-9, PerReplicaKnown: true},
			want:       outcome{Desired: 8, Reason: ReasonScaleUpLimit, Proposal: 2147483647, Clamps: []Clamp{{ReasonScaleUpLimit, 2147483647, 8}}},
			wantMetric: ForecastMetric,
			wantFc:     &ForecastResult{Value: 1e12, PerReplica: 1e-9, Proposal: 2147483647, Won: true},
		},
		{
			// queue 1/5 at 4 -> 1, but the forecast's load is missing: like a missing
			// metric it holds the scale-down at 4
			name:   "a missing load holds a scale-down",
			obs:    missingLoad(queueAt(4, 1)),
			want:   outcome{Desired: 4, Reason: ReasonFailedGetMetric},
			wantFc: nil,
		},
		{
			// queue 10/5 at 4 -> 8: a missing load does not hold a scale-up
			name:       "a missing load lets the metrics scale up",
			obs:        missingLoad(queueAt(4, 10)),
			want:       outcome{Desired: 8, Reason: ReasonDesiredWithinRange, Proposal: 8},
			wantMetric: "queue",
		},
		{
			// queue 5/5 at 4 -> 4 (within tolerance): the same as current, nothing to hold
			name:       "a missing load with the metrics at current keeps them",
			obs:        missingLoad(queueAt(4, 5)),
			want:       outcome{Desired: 4, Reason: ReasonDesiredWithinRange, Proposal: 4},
			wantMetric: "queue",
		},
		{
			name:       "a NaN forecast proposes nothing",
			obs:        queueAt(4, 5),
			fc:         &ForecastInput{Value: nan(), PerReplica: 3.5, PerReplicaKnown: true},
			want:       outcome{Desired: 4, Reason: ReasonDesiredWithinRange, Proposal: 4},
			wantMetric: "queue",
			wantFc:     &ForecastResult{Value: Float(nan()), PerReplica: 3.5},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.obs.Forecast = tc.fc
			d, _ := Decide(p, tc.obs, seasoned(), at(0))
			if diff := cmp.Diff(tc.want, outcomeOf(d)); diff != "" {
				t.Errorf("outcome (-want +got):\n%s", diff)
			}
			if d.Metric != tc.wantMetric {
				t.Errorf("metric = %q, want %q", d.Metric, tc.wantMetric)
			}
			if diff := cmp.Diff(tc.wantFc, d.Forecast, cmp.Comparer(sameFloat)); diff != "" {
				t.Errorf("forecast record (-want +got):\n%s", diff)
			}
		})
	}
}

// missingLoad is o with the forecast's load missing.
func missingLoad(o Observation) Observation {
	o.LoadErr = errors.New("empty result")
	return o
}

func nan() float64 { z := 0.0; return z / z }

func sameFloat(a, b Float) bool { return a == b || (a != a && b != b) }
