package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/prescale/prescale/prom"
)

// kubeConfig returns the Kubernetes client configuration: kubeconfig when given, else
// $KUBECONFIG or the in-cluster configuration, rate-limited by the kubernetes settings and
// announcing identity in its user agent.
func kubeConfig(kubeconfig string, k KubernetesSettings, identity string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if clientcmd.IsEmptyConfig(err) {
		// client-go's "try setting KUBERNETES_MASTER" names neither where it looked nor
		// the variable that matters.
		err = noKubeconfig(rules.Precedence)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	cfg.QPS, cfg.Burst, cfg.UserAgent = k.QPS, k.Burst, "prescale/"+identity
	return cfg, nil
}

// noKubeconfig says why no configuration was found, given the files looked for (those of
// $KUBECONFIG, else ~/.kube/config), when no --kubeconfig was given and prescale does not
// run in a pod: the files missing, or that those that exist define no cluster.
func noKubeconfig(looked []string) error {
	var missing []string
	for _, f := range looked {
		if _, err := os.Stat(f); errors.Is(err, fs.ErrNotExist) {
			missing = append(missing, f)
		}
	}
	env := os.Getenv(clientcmd.RecommendedConfigPathEnvVar)
	switch {
	case env != "" && len(missing) == len(looked):
		return fmt.Errorf("%s=%s: no such file", clientcmd.RecommendedConfigPathEnvVar, env)
	case len(missing) == len(looked):
		return fmt.Errorf("no kubeconfig: --kubeconfig and %s are not set, %s does not exist, and prescale does not run in a pod (KUBERNETES_SERVICE_HOST is not set)",
			clientcmd.RecommendedConfigPathEnvVar, strings.Join(looked, ", "))
	}
	return fmt.Errorf("kubeconfig %s: defines no cluster to connect to", strings.Join(looked, ", "))
}

// newSource returns the Prometheus source of the settings; it reads the TLS files they name.
func newSource(s Settings) (*prom.Source, error) {
	o, err := s.promOptions()
	if err != nil {
		return nil, err
	}
	return prom.New(o)
}
