package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/prescale/prescale/policy"
	"github.com/prescale/prescale/preflight"
	"github.com/prescale/prescale/prom"
)

// newValidateCmd returns "prescale validate -f FILE [--prometheus URL]": parse a policy file
// strictly and report every problem in it, one per line on stderr, exiting 1; or summarise
// it on stdout. With --prometheus, then run each of its queries once against that
// Prometheus (package preflight) and report each problem the same way.
func newValidateCmd(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "validate -f FILE [--prometheus URL]",
		Short: "Check a policy file and report every problem in it; with --prometheus, its queries too",
		Long: `Validate parses a policy file as prescale run would, strictly: unknown keys, values of the
wrong type and out-of-range settings are all reported at once, one per line, each with its
YAML path, value and line. It exits 1 when the file has problems, 2 when it cannot be read.

With --prometheus URL, a valid file's queries (each policy's metrics, forecast load,
objective and activation, as run sends them) are then run once against that Prometheus,
reached with the file's prometheus settings as run reaches it (bearerTokenFile, basicAuth,
tls, headers; PRESCALE_PROMETHEUS_* variables override them), and every problem is printed
on its own line, "policy NAME, QUERY: KIND: DETAIL": no series, a histogram's base name,
stale (older than the staleness setting), NaN or ±Inf, negative, no pod label, values the
target cannot mean, or a refused query (docs/operations.md). It exits 1 when there is any,
2 when Prometheus cannot be reached; a URL's password is shown redacted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runValidate(cmd, v.GetString("file"), v.GetString("prometheus"))
		},
	}
	cmd.Flags().StringP("file", "f", "", `policy file to check; "-" reads standard input`)
	cmd.Flags().String("prometheus", "", "also run each query of the file once against the Prometheus at this URL, "+
		"reached with the file's prometheus settings as run reaches it, and report what run could not use")
	return cmd
}

func runValidate(cmd *cobra.Command, file, promURL string) error {
	if file == "" {
		return errors.New(`no policy file: give -f FILE, or -f - for standard input`)
	}
	var content []byte
	var err error
	if file == "-" {
		content, err = readPolicyFile(cmd.InOrStdin())
	} else {
		content, err = readPolicyPath(file)
	}
	if err != nil {
		return fmt.Errorf("read policy file: %w", err)
	}
	s, policies, err := parseConfig(content, nil)
	if err != nil {
		problems := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			problems = j.Unwrap()
		}
		for _, p := range problems {
			fmt.Fprintln(cmd.ErrOrStderr(), p)
		}
		return exitError{code: 1}
	}
	names := make([]string, len(policies))
	for i, p := range policies {
		names[i] = p.Name
	}
	fmt.Fprintf(cmd.OutOrStdout(), "policy file ok: %d %s (%s)\n", len(names), plural(len(names), "policy", "policies"), strings.Join(names, ", "))
	if promURL == "" {
		return nil
	}
	return runPreflight(cmd, s, policies, promURL)
}

// runPreflight is validate's --prometheus: the file's queries, run once against the
// Prometheus at promURL through the source run builds from s (promURL replacing
// prometheus.url), at run's staleness and pod label.
func runPreflight(cmd *cobra.Command, s Settings, policies []policy.Policy, promURL string) error {
	shown := prom.RedactedURL(promURL)
	s.Prometheus.URL = promURL
	source, err := newSource(s)
	if err != nil {
		return fmt.Errorf("--prometheus %s: %w", shown, err)
	}
	r, err := preflight.Check(cmd.Context(), source, policies, time.Now(), preflight.Options{
		Staleness: s.Staleness, PodLabel: s.Prometheus.PodLabel, Concurrency: s.Prometheus.Concurrency})
	if err != nil {
		return fmt.Errorf("preflight against %s: %w", shown, err)
	}
	of := fmt.Sprintf("%d %s of %d %s", r.Queries, plural(r.Queries, "query", "queries"), len(policies), plural(len(policies), "policy", "policies"))
	if len(r.Problems) == 0 {
		fmt.Fprintf(cmd.OutOrStdout(), "prometheus ok: %s checked against %s\n", of, shown)
		return nil
	}
	stderr := cmd.ErrOrStderr()
	for _, p := range r.Problems {
		fmt.Fprintln(stderr, p)
	}
	fmt.Fprintf(stderr, "%d %s in %s checked against %s\n", len(r.Problems), plural(len(r.Problems), "problem", "problems"), of, shown)
	return exitError{code: 1}
}

// plural is one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
