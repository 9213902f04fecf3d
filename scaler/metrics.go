package scaler

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the controller's own Prometheus metrics. Each is derived from a decision
// record or an I/O outcome, in one place.
type Metrics struct {
	DesiredReplicas      *prometheus.GaugeVec
	CurrentReplicas      *prometheus.GaugeVec
	UncappedReplicas     *prometheus.GaugeVec
	ShadowReplicas       *prometheus.GaugeVec
	HPADesiredReplicas   *prometheus.GaugeVec
	MetricValue          *prometheus.GaugeVec
	MetricTarget         *prometheus.GaugeVec
	MetricMissing        *prometheus.GaugeVec
	Decisions            *prometheus.CounterVec
	Scales               *prometheus.CounterVec
	QueryDuration        prometheus.Histogram
	Queries              prometheus.Counter
	Errors               *prometheus.CounterVec
	TickDuration         prometheus.Histogram
	LastTick             prometheus.Gauge
	Leader               prometheus.Gauge
	ReloadSuccessful     prometheus.Gauge
	ReloadTimestamp      prometheus.Gauge
	ScorecardReplicaSecs *prometheus.CounterVec
	ScorecardShortSecs   *prometheus.CounterVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	policy := []string{"policy"}
	m := &Metrics{
		DesiredReplicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_desired_replicas",
			Help: "Replicas the policy's decision asks for (what prescale writes, or would write in dry-run)."}, policy),
		CurrentReplicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_current_replicas",
			Help: "The target's spec.replicas at the last tick."}, policy),
		UncappedReplicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_uncapped_replicas",
			Help: "Desired replicas before the GPU capacity cap."}, policy),
		ShadowReplicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_hpa_equivalent_replicas",
			Help: "Replicas the HPA-equivalent engine (no forecast, no capacity cap) would set."}, policy),
		HPADesiredReplicas: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_hpa_desired_replicas",
			Help: "status.desiredReplicas of a real HorizontalPodAutoscaler on the same target."}, policy),
		MetricValue: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_metric_value",
			Help: "Each policy metric's value as compared with its target (per-pod average or value)."}, []string{"policy", "metric"}),
		MetricTarget: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_metric_target",
			Help: "Each policy metric's target."}, []string{"policy", "metric"}),
		MetricMissing: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_metric_missing",
			Help: "1 when the metric was missing at the last tick (error, stale, NaN, empty)."}, []string{"policy", "metric"}),
		Decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "prescale_decisions_total",
			Help: "Decisions by reason."}, []string{"policy", "reason"}),
		Scales: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "prescale_scales_total",
			Help: "Writes of the scale subresource, by result."}, []string{"policy", "result"}),
		QueryDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "prescale_query_duration_seconds",
			Help: "Prometheus query latency.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		Queries: prometheus.NewCounter(prometheus.CounterOpts{Name: "prescale_queries_total",
			Help: "Prometheus queries run."}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "prescale_errors_total",
			Help: "Errors by kind (query errors by their class, scale and annotation writes, target lookups)."}, []string{"kind"}),
		TickDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "prescale_tick_duration_seconds",
			Help: "Wall time of one tick over every policy.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		LastTick: prometheus.NewGauge(prometheus.GaugeOpts{Name: "prescale_last_tick_timestamp_seconds",
			Help: "When the last tick started."}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "prescale_leader",
			Help: "1 while this instance holds the leader lease."}),
		ReloadSuccessful: prometheus.NewGauge(prometheus.GaugeOpts{Name: "prescale_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful."}),
		ReloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "prescale_config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload."}),
		ScorecardReplicaSecs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "prescale_scorecard_replica_seconds_total",
			Help: "Replica-seconds each autoscaler would have used: who is prescale, hpa_equivalent or hpa."}, []string{"policy", "who"}),
		ScorecardShortSecs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "prescale_scorecard_underprovisioned_seconds_total",
			Help: "Seconds each autoscaler would have had fewer replicas than the metrics asked for."}, []string{"policy", "who"}),
	}
	reg.MustRegister(m.DesiredReplicas, m.CurrentReplicas, m.UncappedReplicas, m.ShadowReplicas, m.HPADesiredReplicas,
		m.MetricValue, m.MetricTarget, m.MetricMissing, m.Decisions, m.Scales, m.QueryDuration, m.Queries, m.Errors,
		m.TickDuration, m.LastTick, m.Leader, m.ReloadSuccessful, m.ReloadTimestamp, m.ScorecardReplicaSecs, m.ScorecardShortSecs)
	return m
}

// forget drops every series of a policy that left the configuration.
func (m *Metrics) forget(name string) {
	l := prometheus.Labels{"policy": name}
	for _, v := range []*prometheus.GaugeVec{m.DesiredReplicas, m.CurrentReplicas, m.UncappedReplicas, m.ShadowReplicas,
		m.HPADesiredReplicas, m.MetricValue, m.MetricTarget, m.MetricMissing} {
		v.DeletePartialMatch(l)
	}
	for _, v := range []*prometheus.CounterVec{m.Decisions, m.Scales, m.ScorecardReplicaSecs, m.ScorecardShortSecs} {
		v.DeletePartialMatch(l)
	}
}
