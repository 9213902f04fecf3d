package backtest

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// WriteTable writes res as an aligned text table, one row per contender: GPU-hours and their
// ratio to the oracle's, under-provisioned and SLO-violation minutes, scale events, peak
// queue and p99 queueing delay; with nodes (Params.Nodes), the node-hours and the pods'
// hours waiting for a node too.
func WriteTable(w io.Writer, res Result) error {
	oracleHours := math.NaN()
	if o, ok := res.Policy(OracleName); ok {
		oracleHours = o.GPUHours
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "policy\tGPU-hours\tx oracle\tunder-prov min\tSLO-viol min\tscale events\tpeak queue\tp99 delay\t"
	if res.Nodes != nil {
		head += "node-hours\tpending pod-h\t"
	}
	fmt.Fprintln(tw, head)
	for _, p := range res.Policies {
		ratio := "-"
		if oracleHours > 0 {
			ratio = fmt.Sprintf("%.3f", p.GPUHours/oracleHours)
		}
		fmt.Fprintf(tw, "%s\t%.1f\t%s\t%d\t%d\t%d\t%.0f\t%.2fs\t", p.Name, p.GPUHours, ratio,
			p.UnderProvisionedMinutes, p.SLOViolationMinutes, p.ScaleEvents, p.PeakQueue, float64(p.P99QueueingDelay))
		if res.Nodes != nil {
			fmt.Fprintf(tw, "%.1f\t%.1f\t", p.NodeHours, p.PendingPodHours)
		}
		fmt.Fprintln(tw)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}
