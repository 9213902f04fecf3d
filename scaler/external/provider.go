package external

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/klog/v2"
	"k8s.io/metrics/pkg/apis/external_metrics"
	"k8s.io/utils/clock"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/prescale/prescale/policy"
	"github.com/prescale/prescale/scaler"
)

// ForecastSuffix ends the name of a policy's forecast metric: "<policy>-forecast-replicas".
// A policy metric may not have this name (policy.Validate), nor spell with its policy's name
// what another policy serves.
const ForecastSuffix = policy.ForecastExternalMetric

// ErrForecastNotConfigured is the error for "<policy>-forecast-replicas" while the policy
// has no forecast (or its method is off), or the provider has no Forecasts.
var ErrForecastNotConfigured = scaler.ErrForecastNotConfigured

// Forecasts returns a policy's latest forecast proposal as of now, and an error (never a
// zero) when there is none: not configured, gated, learning, missing or stale. The
// controller implements it (scaler.Controller.ForecastReplicas).
type Forecasts interface {
	ForecastReplicas(policy string, now time.Time) (int32, error)
}

// Options configures a Provider.
type Options struct {
	// Source answers the queries (the controller's own source).
	Source scaler.MetricSource
	// Policies returns the policies in force (the controller's, reloaded with the file).
	Policies func() []policy.Policy
	// Clock gives the instant of each request; a nil Clock is the real clock.
	Clock clock.PassiveClock
	// Staleness is the oldest sample that counts, the controller's staleness setting.
	Staleness time.Duration
	// Forecasts answers "<policy>-forecast-replicas"; nil: every forecast metric is
	// ErrForecastNotConfigured.
	Forecasts Forecasts
}

// Provider is a provider.ExternalMetricsProvider over the policies' queries.
type Provider struct {
	o Options
}

var _ provider.ExternalMetricsProvider = (*Provider)(nil)

// NewProvider returns a Provider; Source and Policies are required.
func NewProvider(o Options) (*Provider, error) {
	if o.Source == nil || o.Policies == nil {
		return nil, errors.New("external metrics provider: Source and Policies are required")
	}
	if o.Staleness <= 0 {
		return nil, fmt.Errorf("external metrics provider: staleness must be positive, got %v", o.Staleness)
	}
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	return &Provider{o: o}, nil
}

// entry is what an external metric name stands for: a policy's metric, or (metric nil) its
// forecast.
type entry struct {
	policy *policy.Policy
	metric *policy.Metric
}

// MetricName returns the external metric name of a policy's metric.
func MetricName(policyName, metricName string) string { return policyName + "-" + metricName }

// resolve finds the policy metric behind name. Policy and metric names may contain '-', so
// one name could stand for two metrics (policy "a-b" metric "c", policy "a" metric "b-c"):
// such a name is an error rather than a guess.
func resolve(policies []policy.Policy, name string) (entry, error) {
	var found []entry
	for i := range policies {
		p := &policies[i]
		rest, ok := strings.CutPrefix(name, p.Name+"-")
		if !ok {
			continue
		}
		if rest == ForecastSuffix {
			found = append(found, entry{policy: p})
		}
		for j := range p.Metrics {
			if p.Metrics[j].Name == rest {
				found = append(found, entry{policy: p, metric: &p.Metrics[j]})
			}
		}
	}
	switch len(found) {
	case 0:
		return entry{}, apierrors.NewNotFound(schema.GroupResource{Group: external_metrics.GroupName, Resource: name},
			"no prescale policy metric is named "+name)
	case 1:
		return found[0], nil
	}
	return entry{}, apierrors.NewBadRequest(fmt.Sprintf("external metric %s is ambiguous: it names %d policy metrics; rename a policy or a metric", name, len(found)))
}

