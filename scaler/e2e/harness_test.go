//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/internal/testutil/promtest"
	"github.com/prescale/prescale/sandbox"
)

// world is the sandbox shared by the tests of this package, and the prescale binary.
var world struct {
	once     sync.Once
	err      error
	st       *sandbox.State
	kube     kubernetes.Interface
	bin      string // folder of the pinned tools
	prescale string // the prescale binary built for the tests
	tmp      string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if world.st != nil {
		if err := sandbox.Down(context.Background(), world.st.Dir); err != nil {
			fmt.Fprintf(os.Stderr, "sandbox down: %v\n", err)
			code = 1
		}
	}
	if world.tmp != "" {
		_ = os.RemoveAll(world.tmp)
	}
	os.Exit(code)
}

// sharedSandbox starts the sandbox (2 nodes x 4 GPUs) and builds prescale, once.
func sharedSandbox(t testing.TB) (*sandbox.State, kubernetes.Interface) {
	t.Helper()
	world.once.Do(func() {
		world.bin = os.Getenv("PRESCALE_SANDBOX_BIN")
		if world.bin == "" {
			world.err = fmt.Errorf("PRESCALE_SANDBOX_BIN is not set: run these tests with make test-e2e")
			return
		}
		if world.tmp, world.err = os.MkdirTemp("", "prescale-e2e-"); world.err != nil {
			return
		}
		world.prescale = filepath.Join(world.tmp, "prescale")
		out, err := exec.Command("go", "build", "-o", world.prescale, "../../cmd/prescale").CombinedOutput()
		if err != nil {
			world.err = fmt.Errorf("build prescale: %v\n%s", err, out)
			return
		}
		ctx := klog.NewContext(context.Background(), klog.Background())
		// 2 nodes x 4 GPUs; the soak needs room for its pods (110 a node): E2E_NODES.
		nodes := 2
		if v := os.Getenv("E2E_NODES"); v != "" {
			fmt.Sscan(v, &nodes)
		}
		// 4 GPUs a node; the soak's pool needs more (one GPU a pod): E2E_GPUS_PER_NODE.
		gpus := 4
		if v := os.Getenv("E2E_GPUS_PER_NODE"); v != "" {
			fmt.Sscan(v, &gpus)
		}
		// The controller-manager's API rate limit (the sandbox's default, 100): E2E_KCM_QPS, e.g.
		// Kubernetes' default of 20 for the soak.
		kcmQPS := 0
		if v := os.Getenv("E2E_KCM_QPS"); v != "" {
			fmt.Sscan(v, &kcmQPS)
		}
		world.st, world.err = sandbox.Up(ctx, sandbox.Options{BinDir: world.bin, StateDir: filepath.Join(world.tmp, "sandbox"),
			Nodes: nodes, GPUsPerNode: gpus, HPASyncPeriod: 2 * time.Second, ControllerManagerQPS: kcmQPS})
		if world.err != nil {
			return
		}
		world.kube, world.err = world.st.Client()
	})
	if world.err != nil {
		t.Fatalf("sandbox: %v", world.err)
	}
	return world.st, world.kube
}

// workload creates a namespace with a GPU Deployment and deletes the namespace when the test
// ends (freeing its GPUs for the next test).
func workload(t testing.TB, name string, replicas int32, gpus int, startup time.Duration) sandbox.Workload {
	t.Helper()
	_, kube := sharedSandbox(t)
	ns := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	if len(ns) > 50 {
		ns = ns[:50]
	}
	w := sandbox.Workload{Namespace: ns, Name: name, Replicas: replicas, GPUs: gpus, StartupDelay: startup}
	ctx := context.Background()
	if err := w.Apply(ctx, kube); err != nil {
		t.Fatal(err)
	}
	deleteAtCleanup(t, kube, ns)
	return w
}

