package scaler

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler serves /metrics (from g), /healthz (the process serves: always ok), /readyz
// (caches synced; else 503, saying whether the API server can be reached) and /status (the
// dry-run scorecard: JSON, or a table with ?format=table).
func (c *Controller) Handler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !c.Ready() {
			http.Error(w, c.notReady(), http.StatusServiceUnavailable)
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

// WriteStatusTable prints the scorecard: per policy the replicas each autoscaler wants now
// (dashes and the reason "not synced" before the policy's first decision), and the
// replica-hours and under-provisioned minutes each would have had; then, for the policies
// with an objective, its SLO and budget, the minutes observed and violated, the quantile
// planned for and the last latency (or why it is missing).
func WriteStatusTable(w io.Writer, st []PolicyStatus) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POLICY\tTARGET\tCURRENT\tPRESCALE\tHPA-EQUIV\tHPA\tREASON\tREPLICA-HOURS (prescale/equiv/hpa)\tSHORT MINUTES (prescale/equiv/hpa)")
	for _, s := range st {
		reason := string(s.Reason)
		if !s.Synced {
			reason = "not synced"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Policy, s.Target, count(s.Current), count(s.Desired),
			count(s.HPAEquivalent), count(s.HPA), reason, triple(s.ReplicaSecs, 3600), triple(s.ShortSecs, 60))
	}
	_ = tw.Flush()
	for _, s := range st {
		if s.NotWriting != "" {
			fmt.Fprintf(w, "\n%s: not writing: %s\n", s.Policy, s.NotWriting)
		}
		if s.NotScaling != "" {
			fmt.Fprintf(w, "\n%s: not scaling: %s\n", s.Policy, s.NotScaling)
		}
	}
	writeObjectives(w, st)
	writeCapacity(w, st)
}

// writeCapacity prints the GPU allocation's table, when a policy was allocated, and the
// explanation of each grant below what was wanted.
func writeCapacity(w io.Writer, st []PolicyStatus) {
	header := false
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range st {
		c := s.Capacity
		if c == nil {
			continue
		}
		if !header {
			fmt.Fprintln(tw, "\nPOLICY\tPRIORITY\tGUARANTEED\tWANTED\tGRANTED\tPENDING\tRESERVED")
			header = true
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\n", s.Policy, c.Priority, c.Guaranteed, c.Wanted, c.Granted, c.Pending, c.Reserved)
	}
	_ = tw.Flush()
	for _, s := range st {
		if s.Capacity != nil && s.Capacity.Message != "" {
			fmt.Fprintf(w, "%s: %s\n", s.Policy, s.Capacity.Message)
		}
	}
}

// writeObjectives prints the objectives' table, when a policy has one.
func writeObjectives(w io.Writer, st []PolicyStatus) {
	header := false
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range st {
		o := s.Objective
		if o == nil {
			continue
		}
		if !header {
			fmt.Fprintln(tw, "\nPOLICY\tSLO\tBUDGET\tMINUTES\tVIOLATED\tQUANTILE\tTIGHTNESS\tLATENCY")
			header = true
		}
		violated := fmt.Sprint(o.ViolatedMinutes)
		if o.Minutes > 0 {
			violated += fmt.Sprintf(" (%.2f%%)", 100*float64(o.ViolatedMinutes)/float64(o.Minutes))
		}
		quantile := fmt.Sprintf("%.3f adaptive", o.Quantile)
		if o.Fixed {
			quantile = fmt.Sprintf("%g fixed", o.Quantile)
		}
		latency := "-"
		switch {
		case o.Latency != nil && math.IsInf(*o.Latency, 1):
			latency = "+Inf"
		case o.Latency != nil:
			latency = strconv.FormatFloat(*o.Latency, 'g', 4, 64) + "s"
		case o.WaitedWithoutLatency:
			latency = fmt.Sprintf("none while %s wait: over the SLO", strconv.FormatFloat(*o.Waiting, 'g', 4, 64))
		case o.LatencyError != "":
			latency = "missing: " + truncate(o.LatencyError, 80)
		}
		tight := fmt.Sprintf("%.2f (bank %.1f min)", o.Tightness, o.BankMinutes)
		fmt.Fprintf(tw, "%s\t%gs\t%g%%\t%d\t%s\t%s\t%s\t%s\n", s.Policy, o.SLOSeconds, 100*o.Budget, o.Minutes, violated, quantile, tight, latency)
	}
	_ = tw.Flush()
}

// count is a replica count as the table shows it: "-" when unknown.
func count(n *int32) string {
	if n == nil {
		return "-"
	}
	return strconv.FormatInt(int64(*n), 10)
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
