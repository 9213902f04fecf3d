// Command objloo chooses the objective's pacing constant leave-one-out (issue 25). On every
// trace of a day or more in the traces directory, and on each model variant (start-up 60,
// 180 and 600 s; a peak of 40 and of 10 replicas), it scores the policy file's first policy
// under each candidate episode prior (engine.Pacing) against the benchmark criterion,
// the HPA's 75 settings swept again on each variant. Then, for each trace in turn, it
// chooses the candidate that holds B on most cells of the other traces (then the one meeting
// the criterion on most, then the fewer GPU-hours against the cheapest HPA setting) and
// reports that choice's cells on the trace left out. It prints Markdown; docs/benchmarks-loo.sh puts it in
// docs/benchmarks.md.
//
//	go run ./hack/objloo -f examples/slo-policy.yaml -traces ../shared/traces
//
// -target-scales pairs each prior with each most target factor (engine.Pacing's
// MaxTargetScale, the targets' factor at T = 0), to choose that constant leave-one-out too:
//
//	go run ./hack/objloo -priors off,5 -target-scales 1.1,1.25,1.5
//
// -hold-decays and -holds pair every candidate with each shape of the forecast's hold
// (engine.Pacing's HoldDecay: a held plan counts less as it ages) and each default hold
// (engine.Pacing's Hold, for a forecast that writes none):
//
//	go run ./hack/objloo -priors 5 -hold-decays 1,2,4,inf -holds 1h,90m,2h
//
// The HPA sweeps and the oracle are cached per trace and variant in -cache (they do not
// depend on the policy file); remove it after changing the model.
package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prescale/prescale/backtest"
	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/policy"
)

// variant is one model variant: the default model with another start-up or peak.
type variant struct {
	Name    string
	Startup time.Duration
	Peak    int32
}

var variants = []variant{
	{"start-up 180 s, peak 40", 180 * time.Second, 40},
	{"start-up 60 s", 60 * time.Second, 40},
	{"start-up 600 s", 600 * time.Second, 40},
	{"peak 10 replicas", 180 * time.Second, 10},
}

// candidate is one value of the constant being chosen.
type candidate struct {
	Name   string
	Pacing engine.Pacing
}

// sweep is the cached HPA sweep and oracle of one trace and variant.
type sweep struct {
	Settings []backtest.HPASetting
	Oracle   backtest.Outcome
}

// cell is one candidate's criterion on one trace and variant.
type cell struct {
	Trace, Variant int
	Cand           int
	Outcome        backtest.Outcome
	Criterion      backtest.Criterion
}

type traceFile struct {
	Slug string
	tr   backtest.Trace
}

func main() {
	file := flag.String("f", "examples/slo-policy.yaml", "policy file whose first policy is scored")
	dir := flag.String("traces", "../shared/traces", "directory of <name>/requests_per_minute.csv traces")
	cache := flag.String("cache", defaultCache(), "directory caching the HPA sweeps and oracles")
	priors := flag.String("priors", "off,3,5,10", "candidate episode priors in minutes (off: the knobs are never paced)")
	scales := flag.String("target-scales", "", "candidate most target factors (engine.Pacing.MaxTargetScale), each paired with every prior; empty: the default only")
	decays := flag.String("hold-decays", "", "candidate hold shapes (engine.Pacing.HoldDecay; inf: a plain hold), each paired with every other candidate; empty: the default only")
	holds := flag.String("holds", "", "candidate default holds (engine.Pacing.Hold), each paired with every other candidate; empty: the default only")
	flag.Parse()
	if err := run(os.Stdout, *file, *dir, *cache, *priors, *scales, *decays, *holds); err != nil {
		fmt.Fprintln(os.Stderr, "objloo:", err)
		os.Exit(1)
	}
}

func defaultCache() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "prescale-objloo")
	}
	return filepath.Join(d, "prescale", "objloo")
}

