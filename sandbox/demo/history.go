package demo

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/prescale/prescale/sandbox/sim"
)

// writeVLLMHistory writes the services' past as the vLLM example's forecast reads it, in the
// OpenMetrics text format for promtool's backfill: per service, one pod's
// vllm:request_success_total (the arrivals of each tick of h.Load, all served: the history
// has no overload) and its vllm:num_requests_running and vllm:num_requests_waiting at 0,
// so that the example's arrivals (completions plus the change of the requests inside) are
// the load. The pod is named <service>-history-00000: the example's pod regex selects it,
// and its series end with the history, before the live pods' begin. Timestamps follow
// sim.History: the sample of model time t at h.End - (h.Minutes - t) / h.Compression.
func writeVLLMHistory(w io.Writer, h sim.History) error {
	if h.Load == nil || h.Tick <= 0 || !(h.Compression > 0) || h.Minutes < 0 {
		return fmt.Errorf("write the vLLM history: load, tick, compression and minutes must be set, got %+v", h)
	}
	bw := bufio.NewWriter(w)
	end := time.Duration(h.Minutes) * time.Minute
	var b []byte
	series := func(name, svc, extra string, value func(total float64) float64) {
		total := 0.0
		for t := time.Duration(0); t < end; t += h.Tick {
			total += h.Load.RequestsPerMinute(int(t/time.Minute)) / 60 * h.Tick.Seconds()
			at := h.End.Add(-time.Duration(float64(end-t-h.Tick) / h.Compression))
			b = fmt.Appendf(b[:0], `%s{engine="0",model_name=%q,namespace=%q,pod="%s-history-00000",service=%q%s} `,
				name, svc, h.Namespace, svc, svc, extra)
			b = strconv.AppendFloat(b, value(total), 'g', -1, 64)
			b = append(b, ' ')
			b = strconv.AppendFloat(b, float64(at.UnixMilli())/1000, 'f', 3, 64)
			b = append(b, '\n')
			bw.Write(b)
		}
	}
	zero := func(float64) float64 { return 0 }
	fmt.Fprintln(bw, "# TYPE vllm:request_success counter")
	fmt.Fprintln(bw, "# HELP vllm:request_success Finished requests by finish reason.")
	for _, svc := range h.Services {
		series("vllm:request_success_total", svc, `,finished_reason="stop"`, func(total float64) float64 { return total })
	}
	for _, g := range []string{"vllm:num_requests_running", "vllm:num_requests_waiting"} {
		fmt.Fprintf(bw, "# TYPE %s gauge\n", g)
		for _, svc := range h.Services {
			series(g, svc, "", zero)
		}
	}
	fmt.Fprintln(bw, "# EOF")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write the vLLM history: %w", err)
	}
	return nil
}
