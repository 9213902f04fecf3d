//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
	"sigs.k8s.io/yaml"

	"github.com/prescale/prescale/internal/testutil"
	"github.com/prescale/prescale/sandbox"
)

const (
	root      = "../.."
	namespace = "prescale" // deploy/base's namespace
	account   = "system:serviceaccount:prescale:prescale"
	overlay   = root + "/deploy/overlays/example"
	// namespaced is the example overlay with the writes bound in namespace inference only.
	namespaced = root + "/deploy/overlays/namespaced"
	chart      = root + "/deploy/helm/prescale"
)

// bin returns the path of a tool in PRESCALE_SANDBOX_BIN, and fails the test without it.
func bin(t *testing.T, name string) string {
	t.Helper()
	dir := os.Getenv("PRESCALE_SANDBOX_BIN")
	if dir == "" {
		t.Fatal("PRESCALE_SANDBOX_BIN is not set: run these tests with make e2e")
	}
	p := filepath.Join(dir, name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s is missing from PRESCALE_SANDBOX_BIN (make tools builds it): %v", name, err)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// run runs a command with stdin and returns its combined output.
func run(stdin string, name string, args ...string) (string, error) {
	cmd := exec.Command(name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustRun(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	out, err := run(stdin, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out)
	}
	return out
}

// helmTemplate renders the chart as release "prescale" in namespace prescale.
func helmTemplate(t *testing.T, sets ...string) string {
	t.Helper()
	args := []string{"template", "prescale", chart, "--namespace", namespace}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return mustRun(t, "", bin(t, "helm"), args...)
}

// docs splits a multi-document YAML stream into objects.
func docs(t *testing.T, stream string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, d := range strings.Split(stream, "\n---") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(d), &m); err != nil {
			t.Fatalf("parse YAML document: %v\n%s", err, d)
		}
		if len(m) > 0 {
			out = append(out, m)
		}
	}
	return out
}

func find(t *testing.T, objs []map[string]any, kind string) map[string]any {
	t.Helper()
	for _, o := range objs {
		if o["kind"] == kind {
			return o
		}
	}
	t.Fatalf("no %s in the rendered objects", kind)
	return nil
}

// named returns the object of kind and name, and fails the test without it.
func named(t *testing.T, objs []map[string]any, kind, name string) map[string]any {
	t.Helper()
	for _, o := range objs {
		if o["kind"] == kind && o["metadata"].(map[string]any)["name"] == name {
			return o
		}
	}
	t.Fatalf("no %s %s in the rendered objects", kind, name)
	return nil
}

// patched returns the resources ("group/resource") the RBAC objects let prescale patch or
// update as a whole, that is every write of a target but its /scale. Events and the Lease
// are prescale's own objects, not targets.
func patched(objs []map[string]any) []string {
	seen := map[string]bool{}
	for _, o := range objs {
		if o["kind"] != "ClusterRole" && o["kind"] != "Role" {
			continue
		}
		rules, _ := o["rules"].([]any)
		for _, r := range rules {
			r := r.(map[string]any)
			if !slices.ContainsFunc(r["verbs"].([]any), func(v any) bool { return v == "patch" || v == "update" }) {
				continue
			}
			for _, g := range r["apiGroups"].([]any) {
				for _, res := range r["resources"].([]any) {
					res := res.(string)
					if strings.Contains(res, "/") || res == "events" || res == "leases" {
						continue
					}
					seen[g.(string)+"/"+res] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// admitted returns the resources ("group/resource") whose updates the admission policies
// check.
func admitted(t *testing.T, objs []map[string]any) []string {
	t.Helper()
	seen := map[string]bool{}
	find(t, objs, "ValidatingAdmissionPolicy") // at least one
	for _, vap := range objs {
		if vap["kind"] != "ValidatingAdmissionPolicy" {
			continue
		}
		for _, r := range vap["spec"].(map[string]any)["matchConstraints"].(map[string]any)["resourceRules"].([]any) {
			r := r.(map[string]any)
			if !slices.Contains(r["operations"].([]any), any("UPDATE")) {
				continue
			}
			for _, g := range r["apiGroups"].([]any) {
				for _, res := range r["resources"].([]any) {
					seen[g.(string)+"/"+res.(string)] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

func buildPrescale(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "prescale")
	mustRun(t, "", "go", "build", "-o", p, root+"/cmd/prescale")
	return p
}

// TestStatic checks what needs no API server: the chart lints, the alert rules load in
// promtool (the same groups in the kustomize PrometheusRule and the chart's), the shipped
// policy files validate, and the dashboard is JSON that queries prescale's metrics.
func TestStatic(t *testing.T) {
	helm, promtool, kubectl := bin(t, "helm"), bin(t, "promtool"), bin(t, "kubectl")
	prescale := buildPrescale(t)

	t.Run("helm lint", func(t *testing.T) {
		mustRun(t, "", helm, "lint", "--strict", chart)
		mustRun(t, "", helm, "lint", "--strict", chart, "--set", "serviceMonitor.enabled=true,prometheusRule.enabled=true")
	})

	t.Run("alert rules", func(t *testing.T) {
		kust := find(t, docs(t, mustRun(t, "", kubectl, "kustomize", root+"/deploy/prometheus")), "PrometheusRule")
		chartRule := find(t, docs(t, helmTemplate(t, "prometheusRule.enabled=true", "serviceMonitor.enabled=true")), "PrometheusRule")
		if diff := cmp.Diff(kust["spec"], chartRule["spec"]); diff != "" {
			t.Errorf("the chart's alert rules differ from deploy/prometheus (-kustomize +chart):\n%s", diff)
		}
		groups, err := yaml.Marshal(kust["spec"])
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "rules.yaml")
		if err := os.WriteFile(f, groups, 0o644); err != nil {
			t.Fatal(err)
		}
		out := mustRun(t, "", promtool, "check", "rules", f)
		if !strings.Contains(out, "SUCCESS: 8 rules found") {
			t.Errorf("promtool check rules: want 8 rules, got:\n%s", out)
		}
		for _, alert := range []string{"PrescaleNoLeader", "PrescaleMetricMissing", "PrescaleObjectiveMissing", "PrescaleForecastLoadMissing",
			"PrescaleCapacityLimited", "PrescaleCapacityBufferNotReady", "PrescaleForecastGated", "PrescaleConfigReloadFailed"} {
			if !strings.Contains(string(groups), "alert: "+alert) {
				t.Errorf("alert %s is missing", alert)
			}
		}
	})

	t.Run("service monitor selects the metrics service", func(t *testing.T) {
		objs := docs(t, helmTemplate(t, "serviceMonitor.enabled=true"))
		sm, svc := find(t, objs, "ServiceMonitor"), find(t, objs, "Service")
		want := svc["metadata"].(map[string]any)["labels"].(map[string]any)
		for k, v := range sm["spec"].(map[string]any)["selector"].(map[string]any)["matchLabels"].(map[string]any) {
			if want[k] != v {
				t.Errorf("ServiceMonitor selects %s=%v; the Service has %v", k, v, want[k])
			}
		}
		kobjs := docs(t, mustRun(t, "", kubectl, "kustomize", root+"/deploy/prometheus"))
		kbase := docs(t, mustRun(t, "", kubectl, "kustomize", overlay))
		ksm, ksvc := find(t, kobjs, "ServiceMonitor"), find(t, kbase, "Service")
		kwant := ksvc["metadata"].(map[string]any)["labels"].(map[string]any)
		for k, v := range ksm["spec"].(map[string]any)["selector"].(map[string]any)["matchLabels"].(map[string]any) {
			if kwant[k] != v {
				t.Errorf("deploy/prometheus ServiceMonitor selects %s=%v; the Service has %v", k, v, kwant[k])
			}
		}
	})

	// The chart grants what the base grants (the base's rights are checked on the API server).
	t.Run("chart RBAC equals the base's", func(t *testing.T) {
		base := docs(t, mustRun(t, "", kubectl, "kustomize", root+"/deploy/base"))
		objs := docs(t, helmTemplate(t))
		for _, o := range []struct{ kind, name string }{{"ClusterRole", "prescale"}, {"ClusterRole", "prescale-targets"}, {"Role", "prescale-leader-election"}} {
			if diff := cmp.Diff(named(t, base, o.kind, o.name)["rules"], named(t, objs, o.kind, o.name)["rules"]); diff != "" {
				t.Errorf("the chart's %s %s rules differ from deploy/base's (-base +chart):\n%s", o.kind, o.name, diff)
			}
		}
	})

	// Every resource prescale may patch is one whose patches the admission policy confines to
	// the annotation (issue 15, item 11), in every variant shipped.
	t.Run("the admission policy covers every patched resource", func(t *testing.T) {
		lws := []string{"rbac.extraScaleTargets[0].apiGroup=leaderworkerset.x-k8s.io", "rbac.extraScaleTargets[0].resource=leaderworkersets"}
		for name, objs := range map[string][]map[string]any{
			"deploy/base":                docs(t, mustRun(t, "", kubectl, "kustomize", root+"/deploy/base")),
			"deploy/overlays/example":    docs(t, mustRun(t, "", kubectl, "kustomize", overlay)),
			"deploy/overlays/namespaced": docs(t, mustRun(t, "", kubectl, "kustomize", namespaced)),
			"the chart":                  docs(t, helmTemplate(t)),
			"the chart, an extra target": docs(t, helmTemplate(t, lws...)),
			"the chart, target namespaces and an extra target": docs(t, helmTemplate(t, append(lws, "rbac.targetNamespaces={inference,batch}")...)),
		} {
			p, a := patched(objs), admitted(t, objs)
			if diff := cmp.Diff(p, a); diff != "" {
				t.Errorf("%s: the RBAC grants patch on resources the admission policy does not check (-RBAC +policy):\n%s", name, diff)
			}
			if name != "deploy/base" && name != "the chart" && !slices.Contains(a, "leaderworkerset.x-k8s.io/leaderworkersets") {
				t.Errorf("%s: no leaderworkersets in the policy: %q", name, a)
			}
		}
	})

	// rbac.targetNamespaces: the writes are bound in those namespaces only (on a real API
	// server in TestDeploy).
	t.Run("chart target namespaces", func(t *testing.T) {
		objs := docs(t, helmTemplate(t, "rbac.targetNamespaces={inference,batch}"))
		var bound []string
		for _, o := range objs {
			md := o["metadata"].(map[string]any)
			if o["kind"] == "ClusterRoleBinding" && md["name"] == "prescale-targets" {
				t.Errorf("with rbac.targetNamespaces the writes are still bound cluster-wide")
			}
			if o["kind"] == "RoleBinding" && md["name"] == "prescale-targets" {
				bound = append(bound, md["namespace"].(string))
			}
		}
		if diff := cmp.Diff([]string{"inference", "batch"}, bound); diff != "" {
			t.Errorf("RoleBindings prescale-targets (-want +got):\n%s", diff)
		}
	})

	// The API server's aggregator reaches the external metrics port when it is served, and
	// only then: the chart's NetworkPolicy on settings.externalMetrics, kustomize's in
	// deploy/external-metrics.yaml (NetworkPolicies add up).
	t.Run("NetworkPolicy admits the aggregator with external metrics", func(t *testing.T) {
		type rule = map[string]any
		ingress := func(objs []map[string]any) []any {
			t.Helper()
			return find(t, objs, "NetworkPolicy")["spec"].(map[string]any)["ingress"].([]any)
		}
		aggregator := func(port int, cidrs ...string) rule {
			r := rule{"ports": []any{rule{"port": float64(port), "protocol": "TCP"}}}
			if len(cidrs) > 0 {
				var from []any
				for _, c := range cidrs {
					from = append(from, rule{"ipBlock": rule{"cidr": c}})
				}
				r["from"] = from
			}
			return r
		}
		prometheusOnly := ingress(docs(t, helmTemplate(t)))
		if len(prometheusOnly) != 1 {
			t.Errorf("chart without external metrics: ingress %v, want Prometheus' rule alone", prometheusOnly)
		}
		for _, tc := range []struct {
			name string
			sets []string
			want rule
		}{
			{name: "default port, any source", sets: []string{"settings.externalMetrics.enabled=true"}, want: aggregator(6443)},
			{name: "its listenAddress's port, from the given CIDRs", sets: []string{"settings.externalMetrics.enabled=true",
				"settings.externalMetrics.listenAddress=0.0.0.0:7443", "networkPolicy.externalMetrics.cidrs={10.0.0.0/24,10.0.1.0/24}"},
				want: aggregator(7443, "10.0.0.0/24", "10.0.1.0/24")},
		} {
			got := ingress(docs(t, helmTemplate(t, tc.sets...)))
			if diff := cmp.Diff(append(append([]any{}, prometheusOnly...), tc.want), got); diff != "" {
				t.Errorf("chart, %s: ingress (-want +got):\n%s", tc.name, diff)
			}
		}
		if got := ingress(docs(t, mustRun(t, "", kubectl, "kustomize", root+"/deploy/base"))); len(got) != 1 {
			t.Errorf("deploy/base: ingress %v, want Prometheus' rule alone", got)
		}
		b, err := os.ReadFile(root + "/deploy/external-metrics.yaml")
		if err != nil {
			t.Fatal(err)
		}
		ext := docs(t, string(b))
		np := find(t, ext, "NetworkPolicy")
		if diff := cmp.Diff([]any{aggregator(6443)}, ingress(ext)); diff != "" {
			t.Errorf("deploy/external-metrics.yaml: ingress (-want +got):\n%s", diff)
		}
		sel := np["spec"].(map[string]any)["podSelector"]
		if diff := cmp.Diff(rule{"matchLabels": rule{"app.kubernetes.io/name": "prescale"}}, sel); diff != "" {
			t.Errorf("deploy/external-metrics.yaml: the NetworkPolicy selects other pods than prescale's (-want +got):\n%s", diff)
		}
		if ports := find(t, ext, "Service")["spec"].(map[string]any)["ports"].([]any); ports[0].(map[string]any)["targetPort"] != float64(6443) {
			t.Errorf("deploy/external-metrics.yaml: the Service targets %v, the NetworkPolicy admits 6443", ports)
		}
	})

	t.Run("policy files validate", func(t *testing.T) {
		mustRun(t, "", prescale, "validate", "-f", root+"/deploy/base/prescale.yaml")
		mustRun(t, "", prescale, "validate", "-f", overlay+"/prescale.yaml")
		cm := find(t, docs(t, helmTemplate(t)), "ConfigMap")
		file := cm["data"].(map[string]any)["prescale.yaml"].(string)
		mustRun(t, file, prescale, "validate", "-f", "-")
		for _, want := range []string{"listenAddress: :8080", "name: prescale", "url: http://prometheus-operated.monitoring.svc:9090"} {
			if !strings.Contains(file, want) {
				t.Errorf("the chart's policy file lacks %q:\n%s", want, file)
			}
		}
	})

	t.Run("dashboard", func(t *testing.T) {
		b, err := os.ReadFile(root + "/deploy/grafana/prescale.json")
		if err != nil {
			t.Fatal(err)
		}
		var dash map[string]any
		if err := json.Unmarshal(b, &dash); err != nil {
			t.Fatalf("the dashboard is not JSON: %v", err)
		}
		for _, m := range []string{"prescale_desired_replicas", "prescale_current_replicas", "prescale_uncapped_replicas",
			"prescale_hpa_equivalent_replicas", "prescale_hpa_desired_replicas", "prescale_metric_value", "prescale_metric_target",
			"prescale_decisions_total", "prescale_leader", "prescale_config_last_reload_successful", "prescale_metric_missing",
			"prescale_forecast_load", "prescale_forecast_lower", "prescale_forecast_upper", "prescale_forecast_gated",
			"prescale_forecast_replicas", "prescale_objective_missing", "prescale_forecast_load_missing"} {
			if !bytes.Contains(b, []byte(m)) {
				t.Errorf("the dashboard never queries %s", m)
			}
		}
	})
}

// canI is one `kubectl auth can-i` question about the service account.
type canI struct {
	args []string
	want bool
}

// TestDeploy applies what deploy/ ships to a real API server and runs prescale with exactly
// the service account's rights.
func TestDeploy(t *testing.T) {
	kubectl := bin(t, "kubectl")
	binDir := filepath.Dir(kubectl)
	prescale := buildPrescale(t)
	tmp := t.TempDir()

	ctx := klog.NewContext(context.Background(), klog.Background())
	st, kube, admin := upSandbox(t, ctx, binDir, filepath.Join(tmp, "sandbox"), kubectl)

	// Server-side dry-run needs the namespace to exist for the namespaced objects.
	admin("", "create", "namespace", namespace)

	t.Run("kustomize dry-run", func(t *testing.T) {
		out := admin("", "apply", "-k", overlay, "--server-side", "--dry-run=server")
		for _, want := range []string{"clusterrole.rbac.authorization.k8s.io/prescale serverside-applied", "deployment.apps/prescale serverside-applied",
			"networkpolicy.networking.k8s.io/prescale serverside-applied", "validatingadmissionpolicy.admissionregistration.k8s.io/prescale-annotation-only serverside-applied",
			"validatingadmissionpolicy.admissionregistration.k8s.io/prescale-capacity-buffers serverside-applied"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl apply -k: no %q in:\n%s", want, out)
			}
		}
	})

	t.Run("helm dry-run", func(t *testing.T) {
		rendered := helmTemplate(t, "rbac.extraScaleTargets[0].apiGroup=leaderworkerset.x-k8s.io",
			"rbac.extraScaleTargets[0].resource=leaderworkersets", "networkPolicy.apiServer.cidrs={10.0.0.0/16}")
		out := admin(rendered, "apply", "--server-side", "--dry-run=server", "-f", "-")
		for _, kind := range []string{"serviceaccount", "clusterrole.rbac.authorization.k8s.io", "clusterrolebinding.rbac.authorization.k8s.io",
			"role.rbac.authorization.k8s.io", "rolebinding.rbac.authorization.k8s.io", "configmap", "service", "deployment.apps",
			"poddisruptionbudget.policy", "networkpolicy.networking.k8s.io", "validatingadmissionpolicy.admissionregistration.k8s.io",
			"validatingadmissionpolicybinding.admissionregistration.k8s.io"} {
			if !strings.Contains(out, kind+"/") {
				t.Errorf("helm template | kubectl apply: no %s in:\n%s", kind, out)
			}
		}
	})

	// Really apply everything but the Deployment (there is no image to run).
	admin(withoutDeployment(admin("", "kustomize", overlay)), "apply", "--server-side", "-f", "-")
	t.Run("can-i", func(t *testing.T) {
		questions := []canI{
			// The informers.
			{[]string{"list", "pods", "-A"}, true},
			{[]string{"watch", "pods", "-A"}, true},
			{[]string{"list", "nodes"}, true},
			{[]string{"watch", "nodes"}, true},
			{[]string{"list", "horizontalpodautoscalers.autoscaling", "-A"}, true},
			{[]string{"watch", "horizontalpodautoscalers.autoscaling", "-A"}, true},
			// The scale subresource.
			{[]string{"get", "deployments.apps", "--subresource=scale", "-n", "inference"}, true},
			{[]string{"update", "deployments.apps", "--subresource=scale", "-n", "inference"}, true},
			{[]string{"get", "statefulsets.apps", "--subresource=scale", "-n", "inference"}, true},
			{[]string{"update", "statefulsets.apps", "--subresource=scale", "-n", "inference"}, true},
			// The decision annotation, and the pod template of a target not watched.
			{[]string{"patch", "deployments.apps", "-n", "inference"}, true},
			{[]string{"patch", "statefulsets.apps", "-n", "inference"}, true},
			{[]string{"get", "deployments.apps", "-n", "inference"}, true},
			{[]string{"get", "statefulsets.apps", "-n", "inference"}, true},
			{[]string{"list", "deployments.apps", "-A"}, true},
			{[]string{"watch", "deployments.apps", "-A"}, true},
			{[]string{"watch", "statefulsets.apps", "-A"}, true},
			// Events.
			{[]string{"create", "events", "-n", "inference"}, true},
			{[]string{"patch", "events", "-n", "inference"}, true},
			// The Lease, in its own namespace only.
			{[]string{"create", "leases.coordination.k8s.io", "-n", namespace}, true},
			{[]string{"get", "leases.coordination.k8s.io/prescale", "-n", namespace}, true},
			{[]string{"update", "leases.coordination.k8s.io/prescale", "-n", namespace}, true},
			{[]string{"update", "leases.coordination.k8s.io/kube-scheduler", "-n", namespace}, false},
			{[]string{"create", "leases.coordination.k8s.io", "-n", "default"}, false},
			{[]string{"update", "leases.coordination.k8s.io/kube-scheduler", "-n", "kube-system"}, false},
			{[]string{"delete", "leases.coordination.k8s.io/prescale", "-n", namespace}, false},
			// Never.
			{[]string{"get", "secrets", "-n", namespace}, false},
			{[]string{"list", "secrets", "-A"}, false},
			{[]string{"get", "configmaps", "-n", "kube-system"}, false},
			{[]string{"delete", "pods", "-n", "inference"}, false},
			{[]string{"create", "pods", "-n", "inference"}, false},
			{[]string{"create", "pods", "--subresource=eviction", "-n", "inference"}, false},
			{[]string{"delete", "deployments.apps", "-n", "inference"}, false},
			{[]string{"delete", "nodes"}, false},
			{[]string{"patch", "nodes"}, false},
			{[]string{"update", "deployments.apps", "-n", "inference"}, false},
			{[]string{"create", "deployments.apps", "-n", "inference"}, false},
			{[]string{"patch", "deployments.apps", "--subresource=status", "-n", "inference"}, false},
			{[]string{"update", "horizontalpodautoscalers.autoscaling", "-n", "inference"}, false},
			{[]string{"delete", "events", "-n", "inference"}, false},
			{[]string{"create", "serviceaccounts", "--subresource=token", "-n", namespace}, false},
			{[]string{"impersonate", "users"}, false},
			{[]string{"escalate", "clusterroles.rbac.authorization.k8s.io"}, false},
		}
		for _, q := range questions {
			if got := ask(t, kubectl, st.Kubeconfig, account, q.args); got != q.want {
				t.Errorf("can-i %s as the service account: got %v, want %v", strings.Join(q.args, " "), got, q.want)
			}
		}
	})

	// The overlay's CRD and the CapacityBuffer CRD are not installed, so kubectl cannot map
	// them: ask the API directly.
	allowed := func(verb, group, resource, subresource, ns string) bool {
		t.Helper()
		sar, err := kube.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: account, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"},
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb,
				Group: group, Resource: resource, Subresource: subresource}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return sar.Status.Allowed
	}
	t.Run("custom resource scale", func(t *testing.T) {
		for _, verb := range []string{"get", "update"} {
			if !allowed(verb, "leaderworkerset.x-k8s.io", "leaderworkersets", "scale", "inference") {
				t.Errorf("%s leaderworkersets/scale: not allowed", verb)
			}
		}
	})
	t.Run("capacity buffers", func(t *testing.T) {
		for _, q := range []struct {
			verb, ns string
			want     bool
		}{
			{"list", "", true}, {"watch", "", true},
			{"create", "inference", true}, {"patch", "inference", true}, {"delete", "inference", true},
			{"update", "inference", false}, {"get", "inference", false}, {"deletecollection", "inference", false},
		} {
			if got := allowed(q.verb, "autoscaling.x-k8s.io", "capacitybuffers", "", q.ns); got != q.want {
				t.Errorf("%s capacitybuffers in %q: allowed %v, want %v", q.verb, q.ns, got, q.want)
			}
		}
	})

	// A kubeconfig holding only a token of the service account.
	tok, err := kube.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, "prescale",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create a token for the service account: %v", err)
	}
	adminCfg, err := clientcmd.LoadFromFile(st.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	saCfg := clientcmdapi.NewConfig()
	for name, c := range adminCfg.Clusters {
		saCfg.Clusters[name] = c
		saCfg.Contexts["prescale"] = &clientcmdapi.Context{Cluster: name, AuthInfo: "prescale", Namespace: namespace}
	}
	saCfg.AuthInfos["prescale"] = &clientcmdapi.AuthInfo{Token: tok.Status.Token}
	saCfg.CurrentContext = "prescale"
	saKubeconfig := filepath.Join(tmp, "prescale.kubeconfig")
	if err := clientcmd.WriteToFile(*saCfg, saKubeconfig); err != nil {
		t.Fatal(err)
	}
	if who := mustRun(t, "", kubectl, "--kubeconfig", saKubeconfig, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}"); who != account {
		t.Fatalf("the token authenticates as %q, want %q", who, account)
	}

	saRest, err := clientcmd.BuildConfigFromFlags("", saKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := kubernetes.NewForConfig(saRest)
	if err != nil {
		t.Fatal(err)
	}

	w := sandbox.Workload{Namespace: "inference", Name: "llama", Replicas: 1, GPUs: 1, StartupDelay: time.Second}
	if err := w.Apply(ctx, kube); err != nil {
		t.Fatal(err)
	}

	t.Run("prescale run with the service account scales a workload", func(t *testing.T) {
		// A constant scalar query: 20 against a Value target of 5 asks for 4 replicas (the
		// HPA's Value semantics: ceil(1 x 20/5)), within one scale-up step from 1 (+4 pods).
		conf := fmt.Sprintf(`prometheus: {url: %s, timeout: 2s}
interval: 1s
leaderElection: {namespace: %s, name: prescale, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 500ms}
policies:
  - name: llama
    target: {apiVersion: apps/v1, kind: Deployment, namespace: inference, name: llama}
    minReplicas: 1
    maxReplicas: 4
    metrics:
      - name: load
        query: vector(20)
        target: {type: Value, value: 5}
`, st.PrometheusURL, namespace)
		confPath := filepath.Join(tmp, "prescale.yaml")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		logPath := filepath.Join(tmp, "prescale.log")
		logFile, err := os.Create(logPath)
		if err != nil {
			t.Fatal(err)
		}
		defer logFile.Close()
		addr := testutil.FreeAddr(t)
		cmd := exec.Command(prescale, "run", "-f", confPath, "--kubeconfig", saKubeconfig, "--identity", "deploy-e2e",
			"--listen-address", addr, "-v=2")
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		stopped := false
		stop := func() {
			if stopped {
				return
			}
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				t.Errorf("prescale did not stop within 15s of SIGTERM")
				_ = cmd.Process.Kill()
				<-done
			}
		}
		defer func() {
			stop()
			if t.Failed() {
				b, _ := os.ReadFile(logPath)
				t.Logf("prescale log:\n%s", testutil.Tail(string(b), 4000))
			}
		}()

		poll(t, 90*time.Second, "the Deployment scaled from 1 to 4 replicas", func(ctx context.Context) error {
			d, err := kube.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if *d.Spec.Replicas != 4 {
				return fmt.Errorf("spec.replicas %d", *d.Spec.Replicas)
			}
			return nil
		})
		// Both are written after the scale, the event by a goroutine of its own.
		poll(t, 30*time.Second, "the decision annotation and a SuccessfulRescale event", func(ctx context.Context) error {
			d, err := kube.AppsV1().Deployments(w.Namespace).Get(ctx, w.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if d.Annotations["prescale.io/decision"] == "" {
				return fmt.Errorf("no decision annotation in %v", d.Annotations)
			}
			evs, err := kube.CoreV1().Events(w.Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return err
			}
			var seen []string
			for _, e := range evs.Items {
				if e.Reason == "SuccessfulRescale" && e.Source.Component == "prescale" {
					return nil
				}
				seen = append(seen, e.Source.Component+"/"+e.Reason)
			}
			return fmt.Errorf("no SuccessfulRescale event from prescale among %q", seen)
		})
		lease, err := kube.CoordinationV1().Leases(namespace).Get(ctx, "prescale", metav1.GetOptions{})
		if err != nil || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "deploy-e2e" {
			t.Errorf("the Lease %s/prescale is not held by deploy-e2e: %+v, %v", namespace, lease, err)
		}
		poll(t, 30*time.Second, "/metrics to say prescale_leader 1", func(ctx context.Context) error {
			body, err := get(ctx, "http://"+addr+"/metrics")
			if err != nil {
				return err
			}
			for _, line := range strings.Split(body, "\n") {
				if strings.HasPrefix(line, "prescale_leader ") {
					if line != "prescale_leader 1" {
						return fmt.Errorf("%q", line)
					}
					return nil
				}
			}
			return fmt.Errorf("no prescale_leader series")
		})

		// What RBAC allows (patch deployments) but the admission policy forbids, as the service
		// account: server-side dry-run goes
		// through admission and writes nothing. The policy takes effect once the API server's
		// informer has it: poll.
		patch := func(ctx context.Context, p string) error {
			_, err := sa.AppsV1().Deployments(w.Namespace).Patch(ctx, w.Name, types.MergePatchType, []byte(p),
				metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}
		var perr error
		poll(t, 20*time.Second, "the admission policy to reject a patch of the spec", func(ctx context.Context) error {
			perr = patch(ctx, `{"spec":{"paused":true}}`)
			if apierrors.IsInvalid(perr) && strings.Contains(perr.Error(), "prescale-annotation-only") {
				return nil
			}
			return fmt.Errorf("the patch: %v", perr)
		})
		for name, p := range map[string]string{
			"another annotation": `{"metadata":{"annotations":{"other":"x"}}}`,
			"a label":            `{"metadata":{"labels":{"other":"x"}}}`,
			// The garbage collector would delete the Deployment: its owner does not exist.
			"an owner reference": `{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"gone","uid":"6d1d5b3c-0000-4000-8000-000000000001"}]}}`,
			"a finalizer":        `{"metadata":{"finalizers":["example.com/never"]}}`,
		} {
			if err := patch(ctx, p); err == nil || !strings.Contains(err.Error(), "prescale-annotation-only") {
				t.Errorf("the service account may set %s on a target: %v", name, err)
			}
		}
		if err := patch(ctx, `{"metadata":{"annotations":{"prescale.io/decision":"{}"}}}`); err != nil {
			t.Errorf("the service account may not write its own annotation: %v", err)
		}
		out, err := run("", kubectl, "--kubeconfig", saKubeconfig, "-n", namespace, "get", "secrets")

		if err == nil || !strings.Contains(out, "forbidden") {
			t.Errorf("the service account read secrets: %v\n%s", err, out)
		}

		stop()
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(strings.ToLower(string(b)), "forbidden") {
			t.Errorf("prescale's log mentions forbidden:\n%s", testutil.Tail(string(b), 4000))
		}
		if !strings.Contains(string(b), "Became the leader") || !strings.Contains(string(b), "Rescaled") {
			t.Errorf("prescale's log lacks the leadership or the rescale:\n%s", testutil.Tail(string(b), 4000))
		}
	})

	// The example overlay's extra scale target, a LeaderWorkerSet: a CRD of that name with a
	// scale subresource stands in for the real one. The service account may write its /scale
	// and the decision annotation, nothing else of the object (issue 15, item 11).
	t.Run("extra scale target", func(t *testing.T) {
		admin(lwsCRD, "apply", "-f", "-")
		admin("", "wait", "--for", "condition=established", "--timeout=60s", "crd/leaderworkersets.leaderworkerset.x-k8s.io")
		admin(`apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata: {name: lws, namespace: inference}
spec: {replicas: 1, leaderWorkerTemplate: {size: 2}}
`, "apply", "-f", "-")
		saDyn, err := dynamic.NewForConfig(saRest)
		if err != nil {
			t.Fatal(err)
		}
		gvr := schema.GroupVersionResource{Group: "leaderworkerset.x-k8s.io", Version: "v1", Resource: "leaderworkersets"}
		patch := func(ctx context.Context, p string) error {
			_, err := saDyn.Resource(gvr).Namespace("inference").Patch(ctx, "lws", types.MergePatchType, []byte(p),
				metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
			return err
		}
		var perr error
		poll(t, 20*time.Second, "the admission policy to reject a patch of the LeaderWorkerSet's spec", func(ctx context.Context) error {
			perr = patch(ctx, `{"spec":{"leaderWorkerTemplate":{"size":8}}}`)
			if apierrors.IsInvalid(perr) && strings.Contains(perr.Error(), "prescale-annotation-only") {
				return nil
			}
			return fmt.Errorf("the patch: %v", perr)
		})
		for name, p := range map[string]string{
			"the replicas in the spec": `{"spec":{"replicas":5}}`,
			"a label":                  `{"metadata":{"labels":{"other":"x"}}}`,
			"an owner reference":       `{"metadata":{"ownerReferences":[{"apiVersion":"v1","kind":"ConfigMap","name":"gone","uid":"6d1d5b3c-0000-4000-8000-000000000001"}]}}`,
			"a finalizer":              `{"metadata":{"finalizers":["example.com/never"]}}`,
		} {
			if err := patch(ctx, p); err == nil || !strings.Contains(err.Error(), "prescale-annotation-only") {
				t.Errorf("the service account may set %s on a LeaderWorkerSet: %v", name, err)
			}
		}
		if err := patch(ctx, `{"metadata":{"annotations":{"prescale.io/decision":"{}"}}}`); err != nil {
			t.Errorf("the service account may not write its annotation on a LeaderWorkerSet: %v", err)
		}
		// The replicas through /scale, as prescale writes them.
		s, err := saDyn.Resource(gvr).Namespace("inference").Get(ctx, "lws", metav1.GetOptions{}, "scale")
		if err != nil {
			t.Fatalf("get the LeaderWorkerSet's scale as the service account: %v", err)
		}
		if err := unstructured.SetNestedField(s.Object, int64(3), "spec", "replicas"); err != nil {
			t.Fatal(err)
		}
		if _, err := saDyn.Resource(gvr).Namespace("inference").Update(ctx, s, metav1.UpdateOptions{DryRun: []string{metav1.DryRunAll}}, "scale"); err != nil {
			t.Errorf("update the LeaderWorkerSet's scale as the service account: %v", err)
		}
	})

	// A patch of type apply creates a missing object: RBAC asks for create, which prescale has not.
	t.Run("no create through an apply patch", func(t *testing.T) {
		_, err := sa.AppsV1().Deployments("inference").Patch(ctx, "new", types.ApplyPatchType,
			[]byte(`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"new"},"spec":{"selector":{"matchLabels":{"app":"new"}},`+
				`"template":{"metadata":{"labels":{"app":"new"}},"spec":{"containers":[{"name":"c","image":"x"}]}}}}`),
			metav1.PatchOptions{FieldManager: "e2e", DryRun: []string{metav1.DryRunAll}})
		if !apierrors.IsForbidden(err) {
			t.Errorf("an apply patch of a missing Deployment as the service account: %v, want forbidden", err)
		}
	})

	// The CapacityBuffers prescale sizes (docs/capacity.md): with Karpenter's CapacityBuffer CRD
	// installed, the service account may create, resize and delete its own buffers, as it
	// writes them (server-side apply, field manager prescale), and the admission policy
	// refuses a buffer not labelled as prescale's, not named prescale-<policy> after its
	// policy label or on a PodTemplate, and any change or deletion of a buffer someone else
	// made.
	t.Run("capacity buffer admission", func(t *testing.T) {
		admin("", "apply", "--server-side", "-f", filepath.Join(binDir, "karpenter-crds", "autoscaling.x-k8s.io_capacitybuffers.yaml"))
		admin("", "wait", "--for", "condition=established", "--timeout=60s", "crd/capacitybuffers.autoscaling.x-k8s.io")
		// The later subtests' prescale finds the API not served, as before.
		defer admin("", "delete", "crd", "capacitybuffers.autoscaling.x-k8s.io", "--wait=true")
		admin(`apiVersion: autoscaling.x-k8s.io/v1beta1
kind: CapacityBuffer
metadata: {name: theirs, namespace: inference}
spec: {replicas: 2, scalableRef: {apiGroup: apps, kind: Deployment, name: llama}}
---
apiVersion: autoscaling.x-k8s.io/v1beta1
kind: CapacityBuffer
metadata:
  name: prescale-llama
  namespace: inference
  labels: {app.kubernetes.io/managed-by: prescale, prescale.io/policy: llama, prescale.io/install: prescale.prescale}
spec: {replicas: 1, scalableRef: {apiGroup: apps, kind: Deployment, name: llama}}
`, "apply", "-f", "-")
		saDyn, err := dynamic.NewForConfig(saRest)
		if err != nil {
			t.Fatal(err)
		}
		buffers := saDyn.Resource(schema.GroupVersionResource{Group: "autoscaling.x-k8s.io", Version: "v1beta1", Resource: "capacitybuffers"}).Namespace("inference")
		dry := []string{metav1.DryRunAll}
		apply := func(ctx context.Context, name string, labels map[string]any, spec map[string]any) error {
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": "autoscaling.x-k8s.io/v1beta1", "kind": "CapacityBuffer",
				"metadata": map[string]any{"name": name, "namespace": "inference", "labels": labels},
				"spec":     spec,
			}}
			_, err := buffers.Apply(ctx, name, u, metav1.ApplyOptions{FieldManager: "prescale", Force: true, DryRun: dry})
			return err
		}
		// ours is the labels prescale gives the buffer of policy.
		ours := func(policy string) map[string]any {
			return map[string]any{"app.kubernetes.io/managed-by": "prescale", "prescale.io/policy": policy, "prescale.io/install": "prescale.prescale"}
		}
		target := map[string]any{"replicas": int64(3), "scalableRef": map[string]any{"apiGroup": "apps", "kind": "Deployment", "name": "llama"}}
		// The policy takes effect on the new resource once the API server's informer has it.
		var perr error
		poll(t, 20*time.Second, "the admission policy to refuse a buffer without prescale's label", func(ctx context.Context) error {
			perr = apply(ctx, "prescale-new", map[string]any{"prescale.io/policy": "new"}, target)
			if apierrors.IsInvalid(perr) && strings.Contains(perr.Error(), "prescale-capacity-buffers") {
				return nil
			}
			return fmt.Errorf("the apply: %v", perr)
		})
		if !strings.Contains(perr.Error(), "must be labelled app.kubernetes.io/managed-by=prescale") {
			t.Errorf("a buffer without prescale's label: %v, want the label's message", perr)
		}
		for _, c := range []struct {
			what string
			err  error
			want string // "": allowed
		}{
			{"create a buffer of its own", apply(ctx, "prescale-new", ours("new"), target), ""},
			{"resize its buffer", apply(ctx, "prescale-llama", ours("llama"), target), ""},
			{"delete its buffer", buffers.Delete(ctx, "prescale-llama", metav1.DeleteOptions{DryRun: dry}), ""},
			{"create a buffer named otherwise", apply(ctx, "other", ours("other"), target), "are named prescale-<policy>"},
			{"create a buffer named for another policy", apply(ctx, "prescale-new", ours("llama"), target), "are named prescale-<policy>"},
			{"create a buffer on a PodTemplate", apply(ctx, "prescale-template", ours("template"), map[string]any{"replicas": int64(1), "podTemplateRef": map[string]any{"name": "llama"}}),
				"never a PodTemplate"},
			{"remove the label of its buffer", apply(ctx, "prescale-llama", map[string]any{"app.kubernetes.io/managed-by": "someone", "prescale.io/policy": "llama"}, target),
				"must be labelled app.kubernetes.io/managed-by=prescale"},
			{"resize a buffer someone else made", func() error {
				_, err := buffers.Patch(ctx, "theirs", types.MergePatchType, []byte(`{"spec":{"replicas":5}}`), metav1.PatchOptions{DryRun: dry})
				return err
			}(), "change or delete only the CapacityBuffers labelled"},
			{"delete a buffer someone else made", buffers.Delete(ctx, "theirs", metav1.DeleteOptions{DryRun: dry}), "change or delete only the CapacityBuffers labelled"},
		} {
			switch {
			case c.want == "" && c.err != nil:
				t.Errorf("the service account may not %s: %v", c.what, c.err)
			case c.want != "" && (!apierrors.IsInvalid(c.err) || !strings.Contains(c.err.Error(), c.want)):
				t.Errorf("the service account may %s: %v, want refused with %q", c.what, c.err, c.want)
			}
		}
	})

	// The writes bound in the target namespaces only (issue 15, item 12): the namespaced
	// overlay replaces the cluster-wide binding, and the chart with rbac.targetNamespaces,
	// installed as another release (its own service account), does the same.
	t.Run("target namespaces", func(t *testing.T) {
		admin("", "create", "namespace", "other")
		admin(withoutDeployment(admin("", "kustomize", namespaced)), "apply", "--server-side", "-f", "-")
		admin("", "delete", "clusterrolebinding", "prescale-targets")
		helmNS, helmAccount := "prescale-helm", "system:serviceaccount:prescale-helm:scoped-prescale"
		admin("", "create", "namespace", helmNS)
		rendered := mustRun(t, "", bin(t, "helm"), "template", "scoped", chart, "--namespace", helmNS,
			"--set", "rbac.targetNamespaces={inference}", "--set", "admissionPolicy.enabled=false")
		admin(withoutDeployment(rendered), "apply", "--server-side", "-f", "-")
		for _, as := range []string{account, helmAccount} {
			for _, q := range []canI{
				{[]string{"update", "deployments.apps", "--subresource=scale", "-n", "inference"}, true},
				{[]string{"get", "deployments.apps", "--subresource=scale", "-n", "inference"}, true},
				{[]string{"patch", "deployments.apps", "-n", "inference"}, true},
				{[]string{"create", "events", "-n", "inference"}, true},
				{[]string{"update", "deployments.apps", "--subresource=scale", "-n", "other"}, false},
				{[]string{"get", "deployments.apps", "--subresource=scale", "-n", "other"}, false},
				{[]string{"patch", "deployments.apps", "-n", "other"}, false},
				{[]string{"update", "statefulsets.apps", "--subresource=scale", "-n", "other"}, false},
				{[]string{"create", "events", "-n", "other"}, false},
				// Cluster-wide still: the informers.
				{[]string{"list", "pods", "-A"}, true},
				{[]string{"watch", "nodes"}, true},
				{[]string{"list", "horizontalpodautoscalers.autoscaling", "-A"}, true},
			} {
				if got := ask(t, kubectl, st.Kubeconfig, as, q.args); got != q.want {
					t.Errorf("can-i %s as %s: got %v, want %v", strings.Join(q.args, " "), as, got, q.want)
				}
			}
		}
	})
}

// lwsCRD is a stand-in for the LeaderWorkerSet CRD: the same group and resource, a scale
// subresource, and a schema that keeps any field.
const lwsCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: leaderworkersets.leaderworkerset.x-k8s.io}
spec:
  group: leaderworkerset.x-k8s.io
  names: {kind: LeaderWorkerSet, plural: leaderworkersets, singular: leaderworkerset, listKind: LeaderWorkerSetList}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      subresources:
        status: {}
        scale: {specReplicasPath: .spec.replicas, statusReplicasPath: .status.replicas}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              x-kubernetes-preserve-unknown-fields: true
              properties: {replicas: {type: integer, format: int32}}
            status:
              type: object
              x-kubernetes-preserve-unknown-fields: true
              properties: {replicas: {type: integer, format: int32}}
`

// withoutDeployment drops the Deployment from a YAML stream (there is no image to run).
func withoutDeployment(stream string) string {
	var objs []string
	for _, d := range strings.Split(stream, "\n---\n") {
		if !strings.Contains(d, "\nkind: Deployment\n") && !strings.HasPrefix(d, "kind: Deployment\n") {
			objs = append(objs, d)
		}
	}
	return strings.Join(objs, "\n---\n")
}

// ask asks `kubectl auth can-i` whether user may do args, and fails the test on an answer
// that is neither yes nor no.
func ask(t *testing.T, kubectl, kubeconfig, user string, args []string) bool {
	t.Helper()
	cmd := exec.Command(kubectl, append(append([]string{"--kubeconfig", kubeconfig, "auth", "can-i"}, args...), "--as="+user)...)
	b, err := cmd.Output() // the answer; warnings go to standard error
	switch out := strings.TrimSpace(string(b)); {
	case out == "yes" && err == nil:
		return true
	case out == "no":
		return false
	default:
		t.Errorf("can-i %s as %s: unexpected answer %q (%v)", strings.Join(args, " "), user, out, err)
		return false
	}
}

func ptr[T any](v T) *T { return &v }

// running reports whether pid runs and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// upSandbox starts a sandbox of 2 nodes x 4 GPUs in stateDir, from the tools in binDir, and
// returns it, a client and admin, which runs kubectl as its admin (stdin, then the
// arguments). It is torn down when the test ends, and the test fails if any of its
// processes outlives that.
func upSandbox(t *testing.T, ctx context.Context, binDir, stateDir, kubectl string) (*sandbox.State, kubernetes.Interface, func(stdin string, args ...string) string) {
	t.Helper()
	st, err := sandbox.Up(ctx, sandbox.Options{BinDir: binDir, StateDir: stateDir, Nodes: 2, GPUsPerNode: 4})
	t.Cleanup(func() {
		if st == nil {
			return
		}
		if err := sandbox.Down(context.Background(), st.Dir); err != nil {
			t.Errorf("sandbox down: %v", err)
		}
		for _, p := range st.Processes {
			if running(p.PID) {
				t.Errorf("%s (pid %d) still runs after sandbox.Down", p.Name, p.PID)
			}
		}
	})
	if err != nil {
		t.Fatalf("sandbox up: %v", err)
	}
	kube, err := st.Client()
	if err != nil {
		t.Fatal(err)
	}
	admin := func(stdin string, args ...string) string {
		t.Helper()
		return mustRun(t, stdin, kubectl, append([]string{"--kubeconfig", st.Kubeconfig}, args...)...)
	}
	return st, kube, admin
}

// poll calls check every 250 ms until it returns nil, and fails the test after timeout with
// check's last error, which says what it saw last.
func poll(t *testing.T, timeout time.Duration, what string, check func(context.Context) error) {
	t.Helper()
	last := errors.New("never checked")
	err := wait.PollUntilContextTimeout(context.Background(), 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		last = check(ctx)
		return last == nil, nil
	})
	if err != nil {
		t.Fatalf("timed out after %s waiting for %s: %v", timeout, what, last)
	}
}

func get(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	if _, err := b.ReadFrom(resp.Body); err != nil {
		return "", err
	}
	return b.String(), nil
}
