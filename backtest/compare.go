package backtest

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"

	"github.com/prescale/prescale/policy"
)

// The HPA settings that Compare sweeps: each GPU-utilization target (percent, the
// AverageValue of the baseline's GPU metric) with each scale-down stabilization window
// (seconds), 15 x 5 = 75 settings; the queue target and the rest of Baseline unchanged.
var (
	HPAGPUTargets       = []float64{30, 35, 40, 45, 50, 55, 60, 62.5, 65, 67.5, 70, 72.5, 75, 80, 85}
	HPAScaleDownWindows = []int32{0, 60, 120, 300, 600}
)

// FrontBudgets are the objective budgets (fractions of minutes) of the prescale front: the
// configured policy run with its objective's budget replaced by each.
var FrontBudgets = []float64{0.0005, 0.001, 0.002, 0.005, 0.01, 0.02}

// The benchmark criterion: the benchmark budget B is the objective's budget in minutes, and
// at least CriterionMargin x the fewest violation minutes of any HPA setting (so that some
// setting holds it). The configured policy meets the criterion when it holds B, costs at
// most CriterionMaxRatio x the GPU-hours of the cheapest HPA setting holding B, and
// captures at least CriterionMinCapture of the gap between that setting and the oracle.
const (
	CriterionMargin     = 1.2
	CriterionMaxRatio   = 1.0
	CriterionMinCapture = 0.5
)

// Outcome is the part of a Score that the objective comparison weighs.
type Outcome struct {
	GPUHours            float64 `json:"gpuHours"`
	SLOViolationMinutes int     `json:"sloViolationMinutes"`
	ScaleEvents         int     `json:"scaleEvents"`
}

func outcome(s Score) Outcome {
	return Outcome{GPUHours: s.GPUHours, SLOViolationMinutes: s.SLOViolationMinutes, ScaleEvents: s.ScaleEvents}
}

// HPASetting is one setting of the HPA sweep and its outcome.
type HPASetting struct {
	// GPUTarget is the GPU metric's AverageValue, percent.
	GPUTarget float64 `json:"gpuTarget"`
	// ScaleDownWindowSeconds is the scale-down stabilization window.
	ScaleDownWindowSeconds int32 `json:"scaleDownWindowSeconds"`
	Outcome
}

// String names the setting as a sweep does: "gpuTarget=45 scaleDownWindow=600".
func (s HPASetting) String() string {
	return fmt.Sprintf("gpuTarget=%s scaleDownWindow=%d", strconv.FormatFloat(s.GPUTarget, 'f', -1, 64), s.ScaleDownWindowSeconds)
}

// HPAGrid returns the Baseline policy of par at every setting of HPAGPUTargets x
// HPAScaleDownWindows, the GPU target varying slowest, with the settings (outcomes empty).
// At minReplicas 0 the grid is the HPA's at minReplicas 1: its settings tune the metrics,
// and scaling from zero needs an External metric of the trace (BaselineFromZero).
func HPAGrid(par Params) ([]*policy.Policy, []HPASetting, error) {
	par.MinReplicas = max(par.MinReplicas, 1)
	base, err := Baseline(par)
	if err != nil {
		return nil, nil, err
	}
	var ps []*policy.Policy
	var settings []HPASetting
	for _, target := range HPAGPUTargets {
		for _, window := range HPAScaleDownWindows {
			p := clonePolicy(base)
			if err := setTarget(p, seriesNames[GPUUtil], strconv.FormatFloat(target, 'f', -1, 64)); err != nil {
				return nil, nil, fmt.Errorf("hpa setting gpuTarget=%v: %w", target, err)
			}
			if err := setWindow(p, strconv.Itoa(int(window)), func(b *policy.Behavior) **policy.Rules { return &b.ScaleDown }); err != nil {
				return nil, nil, fmt.Errorf("hpa setting scaleDownWindow=%d: %w", window, err)
			}
			ps = append(ps, p)
			settings = append(settings, HPASetting{GPUTarget: target, ScaleDownWindowSeconds: window})
		}
	}
	return ps, settings, nil
}