func run(w io.Writer, file, dir, cache, priors, scales, decays, holds string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	pf, err := policy.Parse(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	p := &pf.Policies[0]
	if p.Objective == nil {
		return fmt.Errorf("%s: policy %s has no objective", file, p.Name)
	}
	cands, err := parseCandidates(priors, scales)
	if err != nil {
		return err
	}
	if cands, err = withDecays(cands, decays); err != nil {
		return err
	}
	if cands, err = withHolds(cands, holds); err != nil {
		return err
	}
	traces, err := longTraces(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	sweeps := make([][]sweep, len(traces))
	for i, t := range traces {
		sweeps[i] = make([]sweep, len(variants))
		for j, v := range variants {
			if sweeps[i][j], err = sweepOf(t, v, p, cache); err != nil {
				return fmt.Errorf("%s, %s: %w", t.Slug, v.Name, err)
			}
		}
	}
	cells, err := score(p, traces, cands, sweeps)
	if err != nil {
		return err
	}
	return write(w, p, traces, cands, cells)
}

func parseCandidates(priors, scales string) ([]candidate, error) {
	var out []candidate
	for f := range strings.SplitSeq(priors, ",") {
		f = strings.TrimSpace(f)
		if f == "off" {
			// The objective before pacing: the adaptive quantile, and a plain hold of an hour.
			out = append(out, candidate{Name: "off", Pacing: engine.Pacing{EpisodePrior: math.Inf(1), HoldDecay: math.Inf(1), Hold: time.Hour}})
			continue
		}
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || !(v > 0) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("-priors: %q is not a number of minutes > 0 or off", f)
		}
		out = append(out, candidate{Name: f + " min", Pacing: engine.Pacing{EpisodePrior: v}})
	}
	if len(out) == 0 {
		return nil, errors.New("-priors: no candidate")
	}
	if strings.TrimSpace(scales) == "" {
		return out, nil
	}
	// off never paces the targets: it is one candidate whatever the factors.
	var crossed []candidate
	for _, c := range out {
		if math.IsInf(c.Pacing.EpisodePrior, 1) {
			crossed = append(crossed, c)
		}
	}
	for f := range strings.SplitSeq(scales, ",") {
		f = strings.TrimSpace(f)
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || !(v >= 1) || math.IsInf(v, 0) {
			return nil, fmt.Errorf("-target-scales: %q is not a factor >= 1", f)
		}
		for _, c := range out {
			if math.IsInf(c.Pacing.EpisodePrior, 1) {
				continue
			}
			c.Name += " ×" + f
			c.Pacing.MaxTargetScale = v
			crossed = append(crossed, c)
		}
	}
	return crossed, nil
}

// withDecays pairs each candidate with each hold shape of decays (none: cands as they are).
func withDecays(cands []candidate, decays string) ([]candidate, error) {
	return crossPaced(cands, decays, func(f string) (func(*candidate), error) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil || !(v > 0) {
			return nil, fmt.Errorf("-hold-decays: %q is not an exponent > 0 or inf", f)
		}
		return func(c *candidate) {
			if v != engine.ObjectiveHoldDecay {
				c.Name += " decay " + f
			}
			c.Pacing.HoldDecay = v
		}, nil
	})
}

// withHolds pairs each candidate with each default hold of holds (none: cands as they are).
func withHolds(cands []candidate, holds string) ([]candidate, error) {
	return crossPaced(cands, holds, func(f string) (func(*candidate), error) {
		d, err := time.ParseDuration(f)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("-holds: %q is not a duration > 0", f)
		}
		return func(c *candidate) {
			if d != policy.DefaultObjectiveHold {
				c.Name += " hold " + f
			}
			c.Pacing.Hold = d
		}, nil
	})
}

