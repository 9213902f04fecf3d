package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/prometheus/client_golang/api"
	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"github.com/spf13/viper"
	"golang.org/x/term"

	"github.com/prescale/prescale/backtest"
	"github.com/prescale/prescale/policy"
	"github.com/prescale/prescale/prom"
)

// newBacktestCmd returns "prescale backtest": a load trace replayed through the decision
// engine on the simulated service of the backtest model, scored against the HPA baseline
// and the clairvoyant oracle.
// backtestGOGC is the garbage collector's target for a backtest without GOGC set: a heap
// five times the live one, which stays within a few hundred MB (docs/backtest.md).
const backtestGOGC = 400

func newBacktestCmd(v *viper.Viper) *cobra.Command {
	def := backtest.DefaultParams()
	cmd := &cobra.Command{
		Use:   "backtest -f POLICY.yaml [--policy NAME] (--trace FILE.csv | --prometheus URL --load-query Q --from T --to T)",
		Short: "Score a policy on a load trace against the HPA baseline and a clairvoyant oracle",
		Long: `Backtest replays a load history, tick by tick, through a simulated GPU inference service
(the model in docs/benchmarks.md) under three policies: the HPA-equivalent baseline ("hpa"),
the configured policy, and the clairvoyant "oracle". The first two go through the decision
code that prescale run uses. It prints, for each, GPU-hours (and their ratio to the
oracle's), under-provisioned and SLO-violation minutes, scale events, the peak queue and the
p99 queueing delay.

The load is a per-minute CSV (header minute,requests), or a Prometheus query giving the
arrival rate in requests/s, read with range queries in chunks, through the client that
prescale run builds from the policy file's prometheus settings (bearerTokenFile, basicAuth,
tls, headers; PRESCALE_PROMETHEUS_* variables override them); a URL's password is shown
redacted. --sweep key=v1,v2,... runs a
grid (several --sweep flags multiply) and prints the Pareto front of the configured
policy's GPU-hours against SLO-violation minutes; keys: ` + strings.Join(backtest.SweepKeys(), ", ") + `.

With an objective in the policy (or --budget), it also answers the objective's question:
it sweeps the HPA's GPU target and scale-down window (75 settings) and prints the cheapest
setting that holds the budget of violation minutes (or that none does), the policy as
written, the saving, the oracle, the policy's front over other budgets, and the benchmark
criterion (B, the GPU-hours ratio, the share of the gap to the oracle captured). The model's SLO defaults to the objective's.

Exit codes: 0 done, 1 bad trace (a bad row, no rows, every minute 0) or unreadable
history, 2 bad usage or policy file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, set := os.LookupEnv("GOGC"); !set {
				// The PromQL engine allocates a few GB a run over a small live heap: the
				// default GOGC spends a third of the CPU collecting it (docs/backtest.md).
				defer debug.SetGCPercent(debug.SetGCPercent(backtestGOGC))
			}
			return runBacktest(cmd, v)
		},
	}
	f := cmd.Flags()
	f.StringP("file", "f", "", "policy file")
	f.String("policy", "", "policy to backtest (default: the only one in the file)")
	f.String("trace", "", `per-minute load trace, CSV with header minute,requests ("-" for standard input)`)
	f.String("prometheus", "", "Prometheus URL to read the load history from, instead of --trace; authentication, TLS and headers come from the policy file's prometheus settings, as for run")
	f.String("load-query", "sum(rate(inference_requests_total[1m]))", "with --prometheus: PromQL giving the arrival rate in requests/s, one series")
	f.String("from", "", "with --prometheus: start of the history, RFC 3339 or Unix seconds")
	f.String("to", "", "with --prometheus: end of the history (exclusive), RFC 3339 or Unix seconds")
	f.Duration("step", time.Minute, "with --prometheus: range query resolution; must divide a minute")
	f.Bool("json", false, "print the result as JSON")
	f.String("plot", "", "draw load, Ready replicas and SLO violations into this PNG file")
	f.String("plot-fronts", "", "with an objective or --budget: draw GPU-hours against SLO-violation minutes of the HPA settings, both fronts and the oracle into this PNG file")
	f.String("html", "", "write a self-contained HTML report (summary, table, plot) into this file")
	f.Duration("plot-from", 0, "start of the plotted window, from the trace's start (default: the start of the day of the peak minute)")
	f.Duration("plot-window", 24*time.Hour, "length of the plotted window (cut at the trace's end)")
	f.StringArray("sweep", nil, "sweep a setting: key=v1,v2,... (repeat for a grid)")
	f.String("budget", "", `compare with the cheapest HPA setting holding this share of minutes over the SLO: a fraction (0.001) or a percentage ("0.1%"); default: the policy's objective.budget`)
	f.Bool("progress", false, "show a progress bar on standard error even when it is not a terminal")
	f.Duration("tick", def.Tick, "model: control-loop interval dt")
	f.Duration("startup", def.Startup, "model: time from pod creation to Ready")
	f.Int32("peak-replicas", def.PeakReplicas, "model: replicas the trace's peak minute needs at the target utilization")
	f.Float64("target-utilization", def.TargetUtilization, "model: GPU-utilization target of the baseline and the oracle (0..1]")
	f.Float64("queue-target", def.QueueTarget, "model: the baseline's per-pod queue-depth target")
	f.Int32("min-replicas", def.MinReplicas, "model: minimum replicas of the baseline and the oracle")
	f.Int32("max-replicas", 0, "model: maximum replicas of the baseline (default 2 x peak-replicas)")
	f.Duration("slo", def.SLO, "model: allowed queueing delay (default: the policy's objective.slo, else 2s)")
	f.Float64("gpus-per-replica", def.GPUsPerReplica, "model: GPUs each pod holds")
	f.Int("gpus-per-node", 0, "model: put the pods on nodes of this many GPUs, grown by a reactive node autoscaler (0: no node model)")
	f.Duration("node-lead", 10*time.Minute, "model, with --gpus-per-node: a node's time from launch to Ready")
	f.Duration("consolidate-after", 5*time.Minute, "model, with --gpus-per-node: how long a node is surplus before it is removed")
	f.Bool("node-buffers", true, "model, with --gpus-per-node: the policy and the oracle size a CapacityBuffer, as prescale run does (the HPA's nodes stay reactive)")
	f.Int64("pool-gpus", 0, "pool mode: the policies named by --pool-trace share a pool of this many GPUs, allocated each tick by capacity.priority and capacity.guaranteed as prescale run does")
	f.StringArray("pool-trace", nil, "pool mode: POLICY=FILE.csv, a policy of the file and the per-minute load trace of its model (repeat for each policy)")
	return cmd
}

// runPoolBacktest is backtest's pool mode: the policies named by --pool-trace, each on its
// own trace, share --pool-gpus GPUs.
func runPoolBacktest(cmd *cobra.Command, v *viper.Viper, par backtest.Params) error {
	for _, r := range []struct {
		why   string
		flags []string
	}{
		{"pool mode (--pool-gpus) reads each policy's trace from its --pool-trace POLICY=FILE.csv", []string{"trace", "prometheus", "load-query", "from", "to", "step"}},
		{"pool mode (--pool-gpus) backtests the policies of its --pool-trace flags", []string{"policy"}},
		{"pool mode (--pool-gpus) has no sweep, objective comparison, plot nor HTML report",
			[]string{"sweep", "budget", "plot", "plot-fronts", "plot-from", "plot-window", "html"}},
		{"pool mode (--pool-gpus) has no node model", []string{"gpus-per-node", "node-lead", "consolidate-after", "node-buffers"}},
	} {
		if err := refuseFlags(cmd, r.why, r.flags...); err != nil {
			return err
		}
	}
	if err := par.Validate(); err != nil {
		return flagErrors(err)
	}
	pairs, _ := cmd.Flags().GetStringArray("pool-trace") // read directly: viper would split at commas
	if len(pairs) == 0 {
		return errors.New("--pool-gpus needs at least one --pool-trace POLICY=FILE.csv")
	}
	var members []backtest.PoolMember
	for _, pair := range pairs {
		name, path, ok := strings.Cut(pair, "=")
		if !ok || name == "" || path == "" {
			return fmt.Errorf("--pool-trace: want POLICY=FILE.csv, got %q", pair)
		}
		p, err := loadPolicy(v.GetString("file"), name)
		if err != nil {
			return err
		}
		fh, err := os.Open(path)
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "prescale backtest: open trace of policy %s: %v\n", name, err)
			return exitError{code: 1}
		}
		tr, err := backtest.ReadTrace(fh)
		fh.Close()
		if err == nil {
			err = par.CheckTrace(tr)
		}
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "prescale backtest: trace %s: %v\n", path, err)
			return exitError{code: 1}
		}
		m := backtest.PoolMember{Policy: p, Trace: tr}
		if o := p.Objective; o != nil {
			// As in a single backtest: the model's SLO is the objective's, unless --slo says.
			if !cmd.Flags().Changed("slo") {
				m.SLO = o.SLO.Duration
			} else if par.SLO != o.SLO.Duration {
				fmt.Fprintf(cmd.ErrOrStderr(), "prescale backtest: warning: --slo %v is not the objective's slo %v of policy %s: violations count over --slo\n", par.SLO, o.SLO.Duration, p.Name)
			}
		}
		members = append(members, m)
	}
	opt := backtest.Options{Params: par}
	minutes := len(members[0].Trace) // the traces are cut to the shortest
	for _, m := range members {
		minutes = min(minutes, len(m.Trace))
	}
	ticks := minutes * int(time.Minute/par.Tick)
	progress, done := progressFunc(cmd.ErrOrStderr(), v.GetBool("progress"), ticks)
	defer done()
	if progress != nil {
		opt.Progress = func(d, _ int) { progress(d) }
	}
	res, err := backtest.RunPool(members, v.GetInt64("pool-gpus"), opt)
	done()
	if errors.Is(err, backtest.ErrNoRequests) {
		fmt.Fprintf(cmd.ErrOrStderr(), "prescale backtest: %v\n", err)
		return exitError{code: 1}
	}
	if err != nil {
		return err
	}
	warn(cmd.ErrOrStderr(), res.Warnings)
	out := cmd.OutOrStdout()
	if v.GetBool("json") {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	fmt.Fprintf(out, "%d policies sharing %d GPUs (at most %d held at once), %d minutes\n\n", len(res.Policies), res.GPUs, res.PeakGPUs, res.Minutes)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POLICY\tPRIORITY\tGUARANTEED\tGPU-HOURS\tUNSERVED GPU-HOURS\tLIMITED MIN\tSLO\tSLO-VIOLATION MIN\tUNDER-PROVISIONED MIN\tSCALE EVENTS")
	for _, p := range res.Policies {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%.1f\t%d\t%gs\t%d\t%d\t%d\n", p.Name, p.Priority, p.Guaranteed, p.GPUHours, p.UnservedGPUHours,
			p.LimitedMinutes, p.SLOSeconds, p.SLOViolationMinutes, p.UnderProvisionedMinutes, p.ScaleEvents)
	}
	return tw.Flush()
}

