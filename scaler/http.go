package scaler

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics (from g), /healthz, /readyz (caches synced) and /status (the
// dry-run scorecard: JSON, or a table with ?format=table).
func (c *Controller) Handler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !c.Ready() {
			http.Error(w, "informer caches not synced", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		st := c.Status()
		if r.URL.Query().Get("format") == "table" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			WriteStatusTable(w, st)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(st)
	})
	return mux
}

// WriteStatusTable prints the scorecard: per policy the replicas each autoscaler wants now,
// and the replica-hours and under-provisioned minutes each would have had.
func WriteStatusTable(w io.Writer, st []PolicyStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POLICY\tTARGET\tCURRENT\tPRESCALE\tHPA-EQUIV\tHPA\tREASON\tREPLICA-HOURS (prescale/equiv/hpa)\tSHORT MINUTES (prescale/equiv/hpa)")
	for _, s := range st {
		hpa := "-"
		if s.HPA != nil {
			hpa = fmt.Sprint(*s.HPA)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\t%s\n", s.Policy, s.Target, s.Current, s.Desired, s.HPAEquivalent, hpa, s.Reason,
			triple(s.ReplicaSecs, 3600), triple(s.ShortSecs, 60))
	}
	_ = tw.Flush()
}

func triple(m map[string]float64, unit float64) string {
	parts := make([]string, 0, 3)
	for _, who := range []string{WhoPrescale, WhoHPAEquivalent, WhoHPA} {
		v, ok := m[who]
		if !ok {
			parts = append(parts, "-")
			continue
		}
		parts = append(parts, fmt.Sprintf("%.2f", v/unit))
	}
	return strings.Join(parts, " / ")
}
