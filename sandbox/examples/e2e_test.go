//go:build e2e

package examples_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2/ktesting"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/sandbox"
	"github.com/prescale/prescale/sandbox/sim"
)

// The simulated servers' numbers, the ones the examples' comments cite. A replica runs
// batch requests at once and completes mu requests/s with a full batch (a request stays
// batch/mu = 16 s in it: a 70B model's few hundred output tokens at ~25 tokens/s); the
// examples' per-pod in-flight target is 75 % of the batch.
const (
	mu        = 4.0  // requests/s a replica completes with a full batch
	baseLoad  = 2.0  // requests/s before the surge: one replica at 50 %, in-flight 2/3 of the target
	surgeLoad = 10.0 // requests/s of the surge: 2.5 replicas' capacity, 4 replicas at the target
	startup   = 10 * time.Second
	// prefillRatio is the prompt tokens prefilled in one engine step: vLLM's default
	// max_num_batched_tokens (2048) with chunked prefill. The simulator's default (100)
	// makes the p99 time to first token of its default lengths ~10 s at any load.
	prefillRatio = 2048
)

// example is one shipped policy file as the test runs it: the file, what it substitutes,
// and the simulator's mode for it.
type example struct {
	file string // relative to the repository root
	// from and to: the target's namespace and name in the file, and what they become.
	fromNamespace, fromName string
	namespace, name         string
	server                  sim.Server
	gateway                 bool
	model                   string // the served model's name in the server's labels ("" = the Deployment's)
	batch                   int
	run                     bool // run it under prescale run, beyond the preflight
}

var examples = []example{
	{file: "examples/servers/vllm.yaml", fromNamespace: "inference", fromName: "llama-70b", namespace: "ex-vllm", name: "vllm",
		server: sim.ServerVLLM, batch: 64, run: true},
	{file: "examples/servers/tgi.yaml", fromNamespace: "inference", fromName: "mistral-7b", namespace: "ex-tgi", name: "tgi",
		server: sim.ServerTGI, batch: 32, run: true},
	{file: "examples/servers/sglang.yaml", fromNamespace: "inference", fromName: "qwen-32b", namespace: "ex-sglang", name: "sglang",
		server: sim.ServerSGLang, batch: 64, run: true},
	{file: "examples/servers/triton.yaml", fromNamespace: "inference", fromName: "triton-llama", namespace: "ex-triton", name: "triton",
		server: sim.ServerTriton, model: "llama", batch: 64, run: true},
	{file: "examples/servers/vllm-gateway-zero.yaml", fromNamespace: "inference", fromName: "llama-70b", namespace: "ex-vllm-zero", name: "vllm-zero",
		server: sim.ServerVLLM, gateway: true, batch: 64, run: true},
}

// alsoValidated are the other shipped policies, checked by the preflight against the
// simulated service of the same series (the deploy/ files' own settings included; only
// the Prometheus URL is the flag's). README.md's is its first YAML block.
var alsoValidated = []example{
	{file: "README.md", fromNamespace: "inference", fromName: "llama-70b", namespace: "ex-vllm", name: "vllm"},
	{file: "examples/policy.yaml", fromNamespace: "inference", fromName: "llama-70b", namespace: "ex-vllm", name: "vllm"},
	{file: "deploy/base/prescale.yaml", fromNamespace: "inference", fromName: "llama-70b", namespace: "ex-vllm", name: "vllm"},
	{file: "deploy/overlays/example/prescale.yaml", fromNamespace: "inference", fromName: "llama-70b", namespace: "ex-vllm", name: "vllm"},
	{file: "examples/zero-policy.yaml", fromNamespace: "inference", fromName: "model", namespace: "ex-vllm-zero", name: "vllm-zero"},
	{file: "examples/slo-policy.yaml", fromNamespace: "inference", fromName: "model", namespace: "ex-vllm", name: "vllm"},
	{file: "examples/backtest-policy.yaml", fromNamespace: "inference", fromName: "model", namespace: "ex-vllm", name: "vllm"},
}

// substitute returns text with the target's namespace and name replaced, in the target and
// in every selector and pod regex: what a user edits.
func (e example) substitute(text string) string {
	text = strings.ReplaceAll(text, "namespace: "+e.fromNamespace+",", "namespace: "+e.namespace+",")
	text = strings.ReplaceAll(text, `namespace="`+e.fromNamespace+`"`, `namespace="`+e.namespace+`"`)
	return regexp.MustCompile(`\b`+regexp.QuoteMeta(e.fromName)+`\b`).ReplaceAllString(text, e.name)
}