func runBacktest(cmd *cobra.Command, v *viper.Viper) error {
	par := backtest.Params{
		Tick:              v.GetDuration("tick"),
		Startup:           v.GetDuration("startup"),
		PeakReplicas:      v.GetInt32("peak-replicas"),
		TargetUtilization: v.GetFloat64("target-utilization"),
		QueueTarget:       v.GetFloat64("queue-target"),
		MinReplicas:       v.GetInt32("min-replicas"),
		MaxReplicas:       v.GetInt32("max-replicas"),
		SLO:               v.GetDuration("slo"),
		GPUsPerReplica:    v.GetFloat64("gpus-per-replica"),
	}
	if v.GetInt("gpus-per-node") != 0 {
		par.Nodes = &backtest.NodeModel{GPUsPerNode: v.GetInt("gpus-per-node"), Lead: v.GetDuration("node-lead"),
			ConsolidateAfter: v.GetDuration("consolidate-after"), Buffers: v.GetBool("node-buffers")}
	} else if err := refuseFlags(cmd, "with --gpus-per-node only", "node-lead", "consolidate-after", "node-buffers"); err != nil {
		return err
	}
	switch {
	case cmd.Flags().Changed("pool-gpus"):
		return runPoolBacktest(cmd, v, par)
	case cmd.Flags().Changed("pool-trace"):
		return errors.New("--pool-trace: pool mode needs --pool-gpus N, the GPUs the policies share")
	}
	p, err := loadPolicy(v.GetString("file"), v.GetString("policy"))
	if err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	if o := p.Objective; o != nil {
		if !cmd.Flags().Changed("slo") {
			par.SLO = o.SLO.Duration
		} else if par.SLO != o.SLO.Duration {
			fmt.Fprintf(stderr, "prescale backtest: warning: --slo %v is not the objective's slo %v of policy %s: violations count over --slo\n", par.SLO, o.SLO.Duration, p.Name)
		}
	}
	if err := par.Validate(); err != nil {
		return flagErrors(err)
	}
	var budget float64
	if s := v.GetString("budget"); s != "" {
		if budget, err = backtest.ParseBudget(s); err != nil {
			return fmt.Errorf("--budget: %w", err)
		}
	} else if p.Objective != nil {
		budget = p.Objective.BudgetFraction()
	}
	sweeps, _ := cmd.Flags().GetStringArray("sweep") // read directly: viper would split at commas
	var axes []backtest.Axis
	for _, s := range sweeps {
		a, err := backtest.ParseAxis(s)
		if err != nil {
			return err
		}
		axes = append(axes, a)
	}
	if n, product := backtest.GridSize(axes); n > backtest.MaxSweepPoints {
		return fmt.Errorf("--sweep: a grid of %s points is more than %d", product, backtest.MaxSweepPoints)
	}
	plotPath, htmlPath := v.GetString("plot"), v.GetString("html")
	if len(axes) > 0 && (plotPath != "" || htmlPath != "") {
		return errors.New("--plot and --html show one backtest: leave out --sweep")
	}
	if len(axes) > 0 && cmd.Flags().Changed("budget") {
		return errors.New("--budget compares one backtest with the HPA's settings: leave out --sweep")
	}
	compare := budget > 0 && len(axes) == 0
	frontsPath := v.GetString("plot-fronts")
	if frontsPath != "" && !compare {
		return errors.New("--plot-fronts draws the objective comparison: give a policy with an objective or --budget, and no --sweep")
	}
	points, err := backtest.Grid(axes, par, p)
	if err != nil {
		return err
	}

	var load backtest.PrometheusLoad
	switch url := v.GetString("prometheus"); {
	case url != "" && v.GetString("trace") != "":
		return errors.New("give either --trace or --prometheus, not both")
	case url != "":
		if load, err = prometheusLoad(v); err != nil {
			return err
		}
		if load.Client, err = prometheusClient(v.GetString("file"), url); err != nil {
			return err
		}
	default:
		if err := refuseFlags(cmd, "with --prometheus only", "load-query", "from", "to", "step"); err != nil {
			return err
		}
	}
	tr, name, err := readLoad(cmd, v, load)
	if err == nil {
		if err = par.CheckTrace(tr); err != nil {
			err = fmt.Errorf("trace %s: %w", name, err) // a bad trace, not a bad policy
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "prescale backtest: %v\n", err)
		return exitError{code: 1}
	}
	var win backtest.PlotWindow
	if plotPath != "" || htmlPath != "" {
		from := v.GetDuration("plot-from")
		if !cmd.Flags().Changed("plot-from") {
			from = peakDay(tr)
		}
		if win, err = plotWindow(tr, from, v.GetDuration("plot-window")); err != nil {
			return err // before the simulation, not after it
		}
	} else if err := refuseFlags(cmd, "with --plot or --html only", "plot-from", "plot-window"); err != nil {
		return err
	}
	// The bar counts ticks over every run: each grid point's three contenders and the
	// comparison's runs, which run beside the point's (one point then).
	ticks := len(tr) * int(time.Minute/par.Tick)
	runs := 3 * len(points)
	if compare {
		runs += backtest.CompareRuns(p)
	}
	progress, done := progressFunc(stderr, v.GetBool("progress"), runs*ticks)
	defer done()
	// The runs' progress, summed over the runs that go on at once.
	var progMu sync.Mutex
	var pointDone, compareDone int
	results := make([]backtest.SweepResult, len(points))
	var cmp *backtest.Comparison
	for i, pt := range points {
		cs, err := backtest.ContendersOn(pt.Policy, pt.Params, tr)
		if err != nil {
			return err
		}
		opt := backtest.Options{Params: pt.Params, Record: plotPath != "" || htmlPath != ""}
		if progress != nil {
			opt.Progress = func(d, total int) {
				progMu.Lock()
				defer progMu.Unlock()
				pointDone = i*total + d
				progress(pointDone + compareDone)
			}
		}
		run := func() (backtest.Result, error) { return backtest.Run(tr, cs, opt) }
		if !compare {
			res, err := run()
			if err != nil {
				return err
			}
			results[i] = backtest.SweepResult{Settings: pt.Settings, Result: res}
			continue
		}
		copt := backtest.CompareOptions{Params: par, Budget: budget}
		if progress != nil {
			copt.Progress = func(d, _ int) {
				progMu.Lock()
				defer progMu.Unlock()
				compareDone = d
				progress(pointDone + compareDone)
			}
		}
		res, c, err := backtest.CompareWith(tr, p, run, copt)
		if err != nil {
			return err
		}
		results[i], cmp = backtest.SweepResult{Settings: pt.Settings, Result: res}, &c
	}
	done()
	var warnings []string
	for _, r := range results {
		warnings = append(warnings, r.Result.Warnings...)
	}
	warn(stderr, warnings)

	summary := describe(tr, par, results[0].Result)
	if plotPath != "" || htmlPath != "" {
		if err := writeReports(plotPath, htmlPath, tr, results[0].Result, cmp, win, name, summary); err != nil {
			return err
		}
	}
	if frontsPath != "" {
		var png bytes.Buffer
		if err := backtest.PlotFronts(&png, *cmp, name); err != nil {
			return err
		}
		if err := os.WriteFile(frontsPath, png.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write fronts plot: %w", err)
		}
	}
	out := cmd.OutOrStdout()
	switch {
	case v.GetBool("json"):
		return writeJSON(out, name, par, p, results, len(axes) > 0, cmp)
	case len(axes) > 0:
		fmt.Fprintf(out, "%s: %s (each row changes it by its settings)\n\n", name, summary)
		return backtest.WriteSweep(out, p.Name, results)
	}
	fmt.Fprintf(out, "%s: %s\n\n", name, summary)
	if err := backtest.WriteTable(out, results[0].Result); err != nil {
		return err
	}
	if cmp == nil {
		return nil
	}
	fmt.Fprintln(out)
	return backtest.WriteComparison(out, *cmp)
}

