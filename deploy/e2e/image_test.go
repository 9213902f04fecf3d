//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/sandbox"
)

// containersConf is podman's configuration for the test's own use (CONTAINERS_CONF, not the
// machine's): this VM's hybrid cgroup layout needs cgroupfs and runc (crun refuses it), and
// it refuses podman's default nofile and nproc limits.
const containersConf = `[containers]
default_ulimits = []
[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
`

// saDir is where the kubelet mounts a pod's service account token, CA and namespace.
const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// podman runs podman with the test's configuration.
type podman struct {
	path, conf string
}

func newPodman(t *testing.T) podman {
	t.Helper()
	path, err := exec.LookPath("podman")
	if err != nil {
		t.Fatalf("podman is not installed (.ci/run installs Debian's podman and runc): %v", err)
	}
	conf := filepath.Join(t.TempDir(), "containers.conf")
	if err := os.WriteFile(conf, []byte(containersConf), 0o644); err != nil {
		t.Fatal(err)
	}
	return podman{path: path, conf: conf}
}

func (p podman) run(args ...string) (string, error) {
	cmd := exec.Command(p.path, args...)
	cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+p.conf)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (p podman) must(t *testing.T, args ...string) string {
	t.Helper()
	out, err := p.run(args...)
	if err != nil {
		t.Fatalf("podman %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(out)
}

// configDir is a directory laid out as the kubelet lays out a ConfigMap volume (its atomic
// writer): each version in a timestamped directory, "..data" a symlink to the current one,
// and each key a symlink through "..data". An update writes a new version and swaps
// "..data" with one rename, so a reader sees the old file or the new one, never a mix, and
// a watcher of the file itself sees no write to it.
type configDir struct {
	dir     string
	version int
}

func (c *configDir) write(t *testing.T, key, content string) {
	t.Helper()
	c.version++
	v := fmt.Sprintf("..2026_12_06_00_00_%02d.%d", c.version, 1000+c.version)
	if err := os.MkdirAll(filepath.Join(c.dir, v), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, v, key), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	old, _ := os.Readlink(filepath.Join(c.dir, "..data"))
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(v, tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(c.dir, key)); os.IsNotExist(err) {
		if err := os.Symlink(filepath.Join("..data", key), filepath.Join(c.dir, key)); err != nil {
			t.Fatal(err)
		}
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(c.dir, old)); err != nil {
			t.Fatal(err)
		}
	}
}

// container is how one replica of a rendered Deployment runs under podman.
type container struct {
	name       string // podman's name, also the hostname (prescale's identity starts with it)
	listen     string // the metrics port's address on the host
	deployment appsv1.Deployment
}

// args returns podman run's arguments for c: the pod's and the container's security
// context, env, volume mounts, resources, command and args, as the kubelet would apply
// them. The containers share the host's network (the sandbox's API server listens on
// loopback), so the one change from the manifest is the metrics address: each its own port
// (PRESCALE_LISTENADDRESS) where a pod would have its own IP.
func (c container) args(t *testing.T, image string, env map[string]string, volumes map[string]string, fieldRefs map[string]string) []string {
	t.Helper()
	pod := c.deployment.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers in the Deployment, want 1", len(pod.Containers))
	}
	ct := pod.Containers[0]
	args := []string{"run", "-d", "--name", c.name, "--hostname", c.name, "--network", "host"}

	psc, sc := pod.SecurityContext, ct.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	user, group := psc.RunAsUser, psc.RunAsGroup
	if sc.RunAsUser != nil {
		user = sc.RunAsUser
	}
	if sc.RunAsGroup != nil {
		group = sc.RunAsGroup
	}
	switch {
	case user != nil && group != nil:
		args = append(args, "--user", fmt.Sprintf("%d:%d", *user, *group))
	case user != nil:
		args = append(args, "--user", strconv.FormatInt(*user, 10))
	}
	if ro := sc.ReadOnlyRootFilesystem; ro != nil && *ro {
		args = append(args, "--read-only", "--read-only-tmpfs=false")
	}
	if ape := sc.AllowPrivilegeEscalation; ape != nil && !*ape {
		args = append(args, "--security-opt", "no-new-privileges")
	}
	if caps := sc.Capabilities; caps != nil {
		for _, c := range caps.Drop {
			args = append(args, "--cap-drop", string(c))
		}
		for _, c := range caps.Add {
			args = append(args, "--cap-add", string(c))
		}
	}
	seccomp := psc.SeccompProfile
	if sc.SeccompProfile != nil {
		seccomp = sc.SeccompProfile
	}
	if seccomp == nil || seccomp.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Fatalf("seccompProfile %+v: the Deployment should ask for RuntimeDefault", seccomp)
	}
	if mem, ok := ct.Resources.Limits[corev1.ResourceMemory]; ok {
		args = append(args, "--memory", strconv.FormatInt(mem.Value(), 10))
	}
	for _, e := range ct.Env {
		switch {
		case e.ValueFrom == nil:
			args = append(args, "-e", e.Name+"="+e.Value)
		case e.ValueFrom.FieldRef != nil && fieldRefs[e.ValueFrom.FieldRef.FieldPath] != "":
			args = append(args, "-e", e.Name+"="+fieldRefs[e.ValueFrom.FieldRef.FieldPath])
		case e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory":
			// As the kubelet resolves it (divisor 1): the limit in bytes.
			mem, ok := ct.Resources.Limits[corev1.ResourceMemory]
			if !ok {
				t.Fatalf("env %s: limits.memory, but the container has no memory limit", e.Name)
			}
			args = append(args, "-e", e.Name+"="+strconv.FormatInt(mem.Value(), 10))
		default:
			t.Fatalf("env %s: a source the test does not supply: %+v", e.Name, e.ValueFrom)
		}
	}
	for k, v := range env {
		args = append(args, "-e", k+"="+v)
	}
	for _, m := range ct.VolumeMounts {
		var vol *corev1.Volume
		for i := range pod.Volumes {
			if pod.Volumes[i].Name == m.Name {
				vol = &pod.Volumes[i]
			}
		}
		switch {
		case vol == nil:
			t.Fatalf("volume mount %s: no such volume", m.Name)
		case vol.ConfigMap != nil:
			src := volumes[vol.ConfigMap.Name]
			if src == "" {
				t.Fatalf("volume %s: ConfigMap %s is not one the test lays out", m.Name, vol.ConfigMap.Name)
			}
			args = append(args, "-v", src+":"+m.MountPath+":ro")
		case vol.EmptyDir != nil:
			opt := m.MountPath + ":rw,mode=1777"
			if l := vol.EmptyDir.SizeLimit; l != nil {
				opt += ",size=" + strconv.FormatInt(l.Value(), 10)
			}
			args = append(args, "--tmpfs", opt)
		default:
			t.Fatalf("volume %s: a kind the test does not supply", m.Name)
		}
	}
	if a := pod.AutomountServiceAccountToken; a == nil || *a {
		args = append(args, "-v", volumes[saDir]+":"+saDir+":ro")
	}
	if len(ct.Command) > 0 {
		args = append(args, "--entrypoint", ct.Command[0])
	}
	args = append(args, image)
	if len(ct.Command) > 1 {
		args = append(args, ct.Command[1:]...)
	}
	return append(args, ct.Args...)
}