// deleteAtCleanup deletes namespace ns when the test ends, and waits up to a minute for its
// pods to go, so that the next test has every GPU.
func deleteAtCleanup(t testing.TB, kube kubernetes.Interface, ns string) {
	t.Cleanup(func() {
		_ = kube.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		_ = wait.PollUntilContextTimeout(context.Background(), 500*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
			pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			return err == nil && len(pods.Items) == 0, nil
		})
	})
}

// freeHostPort returns the sandbox host's address (the apiserver refuses loopback
// endpoints, so a server it calls listens there) and a port on it that was free a moment
// ago.
func freeHostPort(t testing.TB) (net.IP, int) {
	t.Helper()
	ip, err := sandbox.HostIP()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ip, ln.Addr().(*net.TCPAddr).Port
}

// exporter serves per-pod series for the Ready pods of a Deployment, with values the test
// sets: what a vLLM server's /metrics would say.
type exporter struct {
	kube      kubernetes.Interface
	w         sandbox.Workload
	mu        sync.Mutex
	queue     float64 // vllm:num_requests_waiting per Ready pod; NaN exports nothing
	total     float64 // when not NaN: a load split evenly over the Ready pods (queue ignored)
	load      float64 // inference_load_rps{namespace}, a workload-wide series; NaN exports nothing
	latency   float64 // inference_latency_seconds{namespace}, a workload-wide series; NaN exports nothing
	addr      string
	srv       *http.Server
	queueDesc *prometheus.Desc
	loadDesc  *prometheus.Desc
	latDesc   *prometheus.Desc
}

func newExporter(t testing.TB, w sandbox.Workload) *exporter {
	t.Helper()
	_, kube := sharedSandbox(t)
	e := &exporter{kube: kube, w: w, queue: math.NaN(), total: math.NaN(), load: math.NaN(), latency: math.NaN(),
		queueDesc: prometheus.NewDesc("vllm:num_requests_waiting", "Requests waiting.", []string{"namespace", "pod"}, nil),
		loadDesc:  prometheus.NewDesc("inference_load_rps", "Requests per second arriving at the workload.", []string{"namespace"}, nil),
		latDesc:   prometheus.NewDesc("inference_latency_seconds", "Queueing delay of the workload's requests.", []string{"namespace"}, nil)}
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.addr = ln.Addr().String()
	e.srv = &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = e.srv.Serve(ln) }()
	t.Cleanup(func() { _ = e.srv.Close() })
	return e
}

func (e *exporter) setQueue(v float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.queue = v
}

// setTotal splits v evenly over the Ready pods: the summed series is v whatever the replicas.
func (e *exporter) setTotal(v float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.total = v
}

// setLoad sets the workload's load series, the forecast's input.
func (e *exporter) setLoad(v float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.load = v
}

// setLatency sets the workload's latency series, an objective's input.
func (e *exporter) setLatency(v float64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.latency = v
}

func (e *exporter) Describe(ch chan<- *prometheus.Desc) {
	ch <- e.queueDesc
	ch <- e.loadDesc
	ch <- e.latDesc
}