// warn prints each of warnings once, in order, to stderr.
func warn(stderr io.Writer, warnings []string) {
	seen := map[string]bool{}
	for _, w := range warnings {
		if !seen[w] {
			seen[w] = true
			fmt.Fprintf(stderr, "prescale backtest: warning: %s\n", w)
		}
	}
}

// prometheusClient returns the client of the Prometheus at url (--prometheus) with the
// policy file's prometheus settings (bearerTokenFile, basicAuth, tls, headers; PRESCALE_*
// environment variables override them), built as prescale run builds its source's: url
// replaces prometheus.url. It reads the files the settings name.
func prometheusClient(path, url string) (api.Client, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read policy file: %w", err)
	}
	v, err := newSettingsViper(content, nil)
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	s, err := loadSettings(v)
	if err != nil {
		return nil, fmt.Errorf("policy file %s: %w", path, err)
	}
	s.Prometheus.URL = url
	o, err := s.promOptions()
	if err == nil {
		var c api.Client
		if c, err = o.Client(); err == nil {
			return c, nil
		}
	}
	return nil, fmt.Errorf("--prometheus %s with the prometheus settings of %s: %w", prom.RedactedURL(url), path, err)
}

// readLoad reads the trace from --trace or, with --prometheus, the history load
// describes, and names it; a Prometheus history is named by its URL, redacted (no
// password), and its query.
func readLoad(cmd *cobra.Command, v *viper.Viper, load backtest.PrometheusLoad) (backtest.Trace, string, error) {
	path, url := v.GetString("trace"), v.GetString("prometheus")
	switch {
	case url != "":
		tr, st, err := load.Load(cmd.Context())
		if err != nil {
			return nil, "", err
		}
		if st.Missing > 0 {
			fmt.Fprintf(cmd.ErrOrStderr(), "prescale backtest: %d of %d steps had no sample and count as 0 requests\n", st.Missing, st.Points)
		}
		return tr, fmt.Sprintf("%s %s", prom.RedactedURL(url), load.Query), nil
	case path != "":
		var r io.Reader = cmd.InOrStdin()
		if path != "-" {
			fh, err := os.Open(path)
			if err != nil {
				return nil, "", fmt.Errorf("open trace: %w", err)
			}
			defer fh.Close()
			r = fh
		}
		tr, err := backtest.ReadTrace(r)
		if err != nil {
			return nil, "", fmt.Errorf("trace %s: %w", path, err)
		}
		return tr, path, nil
	}
	return nil, "", errors.New("no load: give --trace FILE or --prometheus URL")
}

