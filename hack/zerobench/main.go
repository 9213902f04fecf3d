// Command zerobench measures scale to zero on a trace (issue 17): GPU-hours, the GPU-hours
// spent in idle minutes, the time at zero and the SLO-violation minutes at returns of the
// HPA (minReplicas 1, and reactive scale-from-zero), prescale (minReplicas 1; minReplicas 0
// waking on its activation signal only; minReplicas 0 with predictive wake-up) and the
// oracle (minReplicas 1 and 0), on the backtest's reference model. It prints a Markdown
// table; docs/benchmarks-zero.sh puts it in docs/benchmarks.md.
//
//	go run ./hack/zerobench -f examples/slo-policy.yaml -trace ../shared/traces/servegen-m-small/requests_per_minute.csv
package main

import (
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/prescale/prescale/backtest"
	"github.com/prescale/prescale/policy"
)

func main() {
	file := flag.String("f", "examples/slo-policy.yaml", "policy file whose first policy is prescale's")
	tracePath := flag.String("trace", "", "per-minute trace (minute,requests)")
	idle := flag.Duration("idle-delay", 5*time.Minute, "scaleToZero.idleDelay")
	night := flag.String("idle-hours", "", "from-to (hours of the day, such as 1-6): zero the trace's requests in those hours of every day, a service idle every night (the trace file is not changed)")
	flag.Parse()
	if err := run(*file, *tracePath, *idle, *night); err != nil {
		fmt.Fprintln(os.Stderr, "zerobench:", err)
		os.Exit(1)
	}
}

func run(file, tracePath string, idle time.Duration, night string) error {
	tf, err := os.Open(tracePath)
	if err != nil {
		return err
	}
	defer tf.Close()
	tr, err := backtest.ReadTrace(tf)
	if err != nil {
		return fmt.Errorf("read trace %s: %w", tracePath, err)
	}
	if night != "" {
		var from, to int
		if _, err := fmt.Sscanf(night, "%d-%d", &from, &to); err != nil || from < 0 || to > 24 || from >= to {
			return fmt.Errorf("-idle-hours: want from-to within 0-24, got %q", night)
		}
		for m := range tr {
			if h := m % 1440 / 60; h >= from && h < to {
				tr[m] = 0
			}
		}
	}
	pf, err := os.Open(file)
	if err != nil {
		return err
	}
	defer pf.Close()
	f, err := policy.Parse(pf)
	if err != nil {
		return fmt.Errorf("policy file %s: %w", file, err)
	}
	par := backtest.DefaultParams()
	base := f.Policies[0]

	one := base
	one.Name = "prescale-min1"
	par1 := par
	par1.MinReplicas = 1
	hpa1, err := backtest.Baseline(par1)
	if err != nil {
		return err
	}
	hpa1.Name = "hpa-min1"
	r1, err := backtest.Run(tr, []backtest.Contender{{Name: hpa1.Name, Policy: hpa1, Reference: true}, {Name: one.Name, Policy: &one}, {Name: "oracle-min1"}},
		backtest.Options{Params: par1})
	if err != nil {
		return fmt.Errorf("minReplicas 1: %w", err)
	}

	par0 := par
	par0.MinReplicas = 0
	hpa0, err := backtest.BaselineFromZero(par0, tr)
	if err != nil {
		return err
	}
	hpa0.Name = "hpa-zero"
	perReplica, err := policy.ParseQuantity(fmt.Sprintf("%.3f", par0.Mu(tr)*par0.TargetUtilization))
	if err != nil {
		return err
	}
	zero := func(name string, wake bool) *policy.Policy {
		p := base
		p.Name = name
		p.MinReplicas = new(int32)
		if base.Forecast != nil {
			// At zero no server exports anything: the demand to forecast a return from is
			// the gateway's, as in examples/servers/vllm-gateway-zero.yaml.
			f := *base.Forecast
			f.Load.Query = activationQuery
			p.Forecast = &f
		}
		p.ScaleToZero = &policy.ScaleToZero{
			Activation: policy.Activation{Query: activationQuery, PerReplica: &perReplica},
			IdleDelay:  &policy.Duration{Duration: idle},
			WakeAhead:  &policy.WakeAhead{Enabled: &wake},
		}
		return &p
	}
	reactive, ahead := zero("prescale-zero-reactive", false), zero("prescale-zero-wake", true)
	if err := (policy.File{Policies: []policy.Policy{*reactive}}).Validate(); err != nil {
		return err
	}
	r0, err := backtest.Run(tr, []backtest.Contender{{Name: hpa0.Name, Policy: hpa0, Reference: true}, {Name: reactive.Name, Policy: reactive},
		{Name: ahead.Name, Policy: ahead}, {Name: "oracle-zero"}}, backtest.Options{Params: par0})
	if err != nil {
		return fmt.Errorf("minReplicas 0: %w", err)
	}

	fmt.Printf("%d minutes, %d returns (a minute with requests after one without), %d idle minutes; idleDelay %s; activation perReplica %s requests/s.\n\n",
		r0.Minutes, r0.Returns, idleMinutes(tr), idle, perReplica)
	fmt.Println("| policy | minReplicas | GPU-hours | GPU-hours in idle minutes | hours at zero | SLO-violation minutes | at returns (30 min) | scale events |")
	fmt.Println("|---|---|---|---|---|---|---|---|")
	row := func(p backtest.PolicyResult, minR int) {
		fmt.Printf("| %s | %d | %.1f | %.1f | %.1f | %d | %d | %d |\n", p.Name, minR, p.GPUHours, p.IdleGPUHours, p.ZeroHours,
			p.SLOViolationMinutes, p.ReturnViolationMinutes, p.ScaleEvents)
	}
	for _, p := range r1.Policies {
		row(p, 1)
	}
	for _, p := range r0.Policies {
		row(p, 0)
	}
	min1, _ := r1.Policy(one.Name)
	wakeRes, _ := r0.Policy(ahead.Name)
	react, _ := r0.Policy(hpa0.Name)
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "**not met**"
	}
	fmt.Printf("\nIssue 17: `%s` uses fewer GPU-hours than `%s` (%.1f vs %.1f): %s; fewer SLO-violation minutes at returns than the HPA's reactive scale-from-zero `%s` (%d vs %d): %s.\n",
		ahead.Name, one.Name, wakeRes.GPUHours, min1.GPUHours, verdict(wakeRes.GPUHours < min1.GPUHours),
		hpa0.Name, wakeRes.ReturnViolationMinutes, react.ReturnViolationMinutes, verdict(wakeRes.ReturnViolationMinutes < react.ReturnViolationMinutes))
	return nil
}

func idleMinutes(tr backtest.Trace) int {
	n := 0
	for _, v := range tr {
		if v == 0 {
			n++
		}
	}
	return n
}

// activationQuery is the arrival rate as the model's gateway counts it: dispatched to a
// Ready pod, or failed while there is none.
const activationQuery = `sum(rate({__name__=~"inference_objective_request_total|inference_objective_request_error_total"}[1m]))`
