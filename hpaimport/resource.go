package hpaimport

import (
	"fmt"

	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"github.com/prescale/prescale/policy"
)

// ResourceWindow is the range of the rate of cAdvisor's CPU counter. metrics-server rates
// it over its own scrape interval (--metric-resolution, 15 s by default); one minute holds
// at least two samples at Prometheus' usual 15 s or 30 s scrape intervals.
const ResourceWindow = "1m"

// resourceMetric imports a Resource metric (container empty) or a ContainerResource metric:
// the usage per pod that metrics-server reports, from cAdvisor's series as Prometheus
// scrapes them from the kubelet, summed over the pod's containers (or the one container):
//   - cpu: rate(container_cpu_usage_seconds_total[ResourceWindow]), in cores;
//   - memory: container_memory_working_set_bytes, in bytes.
//
// A Utilization target (a percentage of the requests) becomes that usage as a percentage
// of the pod's requests (kube-state-metrics' kube_pod_container_resource_requests), with an
// AverageValue target of the percentage: prescale has no Utilization target type.
func resourceMetric(name, container string, t autoscalingv2.MetricTarget, ns string, ref autoscalingv2.CrossVersionObjectReference) (policy.Metric, []string, error) {
	what := "Resource metric " + name
	if container != "" {
		what = fmt.Sprintf("ContainerResource metric %s of container %s", name, container)
	}
	re, err := podRegex(ref.Kind, ref.Name)
	if err != nil {
		return policy.Metric{}, nil, fmt.Errorf("%s: %w", what, err)
	}
	sel := fmt.Sprintf(`namespace=%q,pod=~%q,container!="",container!="POD"`, ns, re)
	reqSel := fmt.Sprintf(`namespace=%q,pod=~%q,resource=%q`, ns, re, name)
	if container != "" {
		sel = fmt.Sprintf(`namespace=%q,pod=~%q,container=%q`, ns, re, container)
		reqSel = fmt.Sprintf(`namespace=%q,pod=~%q,container=%q,resource=%q`, ns, re, container, name)
	}
	var usage, source string
	switch name {
	case "cpu":
		usage = fmt.Sprintf("sum by (pod) (rate(container_cpu_usage_seconds_total{%s}[%s]))", sel, ResourceWindow)
		source = fmt.Sprintf("cAdvisor's container_cpu_usage_seconds_total, rated over %s: metrics-server rates it over its scrape interval (15 s by default), so this one is smoother and lags a little", ResourceWindow)
	case "memory":
		usage = fmt.Sprintf("sum by (pod) (container_memory_working_set_bytes{%s})", sel)
		source = "cAdvisor's container_memory_working_set_bytes, the working set that metrics-server reports; it can differ by a scrape's age"
	default:
		return policy.Metric{}, nil, fmt.Errorf("%s: the importer translates cpu and memory, not %s", what, name)
	}
	mname := name
	if container != "" {
		mname = container + "-" + name
	}
	notes := []string{fmt.Sprintf("%s as metrics-server serves it, here from %s", what, source)}
	switch t.Type {
	case autoscalingv2.AverageValueMetricType:
		mt, err := target(t, autoscalingv2.AverageValueMetricType)
		if err != nil {
			return policy.Metric{}, nil, fmt.Errorf("%s: %w", what, err)
		}
		return policy.Metric{Name: metricName(mname), Query: usage, Target: mt}, notes, nil
	case autoscalingv2.UtilizationMetricType:
		if t.AverageUtilization == nil {
			return policy.Metric{}, nil, fmt.Errorf("%s: target.type Utilization without its target.averageUtilization", what)
		}
		q := fmt.Sprintf("100 * %s / sum by (pod) (kube_pod_container_resource_requests{%s})", usage, reqSel)
		target := policy.MustQuantity(fmt.Sprint(*t.AverageUtilization))
		notes = append(notes,
			fmt.Sprintf("Utilization %d %%: the usage in percent of the pod's requests (kube-state-metrics' kube_pod_container_resource_requests) with an AverageValue target, as prescale has no Utilization type", *t.AverageUtilization),
			"where it can differ: the HPA divides the pods' summed usage by their summed requests (the same when the pods request the same), and fails the metric for a container without a request, which this leaves out of the sum")
		return policy.Metric{Name: metricName(mname + "-utilization"), Query: q,
			Target: policy.MetricTarget{Type: policy.AverageValue, AverageValue: &target}}, notes, nil
	}
	return policy.Metric{}, nil, fmt.Errorf("%s: target.type %q: the HPA allows Utilization or AverageValue here", what, t.Type)
}
