package sandbox

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
)

const (
	// StartupDelayAnnotation on a pod (set it in a Deployment's pod template) delays
	// the pod's Ready condition by a Go duration ("180s") after it is bound to a node,
	// like the model load of a GPU inference server. Absent, pods are Ready at once.
	StartupDelayAnnotation = "sandbox.prescale.dev/startup-delay"

	// NodeReadyDelayAnnotation on a node delays its Ready condition to this many whole
	// seconds after the node's creation (kwok's node-initialize stage). Karpenter's nodes
	// carry it from the NodePool's template; the sandbox's own nodes do not and are Ready
	// at once. Seconds, not a Go duration: kwok's jq adds it to the creation time, so that
	// the delay holds however often the node is updated while it waits.
	NodeReadyDelayAnnotation = "sandbox.prescale.dev/node-ready-delay-seconds"

	// GPUResource is the extended resource the simulated nodes offer.
	GPUResource corev1.ResourceName = "nvidia.com/gpu"

	// NodeLabel marks the simulated nodes; kwok manages the nodes that carry it.
	NodeLabel = "sandbox.prescale.dev/kwok"

	stateFile = "state.json"
)

// Options configure a sandbox. Zero values take the defaults of Defaults.
type Options struct {
	BinDir         string        // folder with the tools built by make tools
	StateDir       string        // state folder: certificates, data, logs, kubeconfig
	Nodes          int           // simulated GPU nodes outside any autoscaler; default 4, or 0 with Karpenter
	GPUsPerNode    int           // nvidia.com/gpu allocatable per node
	GPUProduct     string        // nvidia.com/gpu.product label of the nodes
	HPASyncPeriod  time.Duration // kube-controller-manager --horizontal-pod-autoscaler-sync-period
	ScrapeInterval time.Duration // Prometheus scrape interval of the simulated service
	SimPort        int           // port Prometheus scrapes the simulated service on; 0 picks a free one
	Timeout        time.Duration // per component readiness timeout

	// ControllerManagerQPS is kube-controller-manager's --kube-api-qps (its burst twice that);
	// default 100, where Kubernetes' own default is 20.
	ControllerManagerQPS int

	// Karpenter, when set, runs Karpenter's kwok provider with a NodePool of GPU nodes
	// that it grows for Pending pods (karpenter.go). Nil: no node autoscaler.
	Karpenter *KarpenterOptions
}

// Defaults fills the zero fields of o.
func (o Options) Defaults() Options {
	if o.BinDir == "" {
		o.BinDir = "bin"
	}
	if o.StateDir == "" {
		o.StateDir = ".state/sandbox"
	}
	if o.Nodes == 0 && o.Karpenter == nil {
		o.Nodes = 4
	}
	if o.GPUsPerNode == 0 {
		o.GPUsPerNode = 8
	}
	if o.GPUProduct == "" {
		o.GPUProduct = "NVIDIA-H100-80GB-HBM3"
	}
	if o.HPASyncPeriod == 0 {
		o.HPASyncPeriod = 15 * time.Second
	}
	if o.ControllerManagerQPS == 0 {
		o.ControllerManagerQPS = 100
	}
	if o.ScrapeInterval == 0 {
		o.ScrapeInterval = 5 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 120 * time.Second
	}
	return o
}

// State describes a running sandbox; it is saved as state.json in the state folder.
type State struct {
	Dir           string    `json:"dir"`
	Kubeconfig    string    `json:"kubeconfig"`
	APIServer     string    `json:"apiServer"`
	Etcd          string    `json:"etcd"`
	PrometheusURL string    `json:"prometheusURL"`
	SimAddr       string    `json:"simAddr"` // where Prometheus expects the simulated service's /metrics
	Nodes         int       `json:"nodes"`
	GPUsPerNode   int       `json:"gpusPerNode"`
	Processes     []Process `json:"processes"`
	Started       time.Time `json:"started"`
	// Karpenter is set when the sandbox runs Karpenter (Options.Karpenter).
	Karpenter *KarpenterState `json:"karpenter,omitempty"`
}

// ScrapeDir is where Prometheus finds more targets to scrape (job "scrape-dir"): each
// *.json file in it is a Prometheus file_sd list, [{"targets": ["host:port"], "labels":
// {...}}], read again whenever it changes.
func (s *State) ScrapeDir() string { return filepath.Join(s.Dir, "scrape") }

