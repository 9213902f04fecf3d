package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prescale/prescale/policy"
)

const importTestdata = "../../hpaimport/testdata/"

// TestImport runs prescale import on manifests end to end (no cluster) and loads what it
// wrote as prescale validate does.
func TestImport(t *testing.T) {
	queue, err := os.ReadFile(importTestdata + "hpa/queue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	gpu, err := os.ReadFile(importTestdata + "hpa/gpu.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		args  []string
		stdin string
		// output: write to a file with -o, checked instead of stdout.
		output     bool
		wantCode   int
		wantPolicy string   // validate's line for the written file
		wantOut    []string // in the file
		wantStderr []string
	}{
		{
			name:       "an HPA and the chart's values into a file",
			args:       []string{"--adapter-config", importTestdata + "helm/vllm.yaml", "-f", importTestdata + "hpa/vllm.yaml"},
			output:     true,
			wantPolicy: "policy file ok: 1 policy (llama-70b)\n",
			wantOut: []string{"# prometheus-adapter " + importTestdata + "helm/vllm.yaml (Helm values) rules.custom[0]",
				`query: 'sum(vllm:num_requests_running{namespace="inference",pod=~"llama-70b-[a-z0-9]+-[a-z0-9]{5}"}) by (pod)'`,
				"dryRun: true"},
		},
		{
			name: "two HPAs in one stream on standard input, two adapter configs",
			args: []string{"--adapter-config", importTestdata + "configmap/queue.yaml", "--adapter-config", importTestdata + "adapter/gpu.yaml", "-f", "-"},
			// Two documents, the second an HPA list as kubectl get -o yaml writes it.
			stdin:      string(queue) + "---\napiVersion: v1\nkind: List\nitems:\n" + indent(string(gpu)),
			wantPolicy: "policy file ok: 2 policies (external-queue-scaler, triton)\n",
			wantOut:    []string{"# HPA default/external-queue-scaler", "# HPA gpu/triton", "externalRules[1]", "(adapter config) rules[0]"},
		},
		{
			name:       "a metric no rule serves: the HPA, the metric and the rules tried, exit 1",
			args:       []string{"--adapter-config", importTestdata + "adapter/gpu.yaml", "-f", importTestdata + "hpa/vllm.yaml"},
			wantCode:   1,
			wantStderr: []string{"HPA inference/llama-70b metrics[0]: Pods metric vllm_num_requests_running: no prometheus-adapter rule serves it", "rules tried:"},
		},
		{
			name:       "a malformed adapter config: the file and the line, exit 2",
			args:       []string{"--adapter-config", importTestdata + "bad/indent.yaml", "-f", importTestdata + "hpa/vllm.yaml"},
			wantCode:   2,
			wantStderr: []string{"prescale: adapter config " + importTestdata + "bad/indent.yaml: yaml: line 6: did not find expected key"},
		},
		{
			name:       "no HPAs: bad usage, exit 2",
			args:       []string{"--adapter-config", importTestdata + "helm/vllm.yaml"},
			wantCode:   2,
			wantStderr: []string{"no HPAs: give -f FILE"},
		},
		{
			name:       "manifests and names at once, exit 2",
			args:       []string{"-f", importTestdata + "hpa/vllm.yaml", "inference/llama-70b"},
			wantCode:   2,
			wantStderr: []string{"either as manifests (-f) or as names"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "policy.yaml")
			args := append([]string{"import"}, tt.args...)
			if tt.output {
				args = append(args, "-o", out)
			}
			var stdout, stderr bytes.Buffer
			code := execute(args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			for _, w := range tt.wantStderr {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr.String())
				}
			}
			if tt.wantCode != 0 {
				return
			}
			written := stdout.Bytes()
			if tt.output {
				if stdout.Len() != 0 {
					t.Errorf("stdout with -o: %q", stdout.String())
				}
				var err error
				if written, err = os.ReadFile(out); err != nil {
					t.Fatal(err)
				}
			}
			for _, w := range tt.wantOut {
				if !bytes.Contains(written, []byte(w)) {
					t.Errorf("the file has no %q:\n%s", w, written)
				}
			}
			var vout, verr bytes.Buffer
			if code := execute([]string{"validate", "-f", "-"}, bytes.NewReader(written), &vout, &verr); code != 0 || vout.String() != tt.wantPolicy {
				t.Errorf("validate: exit %d, stdout %q, want %q; stderr:\n%s", code, vout.String(), tt.wantPolicy, verr.String())
			}
		})
	}
}

