package external

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"

	"github.com/spf13/pflag"
	basecmd "sigs.k8s.io/custom-metrics-apiserver/pkg/cmd"
)

// ServeOptions configure the external metrics API server.
type ServeOptions struct {
	// Address is host:port to serve HTTPS on, e.g. ":6443".
	Address string
	// CertFile and KeyFile are the serving certificate and key (PEM). Both empty: a
	// self-signed certificate for localhost and 127.0.0.1, which an APIService can only use
	// with insecureSkipTLSVerify.
	CertFile, KeyFile string
	// Kubeconfig is the cluster the server delegates authentication (TokenReview, and the
	// front-proxy CA from kube-system/extension-apiserver-authentication) and authorization
	// (SubjectAccessReview) to. Empty: the in-cluster configuration.
	Kubeconfig string
}

// Serve runs the external metrics API (external.metrics.k8s.io/v1beta1) over p until ctx
// is done. It returns an error when the server cannot start or stops on its own.
func Serve(ctx context.Context, o ServeOptions, p *Provider) error {
	args, err := o.args()
	if err != nil {
		return err
	}
	b := &basecmd.AdapterBase{Name: "prescale-external-metrics", FlagSet: pflag.NewFlagSet("external-metrics", pflag.ContinueOnError)}
	if err := b.Flags().Parse(args); err != nil {
		return fmt.Errorf("external metrics server options: %w", err)
	}
	b.WithExternalMetrics(p)
	if err := b.Run(ctx); err != nil {
		return fmt.Errorf("serve external metrics on %s: %w", o.Address, err)
	}
	return nil
}

// args translates o into custom-metrics-apiserver's flags.
func (o ServeOptions) args() ([]string, error) {
	host, port, err := net.SplitHostPort(o.Address)
	if err != nil {
		return nil, fmt.Errorf("external metrics address %q: %w", o.Address, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return nil, fmt.Errorf("external metrics address %q: bad port", o.Address)
	}
	args := []string{"--secure-port=" + port}
	if host != "" {
		args = append(args, "--bind-address="+host)
	}
	switch {
	case o.CertFile != "" && o.KeyFile != "":
		args = append(args, "--tls-cert-file="+o.CertFile, "--tls-private-key-file="+o.KeyFile)
	case o.CertFile != "" || o.KeyFile != "":
		return nil, errors.New("external metrics TLS: give both certFile and keyFile, or neither")
	default:
		dir, err := os.MkdirTemp("", "prescale-external-metrics-")
		if err != nil {
			return nil, fmt.Errorf("external metrics self-signed certificate: %w", err)
		}
		args = append(args, "--cert-dir="+dir)
	}
	if o.Kubeconfig != "" {
		args = append(args, "--lister-kubeconfig="+o.Kubeconfig,
			"--authentication-kubeconfig="+o.Kubeconfig, "--authorization-kubeconfig="+o.Kubeconfig)
	}
	return args, nil
}