// Env returns the sandbox's environment as shell export lines.
func (s *State) Env() string {
	return fmt.Sprintf("export KUBECONFIG=%s\nexport PRESCALE_PROMETHEUS_URL=%s\nexport PRESCALE_SIM_ADDR=%s\n",
		s.Kubeconfig, s.PrometheusURL, s.SimAddr)
}

// RESTConfig returns a client configuration for the sandbox's admin user.
func (s *State) RESTConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", s.Kubeconfig, err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	return cfg, nil
}

// Client returns a client of the sandbox's API server, as RESTConfig configures it.
func (s *State) Client() (*kubernetes.Clientset, error) {
	cfg, err := s.RESTConfig()
	if err != nil {
		return nil, err
	}
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("client of the sandbox's API server: %w", err)
	}
	return c, nil
}

// Load reads the state of the sandbox in dir. It returns an error wrapping
// fs.ErrNotExist if no sandbox was started there.
func Load(dir string) (*State, error) {
	data, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, fmt.Errorf("read sandbox state in %s: %w", dir, err)
	}
	var s State
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("decode sandbox state in %s: %w", dir, err)
	}
	return &s, nil
}

func (s *State) save() error {
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode sandbox state: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, stateFile), data, 0o644); err != nil {
		return fmt.Errorf("write sandbox state: %w", err)
	}
	return nil
}

// Healthy reports whether every process of the sandbox runs and the API answers.
func (s *State) Healthy(ctx context.Context) error {
	for _, p := range s.Processes {
		if !alive(p) {
			return fmt.Errorf("%s (pid %d) is not running", p.Name, p.PID)
		}
	}
	cfg, err := s.RESTConfig()
	if err != nil {
		return err
	}
	return apiReady(ctx, cfg)
}

