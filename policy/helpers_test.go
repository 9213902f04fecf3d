package policy

import (
	"errors"
	"time"
)

// t0 is the fixed epoch of every test.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(seconds int) time.Time { return t0.Add(time.Duration(seconds) * time.Second) }

func qty(s string) *Quantity {
	q := MustQuantity(s)
	return &q
}

func i32(v int32) *int32 { return &v }

func sel(s SelectPolicy) *SelectPolicy { return &s }

// avg is a metric with an AverageValue target.
func avg(name, target string) Metric {
	return Metric{Name: name, Query: name, Target: MetricTarget{Type: AverageValue, AverageValue: qty(target)}}
}

// val is a metric with a Value target.
func val(name, target string) Metric {
	return Metric{Name: name, Query: name, Target: MetricTarget{Type: Value, Value: qty(target)}}
}

// readyPods returns Running, Ready pods with the given names.
func readyPods(names ...string) []Pod {
	out := make([]Pod, len(names))
	for i, n := range names {
		out[i] = Pod{Name: n, Phase: PodRunning, Ready: true}
	}
	return out
}

func perPod(kv ...any) Sample {
	m := map[string]float64{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i].(string)] = toFloat(kv[i+1])
	}
	return Sample{PerPod: m}
}

func scalar(v float64) Sample { return Sample{Value: v} }

func failed(msg string) Sample { return Sample{Err: errors.New(msg)} }

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	panic("toFloat: unsupported type")
}

// seasoned returns a history whose first sync is long past, so that no initial
// recommendation interferes.
func seasoned(recs ...Recommendation) History {
	return History{Recommendations: append([]Recommendation{{Replicas: 1, At: at(-100000)}}, recs...)}
}
