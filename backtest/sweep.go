package backtest

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/prescale/prescale/policy"
)

// Axis is one swept setting and its values: "key=v1,v2,..." on the command line.
type Axis struct {
	Key    string
	Values []string
}

// setters apply one sweep value to the model parameters or to the configured policy.
var setters = map[string]func(par *Params, p *policy.Policy, v string) error{
	// scaleDownWindow and scaleUpWindow: the configured policy's stabilization windows, seconds.
	"scaleDownWindow": func(_ *Params, p *policy.Policy, v string) error {
		return setWindow(p, v, func(b *policy.Behavior) **policy.Rules { return &b.ScaleDown })
	},
	"scaleUpWindow": func(_ *Params, p *policy.Policy, v string) error {
		return setWindow(p, v, func(b *policy.Behavior) **policy.Rules { return &b.ScaleUp })
	},
	// queueTarget, gpuTarget and kvTarget: the targets of the configured policy's metrics
	// whose query names vllm:num_requests_waiting, DCGM_FI_DEV_GPU_UTIL or
	// vllm:kv_cache_usage_perc.
	"queueTarget": func(_ *Params, p *policy.Policy, v string) error { return setTarget(p, seriesNames[QueueDepth], v) },
	"gpuTarget":   func(_ *Params, p *policy.Policy, v string) error { return setTarget(p, seriesNames[GPUUtil], v) },
	"kvTarget":    func(_ *Params, p *policy.Policy, v string) error { return setTarget(p, famKV, v) },
	// quantile: the quantile of the load the configured policy's forecast plans for, its
	// trade of GPU-hours for violation minutes.
	"quantile": func(_ *Params, p *policy.Policy, v string) error {
		if p.Forecast == nil {
			return fmt.Errorf("policy %s has no forecast", p.Name)
		}
		q, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return fmt.Errorf("want a number: %w", err)
		}
		p.Forecast.Quantile = &q
		return nil
	},
	// Model parameters.
	"startup": func(par *Params, _ *policy.Policy, v string) (err error) {
		par.Startup, err = parseSeconds(v)
		return err
	},
	"slo": func(par *Params, _ *policy.Policy, v string) (err error) {
		par.SLO, err = parseSeconds(v)
		return err
	},
	"peakReplicas": func(par *Params, _ *policy.Policy, v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		par.PeakReplicas = int32(n)
		return err
	},
	"targetUtilization": func(par *Params, _ *policy.Policy, v string) (err error) {
		par.TargetUtilization, err = strconv.ParseFloat(v, 64)
		return err
	},
}

