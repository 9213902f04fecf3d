package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"

	"github.com/prescale/prescale/prom"
	"github.com/prescale/prescale/scaler"
)

// newStatusCmd returns "prescale status": the dry-run scorecard of a running prescale.
func newStatusCmd(v *viper.Viper) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status [--addr http://localhost:8080]",
		Short: "Print a running prescale's decisions and dry-run scorecard as a table",
		Long: `Status asks a running prescale (its /status endpoint) for every policy's current and desired
replicas, what the HPA-equivalent engine and a real HPA on the same target want, and the
scorecard since it started: replica-hours each would have used and minutes each would have
had fewer replicas than the metrics asked for. For the policies with an objective, a second
table: the SLO and budget, the minutes observed and those over the SLO (and their share),
the forecast quantile planned for (adaptive, or forecast.quantile: fixed) and the last
latency, or why it is missing. For the policies whose pods request GPUs (capacity.mode:
cap), a third table: priority, guaranteed minimum, the replicas wanted and granted at the
last tick, Pending pods and GPUs held for the guarantee, then who got the GPUs of each
policy granted less than it wanted. A policy that does not write (another autoscaler
targets the workload) or holds whatever its metrics say (another policy's target selects
some of its pods: AmbiguousSelector) has a line saying why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			addr := strings.TrimSuffix(v.GetString("addr"), "/")
			if err := checkStatusAddr(addr); err != nil {
				return err
			}
			// The address as errors show it: its password, if any, as xxxxx.
			shown := prom.RedactedURL(addr)
			client := &http.Client{Timeout: 10 * time.Second}
			resp, err := client.Get(addr + "/status")
			if err != nil {
				return fmt.Errorf("get status from %s: %w", shown, err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("get status from %s: %s", shown, resp.Status)
			}
			var st []scaler.PolicyStatus
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				return fmt.Errorf("decode status from %s: %w", shown, err)
			}
			scaler.WriteStatusTable(cmd.OutOrStdout(), st)
			return nil
		},
	}
	cmd.Flags().String("addr", "http://localhost:8080", "base URL of a running prescale's listen address")
	return cmd
}

// checkStatusAddr refuses an --addr that is not an http or https URL with a host. The
// message shows the address without its password, or only its scheme when it is not one:
// "admin:secret@host" reads as scheme admin, and the rest is not a password to redact.
func checkStatusAddr(addr string) error {
	u, err := url.Parse(addr)
	switch {
	case err != nil:
		// The parse error quotes the address, password and all: not shown.
		return fmt.Errorf("--addr: must be an http or https URL such as http://localhost:8080, got %s", prom.RedactedURL(addr))
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("--addr: must be an http or https URL such as http://localhost:8080, got one of scheme %q", u.Scheme)
	case u.Host == "":
		return fmt.Errorf("--addr: must be an http or https URL such as http://localhost:8080, got %s", prom.RedactedURL(addr))
	}
	return nil
}
