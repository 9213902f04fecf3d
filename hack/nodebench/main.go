// Command nodebench backtests, on every trace of a day or more in the traces directory, the
// policy file's first policy on nodes that a reactive node autoscaler grows (backtest
// NodeModel: nodes of -gpus-per-node GPUs, Ready -node-lead after their launch, removed
// once surplus for -consolidate-after), against the model's default HPA on the same nodes,
// and the oracle. The policy runs twice: its pods alone make the nodes launch, then with
// its CapacityBuffer (what its forecast plans for over the node lead beyond its horizon).
// It prints a Markdown table of SLO-violation minutes, GPU-hours, node-hours and the pods'
// hours waiting for a node; docs/benchmarks-nodes.sh puts it in docs/capacity.md.
//
//	go run ./hack/nodebench -f examples/slo-policy.yaml -traces ../shared/traces
package main

import (
	"cmp"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prescale/prescale/backtest"
	"github.com/prescale/prescale/policy"
)

func main() {
	file := flag.String("f", "examples/slo-policy.yaml", "policy file whose first policy is scored")
	dir := flag.String("traces", "../shared/traces", "directory of <name>/requests_per_minute.csv traces")
	perNode := flag.Int("gpus-per-node", 8, "GPUs of a node")
	lead := flag.Duration("node-lead", 10*time.Minute, "a node's time from launch to Ready")
	consolidate := flag.Duration("consolidate-after", 5*time.Minute, "how long a node is surplus before it is removed")
	flag.Parse()
	if err := run(os.Stdout, os.Stderr, *file, *dir, backtest.NodeModel{GPUsPerNode: *perNode, Lead: *lead, ConsolidateAfter: *consolidate}); err != nil {
		fmt.Fprintln(os.Stderr, "nodebench:", err)
		os.Exit(1)
	}
}

// row is one trace's outcome.
type row struct {
	slug    string
	minutes int
	res     backtest.Result
}

func run(out, progress io.Writer, file, dir string, nodes backtest.NodeModel) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	pf, err := policy.Parse(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("policy file %s: %w", file, err)
	}
	p := &pf.Policies[0]
	paths, err := filepath.Glob(filepath.Join(dir, "*", "requests_per_minute.csv"))
	if err != nil {
		return err
	}
	slices.Sort(paths)
	par := backtest.DefaultParams()
	par.Nodes = &nodes
	var (
		rows []row
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
		sem  = make(chan struct{}, runtime.GOMAXPROCS(0))
	)
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		tr, err := backtest.ReadTrace(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("trace %s: %w", path, err)
		}
		if len(tr) < 24*60 {
			continue
		}
		slug := filepath.Base(filepath.Dir(path))
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			res, err := score(p, par, tr)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("trace %s: %w", slug, err))
				return
			}
			rows = append(rows, row{slug: slug, minutes: len(tr), res: res})
			fmt.Fprintf(progress, "nodebench: %s (%d minutes) in %s\n", slug, len(tr), time.Since(start).Round(time.Second))
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return errs[0]
	}
	slices.SortFunc(rows, func(a, b row) int { return cmp.Or(a.minutes-b.minutes, strings.Compare(a.slug, b.slug)) })
	fmt.Fprintf(out, "Nodes of %d GPUs (1 GPU a pod), Ready %s after their launch, removed once surplus for %s; the default model otherwise (start-up %s, peak %d replicas, SLO %s).\n\n",
		nodes.GPUsPerNode, nodes.Lead, nodes.ConsolidateAfter, par.Startup, par.PeakReplicas, par.SLO)
	fmt.Fprintln(out, "| trace | contender | SLO-violation minutes | GPU-hours | node-hours | pod-hours waiting for a node |")
	fmt.Fprintln(out, "|---|---|---:|---:|---:|---:|")
	for _, r := range rows {
		for _, pr := range r.res.Policies {
			fmt.Fprintf(out, "| %s | %s | %d | %.1f | %.1f | %.1f |\n", r.slug, pr.Name, pr.SLOViolationMinutes, pr.GPUHours, pr.NodeHours, pr.PendingPodHours)
		}
	}
	return nil
}

// score backtests the trace on the nodes: the default HPA, the policy without and with its
// buffer, and the oracle with its own.
func score(p *policy.Policy, par backtest.Params, tr backtest.Trace) (backtest.Result, error) {
	hpa, err := backtest.Baseline(par)
	if err != nil {
		return backtest.Result{}, err
	}
	buffered := *p
	buffered.Name = p.Name + "+buffer"
	return backtest.Run(tr, []backtest.Contender{
		{Name: "hpa (reactive nodes)", Policy: hpa, Reference: true},
		{Name: p.Name + " (reactive nodes)", Policy: p},
		{Name: p.Name + " + CapacityBuffer", Policy: &buffered, Buffer: true},
		{Name: backtest.OracleName + " + buffer", Buffer: true},
	}, backtest.Options{Params: par})
}