// indent makes a manifest an item of a List.
func indent(doc string) string {
	var b strings.Builder
	first := true
	for _, l := range strings.Split(strings.TrimRight(doc, "\n"), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if first {
			b.WriteString("  - " + l + "\n")
			first = false
			continue
		}
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

// namesProm answers Prometheus' label values API for __name__, and the rest as preflightProm.
type namesProm struct {
	names []string
	rest  http.Handler
}

func (f namesProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/label/__name__/values" {
		f.rest.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"status":"success","data":["%s"]}`, strings.Join(f.names, `","`))
}

// TestImportPrometheus: with --prometheus, import lists the series names to choose among the
// chart's default rules, then checks the result as validate --prometheus does.
func TestImportPrometheus(t *testing.T) {
	q := `sum(vllm:num_requests_running{namespace="inference",pod=~"llama-70b-[a-z0-9]+-[a-z0-9]{5}"}) by (pod)`
	prom := httptest.NewServer(namesProm{
		names: []string{"vllm:num_requests_running", "vllm:request_success_total", "container_cpu_usage_seconds_total"},
		rest:  &preflightProm{results: map[string]string{q: perPod("pod", 3, 4)}, authorized: func(*http.Request) error { return nil }},
	})
	defer prom.Close()
	args := []string{"import", "--adapter-config", importTestdata + "helm/defaults.yaml", "-f", importTestdata + "hpa/vllm-defaults.yaml"}

	var stdout, stderr bytes.Buffer
	if code := execute(args, nil, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "ambiguous: 6 series") {
		t.Errorf("without --prometheus: exit %d, want 1 and the 6 series the default rules might serve it from; stderr:\n%s", code, stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	code := execute(append(args, "--prometheus", prom.URL), nil, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "the chart's default rule 4 of 6") || !strings.Contains(stdout.String(), "query: '"+q+"'") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
	// The file alone on standard output; the preflight's report on standard error.
	if _, err := policy.Parse(strings.NewReader(stdout.String())); err != nil {
		t.Errorf("stdout is not a policy file: %v\n%s", err, stdout.String())
	}
	if want := "prometheus ok: 1 query of 1 policy checked against " + prom.URL + "\n"; stderr.String() != want {
		t.Errorf("stderr = %q, want %q", stderr.String(), want)
	}
}

// TestImportFromCluster reads HPAs from an API server (a fake one serving autoscaling/v2):
// NAMESPACE/NAME, NAME with --namespace, and every HPA of --namespace.
func TestImportFromCluster(t *testing.T) {
	hpa := func(ns, name string) string {
		return fmt.Sprintf(`{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscaler","metadata":{"name":%q,"namespace":%q},
"spec":{"scaleTargetRef":{"apiVersion":"apps/v1","kind":"Deployment","name":%q},"maxReplicas":4,
"metrics":[{"type":"Pods","pods":{"metric":{"name":"vllm_num_requests_running"},"target":{"type":"AverageValue","averageValue":"48"}}}]}}`, name, ns, name)
	}
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/apis/autoscaling/v2/namespaces/inference/horizontalpodautoscalers/llama-70b":
			_, _ = w.Write([]byte(hpa("inference", "llama-70b")))
		case "/apis/autoscaling/v2/namespaces/inference/horizontalpodautoscalers":
			fmt.Fprintf(w, `{"apiVersion":"autoscaling/v2","kind":"HorizontalPodAutoscalerList","metadata":{},"items":[%s,%s]}`,
				hpa("inference", "llama-70b"), hpa("inference", "mistral-7b"))
		default:
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404,"message":"not found"}`))
		}
	}))
	defer api.Close()
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters: [{name: fake, cluster: {server: "`+api.URL+`"}}]
users: [{name: fake, user: {}}]
contexts: [{name: fake, context: {cluster: fake, user: fake}}]
current-context: fake
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantPolicy string
		wantStderr string
	}{
		{name: "namespace/name", args: []string{"inference/llama-70b"}, wantPolicy: "policy file ok: 1 policy (llama-70b)\n"},
		{name: "a name in --namespace", args: []string{"--namespace", "inference", "llama-70b"}, wantPolicy: "policy file ok: 1 policy (llama-70b)\n"},
		{name: "every HPA of --namespace", args: []string{"-n", "inference"}, wantPolicy: "policy file ok: 2 policies (llama-70b, mistral-7b)\n"},
		{name: "an HPA that does not exist, exit 2", args: []string{"inference/nope"}, wantCode: 2, wantStderr: "get HPA inference/nope: "},
		{name: "a name without a namespace, exit 2", args: []string{"llama-70b"}, wantCode: 2, wantStderr: `HPA "llama-70b": give NAMESPACE/NAME, or NAME with --namespace`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"import", "--kubeconfig", kubeconfig, "--adapter-config", importTestdata + "adapter/vllm.yaml"}, tt.args...)
			var stdout, stderr bytes.Buffer
			if code := execute(args, nil, &stdout, &stderr); code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr does not say %q:\n%s", tt.wantStderr, stderr.String())
			}
			if tt.wantCode != 0 {
				return
			}
			var vout, verr bytes.Buffer
			if code := execute([]string{"validate", "-f", "-"}, &stdout, &vout, &verr); code != 0 || vout.String() != tt.wantPolicy {
				t.Errorf("validate: exit %d, stdout %q, want %q; stderr:\n%s", code, vout.String(), tt.wantPolicy, verr.String())
			}
		})
	}
}