// GetExternalMetric returns the named metric's value now, as one series without labels. The
// HPA's namespace must be the policy target's namespace; a label selector is refused (the
// query defines the series). A query that fails, is empty, stale, NaN or ±Inf is an error.
func (p *Provider) GetExternalMetric(ctx context.Context, namespace string, sel labels.Selector, info provider.ExternalMetricInfo) (*external_metrics.ExternalMetricValueList, error) {
	e, err := resolve(p.o.Policies(), info.Metric)
	if err != nil {
		return nil, err
	}
	if namespace != e.policy.Target.Namespace {
		return nil, apierrors.NewNotFound(schema.GroupResource{Group: external_metrics.GroupName, Resource: info.Metric},
			fmt.Sprintf("%s in namespace %s (policy %s serves namespace %s only)", info.Metric, namespace, e.policy.Name, e.policy.Target.Namespace))
	}
	if sel != nil && !sel.Empty() {
		return nil, apierrors.NewBadRequest(fmt.Sprintf("external metric %s takes no label selector, got %q: its query defines the series", info.Metric, sel.String()))
	}
	now := p.o.Clock.Now()
	if e.metric == nil {
		return p.forecast(ctx, info.Metric, e.policy.Name, now)
	}
	milli, err := policy.ValueMilli(p.sample(ctx, e.metric.Query, now))
	if err != nil {
		// ServiceUnavailable: the HPA's metrics client reports it as FailedGetExternalMetric
		// and holds the scale, as for any failing metric.
		klog.FromContext(ctx).V(2).Info("Refused external metric", "metric", info.Metric, "policy", e.policy.Name, "err", err)
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("get %s: query %q for policy %s: %v", info.Metric, e.metric.Query, e.policy.Name, err))
	}
	v := resource.NewMilliQuantity(milli, resource.DecimalSI)
	// What each HPA sync saw, to the milli-unit: the record that explains an HPA's decision.
	klog.FromContext(ctx).V(2).Info("Served external metric", "metric", info.Metric, "policy", e.policy.Name,
		"value", v.String(), "at", now.UTC().Format(time.RFC3339Nano))
	return &external_metrics.ExternalMetricValueList{Items: []external_metrics.ExternalMetricValue{{
		MetricName: info.Metric,
		Timestamp:  metav1.NewTime(now),
		Value:      *v,
	}}}, nil
}

// forecast answers a policy's forecast metric: its latest replica proposal, or
// ServiceUnavailable (the HPA holds) when it has none.
func (p *Provider) forecast(ctx context.Context, metric, policyName string, now time.Time) (*external_metrics.ExternalMetricValueList, error) {
	err := ErrForecastNotConfigured
	var replicas int32
	if p.o.Forecasts != nil {
		replicas, err = p.o.Forecasts.ForecastReplicas(policyName, now)
	}
	logger := klog.FromContext(ctx)
	if err != nil {
		logger.V(2).Info("Refused external metric", "metric", metric, "policy", policyName, "err", err)
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("get %s: policy %s: %v", metric, policyName, err))
	}
	v := resource.NewQuantity(int64(replicas), resource.DecimalSI)
	logger.V(2).Info("Served external metric", "metric", metric, "policy", policyName,
		"value", v.String(), "at", now.UTC().Format(time.RFC3339Nano))
	return &external_metrics.ExternalMetricValueList{Items: []external_metrics.ExternalMetricValue{{
		MetricName: metric,
		Timestamp:  metav1.NewTime(now),
		Value:      *v,
	}}}, nil
}

func (p *Provider) sample(ctx context.Context, query string, now time.Time) policy.Sample {
	s, err := p.o.Source.Sample(ctx, query, now, p.o.Staleness)
	if err != nil {
		return policy.Sample{Err: err}
	}
	return s
}

// ListAllExternalMetrics lists every policy metric and every policy's forecast metric.
func (p *Provider) ListAllExternalMetrics() []provider.ExternalMetricInfo {
	policies := p.o.Policies()
	var out []provider.ExternalMetricInfo
	for i := range policies {
		for j := range policies[i].Metrics {
			out = append(out, provider.ExternalMetricInfo{Metric: MetricName(policies[i].Name, policies[i].Metrics[j].Name)})
		}
		out = append(out, provider.ExternalMetricInfo{Metric: MetricName(policies[i].Name, ForecastSuffix)})
	}
	return out
}