// SweepKeys returns the keys an Axis may sweep, sorted.
func SweepKeys() []string {
	keys := make([]string, 0, len(setters))
	for k := range setters {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// ParseAxis parses "key=v1,v2,...".
func ParseAxis(s string) (Axis, error) {
	key, list, ok := strings.Cut(s, "=")
	if !ok || list == "" {
		return Axis{}, fmt.Errorf("sweep %q: want key=v1,v2 (one or more values)", s)
	}
	if setters[key] == nil {
		return Axis{}, fmt.Errorf("sweep %q: unknown key %q (known: %s)", s, key, strings.Join(SweepKeys(), ", "))
	}
	a := Axis{Key: key}
	for v := range strings.SplitSeq(list, ",") {
		if v = strings.TrimSpace(v); v == "" {
			return Axis{}, fmt.Errorf("sweep %q: empty value", s)
		}
		a.Values = append(a.Values, v)
	}
	return a, nil
}

// Point is one point of a sweep grid: its settings and the parameters and configured policy
// they give.
type Point struct {
	// Settings are "key=value", one per axis, in axis order.
	Settings []string
	Params   Params
	Policy   *policy.Policy
}

// MaxSweepPoints bounds a sweep's grid: each point is a backtest of three policies.
const MaxSweepPoints = 1000

// GridSize returns the points of the grid of axes, the product of their numbers of values,
// and a product such as "2 x 3"; past MaxSweepPoints it stops counting, at MaxSweepPoints + 1.
func GridSize(axes []Axis) (int, string) {
	n := 1
	var factors []string
	for _, a := range axes {
		factors = append(factors, strconv.Itoa(len(a.Values)))
		if n > MaxSweepPoints/max(1, len(a.Values)) {
			n = MaxSweepPoints + 1
		} else {
			n *= len(a.Values)
		}
	}
	return min(n, MaxSweepPoints+1), strings.Join(factors, " x ")
}

// Grid returns every combination of the axes' values (the last axis varies fastest), each
// applied to a copy of par and p. It returns every invalid value at once, and an error for
// a grid of more than MaxSweepPoints points.
func Grid(axes []Axis, par Params, p *policy.Policy) ([]Point, error) {
	if n, product := GridSize(axes); n > MaxSweepPoints {
		return nil, fmt.Errorf("sweep: a grid of %s points is more than %d", product, MaxSweepPoints)
	}
	points := []Point{{Params: par, Policy: p}}
	var errs []error
	for _, a := range axes {
		next := make([]Point, 0, len(points)*len(a.Values))
		for _, pt := range points {
			for _, v := range a.Values {
				q := Point{Settings: append(slices.Clip(pt.Settings), a.Key+"="+v), Params: pt.Params, Policy: clonePolicy(pt.Policy)}
				if err := setters[a.Key](&q.Params, q.Policy, v); err != nil {
					errs = append(errs, fmt.Errorf("sweep %s=%s: %w", a.Key, v, err))
					continue
				}
				next = append(next, q)
			}
		}
		points = next
	}
	for _, pt := range points {
		if err := pt.Params.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("sweep %s: %w", strings.Join(pt.Settings, " "), err))
		}
		if err := (policy.File{Policies: []policy.Policy{*pt.Policy}}).Validate(); err != nil {
			errs = append(errs, fmt.Errorf("sweep %s: %w", strings.Join(pt.Settings, " "), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return points, nil
}

// Pareto returns the indices of the points that no other point dominates, minimizing both
// coordinates, sorted by x then y. Equal points are all kept.
func Pareto(x, y []float64) []int {
	var front []int
	for i := range x {
		dominated := false
		for j := range x {
			if x[j] <= x[i] && y[j] <= y[i] && (x[j] < x[i] || y[j] < y[i]) {
				dominated = true
				break
			}
		}
		if !dominated {
			front = append(front, i)
		}
	}
	slices.SortFunc(front, func(a, b int) int { return cmp.Or(cmp.Compare(x[a], x[b]), cmp.Compare(y[a], y[b])) })
	return front
}

// SweepResult is one grid point's backtest.
type SweepResult struct {
	Settings []string `json:"settings"`
	Result   Result   `json:"result"`
}

// WriteSweep writes one row per grid point (the configured policy's scores, and the
// baseline's GPU-hours and violation minutes at the same model parameters), then the Pareto
// front of the configured policy's GPU-hours against SLO-violation minutes.
func WriteSweep(w io.Writer, configured string, results []SweepResult) error {
	x, y := make([]float64, len(results)), make([]float64, len(results))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "settings\t%s GPU-hours\tSLO-viol min\tscale events\thpa GPU-hours\thpa SLO-viol min\n", configured)
	for i, r := range results {
		c, _ := r.Result.Policy(configured)
		h, _ := r.Result.Policy(HPAName)
		x[i], y[i] = c.GPUHours, float64(c.SLOViolationMinutes)
		fmt.Fprintf(tw, "%s\t%.1f\t%d\t%d\t%.1f\t%d\n", strings.Join(r.Settings, " "), c.GPUHours, c.SLOViolationMinutes, c.ScaleEvents, h.GPUHours, h.SLOViolationMinutes)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write sweep: %w", err)
	}
	fmt.Fprintf(w, "\nPareto front of %s, GPU-hours against SLO-violation minutes:\n", configured)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "settings\tGPU-hours\tSLO-viol min")
	for _, i := range Pareto(x, y) {
		fmt.Fprintf(tw, "%s\t%.1f\t%.0f\n", strings.Join(results[i].Settings, " "), x[i], y[i])
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write sweep: %w", err)
	}
	return nil
}

func setWindow(p *policy.Policy, v string, rules func(*policy.Behavior) **policy.Rules) error {
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return fmt.Errorf("want whole seconds: %w", err)
	}
	if p.Behavior == nil {
		// Another window is a behavior, with the HPA's default rules where the behavior-less
		// path has others: the point would differ in more than the key.
		return fmt.Errorf("policy %s has no behavior, whose behavior-less scaling (a fixed 300 s scale-down window, scale-ups of at most max(2 x current, 4)) has no window to sweep: give it one (behavior: {} holds the HPA's default rules)", p.Name)
	}
	r := rules(p.Behavior)
	if *r == nil {
		*r = &policy.Rules{}
	}
	(*r).StabilizationWindowSeconds = ptr(int32(n))
	return nil
}

// setTarget sets the target of each of p's metrics whose query names the series name to v.
func setTarget(p *policy.Policy, name, v string) error {
	q, err := policy.ParseQuantity(v)
	if err != nil {
		return err
	}
	found := false
	for i := range p.Metrics {
		if !strings.Contains(p.Metrics[i].Query, name) {
			continue
		}
		found = true
		t := &p.Metrics[i].Target
		if t.Type == policy.Value {
			t.Value = &q
		} else {
			t.AverageValue = &q
		}
	}
	if !found {
		return fmt.Errorf("policy %s has no metric on %s", p.Name, name)
	}
	return nil
}

// parseSeconds reads a duration: "180s", "3m", or a bare number of seconds.
func parseSeconds(v string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	return time.ParseDuration(v)
}

// clonePolicy returns a deep copy of p, so that a sweep point can change it.
func clonePolicy(p *policy.Policy) *policy.Policy {
	c := *p
	if p.MinReplicas != nil {
		c.MinReplicas = ptr(*p.MinReplicas)
	}
	c.Metrics = slices.Clone(p.Metrics)
	if p.Forecast != nil {
		f := *p.Forecast // a setter replaces its pointer fields, never writes through them
		c.Forecast = &f
	}
	if p.Behavior != nil {
		b := *p.Behavior
		b.ScaleUp, b.ScaleDown = cloneRules(b.ScaleUp), cloneRules(b.ScaleDown)
		c.Behavior = &b
	}
	return &c
}

func cloneRules(r *policy.Rules) *policy.Rules {
	if r == nil {
		return nil
	}
	c := *r
	c.Policies = slices.Clone(r.Policies)
	return &c
}