// timeScaled adds the forecast's time knobs to the policies of text: history: 10m (the
// sandbox has minutes of it, not the default 14 days) and a 1-minute gate window (the
// default 2h would keep the forecast from proposing for two hours).
func timeScaled(text string) string {
	return strings.ReplaceAll(text, "\n        perReplica: auto\n", "\n        perReplica: auto\n      history: 10m\n      gate: {window: 1m}\n")
}

// policiesOf returns the policies: list of a policy file, without the key, for a
// configuration that joins several files.
func policiesOf(t *testing.T, text string) string {
	t.Helper()
	i := strings.Index(text, "\npolicies:\n")
	if i < 0 {
		t.Fatalf("no policies: key in\n%s", text)
	}
	return text[i+len("\npolicies:\n"):]
}

// yamlBlock returns the first policy file of a Markdown text: its first yaml code block
// with a policies: key.
func yamlBlock(t *testing.T, md string) string {
	t.Helper()
	const open = "```yaml\npolicies:"
	i := strings.Index(md, open)
	if i < 0 {
		t.Fatalf("no %q block", open)
	}
	md = md[i+len("```yaml\n"):]
	j := strings.Index(md, "```")
	if j < 0 {
		t.Fatal("an unterminated yaml block")
	}
	return md[:j]
}

// load is the simulated services' arrival rate, which the test switches: a step, not a
// day, so that what scales is the surge.
type load struct{ rps atomic.Uint64 }

func (l *load) set(rps float64)               { l.rps.Store(math.Float64bits(rps)) }
func (l *load) RequestsPerMinute(int) float64 { return 60 * math.Float64frombits(l.rps.Load()) }