// Up starts a sandbox in o.StateDir and returns its state. If a healthy sandbox
// already runs there, Up returns it unchanged; the remains of a broken one are
// stopped and replaced. On error, everything Up started is stopped again.
func Up(ctx context.Context, o Options) (*State, error) {
	o = o.Defaults()
	if o.Karpenter != nil {
		if err := o.Karpenter.validate(); err != nil {
			return nil, fmt.Errorf("start sandbox: %w", err)
		}
	}
	logger := klog.FromContext(ctx)
	dir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return nil, fmt.Errorf("resolve state folder %s: %w", o.StateDir, err)
	}
	bin, err := filepath.Abs(o.BinDir)
	if err != nil {
		return nil, fmt.Errorf("resolve bin folder %s: %w", o.BinDir, err)
	}
	if old, err := Load(dir); err == nil {
		if herr := old.Healthy(ctx); herr == nil {
			logger.Info("Sandbox is already up", "dir", dir)
			return old, nil
		} else {
			logger.Info("Replacing a broken sandbox", "dir", dir, "reason", herr.Error())
		}
		if err := Down(ctx, dir); err != nil {
			return nil, err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := clean(dir, true); err != nil {
		return nil, err
	}
	var s *State
	for attempt := 1; ; attempt++ {
		s = &State{Dir: dir, Nodes: o.Nodes, GPUsPerNode: o.GPUsPerNode, Started: time.Now()}
		u := &upper{o: o, s: s, bin: bin, logs: filepath.Join(dir, "logs")}
		err := u.run(ctx)
		if err == nil {
			break
		}
		// Stop what started, but keep the logs for the reader of the error.
		for i := len(u.children) - 1; i >= 0; i-- {
			u.children[i].stop(5 * time.Second)
		}
		_ = os.Remove(filepath.Join(dir, stateFile))
		// A free port picked for a component can be taken by another process before
		// the component binds it: start again with new ports.
		if attempt < 3 && strings.Contains(err.Error(), "address already in use") && ctx.Err() == nil {
			logger.Info("Retrying: a port was taken", "attempt", attempt, "err", err)
			if err := clean(dir, false); err != nil {
				return nil, err
			}
			continue
		}
		return nil, fmt.Errorf("start sandbox in %s: %w", dir, err)
	}
	logger.Info("Sandbox is up", "dir", dir, "kubeconfig", s.Kubeconfig, "prometheus", s.PrometheusURL, "took", time.Since(s.Started).Round(time.Millisecond))
	return s, nil
}

// Down stops every process of the sandbox in dir, newest first, and removes its
// state file. It is a no-op if no sandbox runs there.
func Down(ctx context.Context, dir string) error {
	s, err := Load(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for i := len(s.Processes) - 1; i >= 0; i-- {
		if err := stop(s.Processes[i], 10*time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.Remove(filepath.Join(s.Dir, stateFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove sandbox state: %w", err))
		}
	}
	klog.FromContext(ctx).Info("Sandbox is down", "dir", s.Dir)
	return errors.Join(errs...)
}

// auditPolicyYAML records who wrote workloads, their scale and events when, and what an HPA saw and
// decided at each sync: the scale it read (with the response), the status it wrote (with
// the request) and its external metrics reads. Nothing else: reads would swamp the log.
const auditPolicyYAML = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: RequestResponse
    verbs: [get]
    resources:
      - group: apps
        resources: [deployments/scale, statefulsets/scale]
  - level: Request
    verbs: [update, patch]
    resources:
      - group: apps
        resources: [deployments/scale, statefulsets/scale]
      - group: autoscaling
        resources: [horizontalpodautoscalers/status]
  - level: Metadata
    verbs: [create, update, patch, delete]
    resources:
      - group: apps
        resources: [deployments, statefulsets, replicasets]
  - level: Metadata
    verbs: [create, update, patch]
    resources:
      - group: ""
        resources: [events]
      - group: events.k8s.io
        resources: [events]
  - level: Metadata
    resources:
      - group: external.metrics.k8s.io
  - level: None
`

// clean removes what Up writes in the state folder dir (only that: dir may hold
// other files) and creates its sub-folders. Logs are kept unless logs is true.
func clean(dir string, logs bool) error {
	entries := []string{stateFile, "kubeconfig", "pki", "etcd", "prometheus", "prometheus.yml", "kwok.yaml", "kwok-home", "audit-policy.yaml", "backfill.om", karpenterInstanceTypesFile}
	if logs {
		entries = append(entries, "logs")
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e)); err != nil {
			return fmt.Errorf("clean state folder %s: %w", dir, err)
		}
	}
	for _, sub := range []string{"logs", "pki", "etcd", "prometheus"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return fmt.Errorf("create state folder %s: %w", sub, err)
		}
	}
	return nil
}

// upper starts the components of one sandbox in order.
type upper struct {
	o        Options
	s        *State
	bin      string
	logs     string
	children []*child
	pki      pki
}

func (u *upper) start(name string, args ...string) (*child, error) {
	return u.startEnv(name, nil, args...)
}

func (u *upper) startEnv(name string, env []string, args ...string) (*child, error) {
	c, err := startProcess(name, filepath.Join(u.bin, name), args, env, u.logs)
	if err != nil {
		return nil, err
	}
	u.children = append(u.children, c)
	u.s.Processes = append(u.s.Processes, c.Process)
	// Record every start at once, so that Down finds it even if Up is interrupted.
	return c, u.s.save()
}

func (u *upper) run(ctx context.Context) error {
	logger := klog.FromContext(ctx)
	var err error
	if u.pki, err = generatePKI(filepath.Join(u.s.Dir, "pki"), time.Now()); err != nil {
		return err
	}
	ports := map[string]int{}
	for _, n := range []string{"etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok", "prometheus"} {
		if ports[n], err = freePort(); err != nil {
			return err
		}
	}
	simPort := u.o.SimPort
	if simPort == 0 {
		if simPort, err = freePort(); err != nil {
			return err
		}
	}
	u.s.SimAddr = "127.0.0.1:" + strconv.Itoa(simPort)
	u.s.Etcd = fmt.Sprintf("http://127.0.0.1:%d", ports["etcd"])
	u.s.APIServer = fmt.Sprintf("https://127.0.0.1:%d", ports["apiserver"])
	u.s.PrometheusURL = fmt.Sprintf("http://127.0.0.1:%d", ports["prometheus"])
	u.s.Kubeconfig = filepath.Join(u.s.Dir, "kubeconfig")
	if err := writeKubeconfig(u.s.Kubeconfig, u.s.APIServer, u.pki); err != nil {
		return err
	}

	// Prometheus does not depend on the control plane: start it first, check it last.
	prom, err := u.startPrometheus(ports["prometheus"])
	if err != nil {
		return err
	}

	peer := fmt.Sprintf("http://127.0.0.1:%d", ports["etcd-peer"])
	etcd, err := u.start("etcd",
		"--name=sandbox", "--data-dir="+filepath.Join(u.s.Dir, "etcd"),
		"--listen-client-urls="+u.s.Etcd, "--advertise-client-urls="+u.s.Etcd,
		"--listen-peer-urls="+peer, "--initial-advertise-peer-urls="+peer,
		"--initial-cluster=sandbox="+peer, "--unsafe-no-fsync", "--log-level=warn")
	if err != nil {
		return err
	}
	if err := etcd.waitReady(ctx, u.o.Timeout, httpOK(u.s.Etcd+"/health")); err != nil {
		return err
	}
	logger.V(2).Info("Started", "component", "etcd", "url", u.s.Etcd)

	// Every write is audited (logs/audit.log), so that tests can tell who wrote what when.
	auditPolicy := filepath.Join(u.s.Dir, "audit-policy.yaml")
	if err := os.WriteFile(auditPolicy, []byte(auditPolicyYAML), 0o644); err != nil {
		return fmt.Errorf("write audit policy: %w", err)
	}
	apiserver, err := u.start("kube-apiserver",
		"--audit-policy-file="+auditPolicy,
		"--audit-log-path="+filepath.Join(u.logs, "audit.log"),
		"--audit-log-format=json",
		"--etcd-servers="+u.s.Etcd,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port="+strconv.Itoa(ports["apiserver"]),
		"--cert-dir="+filepath.Join(u.s.Dir, "pki"),
		"--tls-cert-file="+u.pki.ServingCert, "--tls-private-key-file="+u.pki.ServingKey,
		"--client-ca-file="+u.pki.CACert,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+u.pki.SAPub,
		"--service-account-signing-key-file="+u.pki.SAKey,
		"--service-cluster-ip-range=10.96.0.0/16",
		"--endpoint-reconciler-type=none", // a loopback advertise address is not allowed otherwise
		// Aggregation (APIServices, e.g. prescale's external metrics): the aggregator
		// authenticates to extension apiservers with the front-proxy client certificate
		// and passes the user in these headers; it dials the endpoints of the APIService's
		// Service directly (there is no kube-proxy to route a ClusterIP).
		"--requestheader-client-ca-file="+u.pki.FrontProxyCACert,
		"--requestheader-allowed-names="+FrontProxyClientName,
		"--requestheader-username-headers=X-Remote-User",
		"--requestheader-group-headers=X-Remote-Group",
		"--requestheader-extra-headers-prefix=X-Remote-Extra-",
		"--proxy-client-cert-file="+u.pki.FrontProxyClientCert,
		"--proxy-client-key-file="+u.pki.FrontProxyClientKey,
		"--enable-aggregator-routing=true",
		"--authorization-mode=RBAC",
		"--allow-privileged=true",
		"--profiling=false",
		"--v=1")
	if err != nil {
		return err
	}
	cfg, err := u.s.RESTConfig()
	if err != nil {
		return err
	}
	if err := apiserver.waitReady(ctx, u.o.Timeout, func(ctx context.Context) error { return apiReady(ctx, cfg) }); err != nil {
		return err
	}
	logger.V(2).Info("Started", "component", "kube-apiserver", "url", u.s.APIServer)

	kcm, err := u.start("kube-controller-manager",
		"--kubeconfig="+u.s.Kubeconfig,
		"--authentication-kubeconfig="+u.s.Kubeconfig, "--authorization-kubeconfig="+u.s.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports["kcm"]),
		"--cert-dir="+filepath.Join(u.s.Dir, "pki", "kcm"),
		"--leader-elect=false",
		"--controllers=deployment-controller,replicaset-controller,horizontal-pod-autoscaler-controller,"+
			"node-lifecycle-controller,garbage-collector-controller,namespace-controller,"+
			"serviceaccount-controller,serviceaccount-token-controller",
		"--service-account-private-key-file="+u.pki.SAKey,
		"--root-ca-file="+u.pki.CACert,
		"--use-service-account-credentials=false",
		"--horizontal-pod-autoscaler-sync-period="+u.o.HPASyncPeriod.String(),
		"--concurrent-deployment-syncs=10", "--concurrent-replicaset-syncs=10",
		"--kube-api-qps="+strconv.Itoa(u.o.ControllerManagerQPS), "--kube-api-burst="+strconv.Itoa(2*u.o.ControllerManagerQPS),
		"--v=1")
	if err != nil {
		return err
	}
	sched, err := u.start("kube-scheduler",
		"--kubeconfig="+u.s.Kubeconfig,
		"--authentication-kubeconfig="+u.s.Kubeconfig, "--authorization-kubeconfig="+u.s.Kubeconfig,
		"--bind-address=127.0.0.1", "--secure-port="+strconv.Itoa(ports["scheduler"]),
		"--cert-dir="+filepath.Join(u.s.Dir, "pki", "scheduler"),
		"--leader-elect=false",
		"--kube-api-qps=100", "--kube-api-burst=200",
		"--v=1")
	if err != nil {
		return err
	}
	stagesPath, err := writeKwokStages(filepath.Join(u.bin, "kwok-stages"), filepath.Join(u.s.Dir, "kwok.yaml"))
	if err != nil {
		return err
	}
	// kwok also loads ~/.kwok/kwok.yaml if it exists: give it a HOME of its own.
	kwok, err := u.startEnv("kwok", []string{"HOME=" + filepath.Join(u.s.Dir, "kwok-home")},
		"--kubeconfig="+u.s.Kubeconfig,
		"--config="+stagesPath,
		"--manage-all-nodes=false",
		"--manage-nodes-with-label-selector="+NodeLabel,
		"--server-address=127.0.0.1:"+strconv.Itoa(ports["kwok"]),
		"--node-lease-duration-seconds=40",
		"--cidr=10.244.0.0/16", "--node-ip=127.0.0.1")
	if err != nil {
		return err
	}
	if err := kcm.waitReady(ctx, u.o.Timeout, httpOK(fmt.Sprintf("https://127.0.0.1:%d/healthz", ports["kcm"]))); err != nil {
		return err
	}
	if err := sched.waitReady(ctx, u.o.Timeout, httpOK(fmt.Sprintf("https://127.0.0.1:%d/healthz", ports["scheduler"]))); err != nil {
		return err
	}
	if err := kwok.waitReady(ctx, u.o.Timeout, httpOK(fmt.Sprintf("http://127.0.0.1:%d/healthz", ports["kwok"]))); err != nil {
		return err
	}

	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("build client: %w", err)
	}
	if err := createNodes(ctx, client, u.o); err != nil {
		return err
	}
	if err := kwok.waitReady(ctx, u.o.Timeout, func(ctx context.Context) error { return nodesReady(ctx, client, u.o.Nodes) }); err != nil {
		return err
	}
	if u.o.Karpenter != nil {
		if err := u.startKarpenter(ctx, cfg); err != nil {
			return err
		}
		logger.V(2).Info("Started", "component", "karpenter", "nodePools", u.s.Karpenter.NodePools)
	}
	if err := prom.waitReady(ctx, u.o.Timeout, httpOK(u.s.PrometheusURL+"/-/ready")); err != nil {
		return err
	}
	// A last look: a component may have died after its readiness check.
	for _, c := range u.children {
		if err := c.exited(); err != nil {
			return err
		}
	}
	return nil
}

// Backfill writes series into the running sandbox's Prometheus: history, e.g. days of a
// service's past load for a forecast to fit on at start-up (sim.History). openMetrics is
// the OpenMetrics text format, ending "# EOF". Prometheus loads blocks only when it starts,
// so Backfill stops it, writes the blocks with the pinned promtool (tsdb
// create-blocks-from openmetrics) and starts it again on the same port and storage: its
// scrapes pause for the restart, a second or two. Prometheus then refuses samples older than
// the newest backfilled one: backfill history that ends now.
func (s *State) Backfill(ctx context.Context, binDir string, openMetrics []byte) error {
	start := time.Now()
	i := slices.IndexFunc(s.Processes, func(p Process) bool { return p.Name == "prometheus" })
	if i < 0 || len(s.Processes[i].Args) == 0 {
		return fmt.Errorf("backfill Prometheus: the sandbox in %s has no Prometheus this version can restart (make sandbox-down, then up)", s.Dir)
	}
	p := s.Processes[i]
	if err := stop(p, 10*time.Second); err != nil {
		return fmt.Errorf("backfill Prometheus: %w", err)
	}
	in := filepath.Join(s.Dir, "backfill.om")
	if err := os.WriteFile(in, openMetrics, 0o644); err != nil {
		return fmt.Errorf("backfill Prometheus: write %s: %w", in, err)
	}
	logs := filepath.Join(s.Dir, "logs")
	promtoolLog := filepath.Join(logs, "promtool.log")
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "promtool"), "tsdb", "create-blocks-from", "openmetrics",
		in, filepath.Join(s.Dir, "prometheus")).CombinedOutput()
	if lerr := os.WriteFile(promtoolLog, out, 0o644); lerr != nil && err == nil {
		err = lerr
	}
	if err != nil {
		err = fmt.Errorf("backfill Prometheus with promtool tsdb create-blocks-from openmetrics (log %s): %w: %s", promtoolLog, err, lastLines(out, 5))
	}
	// Start Prometheus again whatever promtool did: the sandbox stays whole.
	c, serr := startProcess(p.Name, p.Exe, p.Args, nil, logs)
	if serr != nil {
		return errors.Join(err, fmt.Errorf("restart Prometheus after the backfill: %w", serr))
	}
	s.Processes[i] = c.Process
	if serr := s.save(); serr != nil {
		return errors.Join(err, serr)
	}
	if serr := c.waitReady(ctx, 60*time.Second, httpOK(s.PrometheusURL+"/-/ready")); serr != nil {
		return errors.Join(err, fmt.Errorf("restart Prometheus after the backfill: %w", serr))
	}
	if err != nil {
		return err
	}
	klog.FromContext(ctx).Info("Backfilled Prometheus", "bytes", len(openMetrics), "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// lastLines returns the last n lines of out, for an error message.
func lastLines(out []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "; ")
}

func (u *upper) startPrometheus(port int) (*child, error) {
	cfgPath := filepath.Join(u.s.Dir, "prometheus.yml")
	cfg := fmt.Sprintf(`# Written by prescale-sandbox.
global:
  scrape_interval: %[1]s
  evaluation_interval: %[1]s
scrape_configs:
- job_name: prescale-sim
  scrape_interval: %[1]s
  scrape_timeout: %[2]s
  honor_labels: true
  static_configs:
  - targets: [%[3]q]
- job_name: scrape-dir
  scrape_interval: %[1]s
  scrape_timeout: %[2]s
  file_sd_configs:
  - files: [%[4]q]
`, model.Duration(u.o.ScrapeInterval), model.Duration(min(u.o.ScrapeInterval, 4*time.Second)), u.s.SimAddr, filepath.Join(u.s.ScrapeDir(), "*.json"))
	if err := os.MkdirAll(u.s.ScrapeDir(), 0o755); err != nil {
		return nil, fmt.Errorf("make the scrape directory: %w", err)
	}
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("write prometheus config: %w", err)
	}
	return u.start("prometheus",
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(u.s.Dir, "prometheus"),
		"--web.listen-address=127.0.0.1:"+strconv.Itoa(port),
		"--web.enable-lifecycle",
		"--log.level=warn")
}

// writeKubeconfig writes an admin kubeconfig with embedded credentials.
func writeKubeconfig(path, server string, p pki) error {
	read := func(f string) ([]byte, error) {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read %s for kubeconfig: %w", f, err)
		}
		return b, nil
	}
	ca, err := read(p.CACert)
	if err != nil {
		return err
	}
	cert, err := read(p.AdminCert)
	if err != nil {
		return err
	}
	key, err := read(p.AdminKey)
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["prescale-sandbox"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos["admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts["prescale-sandbox"] = &clientcmdapi.Context{Cluster: "prescale-sandbox", AuthInfo: "admin", Namespace: "default"}
	cfg.CurrentContext = "prescale-sandbox"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}

// nodeNotReadyStage is the sandbox's own kwok stage: a new node reports Ready=False at
// once, as a kubelet does when it registers, so that the node lifecycle controller keeps
// its node.kubernetes.io/not-ready taint (it removes the taint from a node with no Ready
// condition at all) and no pod is bound before node-initialize makes it Ready.
const nodeNotReadyStage = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-not-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'DoesNotExist'
  next:
    statusTemplate: |
      conditions:
      - lastHeartbeatTime: {{ Now | Quote }}
        lastTransitionTime: {{ Now | Quote }}
        message: "the node is booting"
        reason: KubeletNotReady
        status: "False"
        type: Ready`

// podReadyAgainStage is the sandbox's own kwok stage for what a kubelet's status manager
// does every 10 s: it writes a pod's status again when the API server's differs from its
// own. The node lifecycle controller marks a pod NotReady (Ready=False, nothing else) when
// the pod changes while the controller still holds its node as not Ready, which it
// refreshes only once per node monitor period (5 s). A pod that turns Ready within that
// period of its node's Ready (a node just made by Karpenter, a short start-up delay) is
// marked NotReady by that stale view. A kubelet puts Ready back at its next sync; kwok's
// pod-ready stage plays only on Pending pods, so without this stage the pod would stay
// Running and not Ready for good. Pods with readiness gates are left alone: their Ready
// may be False with their containers ready. Limits: the Ready condition is dated when the
// stage plays, as a kubelet would date it, so a start-up measured to Ready is 10 s longer
// for such a pod; a pod on a node that stays NotReady would flip every 10 s (the sandbox's
// nodes stay Ready once they are); the delay counts from the pod's last update.
const podReadyAgainStage = `apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-ready-again
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.spec.readinessGates'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.status.conditions.[] | select( .type == "ContainersReady" ) | .status'
      operator: 'In'
      values:
      - 'True'
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'In'
      values:
      - 'False'
  delay:
    durationMilliseconds: 10000
  next:
    statusTemplate: |
      conditions:
      - lastTransitionTime: {{ Now | Quote }}
        status: "True"
        type: Ready`

// patchNodeInitialize makes kwok's node-initialize stage play only after
// nodeNotReadyStage (the node has a Ready condition), and no sooner than the node's
// NodeReadyDelayAnnotation seconds after its creation. kwok counts a delay from each update
// of the node it sees (Karpenter and the node lifecycle controller update a node while it
// waits): an absolute time, creation plus the annotation's seconds, keeps the delay from
// restarting. Its conditions change then, so they are dated then (kwok dates them at the
// node's creation). doc must end its selector's matchExpressions right before next.
func patchNodeInitialize(doc string) (string, error) {
	const sel, next = "\n  selector:\n    matchExpressions:\n", "\n  next:\n"
	i, j := strings.Index(doc, sel), strings.Index(doc, next)
	if strings.Count(doc, sel) != 1 || strings.Count(doc, next) != 1 || j < i {
		return "", fmt.Errorf("expected one %q followed by one %q", strings.TrimSpace(sel), strings.TrimSpace(next))
	}
	for _, line := range strings.Split(doc[i+len(sel):j], "\n") {
		if !strings.HasPrefix(line, "    ") {
			return "", fmt.Errorf("expected only matchExpressions between selector and next, got %q", line)
		}
	}
	// The node's conditions change when it is initialized: now, not at its creation.
	if strings.Count(doc, kwokTransitionTime) != 1 {
		return "", fmt.Errorf("expected one %q", kwokTransitionTime)
	}
	doc = strings.Replace(doc, kwokTransitionTime, "{{ $lastTransitionTime := $now }}", 1)
	j = strings.Index(doc, next)
	return doc[:j] + fmt.Sprintf(`
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'Exists'
  delay:
    durationMilliseconds: 0
    durationFrom:
      expressionFrom: '(.metadata.creationTimestamp | fromdate) + (.metadata.annotations["%s"] // "0" | tonumber) | todate'`, NodeReadyDelayAnnotation) + doc[j:], nil
}

// kwokTransitionTime is how kwok's node stages date every condition they write: the
// node's creation, which would make a node Ready the instant it was created to anyone
// measuring its lead time from its Ready condition.
const kwokTransitionTime = "{{ $lastTransitionTime := or .metadata.creationTimestamp $now }}"

// patchNodeHeartbeat makes kwok's heartbeat keep each condition's lastTransitionTime
// (the stage rewrites it to the node's creation at every heartbeat): a condition the node
// has keeps its time, one it lacks takes the creation time as before.
func patchNodeHeartbeat(doc string) (string, error) {
	const ltt = "        lastTransitionTime: {{ $lastTransitionTime | Quote }}\n"
	const rng = "      {{ range NodeConditions }}\n"
	if strings.Count(doc, kwokTransitionTime) != 1 || strings.Count(doc, ltt) != 1 || strings.Count(doc, rng) != 1 {
		return "", fmt.Errorf("expected one %q, one %q and one %q", kwokTransitionTime, strings.TrimSpace(rng), strings.TrimSpace(ltt))
	}
	doc = strings.Replace(doc, rng, rng+
		"      {{ $type := .type }}{{ $since := $lastTransitionTime }}{{ range $.status.conditions }}{{ if eq .type $type }}{{ $since = .lastTransitionTime }}{{ end }}{{ end }}\n", 1)
	return strings.Replace(doc, ltt, "        lastTransitionTime: {{ $since | Quote }}\n", 1), nil
}

// writeKwokStages assembles kwok's configuration from the stage YAMLs of its module and
// the sandbox's own: a new node is NotReady at once (nodeNotReadyStage), then Ready after
// its NodeReadyDelayAnnotation (fast node initialisation, patched), heartbeats through
// leases, fast pod stages whose pod-ready stage waits for the pod's
// StartupDelayAnnotation, and a running pod marked NotReady is Ready again
// (podReadyAgainStage).
func writeKwokStages(stageDir, out string) (string, error) {
	files := []string{
		"node/fast/node-initialize.yaml",
		"node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
		"pod/fast/pod-ready.yaml",
		"pod/fast/pod-complete.yaml",
		"pod/fast/pod-delete.yaml",
	}
	var docs []string
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(stageDir, f))
		if err != nil {
			return "", fmt.Errorf("read kwok stage %s (run make tools): %w", f, err)
		}
		doc := string(data)
		if f == "node/fast/node-initialize.yaml" {
			if doc, err = patchNodeInitialize(doc); err != nil {
				return "", fmt.Errorf("patch kwok stage %s: %w", f, err)
			}
		}
		if f == "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml" {
			if doc, err = patchNodeHeartbeat(doc); err != nil {
				return "", fmt.Errorf("patch kwok stage %s: %w", f, err)
			}
		}
		if f == "pod/fast/pod-ready.yaml" {
			const next = "\n  next:\n"
			if strings.Count(doc, next) != 1 {
				return "", fmt.Errorf("patch kwok stage %s: expected one %q", f, strings.TrimSpace(next))
			}
			doc = strings.Replace(doc, next, fmt.Sprintf(`
  delay:
    durationMilliseconds: 0
    durationFrom:
      expressionFrom: '.metadata.annotations["%s"]'%s`, StartupDelayAnnotation, next), 1)
		}
		docs = append(docs, strings.TrimSpace(doc))
	}
	docs = append(docs, nodeNotReadyStage, podReadyAgainStage)
	if err := os.WriteFile(out, []byte(strings.Join(docs, "\n---\n")+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("write kwok config: %w", err)
	}
	return out, nil
}

// createNodes registers the simulated GPU nodes, labelled like nodes of the NVIDIA
// GPU operator's feature discovery.
func createNodes(ctx context.Context, c kubernetes.Interface, o Options) error {
	gpus := resource.MustParse(strconv.Itoa(o.GPUsPerNode))
	res := corev1.ResourceList{
		corev1.ResourceCPU:    resource.MustParse(strconv.Itoa(12 * o.GPUsPerNode)),
		corev1.ResourceMemory: resource.MustParse(strconv.Itoa(128*o.GPUsPerNode) + "Gi"),
		corev1.ResourcePods:   resource.MustParse("110"),
		GPUResource:           gpus,
	}
	for i := range o.Nodes {
		name := fmt.Sprintf("gpu-node-%d", i)
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{
				Name: name,
				Labels: map[string]string{
					NodeLabel:                          "true",
					"type":                             "kwok",
					"kubernetes.io/hostname":           name,
					"kubernetes.io/os":                 "linux",
					"kubernetes.io/arch":               "amd64",
					"node.kubernetes.io/instance-type": "sandbox-gpu-" + strconv.Itoa(o.GPUsPerNode),
					"nvidia.com/gpu.present":           "true",
					"nvidia.com/gpu.product":           o.GPUProduct,
					"nvidia.com/gpu.count":             strconv.Itoa(o.GPUsPerNode),
				},
				Annotations: map[string]string{"kwok.x-k8s.io/node": "fake"},
			},
			Status: corev1.NodeStatus{Capacity: res, Allocatable: res},
		}
		if _, err := c.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create node %s: %w", name, err)
		}
	}
	return nil
}

func nodesReady(ctx context.Context, c kubernetes.Interface, want int) error {
	nodes, err := c.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: NodeLabel})
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	ready := 0
	for _, n := range nodes.Items {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	if ready < want {
		return fmt.Errorf("%d of %d nodes ready", ready, want)
	}
	return nil
}

func apiReady(ctx context.Context, cfg *rest.Config) error {
	c, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fmt.Errorf("build client: %w", err)
	}
	body, err := c.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
	if err != nil {
		return fmt.Errorf("get /readyz: %w: %s", err, body)
	}
	return nil
}

// httpOK returns a check that GETs url (skipping TLS verification: the components
// serve self-signed loopback certificates) and wants a 200.
func httpOK(url string) func(context.Context) error {
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return fmt.Errorf("build request %s: %w", url, err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("get %s: %w", url, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("get %s: status %s", url, resp.Status)
		}
		return nil
	}
}