// crossPaced pairs each paced candidate with each value of the comma-separated list, set
// by what parse returns for it; off keeps its plain hour and comes once, last. An empty list
// leaves cands as they are.
func crossPaced(cands []candidate, list string, parse func(string) (func(*candidate), error)) ([]candidate, error) {
	if strings.TrimSpace(list) == "" {
		return cands, nil
	}
	var out []candidate
	for f := range strings.SplitSeq(list, ",") {
		set, err := parse(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		for _, c := range cands {
			if math.IsInf(c.Pacing.EpisodePrior, 1) {
				continue
			}
			set(&c)
			out = append(out, c)
		}
	}
	return append(out, offOf(cands)...), nil
}

// offOf returns the candidates of cands that never pace the knobs (off).
func offOf(cands []candidate) []candidate {
	var out []candidate
	for _, c := range cands {
		if math.IsInf(c.Pacing.EpisodePrior, 1) {
			out = append(out, c)
		}
	}
	return out
}

// longTraces reads every <dir>/<name>/requests_per_minute.csv of a day or more.
func longTraces(dir string) ([]traceFile, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*", "requests_per_minute.csv"))
	if err != nil {
		return nil, err
	}
	var out []traceFile
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		tr, err := backtest.ReadTrace(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		if len(tr) >= 24*60 {
			out = append(out, traceFile{Slug: filepath.Base(filepath.Dir(path)), tr: tr})
		}
	}
	if len(out) < 2 {
		return nil, fmt.Errorf("%s: %d traces of a day or more, want at least 2 to leave one out", dir, len(out))
	}
	return out, nil
}

func params(p *policy.Policy, v variant) backtest.Params {
	par := backtest.DefaultParams()
	par.Startup, par.PeakReplicas, par.SLO = v.Startup, v.Peak, p.Objective.SLO.Duration
	return par
}

// sweepOf returns the HPA sweep and the oracle of t on v, from the cache or run.
func sweepOf(t traceFile, v variant, p *policy.Policy, cache string) (sweep, error) {
	par := params(p, v)
	name := fmt.Sprintf("%s-s%d-p%d-slo%s-n%d.json", t.Slug, int(v.Startup.Seconds()), v.Peak, par.SLO, len(t.tr))
	path := filepath.Join(cache, name)
	var s sweep
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &s); err == nil && len(s.Settings) > 0 {
			return s, nil
		}
	}
	fmt.Fprintf(os.Stderr, "objloo: sweeping the HPA's settings on %s, %s\n", t.Slug, v.Name)
	ps, settings, err := backtest.HPAGrid(par)
	if err != nil {
		return s, err
	}
	cs := make([]backtest.Contender, len(ps), len(ps)+1)
	for i, hp := range ps {
		cs[i] = backtest.Contender{Name: settings[i].String(), Policy: hp, Reference: true}
	}
	cs = append(cs, backtest.Contender{Name: backtest.OracleName})
	outs, err := backtest.RunEach(t.tr, cs, par, nil)
	if err != nil {
		return s, err
	}
	for i := range settings {
		settings[i].Outcome = outs[i]
	}
	s = sweep{Settings: settings, Oracle: outs[len(ps)]}
	b, err := json.Marshal(s)
	if err != nil {
		return s, err
	}
	return s, os.WriteFile(path, b, 0o644)
}

// score runs every candidate on every trace and variant, on GOMAXPROCS goroutines.
func score(p *policy.Policy, traces []traceFile, cands []candidate, sweeps [][]sweep) ([]cell, error) {
	var cells []cell
	for i := range traces {
		for j := range variants {
			for k := range cands {
				cells = append(cells, cell{Trace: i, Variant: j, Cand: k})
			}
		}
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		done int
		next = make(chan int)
	)
	start := time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for n := range next {
				c := &cells[n]
				t, v := traces[c.Trace], variants[c.Variant]
				par := params(p, v)
				par.Pacing = cands[c.Cand].Pacing
				res, err := backtest.Run(t.tr, []backtest.Contender{{Name: p.Name, Policy: p}}, backtest.Options{Params: par})
				mu.Lock()
				done++
				if err != nil {
					errs = append(errs, fmt.Errorf("%s, %s, prior %s: %w", t.Slug, v.Name, cands[c.Cand].Name, err))
				} else {
					s0 := res.Policies[0].Score
					c.Outcome = backtest.Outcome{GPUHours: s0.GPUHours, SLOViolationMinutes: s0.SLOViolationMinutes, ScaleEvents: s0.ScaleEvents}
					s := sweeps[c.Trace][c.Variant]
					c.Criterion = backtest.CriterionOf(p.Objective.BudgetFraction(), len(t.tr), s.Settings, c.Outcome, s.Oracle)
				}
				fmt.Fprintf(os.Stderr, "objloo: %d/%d runs, %s\n", done, len(cells), time.Since(start).Round(time.Second))
				mu.Unlock()
			}
		})
	}
	for n := range cells {
		next <- n
	}
	close(next)
	wg.Wait()
	return cells, errors.Join(errs...)
}

// tally is a candidate's score on a set of cells: how many meet the criterion, and the mean
// ratio of GPU-hours to the cheapest HPA setting holding B.
type tally struct {
	met, holds, n int
	ratio         float64
}

func (t tally) mean() float64 { return t.ratio / float64(max(t.n, 1)) }

func (t *tally) add(c cell) {
	t.n++
	if c.Criterion.Met {
		t.met++
	}
	if c.Criterion.Holds {
		t.holds++
	}
	r := 2.0 // no HPA setting holds B: counted as twice its cost
	if c.Criterion.Ratio != nil {
		r = *c.Criterion.Ratio
	}
	t.ratio += r
}

// better orders tallies: more cells holding B (a candidate that meets more cells by
// overspending the budget on others is no gain), then more cells met, then a lower mean
// ratio.
func better(a, b tally) bool {
	if a.holds != b.holds {
		return a.holds > b.holds
	}
	if a.met != b.met {
		return a.met > b.met
	}
	return a.mean() < b.mean()
}