// refuseFlags returns an error naming the first of flags that was given: it is of no use
// here (why).
func refuseFlags(cmd *cobra.Command, why string, flags ...string) error {
	for _, f := range flags {
		if cmd.Flags().Changed(f) {
			return fmt.Errorf("--%s: %s", f, why)
		}
	}
	return nil
}

// flagErrors names each problem of backtest.Params.Validate by its flag: peakReplicas is
// --peak-replicas.
func flagErrors(err error) error {
	var errs []error
	for _, p := range problems(err) {
		var pe *backtest.ParamError
		if !errors.As(p, &pe) {
			errs = append(errs, fmt.Errorf("model parameters: %w", p))
			continue
		}
		var flag strings.Builder
		for _, r := range pe.Field {
			if unicode.IsUpper(r) {
				flag.WriteByte('-')
			}
			flag.WriteRune(unicode.ToLower(r))
		}
		errs = append(errs, fmt.Errorf("--%s: %w", flag.String(), pe.Err))
	}
	return errors.Join(errs...)
}

// parseTime reads --from or --to: RFC 3339 or Unix seconds, within backtest.MinLoadTime
// (0) .. MaxLoadTime (4102444800, 2100-01-01). NaN, ±Inf, and a number of milliseconds
// (which reads as thousands of years) are errors.
func parseTime(s string) (time.Time, error) {
	lo, hi := backtest.MinLoadTime, backtest.MaxLoadTime
	bounds := fmt.Sprintf("RFC 3339 or Unix seconds from %d (%s) to before %d (%s)", lo.Unix(), lo.Format(time.RFC3339), hi.Unix(), hi.Format(time.RFC3339))
	if s == "" {
		return time.Time{}, errors.New("required with --prometheus")
	}
	if sec, err := strconv.ParseFloat(s, 64); err == nil {
		switch ms := sec / 1000; {
		case math.IsNaN(sec) || math.IsInf(sec, 0):
			return time.Time{}, fmt.Errorf("want %s, got %q", bounds, s)
		case sec >= float64(hi.Unix()) && ms >= float64(lo.Unix()) && ms < float64(hi.Unix()):
			return time.Time{}, fmt.Errorf("want %s, got %s: milliseconds? In seconds that is %s (%s)", bounds, s,
				strconv.FormatFloat(ms, 'f', -1, 64), time.Unix(0, int64(ms*1e9)).UTC().Format(time.RFC3339Nano))
		case !(sec >= float64(lo.Unix()) && sec < float64(hi.Unix())):
			return time.Time{}, fmt.Errorf("want %s, got %s", bounds, s)
		}
		return time.Unix(0, int64(sec*1e9)).UTC(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("want %s, got %q", bounds, s)
	}
	if t.Before(lo) || !t.Before(hi) {
		return time.Time{}, fmt.Errorf("want %s, got %s", bounds, s)
	}
	return t, nil
}

// prometheusLoad reads --from, --to and --step into the history to load from --prometheus
// through client (nil until it is built), and returns every problem at once, naming the
// flags.
func prometheusLoad(v *viper.Viper) (backtest.PrometheusLoad, error) {
	l := backtest.PrometheusLoad{Query: v.GetString("load-query"), Step: v.GetDuration("step")}
	var errs []error
	var err error
	if l.From, err = parseTime(v.GetString("from")); err != nil {
		errs = append(errs, fmt.Errorf("--from: %w", err))
	}
	if l.To, err = parseTime(v.GetString("to")); err != nil {
		errs = append(errs, fmt.Errorf("--to: %w", err))
	}
	if len(errs) > 0 {
		return l, errors.Join(errs...)
	}
	for _, p := range problems(l.Validate()) {
		var pe *backtest.ParamError
		if !errors.As(p, &pe) {
			errs = append(errs, p)
			continue
		}
		flag := "--" + pe.Field
		switch pe.Field {
		case "range":
			flag = "--from and --to"
		case "points":
			flag = "--from, --to and --step"
		}
		errs = append(errs, fmt.Errorf("%s: %w", flag, pe.Err))
	}
	return l, errors.Join(errs...)
}

// describe summarizes the trace and the model's scaling of it.
func describe(tr backtest.Trace, par backtest.Params, res backtest.Result) string {
	span := fmt.Sprintf("%.1f days", float64(res.Minutes)/1440)
	if res.Minutes < 2*1440 {
		span = fmt.Sprintf("%.1f hours", float64(res.Minutes)/60)
	}
	return fmt.Sprintf("%d minutes (%s), %d ticks of %v; peak %.0f req/min; mu %.3g req/s per replica (peak needs %d at %.0f%%); startup %v, SLO %v",
		res.Minutes, span, res.Ticks, par.Tick, tr.Peak(), res.Mu, par.PeakReplicas, 100*par.TargetUtilization, par.Startup, par.SLO)
}

// progressFunc returns a progress callback (ticks done, of total over the whole command)
// and a function that ends the bar; the callback is nil when no bar is shown: stderr is not
// a terminal and --progress was not given.
func progressFunc(stderr io.Writer, force bool, total int) (func(done int), func()) {
	fh, isFile := stderr.(*os.File)
	if !force && (!isFile || !term.IsTerminal(int(fh.Fd()))) {
		return nil, func() {}
	}
	const unit = 1000
	var bar *progressbar.ProgressBar
	return func(done int) {
			if bar == nil {
				bar = progressbar.NewOptions(total/unit, progressbar.OptionSetWriter(stderr),
					progressbar.OptionSetDescription("backtest"), progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionClearOnFinish())
			}
			_ = bar.Set(done / unit)
		}, func() {
			if bar != nil {
				_ = bar.Finish()
				bar = nil
			}
		}
}

// peakDay returns the start of the day (counted from the trace's start) of the peak minute.
func peakDay(tr backtest.Trace) time.Duration {
	peak := 0
	for m, r := range tr {
		if r > tr[peak] {
			peak = m
		}
	}
	return time.Duration(peak/1440) * 24 * time.Hour
}

// plotWindow returns the minutes [start, start+window) of tr, cut at its end, and an error
// naming --plot-from or --plot-window when that holds no minute of it.
func plotWindow(tr backtest.Trace, start, window time.Duration) (backtest.PlotWindow, error) {
	end := time.Duration(len(tr)) * time.Minute
	switch {
	case start < 0:
		return backtest.PlotWindow{}, fmt.Errorf("--plot-from: must be >= 0, got %v", start)
	case start >= end:
		return backtest.PlotWindow{}, fmt.Errorf("--plot-from %v: the trace ends at %v (%d minutes)", start, end, len(tr))
	case window < time.Minute:
		return backtest.PlotWindow{}, fmt.Errorf("--plot-window: must be at least a minute, the trace's resolution, got %v", window)
	}
	from := int(start / time.Minute)
	return backtest.PlotWindow{From: from, To: int(min(int64(len(tr)), int64(from)+int64(window/time.Minute)))}, nil
}

// writeReports draws the plot of the window win and writes it to plotPath, and the HTML
// report with it (and, with cmp, the objective comparison and its fronts) to htmlPath; an
// empty path is skipped.
func writeReports(plotPath, htmlPath string, tr backtest.Trace, res backtest.Result, cmp *backtest.Comparison, win backtest.PlotWindow, name, summary string) error {
	var png bytes.Buffer
	if err := backtest.Plot(&png, tr, res, win, name); err != nil {
		return err
	}
	if plotPath != "" {
		if err := os.WriteFile(plotPath, png.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write plot: %w", err)
		}
	}
	if htmlPath != "" {
		rep := backtest.Report{Title: name, Summary: summary, Result: res, PNG: png.Bytes(), Comparison: cmp}
		if cmp != nil {
			var fronts bytes.Buffer
			if err := backtest.PlotFronts(&fronts, *cmp, name); err != nil {
				return err
			}
			rep.FrontsPNG = fronts.Bytes()
		}
		var page bytes.Buffer
		if err := backtest.WriteHTML(&page, rep); err != nil {
			return err
		}
		if err := os.WriteFile(htmlPath, page.Bytes(), 0o644); err != nil {
			return fmt.Errorf("write html report: %w", err)
		}
	}
	return nil
}

// jsonParams is the model's parameters with durations in seconds.
type jsonParams struct {
	TickSeconds       float64 `json:"tickSeconds"`
	StartupSeconds    float64 `json:"startupSeconds"`
	PeakReplicas      int32   `json:"peakReplicas"`
	TargetUtilization float64 `json:"targetUtilization"`
	QueueTarget       float64 `json:"queueTarget"`
	MinReplicas       int32   `json:"minReplicas"`
	MaxReplicas       int32   `json:"maxReplicas"`
	SLOSeconds        float64 `json:"sloSeconds"`
	GPUsPerReplica    float64 `json:"gpusPerReplica"`
}

func writeJSON(w io.Writer, name string, par backtest.Params, p *policy.Policy, results []backtest.SweepResult, sweep bool, cmp *backtest.Comparison) error {
	out := struct {
		Trace     string                 `json:"trace"`
		Policy    string                 `json:"policy"`
		Params    jsonParams             `json:"params"`
		Result    *backtest.Result       `json:"result,omitempty"`
		Sweep     []backtest.SweepResult `json:"sweep,omitempty"`
		Objective *backtest.Comparison   `json:"objective,omitempty"`
	}{Trace: name, Policy: p.Name, Objective: cmp, Params: jsonParams{par.Tick.Seconds(), par.Startup.Seconds(), par.PeakReplicas,
		par.TargetUtilization, par.QueueTarget, par.MinReplicas, par.Max(), par.SLO.Seconds(), par.GPUsPerReplica}}
	if sweep {
		out.Sweep = results
	} else {
		out.Result = &results[0].Result
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(out); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}