// TestExamples runs every shipped server example on one sandbox, each in its own namespace
// against the simulator in its server's mode: prescale validate --prometheus passes on it
// (and on examples/policy.yaml and zero-policy.yaml), the old examples fail it each for
// its reasons, and under one prescale run of all of them, the decision record shows the
// objective and the forecast acting, and a surge scales each one up.
func TestExamples(t *testing.T) {
	bin := os.Getenv("PRESCALE_SANDBOX_BIN")
	if bin == "" {
		t.Fatal("PRESCALE_SANDBOX_BIN is not set: run the e2e tests with make test-e2e (it builds the tools)")
	}
	_, ctx := ktesting.NewTestContext(t)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dir := t.TempDir()

	// Build prescale while the sandbox starts.
	prescale := filepath.Join(dir, "prescale")
	built := make(chan error, 1)
	go func() {
		out, err := exec.Command("go", "build", "-o", prescale, "../../cmd/prescale").CombinedOutput()
		if err != nil {
			err = fmt.Errorf("build prescale: %v\n%s", err, out)
		}
		built <- err
	}()
	start := time.Now()
	// 6 nodes x 8 GPUs: 5 services that each grow to 4 or more replicas in the surge.
	st, err := sandbox.Up(ctx, sandbox.Options{BinDir: bin, StateDir: filepath.Join(dir, "sandbox"), Nodes: 6, GPUsPerNode: 8,
		ScrapeInterval: 2 * time.Second})
	t.Cleanup(func() {
		if err := sandbox.Down(context.Background(), filepath.Join(dir, "sandbox")); err != nil {
			t.Errorf("sandbox down: %v", err)
		}
	})
	if err != nil {
		t.Fatalf("sandbox up: %v", err)
	}
	if err := <-built; err != nil {
		t.Fatal(err)
	}
	t.Logf("sandbox up and prescale built in %s", time.Since(start).Round(time.Second))
	kube, err := st.Client()
	if err != nil {
		t.Fatal(err)
	}

	// One Deployment and one simulated service per example, all on the sandbox's one scrape
	// target.
	var l load
	l.set(baseLoad)
	var gatherers prometheus.Gatherers
	var sims []*sim.Sim
	for _, e := range examples {
		w := sandbox.Workload{Namespace: e.namespace, Name: e.name, Replicas: 1, GPUs: 1, StartupDelay: startup}
		if err := w.Apply(ctx, kube); err != nil {
			t.Fatal(err)
		}
		s, err := sim.New(kube, sim.Options{Namespace: e.namespace, Deployment: e.name, Load: &l, Mu: mu,
			Tick: 2 * time.Second, Compression: 1, BatchSize: e.batch, PrefillRatio: prefillRatio, Server: e.server, Gateway: e.gateway, Model: e.model, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		sims = append(sims, s)
		gatherers = append(gatherers, s.Gatherer())
	}
	lis, err := net.Listen("tcp", st.SimAddr)
	if err != nil {
		t.Fatalf("listen on the sandbox's scrape target %s: %v", st.SimAddr, err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for _, s := range sims {
		wg.Go(func() {
			if _, err := s.Run(ctx); err != nil && ctx.Err() == nil {
				t.Errorf("simulator: %v", err)
			}
		})
	}

	files := map[string]string{} // example file -> its substituted copy
	for _, e := range append(append([]example{}, examples...), alsoValidated...) {
		b, err := os.ReadFile(filepath.Join("../..", e.file))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(e.file, ".md") {
			b = []byte(yamlBlock(t, string(b)))
		}
		p := filepath.Join(dir, strings.ReplaceAll(e.file, "/", "_")+".yaml")
		if err := os.WriteFile(p, []byte(e.substitute(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
		files[e.file] = p
	}

	// (a) The preflight passes on each example once its series have been scraped: the
	// histograms' rates need two scrapes with requests, TGI's series appear with the first
	// request.
	start = time.Now()
	pending := append(append([]example{}, examples...), alsoValidated...)
	testutil.Eventually(t, 3*time.Minute, "prescale validate --prometheus to pass on every example", func() error {
		var failing []example
		var errs []error
		for _, e := range pending {
			code, stdout, stderr := runPrescale(prescale, "validate", "-f", files[e.file], "--prometheus", st.PrometheusURL)
			if code != 0 {
				failing = append(failing, e)
				errs = append(errs, fmt.Errorf("%s: exit %d\n%s%s", e.file, code, stdout, stderr))
			}
		}
		pending = failing
		return errors.Join(errs...)
	})
	t.Logf("the preflight passed on every example %s after the simulators started", time.Since(start).Round(time.Second))

	t.Run("the old examples fail the preflight", func(t *testing.T) { oldExamples(t, prescale, st.PrometheusURL, dir) })

	// (b) One prescale run of every example.
	var conf strings.Builder
	fmt.Fprintf(&conf, `prometheus: {url: %s, timeout: 5s}
interval: 2s
staleness: 10s
leaderElection: {namespace: %s, name: prescale, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 500ms}
policies:
`, st.PrometheusURL, examples[0].namespace)
	for _, e := range examples {
		b, err := os.ReadFile(files[e.file])
		if err != nil {
			t.Fatal(err)
		}
		conf.WriteString(policiesOf(t, timeScaled(string(b))))
	}
	if n := strings.Count(conf.String(), "gate: {window: 1m}"); n != len(examples) {
		t.Fatalf("the time scale reached %d of %d policies:\n%s", n, len(examples), conf.String())
	}
	stopRun := startRun(t, prescale, dir, conf.String(), st.Kubeconfig)
	defer stopRun()

	// The objective counts a minute once it ends on the wall clock: within two minutes of
	// the first tick. The forecast proposes once perReplica: auto has 8 samples.
	start = time.Now()
	for _, e := range examples {
		testutil.Eventually(t, 4*time.Minute, e.file+": the objective and the forecast in the decision record", func() error {
			r, raw, err := record(ctx, kube, e)
			if err != nil {
				return err
			}
			switch {
			case r.Forecast == nil || r.Forecast.Proposal < 1 || r.Forecast.PerReplica <= 0:
				return fmt.Errorf("no forecast proposal yet: %s", raw)
			case r.Objective == nil || r.Objective.Latency == nil || r.Objective.Minutes < 1:
				return fmt.Errorf("no objective minute yet: %s", raw)
			}
			t.Logf("%s before the surge: %s", e.file, raw)
			return nil
		})
	}
	t.Logf("every record showed the objective and the forecast %s after prescale started", time.Since(start).Round(time.Second))

	// (c) The surge: 2.5 replicas' capacity; the load needs 4 at the target. Each target
	// grows to 3 replicas or more, and above what it had (the forecast may have asked for a
	// second replica before).
	before := map[string]int32{}
	for _, e := range examples {
		d, err := kube.AppsV1().Deployments(e.namespace).Get(ctx, e.name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		before[e.file] = *d.Spec.Replicas
	}
	l.set(surgeLoad)
	start = time.Now()
	for _, e := range examples {
		want := max(3, before[e.file]+1)
		testutil.Eventually(t, 3*time.Minute, fmt.Sprintf("%s: the surge scaled it from %d up to %d or more replicas", e.file, before[e.file], want), func() error {
			d, err := kube.AppsV1().Deployments(e.namespace).Get(ctx, e.name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if d.Spec.Replicas == nil || *d.Spec.Replicas < want {
				return fmt.Errorf("spec.replicas %v; record %s", d.Spec.Replicas, d.Annotations["prescale.io/decision"])
			}
			t.Logf("%s in the surge: %d replicas, record %s", e.file, *d.Spec.Replicas, d.Annotations["prescale.io/decision"])
			return nil
		})
	}
	t.Logf("every example scaled the surge up within %s", time.Since(start).Round(time.Second))
}

// oldExamples runs the preflight on the examples as shipped before issue 24 (testdata/old),
// pointed at the vLLM service: each fails, for what a real vLLM and cluster would make of it.
// dcgm-exporter is not scraped (the sandbox runs none here): its chart's default
// ServiceMonitor renames the GPU's namespace label to exported_namespace, so a
// DCGM_FI_DEV_GPU_UTIL{namespace=...} selector finds nothing there either.
func oldExamples(t *testing.T, prescale, promURL, dir string) {
	vllm := examples[0]
	tests := []struct {
		file string
		from string // the target's name in the file
		want []string
	}{
		{"slo-policy.yaml", "model", []string{
			"policy prescale, metric gpu: no-series: ",
			"policy prescale, forecast load: no-series: ",
			"policy prescale, objective: histogram: ",
			"3 problems in 4 queries of 1 policy checked against ",
		}},
		{"policy.yaml", "llama-70b", []string{
			"policy vllm, metric gpu: no-series: ",
			"1 problem in 3 queries of 1 policy checked against ",
		}},
		{"zero-policy.yaml", "model", []string{
			"policy prescale-zero, metric gpu: no-series: ",
			"policy prescale-zero, forecast load: no-series: ",
			"policy prescale-zero, objective: histogram: ",
			"policy prescale-zero, activation: no-series: ",
			"4 problems in 5 queries of 1 policy checked against ",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata/old", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			e := vllm
			e.fromNamespace, e.fromName = "inference", tc.from
			p := filepath.Join(dir, "old-"+tc.file)
			if err := os.WriteFile(p, []byte(e.substitute(string(b))), 0o644); err != nil {
				t.Fatal(err)
			}
			code, stdout, stderr := runPrescale(prescale, "validate", "-f", p, "--prometheus", promURL)
			if code != 1 || !strings.HasPrefix(stdout, "policy file ok: ") {
				t.Fatalf("exit %d, stdout %q; want 1 and the file ok; stderr:\n%s", code, stdout, stderr)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), len(tc.want), stderr)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(lines[i], w) {
					t.Errorf("line %d: %q, want it to start with %q", i+1, lines[i], w)
				}
			}
			t.Logf("%s:\n%s", tc.file, stderr)
		})
	}
}

// decision is what the test reads of the decision record.
type decision struct {
	Desired  int32 `json:"desired"`
	Forecast *struct {
		Proposal   int32   `json:"proposal"`
		PerReplica float64 `json:"perReplica"`
	} `json:"forecast"`
	Objective *struct {
		Latency *float64 `json:"latencySeconds"`
		Minutes int64    `json:"minutes"`
	} `json:"objective"`
}

// record reads the example's target's decision record.
func record(ctx context.Context, kube kubernetes.Interface, e example) (decision, string, error) {
	d, err := kube.AppsV1().Deployments(e.namespace).Get(ctx, e.name, metav1.GetOptions{})
	if err != nil {
		return decision{}, "", err
	}
	raw, ok := d.Annotations["prescale.io/decision"]
	if !ok {
		return decision{}, "", errors.New("no decision record yet")
	}
	var r decision
	if err := json.Unmarshal([]byte(raw), &r); err != nil {
		return decision{}, raw, fmt.Errorf("decode the decision record %q: %w", raw, err)
	}
	return r, raw, nil
}

// runPrescale runs the prescale binary with args and returns its exit code and output.
func runPrescale(bin string, args ...string) (int, string, string) {
	cmd := exec.Command(bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		return -1, stdout.String(), err.Error()
	}
	return 0, stdout.String(), stderr.String()
}

// startRun starts prescale run with config, logging to dir/prescale.log, and returns what
// stops it; the log's tail is printed if the test fails.
func startRun(t *testing.T, bin, dir, config, kubeconfig string) func() {
	t.Helper()
	path := filepath.Join(dir, "prescale.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "prescale.log")
	log, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	addr := testutil.FreeAddr(t)
	cmd := exec.Command(bin, "run", "-f", path, "--kubeconfig", kubeconfig, "--identity", "examples", "--listen-address", addr, "-v=2")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start prescale run: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
			log.Close()
			if t.Failed() {
				b, _ := os.ReadFile(logPath)
				t.Logf("prescale's log (last 4000 bytes):\n%s", testutil.Tail(string(b), 4000))
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
