package main

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/prescale/prescale/scaler/prom"
)

// kubeConfig returns the Kubernetes client configuration: kubeconfig when given, else
// $KUBECONFIG or the in-cluster configuration, rate-limited by the kubernetes settings and
// announcing identity in its user agent.
func kubeConfig(kubeconfig string, k KubernetesSettings, identity string) (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	cfg.QPS, cfg.Burst, cfg.UserAgent = k.QPS, k.Burst, "prescale/"+identity
	return cfg, nil
}

// newSource returns the Prometheus source of the settings; it reads the TLS files they name.
func newSource(s Settings) (*prom.Source, error) {
	o, err := s.promOptions()
	if err != nil {
		return nil, err
	}
	return prom.New(o)
}
