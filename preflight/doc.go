// Package preflight runs each query of a policy file once against a live Prometheus, as
// prescale run would send it, and reports what would keep run from using it as its author
// meant: prescale validate --prometheus URL.
//
// The queries are those run sends each tick: every metric's, the forecast's load (when the
// forecast's method is not off), the objective's latency and the scale-to-zero activation.
// Each goes through the same Source methods as in run (Sample; Latency for the objective) with
// the staleness setting as the longest age of a sample, so a problem here is one that run
// meets. The problems, one Problem each (Kind says which), and their rules:
//
//   - KindNoSeries: the result is empty. The message names the query's metric names that
//     have no series at all over the staleness plus an hour.
//   - KindHistogram: the query reads a metric name N that has no series while N_bucket has:
//     N is a classic histogram's base name, which Prometheus never stores; read N_bucket
//     (histogram_quantile over its rate), N_sum or N_count. When it explains an empty
//     result, it replaces KindNoSeries.
//   - KindStale: the query's series exist, but none has a sample newer than the staleness
//     (prom.ErrStale: Prometheus is sent the staleness as the lookback).
//   - KindNotFinite: a value is NaN or ±Inf (the objective's +Inf included: run reads it
//     as a latency beyond any bucket, over every SLO).
//   - KindNegative: a value is negative; run treats the sample as missing.
//   - KindNoPodLabel: several series of which some or all lack the pod label (run can use
//     neither one series nor one per pod); or, for a metric with an AverageValue target,
//     one series without the pod label from a query whose outermost aggregation groups
//     by the pod label (sum by (pod) (...)): the series it groups lack the label, and run
//     would read the one series as the total of all pods (External AverageValue semantics)
//     instead of one value per pod.
//   - KindScale: values the target cannot mean, judged on what run compares with the
//     target: a per-pod metric's values (AverageValue), or the one value, or the sum of
//     the per-pod values (Value). A metric with an AverageValue target and one series is
//     not judged: run divides it by the replicas, which the preflight does not know.
//     (a) a ratio against a larger scale: every value within 0..1, at least one strictly
//     between 0 and 1 (a fraction, not a count of 0 or 1), and the target above 1 and at
//     least 10 times the largest value (kv_cache_usage_perc, 0..1, against 80).
//     (b) a percentage against a ratio: every value within 0..100, the largest above 1
//     and at least 10 times the target, and the target below 1 (DCGM_FI_DEV_GPU_UTIL,
//     0..100, against 0.7).
//     (c) the objective's latency at least 1000 times its SLO (milliseconds or
//     microseconds read as seconds).
//   - KindShape: any other result run cannot use (a matrix, one pod twice, a native
//     histogram, an objective per pod).
//   - KindQuery: Prometheus refused the query (bad PromQL, 4xx) or it timed out.
//
// A Prometheus that cannot be reached (prom.ErrUnavailable) is an error of Check, not a
// problem of each query.
//
// Metric names and the grouping are read with Prometheus' own PromQL parser
// (github.com/prometheus/prometheus/promql/parser); a query it cannot parse is still
// run, and Prometheus' answer reported.
//
// The rules of KindScale are a guess from numbers at one instant: a metric at a tenth of
// its target, or ten times over it, can read like another scale. Run the preflight while
// the service sees its usual load.
//
// This package reads no clock (Check is given now) and must not import the controller
// (scaler), cmd, Kubernetes packages or viper.
package preflight
