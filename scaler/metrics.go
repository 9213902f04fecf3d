package scaler

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/prescale/prescale/policy"
)

// Metrics are the controller's own Prometheus metrics. Each is derived from a decision
// record or an I/O outcome, in one place.
type Metrics struct {
	DesiredReplicas       *SeriesVec
	CurrentReplicas       *SeriesVec
	UncappedReplicas      *SeriesVec
	HPAEquivalentReplicas *SeriesVec
	HPADesiredReplicas    *SeriesVec
	MetricValue           *SeriesVec
	MetricTarget          *SeriesVec
	MetricMissing         *SeriesVec
	Decisions             *SeriesVec
	Scales                *SeriesVec
	QueryDuration         prometheus.Histogram
	Queries               prometheus.Counter
	Errors                *prometheus.CounterVec
	QueryWarnings         *SeriesVec
	TickDuration          prometheus.Histogram
	SyncPhaseDuration     *prometheus.HistogramVec
	TickPhaseDuration     *prometheus.HistogramVec
	LastTick              prometheus.Gauge
	Leader                prometheus.Gauge
	DryRun                prometheus.Gauge
	ReloadSuccessful      prometheus.Gauge
	ReloadTimestamp       prometheus.Gauge
	ScorecardReplicaSecs  *SeriesVec
	ScorecardShortSecs    *SeriesVec
	// The forecast's series, for policies with a forecast; each is set only while it has
	// a value (a missing forecast is an absent series, never 0).
	ForecastLoad           *SeriesVec
	ForecastUpper          *SeriesVec
	ForecastLower          *SeriesVec
	ForecastReplicas       *SeriesVec
	ForecastError          *SeriesVec
	ForecastMAPE           *SeriesVec
	ForecastGated          *SeriesVec
	ForecastHorizon        *SeriesVec
	ForecastHistorySamples *SeriesVec
	PodStartup             *SeriesVec
	// The objective's series, for policies with an objective.
	ObjectiveQuantile        *SeriesVec
	ObjectiveTightness       *SeriesVec
	ObjectiveBank            *SeriesVec
	ObjectiveLatency         *SeriesVec
	ObjectiveSLO             *SeriesVec
	ObjectiveBudget          *SeriesVec
	ObjectiveMinutes         *SeriesVec
	ObjectiveViolatedMinutes *SeriesVec
	ObjectiveBeyondReach     *SeriesVec
	ObjectiveWaitedMinutes   *SeriesVec
	// ObjectiveMissing and ForecastLoadMissing are 1 while the objective has no
	// observation, or the forecast no usable load sample (0 otherwise): what
	// prescale_metric_missing is for a metric.
	ObjectiveMissing    *SeriesVec
	ForecastLoadMissing *SeriesVec
	// scaleToZero's series, for policies with scaleToZero.
	IdleSeconds    *SeriesVec
	WakeAheadGated *SeriesVec
	// ConflictingAutoscaler is 1 while another autoscaler targets the workload (prescale,
	// not in dry-run, then writes nothing).
	ConflictingAutoscaler *SeriesVec
	// The GPU allocation's series (capacity.mode: cap): per policy whose pods request a
	// GPU kind, and per pool (GPU kind).
	CapacityWanted  *SeriesVec
	CapacityGranted *SeriesVec
	PoolFree        *prometheus.GaugeVec
	PoolGranted     *prometheus.GaugeVec
	PoolReserved    *prometheus.GaugeVec
	PoolPending     *prometheus.GaugeVec
	// PoolGrowth and PoolGrowthGranted are, for a GPU kind that Karpenter's NodePools
	// limit, the GPUs they could still add and those granted to Pending pods.
	PoolGrowth        *prometheus.GaugeVec
	PoolGrowthGranted *prometheus.GaugeVec
	// NodeLeadTime is each node pool's measured lead time (nodeLeads).
	NodeLeadTime *prometheus.GaugeVec
	// BufferReplicas is the size of each policy's CapacityBuffer at the last tick.
	BufferReplicas *SeriesVec
	// BufferReady is 1 while the node autoscaler has resolved the pods of the policy's
	// CapacityBuffer, 0 while it cannot or does not read it.
	BufferReady *SeriesVec
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	policy := []string{"policy"}
	m := &Metrics{
		DesiredReplicas: newGauges(prometheus.GaugeOpts{Name: "prescale_desired_replicas",
			Help: "Replicas the policy's decision asks for (what prescale writes, or would write in dry-run)."}, policy),
		CurrentReplicas: newGauges(prometheus.GaugeOpts{Name: "prescale_current_replicas",
			Help: "The target's spec.replicas at the last tick."}, policy),
		UncappedReplicas: newGauges(prometheus.GaugeOpts{Name: "prescale_uncapped_replicas",
			Help: "Desired replicas before the GPU capacity cap."}, policy),
		HPAEquivalentReplicas: newGauges(prometheus.GaugeOpts{Name: "prescale_hpa_equivalent_replicas",
			Help: "Replicas the HPA-equivalent engine (no forecast, no capacity cap) would set."}, policy),
		HPADesiredReplicas: newGauges(prometheus.GaugeOpts{Name: "prescale_hpa_desired_replicas",
			Help: "status.desiredReplicas of a real HorizontalPodAutoscaler on the same target."}, policy),
		MetricValue: newGauges(prometheus.GaugeOpts{Name: "prescale_metric_value",
			Help: "Each policy metric's value as compared with its target (per-pod average or value)."}, []string{"policy", "metric"}),
		MetricTarget: newGauges(prometheus.GaugeOpts{Name: "prescale_metric_target",
			Help: "Each policy metric's target."}, []string{"policy", "metric"}),
		MetricMissing: newGauges(prometheus.GaugeOpts{Name: "prescale_metric_missing",
			Help: "1 when the metric was missing at the last tick (error, stale, NaN, empty)."}, []string{"policy", "metric"}),
		Decisions: newCounters(prometheus.CounterOpts{Name: "prescale_decisions_total",
			Help: "Decisions by reason."}, []string{"policy", "reason"}),
		Scales: newCounters(prometheus.CounterOpts{Name: "prescale_scales_total",
			Help: "Writes of the scale subresource, by result: ok, error, or conflict (another writer changed the scale since it was read; not written, decided again at the next tick)."}, []string{"policy", "result"}),
		QueryDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "prescale_query_duration_seconds",
			Help: "Prometheus query latency.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		Queries: prometheus.NewCounter(prometheus.CounterOpts{Name: "prescale_queries_total",
			Help: "Prometheus queries run."}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "prescale_errors_total",
			Help: "Errors by kind (query errors by their class, scale and annotation writes, target lookups)."}, []string{"kind"}),
		QueryWarnings: newCounters(prometheus.CounterOpts{Name: "prescale_query_warnings_total",
			Help: "Query results that came with Prometheus warnings (a partial response: a shard or store did not answer), used as they were; the decision record lists the warnings. metric is the policy metric's name, or forecast (the load) or objective (the latency)."}, []string{"policy", "metric"}),
		SyncPhaseDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "prescale_sync_phase_duration_seconds",
			Help:    "Wall time of each phase of one policy's sync: observe (apiserver, caches), query (Prometheus), decide (the engine; forecast histories load in the background), act (writes, events, metrics).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"phase"}),
		TickPhaseDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "prescale_tick_phase_duration_seconds",
			Help:    "Wall time of each phase of one tick over every policy: observe (every policy's reads: apiserver, caches, Prometheus, concurrently), decide (every policy's engine, concurrently), allocate (the GPUs across the decisions), act (every policy's writes, events and metrics, concurrently); after the tick and beside it, in the background: record (the decision records), history (one forecast history load, which no tick waits for).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"phase"}),
		TickDuration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "prescale_tick_duration_seconds",
			Help: "Wall time of one tick over every policy.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}),
		LastTick: prometheus.NewGauge(prometheus.GaugeOpts{Name: "prescale_last_tick_timestamp_seconds",
			Help: "When the last tick started."}),
		Leader: prometheus.NewGauge(prometheus.GaugeOpts{Name: "prescale_leader",
			Help: "1 while this instance holds the leader lease."}),
		DryRun: prometheus.NewGauge(prometheus.GaugeOpts{Name: "prescale_dry_run",
			Help: "1 while the global dryRun setting is on (set at start-up and by a reload; a policy's dryRun overrides it)."}),
		ReloadSuccessful: prometheus.NewGauge(prometheus.GaugeOpts{Name: "prescale_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful."}),
		ReloadTimestamp: prometheus.NewGauge(prometheus.GaugeOpts{Name: "prescale_config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload."}),
		ScorecardReplicaSecs: newCounters(prometheus.CounterOpts{Name: "prescale_scorecard_replica_seconds_total",
			Help: "Replica-seconds each autoscaler would have used: who is prescale, hpa_equivalent or hpa."}, []string{"policy", "who"}),
		ScorecardShortSecs: newCounters(prometheus.CounterOpts{Name: "prescale_scorecard_underprovisioned_seconds_total",
			Help: "Seconds each autoscaler would have had fewer replicas than the metrics asked for."}, []string{"policy", "who"}),
		ForecastLoad: newGauges(prometheus.GaugeOpts{Name: "prescale_forecast_load",
			Help: "The point forecast of the load at now + horizon, in the load query's units."}, policy),
		ForecastUpper: newGauges(prometheus.GaugeOpts{Name: "prescale_forecast_upper",
			Help: "The planned quantile of the load forecast (forecast.quantile), what the proposal divides by perReplica."}, policy),
		ForecastLower: newGauges(prometheus.GaugeOpts{Name: "prescale_forecast_lower",
			Help: "The lower end of the load forecast's interval."}, policy),
		ForecastReplicas: newGauges(prometheus.GaugeOpts{Name: "prescale_forecast_replicas",
			Help: "The forecast's replica proposal (absent while gated, learning perReplica, warming up or without a load)."}, policy),
		ForecastError: newGauges(prometheus.GaugeOpts{Name: "prescale_forecast_error",
			Help: "What the gate judges against gate.maxError: the fraction of the gate's window in which the load exceeded the planned quantile forecast one horizon earlier (absent while the window is empty)."}, policy),
		ForecastMAPE: newGauges(prometheus.GaugeOpts{Name: "prescale_forecast_mape",
			Help: "The point forecast's weighted MAPE over the gate's window, a fraction (absent while the window has no load); reported, not gated on."}, policy),
		IdleSeconds: newGauges(prometheus.GaugeOpts{Name: "prescale_scale_to_zero_idle_seconds",
			Help: "How long scaleToZero's activation signal has been at or below its threshold (0 while above it; absent while it is missing); the target goes to zero at scaleToZero.idleDelay."}, policy),
		WakeAheadGated: newGauges(prometheus.GaugeOpts{Name: "prescale_wake_ahead_gated",
			Help: "1 while more than scaleToZero.wakeAhead.maxWrong of the last wake-ahead claims proved wrong: the target wakes on its activation signal only (absent while wake-ahead is off)."}, policy),
		ForecastGated: newGauges(prometheus.GaugeOpts{Name: "prescale_forecast_gated",
			Help: "1 while the accuracy gate holds the policy's forecast off (its error is above gate.maxError)."}, policy),
		ForecastHorizon: newGauges(prometheus.GaugeOpts{Name: "prescale_forecast_horizon_seconds",
			Help: "How far ahead the forecast predicts: forecast.horizon, or for auto the pods' start-up time plus one interval."}, policy),
		ForecastHistorySamples: newGauges(prometheus.GaugeOpts{Name: "prescale_forecast_history_samples",
			Help: "Load samples the forecast was last fitted on (the history loaded from Prometheus when it was built or last refitted)."}, policy),
		PodStartup: newGauges(prometheus.GaugeOpts{Name: "prescale_pod_startup_seconds",
			Help: "p90 of the creation-to-Ready time of the target's recent pods (absent until one is measured)."}, policy),
		ObjectiveQuantile: newGauges(prometheus.GaugeOpts{Name: "prescale_objective_quantile",
			Help: "The forecast quantile the objective plans for: the adaptive one, or forecast.quantile when set."}, policy),
		ObjectiveTightness: newGauges(prometheus.GaugeOpts{Name: "prescale_objective_tightness",
			Help: "The objective's tightness: 1 holds the forecast's hold, the scale-down window and the metrics' targets as the policy writes them, 0 at their loose end (docs/objective.md)."}, policy),
		ObjectiveBank: newGauges(prometheus.GaugeOpts{Name: "prescale_objective_bank_minutes",
			Help: "The objective's budget earned and not spent, in minutes: what sets its tightness (negative: overspent)."}, policy),
		ObjectiveLatency: newGauges(prometheus.GaugeOpts{Name: "prescale_objective_latency_seconds",
			Help: "The objective's latency (objective.query) at the last tick; +Inf is over any SLO (absent while the sample is missing)."}, policy),
		ObjectiveSLO: newGauges(prometheus.GaugeOpts{Name: "prescale_objective_slo_seconds",
			Help: "The objective's SLO: the most latency allowed."}, policy),
		ObjectiveBudget: newGauges(prometheus.GaugeOpts{Name: "prescale_objective_budget_ratio",
			Help: "The objective's budget: the share of minutes allowed over the SLO."}, policy),
		ObjectiveMinutes: newCounters(prometheus.CounterOpts{Name: "prescale_objective_minutes_total",
			Help: "Minutes with a sample of the objective's latency, counted as each minute ends."}, policy),
		ObjectiveViolatedMinutes: newCounters(prometheus.CounterOpts{Name: "prescale_objective_violated_minutes_total",
			Help: "Minutes in which a sample of the objective's latency was over the SLO, counted as each minute ends."}, policy),
		ObjectiveBeyondReach: newCounters(prometheus.CounterOpts{Name: "prescale_objective_beyond_reach_minutes_total",
			Help: "Violated minutes whose load exceeded what the forecast, one horizon before, planned at the highest quantile: no quantile would have prevented them."}, policy),
		ObjectiveWaitedMinutes: newCounters(prometheus.CounterOpts{Name: "prescale_objective_waited_minutes_total",
			Help: "Violated minutes without a latency sample over the SLO but with a sync in which requests waited and no latency sample existed (objective.waiting), counted as each minute ends; also in prescale_objective_violated_minutes_total."}, policy),
		ObjectiveMissing: newGauges(prometheus.GaugeOpts{Name: "prescale_objective_missing",
			Help: "1 when the objective had no observation at the last tick: no usable latency sample (error, empty, NaN, stale), no request known to wait, and a forecast load not known to be 0; 0 otherwise."}, policy),
		ForecastLoadMissing: newGauges(prometheus.GaugeOpts{Name: "prescale_forecast_load_missing",
			Help: "1 when the forecast's load query had no usable sample at its last sample (error, empty, NaN, ±Inf, negative, stale); 0 otherwise."}, policy),
		ConflictingAutoscaler: newGauges(prometheus.GaugeOpts{Name: "prescale_conflicting_autoscaler",
			Help: "1 while another autoscaler (an HPA, KEDA's included) targets the workload and prescale, not in dry-run, writes nothing; 0 otherwise."}, policy),
		CapacityWanted: newGauges(prometheus.GaugeOpts{Name: "prescale_capacity_wanted_replicas",
			Help: "Replicas the policy's engine wanted at the last tick, before the GPU allocation (for a policy whose pods request a GPU kind)."}, policy),
		CapacityGranted: newGauges(prometheus.GaugeOpts{Name: "prescale_capacity_granted_replicas",
			Help: "Replicas the GPU allocation granted the policy at the last tick."}, policy),
		PoolFree: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_pool_free_gpus",
			Help: "GPUs of the pool's kind free on Ready, schedulable nodes at the last tick, before its grants (terminating pods still hold theirs)."}, []string{"pool"}),
		PoolGranted: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_pool_granted_gpus",
			Help: "GPUs of the pool granted to new pods at the last tick (policies in dry-run included, out of what the writing ones left)."}, []string{"pool"}),
		PoolReserved: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_pool_reserved_gpus",
			Help: "GPUs of the pool held at the last tick for guaranteed minimums their policies did not want."}, []string{"pool"}),
		PoolPending: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_pool_pending_pods",
			Help: "Pods granted beyond what fits at the last tick, under the pool's Pending allowance."}, []string{"pool"}),
		PoolGrowth: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_pool_growth_gpus",
			Help: "GPUs of the pool's kind that node pools (Karpenter NodePools with a limit on it) could still add at the last tick: their limits less the GPUs of their nodes that are up (nodes still booting count as growth); absent without."}, []string{"pool"}),
		PoolGrowthGranted: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_pool_growth_granted_gpus",
			Help: "GPUs of prescale_pool_growth_gpus granted at the last tick to Pending pods, for nodes being provisioned."}, []string{"pool"}),
		NodeLeadTime: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "prescale_node_lead_time_seconds",
			Help: "p90 of the creation-to-Ready time of the node pool's recent nodes (a node autoscaler's NodePool or node group, from the karpenter.sh/nodepool label or a cloud's node-group label; absent until one is measured)."}, []string{"nodepool"}),
		BufferReplicas: newGauges(prometheus.GaugeOpts{Name: "prescale_capacity_buffer_replicas",
			Help: "Replicas of the policy's CapacityBuffer at the last tick: what its forecast plans for over the node lead time beyond its horizon, less the replicas it asks for now (0 while the forecast is not in use; absent for a policy that writes no buffer)."}, policy),
		BufferReady: newGauges(prometheus.GaugeOpts{Name: "prescale_capacity_buffer_ready",
			Help: "1 while the node autoscaler has resolved the pods of the policy's CapacityBuffer (its ReadyForProvisioning condition True), 0 while it cannot (the condition False) or does not read it (no condition within 2 minutes of the buffer's creation); absent until known and while there is no buffer."}, policy),
	}
	reg.MustRegister(m.DesiredReplicas, m.CurrentReplicas, m.UncappedReplicas, m.HPAEquivalentReplicas, m.HPADesiredReplicas,
		m.MetricValue, m.MetricTarget, m.MetricMissing, m.Decisions, m.Scales, m.QueryDuration, m.Queries, m.Errors, m.QueryWarnings,
		m.TickDuration, m.SyncPhaseDuration, m.TickPhaseDuration, m.LastTick, m.Leader, m.DryRun, m.ReloadSuccessful, m.ReloadTimestamp, m.ScorecardReplicaSecs, m.ScorecardShortSecs,
		m.ForecastLoad, m.ForecastUpper, m.ForecastLower, m.ForecastReplicas, m.ForecastError, m.ForecastMAPE, m.ForecastGated, m.ForecastHorizon, m.IdleSeconds, m.WakeAheadGated,
		m.ForecastHistorySamples, m.PodStartup, m.ObjectiveQuantile, m.ObjectiveTightness, m.ObjectiveBank, m.ObjectiveLatency, m.ObjectiveSLO, m.ObjectiveBudget,
		m.ObjectiveMinutes, m.ObjectiveViolatedMinutes, m.ObjectiveBeyondReach, m.ObjectiveWaitedMinutes, m.ObjectiveMissing,
		m.ForecastLoadMissing, m.ConflictingAutoscaler,
		m.CapacityWanted, m.CapacityGranted, m.PoolFree, m.PoolGranted, m.PoolReserved, m.PoolPending, m.PoolGrowth, m.PoolGrowthGranted, m.NodeLeadTime, m.BufferReplicas, m.BufferReady)
	return m
}

