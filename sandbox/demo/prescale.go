package demo

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/prescale/prescale/sandbox"
)

// prescaleRun is `prescale run` started by the demo: its configuration, address and log.
type prescaleRun struct {
	cmd     *exec.Cmd
	done    chan struct{}
	err     error
	addr    string // its /metrics
	config  string
	logPath string
}

// external is where prescale serves the external metrics API: a host address (the
// apiserver refuses loopback endpoints) with a certificate from the sandbox's CA.
type external struct {
	ip        net.IP
	port      int
	cert, key string
}

const externalService = "prescale-external-metrics"

// newExternal picks the external metrics API's address and issues its certificate.
func newExternal(st *sandbox.State, dir string) (external, error) {
	ip, err := sandbox.HostIP()
	if err != nil {
		return external{}, err
	}
	port, err := freePort(ip.String())
	if err != nil {
		return external{}, err
	}
	cert, key, err := st.IssueServingCert(dir, externalService, ip.String(), externalService+"."+namespace+".svc")
	if err != nil {
		return external{}, err
	}
	return external{ip: ip, port: port, cert: cert, key: key}, nil
}

// config is prescale's configuration: the settings of the demo, then its policies.
func config(promURL string, realTick time.Duration, ext external, policies string) string {
	return fmt.Sprintf(`# Written by the demo (make demo): prescale run -f this file.
prometheus: {url: %s, timeout: 2s}
interval: %s
staleness: 10s
leaderElection: {namespace: %s, name: prescale-demo, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 500ms}
externalMetrics:
  enabled: true
  listenAddress: %q
  tls: {certFile: %q, keyFile: %q}
  service: {namespace: %s, name: %s}
%s`, promURL, realTick, namespace, net.JoinHostPort(ext.ip.String(), strconv.Itoa(ext.port)), ext.cert, ext.key,
		namespace, externalService, policies)
}

// startPrescale runs `prescale run` on the sandbox with the demo's configuration, logging
// to dir/prescale.log, and waits until it serves /metrics.
func startPrescale(ctx context.Context, bin, dir string, st *sandbox.State, realTick time.Duration, ext external, policies string) (*prescaleRun, error) {
	addr, err := freePort("127.0.0.1")
	if err != nil {
		return nil, err
	}
	r := &prescaleRun{
		addr: "127.0.0.1:" + strconv.Itoa(addr), config: filepath.Join(dir, "prescale.yaml"),
		logPath: filepath.Join(dir, "prescale.log"), done: make(chan struct{}),
	}
	if err := os.WriteFile(r.config, []byte(config(st.PrometheusURL, realTick, ext, policies)), 0o644); err != nil {
		return nil, fmt.Errorf("write prescale's configuration: %w", err)
	}
	log, err := os.Create(r.logPath)
	if err != nil {
		return nil, fmt.Errorf("create prescale's log: %w", err)
	}
	defer log.Close()
	r.cmd = exec.Command(bin, "run", "-f", r.config, "--kubeconfig", st.Kubeconfig, "--identity", "prescale-demo",
		"--listen-address", r.addr, "-v=2")
	r.cmd.Stdout, r.cmd.Stderr = log, log
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s run (build it with make build): %w", bin, err)
	}
	go func() {
		r.err = r.cmd.Wait()
		close(r.done)
	}()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := r.metrics(ctx); err == nil {
			return r, nil
		} else if time.Now().After(deadline) || ctx.Err() != nil {
			r.stop()
			return nil, fmt.Errorf("wait for prescale to serve /metrics on %s: %w; last lines of %s:\n%s", r.addr, err, r.logPath, tail(r.logPath, 10))
		}
		select {
		case <-r.done:
			return nil, fmt.Errorf("prescale exited (%v); last lines of %s:\n%s", r.err, r.logPath, tail(r.logPath, 10))
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// stop stops prescale (SIGTERM, then SIGKILL after 10 s) and waits for it.
func (r *prescaleRun) stop() {
	select {
	case <-r.done:
		return
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		_ = r.cmd.Process.Kill()
		<-r.done
	}
}

// metrics reads prescale's /metrics.
func (r *prescaleRun) metrics(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.addr+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// forecastReplicas is prescale's forecast replica proposal for policy, false while it has
// none (learning, gated, missing).
func (r *prescaleRun) forecastReplicas(ctx context.Context, policy string) (int, bool) {
	return r.gauge(ctx, "prescale_forecast_replicas", policy)
}

// gauge reads prescale's gauge name of policy as a whole number, false when it has none.
func (r *prescaleRun) gauge(ctx context.Context, name, policy string) (int, bool) {
	fams, err := r.metrics(ctx)
	if err != nil {
		return 0, false
	}
	f, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "policy" && l.GetValue() == policy && m.GetGauge() != nil {
				v := m.GetGauge().GetValue()
				if v >= 0 && v < 1e6 {
					return int(v), true
				}
			}
		}
	}
	return 0, false
}

// DefaultCompression is the demo's time scale unless Options say otherwise: model seconds
// per real second.
const DefaultCompression = 10

// HPA is the real HPA of the demo for the Deployment name in the demo's namespace: the HPA
// of the vLLM example's metrics and behavior on the demo's time scale (policy.go; the policy
// of the HPA's service, in dry-run), reading them through prescale's external metrics API
// as <policy>-<metric>. prescale import's end-to-end test imports it.
func HPA(name string, compression float64) *autoscalingv2.HorizontalPodAutoscaler {
	external := func(metric string, target string) autoscalingv2.MetricSpec {
		q := resource.MustParse(target)
		return autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType, External: &autoscalingv2.ExternalMetricSource{
			Metric: autoscalingv2.MetricIdentifier{Name: name + "-" + metric},
			Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &q},
		}}
	}
	period := int32(scaled(15*time.Second, compression).Seconds())
	window := int32(scaled(300*time.Second, compression).Seconds())
	return &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: name},
			MinReplicas:    ptr.To[int32](1), MaxReplicas: 32,
			Metrics: []autoscalingv2.MetricSpec{external("in-flight", "48"), external("kv-cache", "800m")},
			Behavior: &autoscalingv2.HorizontalPodAutoscalerBehavior{
				ScaleUp: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: ptr.To[int32](0), SelectPolicy: ptr.To(autoscalingv2.MaxChangePolicySelect),
					Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: period},
						{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: period}},
				},
				ScaleDown: &autoscalingv2.HPAScalingRules{
					StabilizationWindowSeconds: ptr.To(window),
					Policies:                   []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: period}},
				},
			},
		},
	}
}

// applyHPA creates (or replaces) the HPA.
func applyHPA(ctx context.Context, c kubernetes.Interface, h *autoscalingv2.HorizontalPodAutoscaler) error {
	hpas := c.AutoscalingV2().HorizontalPodAutoscalers(h.Namespace)
	if err := hpas.Delete(ctx, h.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("replace HPA %s/%s: %w", h.Namespace, h.Name, err)
	}
	if _, err := hpas.Create(ctx, h, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create HPA %s/%s: %w", h.Namespace, h.Name, err)
	}
	return nil
}

func freePort(host string) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if err := sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		lines = append(lines, err.Error())
	}
	out := ""
	for _, l := range lines {
		out += "   " + l + "\n"
	}
	return out
}
