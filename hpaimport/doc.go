// Package hpaimport turns autoscaling/v2 HorizontalPodAutoscalers, and the prometheus-adapter
// configuration that serves their custom and external metrics, into a prescale policy file:
// the same target, replica bounds, behavior and metrics, each metric as the PromQL that the
// adapter would run for it.
//
// It models prometheus-adapter v0.12 (kubernetes-sigs/prometheus-adapter@01919d0e) and the
// prometheus-adapter Helm chart 5.3.0 (prometheus-community/helm-charts):
//   - pkg/config/config.go and loader.go: the configuration file and its strict decoding;
//   - pkg/naming/metric_namer.go: series filters, name.matches and name.as;
//   - pkg/naming/resource_converter.go and lbl_res.go: resources.overrides and
//     resources.template, from a Kubernetes resource to a Prometheus label;
//   - pkg/naming/metrics_query.go: the metricsQuery template and its arguments (Series,
//     LabelMatchers, LabelValuesByName, GroupBy, GroupBySlice), and how a metric selector
//     becomes label matchers;
//   - pkg/custom-provider/series_registry.go, provider.go and
//     pkg/external-provider/external_series_registry.go: which rule and series serve an HPA
//     metric, and the arguments the HPA's requests give the template;
//   - charts/prometheus-adapter/templates/configmap.yaml: the chart's default rules and how
//     values.yaml's rules.custom, rules.external and rules.resource become the file.
//
// Where the adapter lists Prometheus (series discovery), the importer either is given the
// series names (Options.Series) or derives the series from the rule alone; where neither
// names one series, it is an error, never a guess. See Import.
//
// The package does no I/O beyond parsing the bytes it is given: no Kubernetes or Prometheus
// client, no clock, no logging. It may import policy (whose Parse checks the output) and the
// Kubernetes API types, not client-go.
package hpaimport