// WithBudget returns a copy of p whose objective's budget is budget; p must have an
// objective.
func WithBudget(p *policy.Policy, budget float64) *policy.Policy {
	c := clonePolicy(p)
	o := *p.Objective
	b := policy.Fraction(budget)
	o.Budget = &b
	c.Objective = &o
	return c
}

// RunEach runs each contender alone on tr with the parameters par, on up to GOMAXPROCS
// goroutines, and returns their outcomes in the order of cs: the same as running them one
// after another. progress, when set, is called (never concurrently) with the ticks
// simulated so far over all runs and their total. On failure it returns the error of the
// first failing policy in ps's order.
func RunEach(tr Trace, ps []Contender, par Params, progress func(done, total int)) ([]Outcome, error) {
	out := make([]Outcome, len(ps))
	errs := make([]error, len(ps))
	var (
		mu    sync.Mutex
		last  = make([]int, len(ps))
		sum   int
		next  atomic.Int64
		wg    sync.WaitGroup
		ticks = len(tr) * par.ticksPerMinute()
	)
	report := func(i, done int) {
		mu.Lock()
		defer mu.Unlock()
		sum += done - last[i]
		last[i] = done
		progress(sum, len(ps)*ticks)
	}
	// The runs that evaluate PromQL (every contender but the model's own HPA, Reference) take
	// tens of times longer: they go first, so that no core is left with one at the end.
	order := make([]int, 0, len(ps))
	for _, heavy := range []bool{true, false} {
		for i, c := range ps {
			if !c.Reference == heavy {
				order = append(order, i)
			}
		}
	}
	for range min(runtime.GOMAXPROCS(0), len(ps)) {
		wg.Go(func() {
			for {
				n := int(next.Add(1)) - 1
				if n >= len(order) {
					return
				}
				i := order[n]
				opt := Options{Params: par}
				if progress != nil {
					opt.Progress = func(done, _ int) { report(i, done) }
				}
				res, err := Run(tr, []Contender{ps[i]}, opt)
				if err != nil {
					errs[i] = err
					continue
				}
				out[i] = outcome(res.Policies[0].Score)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// BudgetMinutes returns the violation minutes that a budget (a fraction of minutes) allows
// on a trace of minutes: floor(budget x minutes), forgiving a float64 rounding error
// (0.005 x 1000 is 5).
func BudgetMinutes(budget float64, minutes int) int {
	return int(math.Floor(budget*float64(minutes) + 1e-9))
}

// Cheapest returns the index of the setting with the fewest GPU-hours among those with at
// most budget violation minutes (ties: fewer violation minutes, then the first), and false
// when none has.
func Cheapest(settings []HPASetting, budget float64) (int, bool) {
	best := -1
	for i, s := range settings {
		if float64(s.SLOViolationMinutes) > budget {
			continue
		}
		if best < 0 || s.GPUHours < settings[best].GPUHours ||
			s.GPUHours == settings[best].GPUHours && s.SLOViolationMinutes < settings[best].SLOViolationMinutes {
			best = i
		}
	}
	return best, best >= 0
}

// Fewest returns the index of the setting with the fewest violation minutes (ties: fewer
// GPU-hours, then the first); settings must not be empty.
func Fewest(settings []HPASetting) int {
	best := 0
	for i, s := range settings {
		b := settings[best]
		if s.SLOViolationMinutes < b.SLOViolationMinutes || s.SLOViolationMinutes == b.SLOViolationMinutes && s.GPUHours < b.GPUHours {
			best = i
		}
	}
	return best
}

// Configured is the configured policy's outcome as written, and whether it holds a budget.
type Configured struct {
	Name string `json:"name"`
	Outcome
	Holds bool `json:"holds"`
}

// FrontPoint is the configured policy run with its objective's budget replaced by Budget.
type FrontPoint struct {
	Budget float64 `json:"budget"`
	Outcome
}

// Criterion is the benchmark criterion: B = max(budget x minutes, ceil(CriterionMargin x
// the fewest violation minutes of any HPA setting)); met when the configured policy holds B
// with at most CriterionMaxRatio x the GPU-hours of the cheapest HPA setting holding B and
// captures at least CriterionMinCapture of that setting's gap to the oracle (or holds B
// where no HPA setting does).
type Criterion struct {
	// B is the benchmark budget, in minutes; Exact is budget x minutes (not floored) and
	// FewestHPA the fewest violation minutes of any HPA setting.
	B         float64 `json:"budgetMinutes"`
	Exact     float64 `json:"objectiveMinutes"`
	FewestHPA int     `json:"fewestHpaViolationMinutes"`
	// Cheapest is the cheapest HPA setting holding B, nil when none does.
	Cheapest *HPASetting `json:"cheapestHpaHolding"`
	// Ratio is the configured policy's GPU-hours over Cheapest's, nil without Cheapest or
	// when Cheapest used no GPU.
	Ratio *float64 `json:"gpuHoursRatio"`
	// Capture is the share of the gap between Cheapest and the oracle that the configured
	// policy captures: 1 - (configured - oracle) / (Cheapest - oracle) in GPU-hours; 1 is the
	// oracle's cost, 0 the HPA's, below 0 more than the HPA. Nil without Cheapest or when
	// Cheapest costs no more than the oracle (no gap to capture).
	Capture *float64 `json:"captureShare"`
	Holds   bool     `json:"holds"`
	Met     bool     `json:"met"`
}

// Comparison answers an objective's question on one trace: the cheapest HPA setting that
// holds the budget, the configured policy as written, the saving, and the oracle.
type Comparison struct {
	// Budget is the fraction of minutes allowed over the SLO; BudgetMinutes is
	// BudgetMinutes(Budget, Minutes).
	Budget        float64 `json:"budget"`
	SLOSeconds    float64 `json:"sloSeconds"`
	Minutes       int     `json:"minutes"`
	BudgetMinutes int     `json:"budgetMinutes"`
	// HPA is the HPA sweep in grid order; HPAFront indexes its Pareto front of GPU-hours
	// against violation minutes, by GPU-hours.
	HPA      []HPASetting `json:"hpaGrid"`
	HPAFront []int        `json:"hpaFront"`
	// Cheapest is the cheapest HPA setting holding BudgetMinutes, nil when none does;
	// Fewest the one with the fewest violation minutes.
	Cheapest *HPASetting `json:"cheapestHpaHolding"`
	Fewest   HPASetting  `json:"fewestViolationsHpa"`
	// Configured is the configured policy as written.
	Configured Configured `json:"prescale"`
	// Saving is 1 - Configured's GPU-hours / Cheapest's, when both hold the budget and
	// Cheapest used GPUs; nil otherwise.
	Saving *float64 `json:"saving"`
	Oracle Outcome  `json:"oracle"`
	// Front is the configured policy at each of FrontBudgets, empty for a policy without
	// an objective.
	Front     []FrontPoint `json:"prescaleFront,omitempty"`
	Criterion Criterion    `json:"criterion"`
}

// CompareOptions are Compare's inputs besides the trace and the policy.
type CompareOptions struct {
	// Params are the model's; Params.SLO should be the objective's.
	Params Params
	// Budget is the fraction of minutes allowed over the SLO, (0, 0.5].
	Budget float64
	// Progress, when set, is called with the ticks simulated so far over all of Compare's
	// runs and their total.
	Progress func(done, total int)
}

// CompareRuns is the number of runs Compare makes for policy p: the HPA grid and, for a
// policy with an objective, its front, but for the front's point at the objective's own
// budget, which is the policy as written (the backtest's own run).
func CompareRuns(p *policy.Policy) int {
	n := len(HPAGPUTargets) * len(HPAScaleDownWindows)
	if p.Objective != nil {
		n += len(FrontBudgets)
		if ownFront(p) >= 0 {
			n--
		}
	}
	return n
}

// ownFront returns the index in FrontBudgets of p's objective's budget, -1 when it is none
// of them.
func ownFront(p *policy.Policy) int {
	if p.Objective == nil || p.Objective.Budget == nil {
		return -1
	}
	own := p.Objective.BudgetFraction()
	return slices.IndexFunc(FrontBudgets, func(b float64) bool { return math.Abs(b-own) <= 1e-12 })
}

// Compare sweeps the HPA settings on tr and, for a configured policy with an objective,
// its front; res is the backtest of configured on tr (Contenders, same Params), which gives
// the policy as written and the oracle.
func Compare(tr Trace, configured *policy.Policy, res Result, opt CompareOptions) (Comparison, error) {
	_, c, err := CompareWith(tr, configured, func() (Result, error) { return res, nil }, opt)
	return c, err
}

// CompareWith is Compare, with the backtest of configured (Contenders, same Params) made by
// run, which it calls concurrently with its own runs, so that the machine's cores share
// them all. It returns run's result beside the comparison; run's error first.
func CompareWith(tr Trace, configured *policy.Policy, run func() (Result, error), opt CompareOptions) (Result, Comparison, error) {
	if !(opt.Budget > 0 && opt.Budget <= policy.MaxObjectiveBudget) {
		return Result{}, Comparison{}, fmt.Errorf("budget: must be within (0, 50%%], got %v", opt.Budget)
	}
	ps, settings, err := HPAGrid(opt.Params)
	if err != nil {
		return Result{}, Comparison{}, err
	}
	nHPA := len(ps)
	cs := make([]Contender, 0, len(ps)+len(FrontBudgets))
	for _, p := range ps {
		cs = append(cs, Contender{Name: p.Name, Policy: p, Reference: true})
	}
	own := ownFront(configured)
	if configured.Objective != nil {
		for i, b := range FrontBudgets {
			if i == own {
				continue // the policy as written: run's
			}
			p := WithBudget(configured, b)
			cs = append(cs, Contender{Name: p.Name, Policy: p})
		}
	}
	var (
		res    Result
		runErr error
		ran    = make(chan struct{})
	)
	go func() {
		defer close(ran)
		res, runErr = run()
	}()
	outs, err := RunEach(tr, cs, opt.Params, opt.Progress)
	<-ran
	if runErr != nil {
		return Result{}, Comparison{}, runErr
	}
	if err != nil {
		return res, Comparison{}, err
	}
	conf, ok := res.Policy(configured.Name)
	if !ok {
		return res, Comparison{}, fmt.Errorf("the backtest has no result of policy %s", configured.Name)
	}
	orc, ok := res.Policy(OracleName)
	if !ok {
		return res, Comparison{}, fmt.Errorf("the backtest has no result of the %s", OracleName)
	}
	for i := range settings {
		settings[i].Outcome = outs[i]
	}
	c := Comparison{
		Budget:        opt.Budget,
		SLOSeconds:    opt.Params.SLO.Seconds(),
		Minutes:       len(tr),
		BudgetMinutes: BudgetMinutes(opt.Budget, len(tr)),
		HPA:           settings,
		Fewest:        settings[Fewest(settings)],
		Oracle:        outcome(orc.Score),
	}
	x, y := make([]float64, nHPA), make([]float64, nHPA)
	for i, s := range settings {
		x[i], y[i] = s.GPUHours, float64(s.SLOViolationMinutes)
	}
	c.HPAFront = Pareto(x, y)
	c.Configured = Configured{Name: configured.Name, Outcome: outcome(conf.Score), Holds: conf.SLOViolationMinutes <= c.BudgetMinutes}
	if i, ok := Cheapest(settings, float64(c.BudgetMinutes)); ok {
		c.Cheapest = &settings[i]
		if c.Configured.Holds && c.Cheapest.GPUHours > 0 {
			c.Saving = ptr(1 - c.Configured.GPUHours/c.Cheapest.GPUHours)
		}
	}
	if configured.Objective != nil {
		k := nHPA
		for i, b := range FrontBudgets {
			o := c.Configured.Outcome
			if i != own {
				o, k = outs[k], k+1
			}
			c.Front = append(c.Front, FrontPoint{Budget: b, Outcome: o})
		}
	}
	c.Criterion = criterion(opt.Budget, len(tr), settings, c.Configured.Outcome, c.Oracle)
	return res, c, nil
}

// criterionFloor is the least B: ceil(CriterionMargin x the fewest violation minutes of any
// HPA setting), where 1.2 x 40 is 48, not 49 (48.00000000000001 in float64), and 1.2 x 0 is
// 0, not -0.
func criterionFloor(fewest int) float64 {
	return max(0, math.Ceil(CriterionMargin*float64(fewest)-1e-9))
}

// criterion computes the benchmark criterion of conf against the HPA settings and the oracle.
func criterion(budget float64, minutes int, settings []HPASetting, conf, oracle Outcome) Criterion {
	r := Criterion{Exact: budget * float64(minutes), FewestHPA: settings[Fewest(settings)].SLOViolationMinutes}
	r.B = max(r.Exact, criterionFloor(r.FewestHPA))
	r.Holds = float64(conf.SLOViolationMinutes) <= r.B
	i, ok := Cheapest(settings, r.B)
	if !ok {
		r.Met = r.Holds
		return r
	}
	r.Cheapest = &settings[i]
	if gap := r.Cheapest.GPUHours - oracle.GPUHours; gap > 0 {
		r.Capture = ptr(1 - (conf.GPUHours-oracle.GPUHours)/gap)
	}
	if r.Cheapest.GPUHours > 0 {
		r.Ratio = ptr(conf.GPUHours / r.Cheapest.GPUHours)
	}
	switch {
	case r.Ratio == nil: // at most 1 x none
		r.Met = r.Holds && conf.GPUHours == 0
	case r.Capture == nil: // the HPA is at the oracle's cost: nothing to capture, only to keep
		r.Met = r.Holds && *r.Ratio <= CriterionMaxRatio
	default:
		r.Met = r.Holds && *r.Ratio <= CriterionMaxRatio && *r.Capture >= CriterionMinCapture
	}
	return r
}

// WriteComparison writes c as text: the budget, the cheapest HPA setting holding it (or the
// fewest violation minutes of any), the configured policy as written, the saving, the
// oracle, the configured policy's front, and the benchmark criterion.
func WriteComparison(w io.Writer, c Comparison) error {
	var b strings.Builder
	// Rounded to 2 decimals: 100 x 0.0005 is 0.049999999999999996 in float64.
	num := func(v float64) string { return strconv.FormatFloat(math.Round(100*v)/100, 'f', -1, 64) }
	pct := func(f float64) string { return num(100*f) + "%" }
	score := func(o Outcome) string {
		return fmt.Sprintf("%8.1f GPU-hours  %5d SLO-viol min  %5d scale events", o.GPUHours, o.SLOViolationMinutes, o.ScaleEvents)
	}
	fmt.Fprintf(&b, "Objective: at most %s of minutes over the %gs SLO: budget %s of %d minutes = %d minutes\n",
		pct(c.Budget), c.SLOSeconds, pct(c.Budget), c.Minutes, c.BudgetMinutes)
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	if c.Cheapest != nil {
		fmt.Fprintf(tw, "  cheapest HPA setting holding it (of %d):\t%s\t%s\n", len(c.HPA), c.Cheapest, score(c.Cheapest.Outcome))
	} else {
		fmt.Fprintf(tw, "  no HPA setting of the %d holds it; fewest:\t%s\t%s\n", len(c.HPA), c.Fewest, score(c.Fewest.Outcome))
	}
	holds := "holds it"
	if !c.Configured.Holds {
		holds = "does not hold it"
	}
	fmt.Fprintf(tw, "  %s (policy as written):\t%s\t%s\n", c.Configured.Name, holds, score(c.Configured.Outcome))
	fmt.Fprintf(tw, "  oracle:\t\t%s\n", score(c.Oracle))
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write comparison: %w", err)
	}
	switch {
	case c.Saving != nil:
		fmt.Fprintf(&b, "  saving: %.1f%% fewer GPU-hours than the cheapest HPA setting holding it\n", 100**c.Saving)
	case c.Cheapest == nil && c.Configured.Holds:
		fmt.Fprintf(&b, "  saving: none to measure: %s holds it, no HPA setting does\n", c.Configured.Name)
	case c.Cheapest == nil:
		fmt.Fprintf(&b, "  saving: none to measure: neither %s nor any HPA setting holds it\n", c.Configured.Name)
	case c.Cheapest.GPUHours == 0:
		fmt.Fprintf(&b, "  saving: none to measure: the cheapest HPA setting holding it used no GPU\n")
	default:
		fmt.Fprintf(&b, "  saving: none: %s does not hold it; %.1f%% fewer GPU-hours than the cheapest HPA setting that does\n",
			c.Configured.Name, 100*(1-c.Configured.GPUHours/c.Cheapest.GPUHours))
	}
	if len(c.Front) > 0 {
		fmt.Fprintf(&b, "  %s front, its objective's budget replaced:\n", c.Configured.Name)
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "    \tbudget\tGPU-hours\tSLO-viol min\tscale events\t")
		for _, f := range c.Front {
			fmt.Fprintf(tw, "    \t%s\t%.1f\t%d\t%d\t\n", pct(f.Budget), f.GPUHours, f.SLOViolationMinutes, f.ScaleEvents)
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write comparison: %w", err)
		}
	}
	r := c.Criterion
	fmt.Fprintf(&b, "Benchmark criterion: B = max(%s x %d = %s, ceil(%g x %d, the fewest of any HPA setting) = %.0f) = %s minutes; ",
		pct(c.Budget), c.Minutes, num(r.Exact), CriterionMargin, r.FewestHPA, criterionFloor(r.FewestHPA), num(r.B))
	verdict := "met"
	if !r.Met {
		verdict = "NOT MET"
	}
	holdsB := "holds B"
	if !r.Holds {
		holdsB = "does not hold B"
	}
	if r.Cheapest != nil {
		ratio, capture := "-", "-"
		if r.Ratio != nil {
			ratio = fmt.Sprintf("%.3f", *r.Ratio)
		}
		if r.Capture != nil {
			capture = pct(*r.Capture)
		}
		fmt.Fprintf(&b, "cheapest HPA setting holding B: %s %.1f GPU-hours %d min; %s %.1f GPU-hours %d min: %s, %s x its GPU-hours (<= %g), captures %s of its gap to the oracle (>= %s): %s\n",
			r.Cheapest, r.Cheapest.GPUHours, r.Cheapest.SLOViolationMinutes, c.Configured.Name, c.Configured.GPUHours,
			c.Configured.SLOViolationMinutes, holdsB, ratio, CriterionMaxRatio, capture, pct(CriterionMinCapture), verdict)
	} else {
		fmt.Fprintf(&b, "no HPA setting holds B; %s %d min: %s: %s\n", c.Configured.Name, c.Configured.SLOViolationMinutes, holdsB, verdict)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write comparison: %w", err)
	}
	return nil
}

// ParseBudget reads a budget of minutes over the SLO: a fraction ("0.001") or a percentage
// ("0.1%"), within (0, 50%].
func ParseBudget(s string) (float64, error) {
	t := strings.TrimSpace(s)
	scale := 1.0
	if rest, ok := strings.CutSuffix(t, "%"); ok {
		t, scale = strings.TrimSpace(rest), 100
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf(`want a fraction (0.001) or a percentage ("0.1%%"), got %q`, s)
	}
	v /= scale
	if !(v > 0 && v <= policy.MaxObjectiveBudget) {
		return 0, fmt.Errorf("must be within (0, 50%%], got %q", s)
	}
	return v, nil
}

// CriterionOf is the benchmark criterion of conf on a trace of minutes minutes with the
// objective's budget, against the HPA settings (HPAGrid's, with their outcomes) and the
// oracle: what Compare reports, for a caller that reuses one HPA sweep (hack/objloo).
func CriterionOf(budget float64, minutes int, settings []HPASetting, conf, oracle Outcome) Criterion {
	return criterion(budget, minutes, settings, conf, oracle)
}
