package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/prescale/prescale/hpaimport"
	"github.com/prescale/prescale/prom"
)

// seriesLookback is how far back import --prometheus lists series names: the adapter's
// discovery lists those with a sample within its --metrics-max-age (its relist interval by
// default); an hour also finds series that are quiet for a while.
const seriesLookback = time.Hour

// newImportCmd returns "prescale import": HPAs and prometheus-adapter rules into a policy
// file (package hpaimport).
func newImportCmd(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "import [--adapter-config FILE]... (-f HPA.yaml... | --namespace NS [NAME...] | NAMESPACE/NAME...) [-o FILE] [--prometheus URL]",
		Short: "Turn HPAs and their prometheus-adapter rules into a policy file that runs beside them in dry-run",
		Long: `Import reads autoscaling/v2 HorizontalPodAutoscalers and writes a policy file with one policy
per HPA: its target, minReplicas, maxReplicas and behavior as they are, dryRun: true, and each
metric as the PromQL that prometheus-adapter would run for it (Pods, Object, External), or as
cAdvisor and kube-state-metrics queries matching what metrics-server reports (Resource,
ContainerResource). A comment above each metric names the rule it came from, or where the
translation can differ from metrics-server.

HPAs come from manifests (-f FILE, repeatable; "-" reads standard input; several documents
and List kinds are read, other kinds skipped; --namespace gives the namespace of those without
one) or from the cluster: NAMESPACE/NAME arguments, or NAME arguments with --namespace, or
every HPA of --namespace.

The adapter's configuration (--adapter-config, repeatable, rules in file order) is its own
config file, the prometheus-adapter chart's values (rules.default adds the chart's default
rules), or the ConfigMap manifest that holds it; the form is detected.

Prometheus's series decide which rule serves a metric where a rule's seriesQuery does not
name its series: with --prometheus URL, import lists the series names as the adapter's
discovery does, then runs the result through validate's --prometheus checks. Without it, a
metric that several rules might serve is an error that says so.

Exit codes: 0 written; 1 an HPA could not be imported (every problem on its own line), or
the preflight found problems (the file is still written); 2 bad usage, an unreadable or
malformed file, or an unreachable cluster or Prometheus.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			files, _ := cmd.Flags().GetStringArray("filename") // read directly: viper would split at commas
			configs, _ := cmd.Flags().GetStringArray("adapter-config")
			return runImport(cmd, importOptions{
				files: files, configs: configs, args: args,
				namespace: v.GetString("namespace"), kubeconfig: v.GetString("kubeconfig"),
				output: v.GetString("output"), prometheus: v.GetString("prometheus"),
			})
		},
	}
	f := cmd.Flags()
	f.StringArray("adapter-config", nil, "prometheus-adapter configuration: its config file, the chart's values, or its ConfigMap manifest (repeatable)")
	f.StringArrayP("filename", "f", nil, `HPA manifests ("-" for standard input; repeatable)`)
	f.StringP("namespace", "n", "", "the namespace of the HPAs to read from the cluster; with -f, the namespace of manifests without one")
	f.String("kubeconfig", "", "kubeconfig file; empty: $KUBECONFIG, then ~/.kube/config, then the in-cluster configuration")
	f.StringP("output", "o", "", "write the policy file here instead of standard output")
	f.String("prometheus", "", "list this Prometheus's series names to tell which rules serve the metrics, and check the result as validate --prometheus does")
	return cmd
}

// importOptions are import's flags and arguments.
type importOptions struct {
	files, configs, args []string
	namespace            string
	kubeconfig           string
	output               string
	prometheus           string
}

func runImport(cmd *cobra.Command, o importOptions) error {
	switch {
	case len(o.files) > 0 && len(o.args) > 0:
		return errors.New("give HPAs either as manifests (-f) or as names to read from the cluster, not both")
	case len(o.files) == 0 && len(o.args) == 0 && o.namespace == "":
		return errors.New("no HPAs: give -f FILE (- for standard input), NAMESPACE/NAME, or --namespace NS [NAME...]")
	}
	cfg, err := readAdapterConfigs(o.configs)
	if err != nil {
		return err
	}
	var hpas []autoscalingv2.HorizontalPodAutoscaler
	if len(o.files) > 0 {
		hpas, err = readHPAManifests(cmd.InOrStdin(), o.files)
	} else {
		hpas, err = readClusterHPAs(cmd.Context(), o)
	}
	if err != nil {
		return err
	}
	opts := hpaimport.Options{Namespace: o.namespace}
	var source *prom.Source
	var s Settings
	if o.prometheus != "" {
		if s, source, err = importSource(o.prometheus); err != nil {
			return err
		}
		names, err := source.MetricNames(cmd.Context(), time.Now(), seriesLookback)
		if err != nil {
			return fmt.Errorf("list series names from %s: %w", prom.RedactedURL(o.prometheus), err)
		}
		opts.Series = names
	}
	out, err := hpaimport.Import(hpas, cfg, opts)
	if err != nil {
		stderr := cmd.ErrOrStderr()
		for _, p := range problems(err) {
			fmt.Fprintln(stderr, p)
		}
		return exitError{code: 1}
	}
	if o.output == "" {
		if _, err := cmd.OutOrStdout().Write(out); err != nil {
			return fmt.Errorf("write policy file: %w", err)
		}
	} else if err := os.WriteFile(o.output, out, 0o644); err != nil {
		return fmt.Errorf("write policy file: %w", err)
	}
	if o.prometheus == "" {
		return nil
	}
	// The same loading and checks as prescale validate --prometheus.
	_, policies, err := parseConfig(out, nil)
	if err != nil {
		return fmt.Errorf("load the imported policy file: %w", err)
	}
	if o.output == "" {
		cmd.SetOut(cmd.ErrOrStderr()) // standard output holds the file alone
	}
	return runPreflight(cmd, s, policies, o.prometheus)
}

// readAdapterConfigs parses and merges the adapter configuration files, in order.
func readAdapterConfigs(paths []string) (*hpaimport.Config, error) {
	var cs []*hpaimport.Config
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read adapter config: %w", err)
		}
		c, _, err := hpaimport.ParseAdapterConfig(p, data)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return hpaimport.Merge(cs...)
}

// readHPAManifests reads the HPAs of the manifest files, "-" being stdin.
func readHPAManifests(stdin io.Reader, files []string) ([]autoscalingv2.HorizontalPodAutoscaler, error) {
	var out []autoscalingv2.HorizontalPodAutoscaler
	for _, f := range files {
		var data []byte
		var err error
		name := f
		if f == "-" {
			name = "(standard input)"
			data, err = io.ReadAll(stdin)
		} else {
			data, err = os.ReadFile(f)
		}
		if err != nil {
			return nil, fmt.Errorf("read HPA manifests: %w", err)
		}
		hpas, err := hpaimport.ParseHPAs(name, data)
		if err != nil {
			return nil, err
		}
		out = append(out, hpas...)
	}
	return out, nil
}

// readClusterHPAs gets the HPAs named by the arguments (NAMESPACE/NAME, or NAME in
// --namespace), or every HPA of --namespace.
func readClusterHPAs(ctx context.Context, o importOptions) ([]autoscalingv2.HorizontalPodAutoscaler, error) {
	s, err := defaultSettings()
	if err != nil {
		return nil, err
	}
	kcfg, err := kubeConfig(o.kubeconfig, s.Kubernetes, "import")
	if err != nil {
		return nil, err
	}
	kube, err := kubernetes.NewForConfig(kcfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	if len(o.args) == 0 {
		l, err := kube.AutoscalingV2().HorizontalPodAutoscalers(o.namespace).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("list HPAs of namespace %s: %w", o.namespace, err)
		}
		if len(l.Items) == 0 {
			return nil, fmt.Errorf("namespace %s has no HPA", o.namespace)
		}
		return l.Items, nil
	}
	var out []autoscalingv2.HorizontalPodAutoscaler
	for _, a := range o.args {
		ns, name, ok := strings.Cut(a, "/")
		if !ok {
			ns, name = o.namespace, a
		}
		if ns == "" || name == "" {
			return nil, fmt.Errorf("HPA %q: give NAMESPACE/NAME, or NAME with --namespace", a)
		}
		h, err := kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("get HPA %s/%s: %w", ns, name, err)
		}
		out = append(out, *h)
	}
	return out, nil
}

// defaultSettings are the global settings with no file: the defaults and PRESCALE_*
// environment overrides (PRESCALE_PROMETHEUS_BEARERTOKENFILE, ...).
func defaultSettings() (Settings, error) {
	v, err := newSettingsViper([]byte("{}"), nil)
	if err != nil {
		return Settings{}, err
	}
	return loadSettings(v)
}

// importSource is the Prometheus source of import --prometheus, as validate builds it.
func importSource(url string) (Settings, *prom.Source, error) {
	s, err := defaultSettings()
	if err != nil {
		return Settings{}, nil, err
	}
	s.Prometheus.URL = url
	source, err := newSource(s)
	if err != nil {
		return Settings{}, nil, fmt.Errorf("--prometheus %s: %w", prom.RedactedURL(url), err)
	}
	return s, source, nil
}