// probe returns the URL of one of the container's probes on its host port.
func (c container) probe(t *testing.T, p *corev1.Probe) string {
	t.Helper()
	if p == nil || p.HTTPGet == nil {
		t.Fatalf("%s: a probe that is not httpGet: %+v", c.name, p)
	}
	return "http://" + c.listen + p.HTTPGet.Path
}

func deployment(t *testing.T, obj map[string]any) appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestImage runs the image that make image builds as the shipped Deployment runs it, on the
// sandbox: two replicas, one from the kustomize base's Deployment and one from the Helm
// chart's, each with its command, args, env, security context (non-root, read-only root,
// no capabilities, no privilege escalation, the runtime's default seccomp profile), volume
// mounts and memory limit, and the in-cluster configuration a pod gets: its service
// account's token from a TokenRequest, the CA and the namespace where the kubelet mounts
// them, and KUBERNETES_SERVICE_HOST and _PORT. The policy file is mounted from a directory
// laid out as a ConfigMap volume and updated as the kubelet updates it. They leader-elect,
// scale a workload under the service account's RBAC and the admission policy, reload the
// policy, and the follower takes over when the leader is killed. The sandbox's Prometheus
// scrapes their /metrics.
func TestImage(t *testing.T) {
	pm := newPodman(t)
	kubectl := bin(t, "kubectl")
	binDir := filepath.Dir(kubectl)
	tmp := t.TempDir()

	const tag = "prescale:e2e"
	archive := filepath.Join(tmp, "image.tar")
	if out, err := exec.Command("make", "-C", root, "image", "IMAGE="+tag, "IMAGE_ARCHIVE="+archive).CombinedOutput(); err != nil {
		t.Fatalf("make image: %v\n%s", err, out)
	}
	loaded := pm.must(t, "load", "-q", "-i", archive)
	image := strings.TrimSpace(strings.TrimPrefix(loaded, "Loaded image:"))
	t.Cleanup(func() { _, _ = pm.run("rmi", "-f", image) })
	if user := pm.must(t, "image", "inspect", image, "--format", "{{.Config.User}}"); user != "65532:65532" {
		t.Errorf("the image's user is %q, want 65532:65532 (distroless' nonroot)", user)
	}

	baseD := deployment(t, named(t, docs(t, mustRun(t, "", kubectl, "kustomize", root+"/deploy/base")), "Deployment", "prescale"))
	helmD := deployment(t, named(t, docs(t, helmTemplate(t)), "Deployment", "prescale"))

	ctx := klog.NewContext(context.Background(), klog.Background())
	st, kube, admin := upSandbox(t, ctx, binDir, filepath.Join(tmp, "sandbox"), kubectl)
	cfg, err := st.RESTConfig() // its CA is the service account's ca.crt
	if err != nil {
		t.Fatal(err)
	}
	// Everything of the base but its Deployment, which the containers stand in for: the
	// service account, its RBAC and the admission policy are what they write under.
	admin("", "create", "namespace", namespace)
	admin(withoutDeployment(admin("", "kustomize", root+"/deploy/base")), "apply", "--server-side", "-f", "-")

	w := sandbox.Workload{Namespace: "inference", Name: "llama", Replicas: 1, GPUs: 1, StartupDelay: time.Second}
	if err := w.Apply(ctx, kube); err != nil {
		t.Fatal(err)
	}

	// The service account's volume, as the kubelet projects it.
	tok, err := kube.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, "prescale",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create a token for the service account: %v", err)
	}
	ca := cfg.CAData
	if len(ca) == 0 {
		if ca, err = os.ReadFile(cfg.CAFile); err != nil {
			t.Fatalf("the sandbox's CA: %v", err)
		}
	}
	sa := &configDir{dir: filepath.Join(tmp, "serviceaccount")}
	sa.write(t, "token", tok.Status.Token)
	for key, v := range map[string]string{"ca.crt": string(ca), "namespace": namespace} {
		if err := os.WriteFile(filepath.Join(sa.dir, "..data", key), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..data", key), filepath.Join(sa.dir, key)); err != nil {
			t.Fatal(err)
		}
	}

	// The policy: a constant scalar query against an AverageValue target, value / target
	// replicas (the HPA's External AverageValue math).
	policyFile := func(value int) string {
		return fmt.Sprintf(`prometheus: {url: %s, timeout: 2s}
interval: 1s
leaderElection: {leaseDuration: 6s, renewDeadline: 4s, retryPeriod: 1s}
policies:
  - name: llama
    target: {apiVersion: apps/v1, kind: Deployment, namespace: inference, name: llama}
    minReplicas: 1
    maxReplicas: 4
    metrics:
      - name: load
        query: vector(%d)
        target: {type: AverageValue, averageValue: 5}
    behavior:
      scaleDown: {stabilizationWindowSeconds: 0}
`, st.PrometheusURL, value)
	}
	conf := &configDir{dir: filepath.Join(tmp, "config")}
	conf.write(t, "prescale.yaml", policyFile(20))
	for _, d := range []string{sa.dir, conf.dir} { // the non-root user reads them
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	host, port, ok := strings.Cut(strings.TrimPrefix(st.APIServer, "https://"), ":")
	if !ok {
		t.Fatalf("the API server's address %q has no port", st.APIServer)
	}
	containers := []container{
		{name: "prescale-kustomize", listen: testutil.FreeAddr(t), deployment: baseD},
		{name: "prescale-helm", listen: testutil.FreeAddr(t), deployment: helmD},
	}
	for _, c := range containers {
		args := c.args(t, image,
			map[string]string{"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port, "PRESCALE_LISTENADDRESS": c.listen},
			map[string]string{"prescale-config": conf.dir, saDir: sa.dir},
			map[string]string{"metadata.namespace": namespace, "metadata.name": c.name})
		_, _ = pm.run("rm", "-f", c.name)
		pm.must(t, args...)
		t.Cleanup(func() {
			if t.Failed() {
				logs, _ := pm.run("logs", c.name)
				t.Logf("%s's log:\n%s", c.name, testutil.Tail(logs, 3000))
			}
			_, _ = pm.run("rm", "-f", "-t", "2", c.name)
		})
	}

	t.Run("probes answer", func(t *testing.T) {
		for _, c := range containers {
			ct := c.deployment.Spec.Template.Spec.Containers[0]
			for _, p := range []*corev1.Probe{ct.LivenessProbe, ct.ReadinessProbe} {
				url := c.probe(t, p)
				poll(t, 60*time.Second, c.name+" to answer "+url, func(ctx context.Context) error {
					_, err := get(ctx, url)
					return err
				})
			}
		}
	})

	// The metrics port as the ServiceMonitor has Prometheus scrape it: the sandbox's
	// Prometheus reads the targets from its scrape directory.
	var targets []string
	for _, c := range containers {
		targets = append(targets, c.listen)
	}
	sd, err := json.Marshal([]map[string]any{{"targets": targets, "labels": map[string]string{"job": "prescale"}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.ScrapeDir(), "prescale.json"), sd, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("Prometheus scrapes /metrics", func(t *testing.T) {
		// One leader among the two, as Prometheus sees them.
		q := st.PrometheusURL + "/api/v1/query?query=" + url.QueryEscape(`sum(prescale_leader{job="prescale"}) == 1 and count(prescale_leader{job="prescale"}) == 2`)
		poll(t, 90*time.Second, "Prometheus to scrape both containers' /metrics and see one leader", func(ctx context.Context) error {
			body, err := get(ctx, q)
			if err != nil {
				return err
			}
			if !strings.Contains(body, `"result":[{`) {
				return fmt.Errorf("%s", body)
			}
			return nil
		})
	})

	replicas := func(want int32) func(context.Context) error {
		return func(ctx context.Context) error {
			d, err := kube.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if *d.Spec.Replicas != want {
				return fmt.Errorf("spec.replicas %d", *d.Spec.Replicas)
			}
			return nil
		}
	}
	holder := func(ctx context.Context) (string, error) {
		l, err := kube.CoordinationV1().Leases(namespace).Get(ctx, "prescale", metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if l.Spec.HolderIdentity == nil || *l.Spec.HolderIdentity == "" {
			return "", fmt.Errorf("no holder")
		}
		return *l.Spec.HolderIdentity, nil
	}

	// 20 against an AverageValue target of 5: 4 replicas, written under the service account.
	poll(t, 120*time.Second, "the Deployment scaled from 1 to 4 replicas", replicas(4))

	// The kubelet's update: a new version and a swap of ..data; prescale reloads it.
	conf.write(t, "prescale.yaml", policyFile(10))
	poll(t, 60*time.Second, "the reloaded policy to scale to 2", replicas(2))

	leader, err := holder(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var killed, other string
	for _, c := range containers {
		if strings.HasPrefix(leader, c.name) {
			killed = c.name
		} else {
			other = c.name
		}
	}
	if killed == "" {
		t.Fatalf("the Lease's holder %q is neither container", leader)
	}
	pm.must(t, "kill", "-s", "KILL", killed)
	start := time.Now()
	poll(t, 60*time.Second, other+" to take the Lease over", func(ctx context.Context) error {
		h, err := holder(ctx)
		if err != nil {
			return err
		}
		if !strings.HasPrefix(h, other) {
			return fmt.Errorf("held by %s", h)
		}
		return nil
	})
	t.Logf("%s took over %s after the leader was killed", other, time.Since(start).Round(time.Second))
	conf.write(t, "prescale.yaml", policyFile(15))
	poll(t, 60*time.Second, "the new leader to scale to 3", replicas(3))
}