func cellText(c cell) string {
	cr := c.Criterion
	s := fmt.Sprintf("%.1f / %d", c.Outcome.GPUHours, c.Outcome.SLOViolationMinutes)
	if cr.Ratio != nil {
		s += fmt.Sprintf(", %.3fx", *cr.Ratio)
	}
	if cr.Capture != nil {
		s += fmt.Sprintf(", %.0f%%", 100**cr.Capture)
	}
	if cr.Met {
		return s + ", met"
	}
	return s + ", **not met**"
}

func write(w io.Writer, p *policy.Policy, traces []traceFile, cands []candidate, cells []cell) error {
	at := func(i, j, k int) cell { return cells[(i*len(variants)+j)*len(cands)+k] }
	var b strings.Builder
	fmt.Fprintf(&b, "Each cell: GPU-hours / SLO-violation minutes, the ratio to the cheapest HPA setting holding B, the capture share, and the criterion. Candidates: the objective's episode prior (`engine.Pacing`), with the most target factor (×), the hold's decay and the default hold where they differ from prescale's; `off` never paces the knobs (the objective before issue 25: the adaptive quantile only).\n\n")
	fmt.Fprintf(&b, "| trace | variant | B | cheapest HPA setting holding B |")
	for _, c := range cands {
		fmt.Fprintf(&b, " %s |", c.Name)
	}
	b.WriteString("\n|---|---|---|---|" + strings.Repeat("---|", len(cands)) + "\n")
	for i, t := range traces {
		for j, v := range variants {
			cr := at(i, j, 0).Criterion
			hpa := "none"
			if h := cr.Cheapest; h != nil {
				hpa = fmt.Sprintf("%g%% %gs: %.1f / %d", h.GPUTarget, float64(h.ScaleDownWindowSeconds), h.GPUHours, h.SLOViolationMinutes)
			}
			fmt.Fprintf(&b, "| %s | %s | %g | %s |", t.Slug, v.Name, math.Round(100*cr.B)/100, hpa)
			for k := range cands {
				fmt.Fprintf(&b, " %s |", cellText(at(i, j, k)))
			}
			b.WriteString("\n")
		}
	}
	fmt.Fprintf(&b, "\nLeave-one-out: for each trace, the candidate that holds B on most cells of the other traces (then the most cells meeting the criterion, then the lower mean ratio), and what it does on the trace left out. A candidate that wins on the others and loses on the one left out shows here.\n\n")
	fmt.Fprintf(&b, "| left out | chosen on the others (met there, holding B there, mean ratio) | cells met on the left-out trace, holding B there | its left-out cells (%s) |\n|---|---|---|---|\n", variantNames())
	all := make([]tally, len(cands))
	for i, t := range traces {
		best, bt := -1, tally{}
		for k := range cands {
			var tl tally
			for i2 := range traces {
				if i2 == i {
					continue
				}
				for j := range variants {
					tl.add(at(i2, j, k))
				}
			}
			if best < 0 || better(tl, bt) {
				best, bt = k, tl
			}
		}
		var out tally
		var texts []string
		for j := range variants {
			c := at(i, j, best)
			out.add(c)
			texts = append(texts, cellText(c))
		}
		fmt.Fprintf(&b, "| %s | %s (%d/%d, %d/%d, %.3fx) | %d/%d, %d/%d | %s |\n", t.Slug, cands[best].Name, bt.met, bt.n, bt.holds, bt.n, bt.mean(), out.met, out.n, out.holds, out.n, strings.Join(texts, "; "))
		for k := range cands {
			for j := range variants {
				all[k].add(at(i, j, k))
			}
		}
	}
	order := make([]int, len(cands))
	for k := range order {
		order[k] = k
	}
	slices.SortStableFunc(order, func(x, y int) int {
		if better(all[x], all[y]) {
			return -1
		}
		if better(all[y], all[x]) {
			return 1
		}
		return cmp.Compare(x, y)
	})
	fmt.Fprintf(&b, "\nOn all traces:")
	for _, k := range order {
		fmt.Fprintf(&b, " %s meets %d/%d, holds B on %d (mean ratio %.3f);", cands[k].Name, all[k].met, all[k].n, all[k].holds, all[k].mean())
	}
	fmt.Fprintf(&b, " prescale's default is %g minutes.\n", engine.ObjectiveEpisodePrior)
	_, err := io.WriteString(w, b.String())
	return err
}

func variantNames() string {
	var n []string
	for _, v := range variants {
		n = append(n, v.Name)
	}
	return strings.Join(n, "; ")
}