func (e *exporter) Collect(ch chan<- prometheus.Metric) {
	e.mu.Lock()
	q, total, load, latency := e.queue, e.total, e.load, e.latency
	e.mu.Unlock()
	if !math.IsNaN(load) {
		ch <- prometheus.MustNewConstMetric(e.loadDesc, prometheus.GaugeValue, load, e.w.Namespace)
	}
	if !math.IsNaN(latency) {
		ch <- prometheus.MustNewConstMetric(e.latDesc, prometheus.GaugeValue, latency, e.w.Namespace)
	}
	if math.IsNaN(q) && math.IsNaN(total) {
		return
	}
	pods, err := e.kube.CoreV1().Pods(e.w.Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=" + e.w.Name})
	if err != nil {
		return
	}
	var readyPods []corev1.Pod
	for _, p := range pods.Items {
		if p.DeletionTimestamp == nil && ready(&p) {
			readyPods = append(readyPods, p)
		}
	}
	if !math.IsNaN(total) && len(readyPods) > 0 {
		q = total / float64(len(readyPods))
	}
	for _, p := range readyPods {
		ch <- prometheus.MustNewConstMetric(e.queueDesc, prometheus.GaugeValue, q, p.Namespace, p.Name)
	}
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// startPrometheus starts a Prometheus scraping target (job vllm) every second.
func startPrometheus(t testing.TB, target string) *promtest.Server {
	return startPrometheusEvery(t, target, time.Second)
}

// startPrometheusEvery starts a Prometheus scraping targets (job vllm) every interval.
func startPrometheusEvery(t testing.TB, target string, interval time.Duration, more ...string) *promtest.Server {
	t.Helper()
	return startPrometheusWith(t, promtest.Options{Config: promtest.ScrapeConfig("vllm", interval, append([]string{target}, more...)...)})
}

// startPrometheusWith starts a Prometheus as o says, from the sandbox's tools
// (PRESCALE_SANDBOX_BIN).
func startPrometheusWith(t testing.TB, o promtest.Options) *promtest.Server {
	t.Helper()
	sharedSandbox(t)
	o.Bin = world.bin
	return promtest.Start(t, o)
}

// waitValue polls an instant query (every 50 ms) until it returns v, and returns when.
func waitValue(t testing.TB, p *promtest.Server, query string, v float64) time.Time {
	t.Helper()
	client, err := promapi.NewClient(promapi.Config{Address: p.URL()})
	if err != nil {
		t.Fatal(err)
	}
	api := promv1.NewAPI(client)
	deadline := time.Now().Add(30 * time.Second)
	var last string
	for time.Now().Before(deadline) {
		res, _, _, err := api.Query(context.Background(), query, time.Now())
		if vec, ok := res.(model.Vector); err == nil && ok && len(vec) == 1 && float64(vec[0].Value) == v {
			return time.Now()
		}
		last = fmt.Sprintf("%v (error %v)", res, err)
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("Prometheus did not answer %s with %v within 30s; last answer %s", query, v, last)
	return time.Time{}
}

// instance is one `prescale run` process.
type instance struct {
	t        testing.TB
	identity string
	addr     string
	config   string
	cmd      *exec.Cmd
	done     chan struct{}
	logPath  string
}

// startPrescale runs prescale with the settings and policies in config (YAML), adding the
// listen address and leader election settings.
func startPrescale(t testing.TB, identity, config string, args ...string) *instance {
	t.Helper()
	st, _ := sharedSandbox(t)
	dir := t.TempDir()
	logDir := dir
	if d := os.Getenv("E2E_LOG_DIR"); d != "" { // keep the logs after the test
		logDir = d
	}
	in := &instance{t: t, identity: identity, addr: testutil.FreeAddr(t), config: filepath.Join(dir, "prescale.yaml"), logPath: filepath.Join(logDir, identity+".log")}
	in.write(config)
	log, err := os.Create(in.logPath)
	if err != nil {
		t.Fatal(err)
	}
	in.cmd = exec.Command(world.prescale, append([]string{"run", "-f", in.config, "--kubeconfig", st.Kubeconfig, "--identity", identity,
		"--listen-address", in.addr, "-v=2"}, args...)...)
	in.cmd.Stdout, in.cmd.Stderr = log, log
	if err := in.cmd.Start(); err != nil {
		t.Fatalf("start prescale: %v", err)
	}
	in.done = make(chan struct{})
	go func() { _ = in.cmd.Wait(); close(in.done) }()
	t.Cleanup(func() {
		in.terminate()
		if t.Failed() {
			b, _ := os.ReadFile(in.logPath)
			t.Logf("%s log (last 3000 bytes):\n%s", identity, testutil.Tail(string(b), 3000))
		}
	})
	waitHTTP(t, "http://"+in.addr+"/readyz", 60*time.Second)
	return in
}

func (in *instance) write(config string) {
	in.t.Helper()
	tmp := in.config + ".tmp"
	if err := os.WriteFile(tmp, []byte(config), 0o644); err != nil {
		in.t.Fatal(err)
	}
	if err := os.Rename(tmp, in.config); err != nil {
		in.t.Fatal(err)
	}
}

// terminate sends SIGTERM (the lease is released) and waits.
func (in *instance) terminate() {
	select {
	case <-in.done:
		return
	default:
	}
	_ = in.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-in.done:
	case <-time.After(15 * time.Second):
		in.t.Errorf("%s did not stop within 15s of SIGTERM", in.identity)
		_ = in.cmd.Process.Kill()
		<-in.done
	}
}

// kill sends SIGKILL: no lease release, no goodbye.
func (in *instance) kill() {
	_ = in.cmd.Process.Kill()
	<-in.done
}

// families returns the instance's /metrics, nil when it does not answer.
func (in *instance) families() map[string]*dto.MetricFamily {
	resp, err := http.Get("http://" + in.addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil
	}
	return families
}

// histogram returns a histogram series of the instance's /metrics, nil if absent.
func (in *instance) histogram(name string, labels map[string]string) *dto.Histogram {
	f, ok := in.families()[name]
	if !ok {
		return nil
	}
	for _, m := range f.GetMetric() {
		if matches(m, labels) && m.Histogram != nil {
			return m.Histogram
		}
	}
	return nil
}

// metric returns the value of a series of the instance's /metrics, and false if absent.
func (in *instance) metric(name string, labels map[string]string) (float64, bool) {
	return scrape(in.families()).value(name, labels)
}

// scrape is one read of an instance's /metrics (families), for a test that reads several
// series of one instant: each read of /metrics costs the instance a gathering of every
// series.
type scrape map[string]*dto.MetricFamily

// value returns the value of a series, and false if absent.
func (families scrape) value(name string, labels map[string]string) (float64, bool) {
	// A histogram's _count and _sum are fields of its family.
	base, part := name, ""
	if _, ok := families[name]; !ok {
		for _, suffix := range []string{"_count", "_sum"} {
			if strings.HasSuffix(name, suffix) {
				base, part = strings.TrimSuffix(name, suffix), suffix
			}
		}
	}
	f, ok := families[base]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		if matches(m, labels) {
			switch {
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Histogram != nil && part == "_count":
				return float64(m.Histogram.GetSampleCount()), true
			case m.Histogram != nil && part == "_sum":
				return m.Histogram.GetSampleSum(), true
			}
		}
	}
	return 0, false
}

func matches(m *dto.Metric, labels map[string]string) bool {
	n := 0
	for _, lp := range m.GetLabel() {
		if v, ok := labels[lp.GetName()]; ok {
			if v != lp.GetValue() {
				return false
			}
			n++
		}
	}
	return n == len(labels)
}

// logContains reports whether the instance's log has a line containing s.
func (in *instance) logContains(s string) bool { return in.logCount(s) > 0 }

// logCount returns how many lines of the instance's log contain s.
func (in *instance) logCount(s string) int {
	f, err := os.Open(in.logPath)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	n := 0
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			n++
		}
	}
	return n
}