// The metric label of prescale_query_warnings_total for the queries that are not a policy
// metric's: the forecast's load (named as Decision.Metric names the forecast) and the
// objective's latency.
const (
	warningsForecast  = policy.ForecastMetric
	warningsObjective = "objective"
)

// forget drops every series of a policy that left the configuration.
func (m *Metrics) forget(name string) {
	l := prometheus.Labels{"policy": name}
	for _, v := range []*SeriesVec{m.DesiredReplicas, m.CurrentReplicas, m.UncappedReplicas, m.HPAEquivalentReplicas,
		m.HPADesiredReplicas, m.MetricValue, m.MetricTarget, m.MetricMissing, m.ConflictingAutoscaler, m.IdleSeconds, m.WakeAheadGated,
		m.CapacityWanted, m.CapacityGranted, m.BufferReplicas, m.BufferReady} {
		v.DeletePartialMatch(l)
	}
	m.forgetForecast(name)
	m.forgetObjective(name)
	for _, v := range []*SeriesVec{m.Decisions, m.Scales, m.QueryWarnings, m.ScorecardReplicaSecs, m.ScorecardShortSecs} {
		v.DeletePartialMatch(l)
	}
}

// forgetForecast drops the forecast's series of a policy (it left, or lost its forecast).
func (m *Metrics) forgetForecast(name string) {
	l := prometheus.Labels{"policy": name}
	for _, v := range []*SeriesVec{m.ForecastLoad, m.ForecastUpper, m.ForecastLower, m.ForecastReplicas,
		m.ForecastError, m.ForecastMAPE, m.ForecastGated, m.ForecastHorizon, m.ForecastHistorySamples, m.PodStartup, m.ForecastLoadMissing} {
		v.DeletePartialMatch(l)
	}
}

// forgetObjective drops the objective's series of a policy (it left, or lost its objective).
func (m *Metrics) forgetObjective(name string) {
	l := prometheus.Labels{"policy": name}
	for _, v := range []*SeriesVec{m.ObjectiveQuantile, m.ObjectiveTightness, m.ObjectiveBank, m.ObjectiveLatency, m.ObjectiveSLO, m.ObjectiveBudget, m.ObjectiveMissing} {
		v.DeletePartialMatch(l)
	}
	m.ObjectiveMinutes.DeletePartialMatch(l)
	m.ObjectiveViolatedMinutes.DeletePartialMatch(l)
	m.ObjectiveBeyondReach.DeletePartialMatch(l)
	m.ObjectiveWaitedMinutes.DeletePartialMatch(l)
}
