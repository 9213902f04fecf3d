package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"
)

// History is the past of simulated services, written for Prometheus's backfill (promtool
// tsdb create-blocks-from openmetrics) so that a forecast fits on days of it at start-up,
// as it would in a cluster that has run for days.
type History struct {
	Namespace string
	Services  []string // one arrival counter each, all with the same load
	Load      Load
	// Tick is the model time between two samples, Compression model seconds per real
	// second, as in Options.
	Tick        time.Duration
	Compression float64
	// Minutes is the model minutes of history: minutes [0, Minutes) of Load. The live
	// run continues at model time Minutes (Options.Start).
	Minutes int
	// End is the wall time of model time Minutes: the sample of model time t is written
	// at End - (Minutes - t) / Compression.
	End time.Time
}

// WriteOpenMetrics writes the services' arrival counter, inference_requests_total,
// the one Options' run exports, at every tick of the history, in the OpenMetrics text
// format.
func (h History) WriteOpenMetrics(w io.Writer) error {
	var errs []error
	if h.Load == nil {
		errs = append(errs, errors.New("load: must be set"))
	}
	if h.Tick <= 0 {
		errs = append(errs, fmt.Errorf("tick: must be > 0, got %v", h.Tick))
	}
	if !(h.Compression > 0) {
		errs = append(errs, fmt.Errorf("compression: must be > 0, got %v", h.Compression))
	}
	if h.Minutes < 0 {
		errs = append(errs, fmt.Errorf("minutes: must be >= 0, got %d", h.Minutes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "# TYPE inference_requests counter")
	fmt.Fprintln(bw, "# HELP inference_requests Requests that arrived at the service, as a gateway counts them (model requests).")
	end := time.Duration(h.Minutes) * time.Minute
	var b []byte
	for _, svc := range h.Services {
		total := 0.0
		for t := time.Duration(0); t < end; t += h.Tick {
			total += h.Load.RequestsPerMinute(int(t/time.Minute)) / 60 * h.Tick.Seconds()
			at := h.End.Add(-time.Duration(float64(end-t-h.Tick) / h.Compression))
			b = fmt.Appendf(b[:0], "inference_requests_total{namespace=%q,service=%q} ", h.Namespace, svc)
			b = strconv.AppendFloat(b, total, 'g', -1, 64)
			b = append(b, ' ')
			b = strconv.AppendFloat(b, float64(at.UnixMilli())/1000, 'f', 3, 64)
			b = append(b, '\n')
			bw.Write(b)
		}
	}
	fmt.Fprintln(bw, "# EOF")
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	return nil
}