func waitHTTP(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		resp, err := http.Get(url)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		t.Fatalf("%s not ready within %s", url, timeout)
	}
}

// eventually polls cond until it holds, and fails the test after timeout. What prescale
// writes besides the scale (events, the decision annotation, its /metrics, its log) lands
// after the scale, in the same tick or later: a test that has seen the scale waits for them
// (testutil.Eventually, with a check that says what it saw last).
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, timeout, what, func() error {
		if !cond() {
			return errors.New("the condition does not hold yet")
		}
		return nil
	})
}

// metricIs is a check for testutil.Eventually: the instance's series is present and want holds of it.
func metricIs(in *instance, name string, labels map[string]string, want string, ok func(float64) bool) func() error {
	return func() error {
		v, present := in.metric(name, labels)
		if !present {
			return fmt.Errorf("%s%v absent, want %s", name, labels, want)
		}
		if !ok(v) {
			return fmt.Errorf("%s%v = %v, want %s", name, labels, v, want)
		}
		return nil
	}
}

// logHas is a check for testutil.Eventually: the instance's log has a line containing s.
// logTime returns the time of the first line of the instance's log that contains s (klog's
// header: Lmmdd hh:mm:ss.uuuuuu, local time, this year); it fails the test without one.
func (in *instance) logTime(t testing.TB, s string) time.Time {
	t.Helper()
	f, err := os.Open(in.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.Contains(line, s) || len(line) < 21 {
			continue
		}
		at, err := time.ParseInLocation("0102 15:04:05.000000", line[1:21], time.Local)
		if err != nil {
			t.Fatalf("the time of log line %q: %v", line, err)
		}
		return at.AddDate(time.Now().Year(), 0, 0)
	}
	t.Fatalf("no line of %s contains %q", in.logPath, s)
	return time.Time{}
}

func logHas(in *instance, s string) func() error {
	return func() error {
		if !in.logContains(s) {
			return fmt.Errorf("no line of %s contains %q", in.logPath, s)
		}
		return nil
	}
}

// specReplicas returns the Deployment's spec.replicas.
func specReplicas(t testing.TB, w sandbox.Workload) int32 {
	t.Helper()
	_, kube := sharedSandbox(t)
	d, err := kube.AppsV1().Deployments(w.Namespace).Get(context.Background(), w.Name, metav1.GetOptions{})
	if err != nil {
		return -1
	}
	return *d.Spec.Replicas
}

func deployment(t testing.TB, w sandbox.Workload) *appsv1.Deployment {
	t.Helper()
	_, kube := sharedSandbox(t)
	d, err := kube.AppsV1().Deployments(w.Namespace).Get(context.Background(), w.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// events returns the messages of prescale's events with reason (any reason if empty) in the
// workload's namespace (not the HPA's or the deployment controller's).
func events(t testing.TB, w sandbox.Workload, reason string) []string {
	t.Helper()
	_, kube := sharedSandbox(t)
	list, err := kube.CoreV1().Events(w.Namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if (reason == "" || e.Reason == reason) && e.Source.Component == "prescale" {
			out = append(out, e.Message)
		}
	}
	return out
}

// config renders a prescale configuration for one workload with a queue metric (per-pod
// AverageValue target 5).
func config(promURL string, w sandbox.Workload, extra string) string {
	return fmt.Sprintf(`prometheus: {url: %s, timeout: 2s}
interval: 1s
staleness: 5s
leaderElection: {namespace: %s, name: prescale, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 200ms}
%s
policies:
  - name: %s
    target: {apiVersion: apps/v1, kind: Deployment, namespace: %s, name: %s}
    minReplicas: 1
    maxReplicas: 12
    metrics:
      - name: queue
        query: sum by (pod) (vllm:num_requests_waiting{namespace=%q})
        target: {type: AverageValue, averageValue: 5}
    behavior:
      scaleDown: {stabilizationWindowSeconds: 10}
`, promURL, w.Namespace, extra, w.Name, w.Namespace, w.Name, w.Namespace)
}

// externalHPA is a real HPA on the workload's queue, read through prescale's external metrics
// API (<policy>-queue, AverageValue 5), with a 10 s scale-down window like the policies here.
func externalHPA(w sandbox.Workload, maxReplicas int32) *autoscalingv2.HorizontalPodAutoscaler {
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: w.Namespace, Name: w.Name},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: w.Name},
			MinReplicas:    ptr.To[int32](1), MaxReplicas: maxReplicas,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
				Metric: autoscalingv2.MetricIdentifier{Name: w.Name + "-queue"},
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: resource.NewQuantity(5, resource.DecimalSI)},
			}}},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](10)}},
		},
	}
}
