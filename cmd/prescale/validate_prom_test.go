package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// preflightProm plays Prometheus for validate --prometheus: instant queries answered from
// results (the JSON of a vector; an unknown query has an empty result), every metric name
// has series, and each request must pass authorized. It records the lookback_delta of each
// query.
type preflightProm struct {
	results    map[string]string
	authorized func(r *http.Request) error

	mu        sync.Mutex
	lookbacks []string
}

func (f *preflightProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if err := f.authorized(r); err != nil {
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"status":"error","errorType":"unauthorized","error":%q}`, err.Error())
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	switch r.URL.Path {
	case "/api/v1/series":
		name := strings.TrimSuffix(strings.TrimPrefix(r.Form.Get("match[]"), `{__name__="`), `"}`)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": []map[string]string{{"__name__": name}}})
	case "/api/v1/query":
		f.mu.Lock()
		f.lookbacks = append(f.lookbacks, r.Form.Get("lookback_delta"))
		f.mu.Unlock()
		res, ok := f.results[r.Form.Get("query")]
		if !ok {
			res = "[]"
		}
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"vector","result":%s}}`, res)
	default:
		http.NotFound(w, r)
	}
}

// perPod is the JSON of a vector of one series per value, labelled label="vllm-<i>".
func perPod(label string, values ...float64) string {
	var s []string
	for i, v := range values {
		s = append(s, fmt.Sprintf(`{"metric":{%q:"vllm-%d"},"value":[1764205200,"%g"]}`, label, i, v))
	}
	return "[" + strings.Join(s, ",") + "]"
}

const preflightPolicies = `policies:
  - name: web
    target: {apiVersion: apps/v1, kind: Deployment, namespace: default, name: web}
    maxReplicas: 4
    metrics:
      - {name: queue, query: "sum by (pod) (waiting)", target: {type: AverageValue, averageValue: 5}}
`

func TestValidatePrometheus(t *testing.T) {
	dir := t.TempDir()
	passwordFile := filepath.Join(dir, "password")
	if err := os.WriteFile(passwordFile, []byte("s3cr3t-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	open := func(*http.Request) error { return nil }
	guarded := func(r *http.Request) error {
		if u, p, ok := r.BasicAuth(); !ok || u != "prescale" || p != "s3cr3t-password" {
			return fmt.Errorf("want basic auth prescale:s3cr3t-password")
		}
		if got := r.Header.Get("X-Scope-OrgID"); got != "inference" {
			return fmt.Errorf("X-Scope-OrgID %q, want inference", got)
		}
		return nil
	}
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := strings.Replace(closed.URL, "http://", "http://prescale:s3cr3t-password@", 1)
	closed.Close()

	tests := []struct {
		name       string
		file       string
		results    map[string]string
		authorized func(r *http.Request) error
		// url replaces the fake's URL when set; {url} in the wants stands for the URL.
		url           string
		wantCode      int
		wantStdout    string
		wantStderr    string
		wantLookbacks []string
	}{
		{
			name:       "every query usable: how many were checked",
			file:       preflightPolicies,
			results:    map[string]string{"sum by (pod) (waiting)": perPod("pod", 1, 2)},
			authorized: open,
			wantStdout: "policy file ok: 1 policy (web)\nprometheus ok: 1 query of 1 policy checked against {url}\n",
			// The default staleness, 2m.
			wantLookbacks: []string{"2m0s"},
		},
		{
			name: "the staleness and the pod label of the settings",
			file: "staleness: 30s\nprometheus: {podLabel: kubernetes_pod_name}\n" + strings.Replace(preflightPolicies,
				"sum by (pod) (waiting)", "sum by (kubernetes_pod_name) (waiting)", 1),
			results:       map[string]string{"sum by (kubernetes_pod_name) (waiting)": perPod("kubernetes_pod_name", 1, 2)},
			authorized:    open,
			wantStdout:    "policy file ok: 1 policy (web)\nprometheus ok: 1 query of 1 policy checked against {url}\n",
			wantLookbacks: []string{"30s"},
		},
		{
			name: "the credentials and headers of the settings, as run sends them",
			file: "prometheus: {basicAuth: {username: prescale, passwordFile: " + passwordFile + "}, headers: {X-Scope-OrgID: inference}}\n" +
				preflightPolicies,
			results:       map[string]string{"sum by (pod) (waiting)": perPod("pod", 1, 2)},
			authorized:    guarded,
			wantStdout:    "policy file ok: 1 policy (web)\nprometheus ok: 1 query of 1 policy checked against {url}\n",
			wantLookbacks: []string{"2m0s"},
		},
		{
			name: "one line per problem, a count, exit 1",
			file: preflightPolicies + `      - {name: kv, query: "kv_cache_usage_perc", target: {type: AverageValue, averageValue: 80}}
`,
			results:    map[string]string{"kv_cache_usage_perc": perPod("pod", 0.2, 0.5)},
			authorized: open,
			wantCode:   1,
			wantStdout: "policy file ok: 1 policy (web)\n",
			// The empty query is asked again with an hour more of lookback (2m + 1h), to
			// tell stale from empty. 80 / 0.5 = 160.
			wantStderr: `policy web, metric queue: no-series: query "sum by (pod) (waiting)" returned no series
policy web, metric kv: scale: query "kv_cache_usage_perc": all 2 values (largest 0.5) are within 0..1 against averageValue 80, 160 times the largest: a 0..1 ratio against a target on another scale, such as a percentage (multiply the query by 100, or write the target as a ratio)
2 problems in 2 queries of 1 policy checked against {url}
`,
			wantLookbacks: []string{"1h2m0s", "2m0s", "2m0s"},
		},
		{
			name:       "an unreachable Prometheus, its password redacted, exit 2",
			file:       preflightPolicies,
			url:        closedURL,
			wantCode:   2,
			wantStdout: "policy file ok: 1 policy (web)\n",
			wantStderr: "prescale: preflight against " + strings.Replace(closedURL, "s3cr3t-password", "xxxxx", 1) + ": policy web, metric queue: ",
		},
		{
			name:       "a URL that is not http(s), exit 2",
			file:       preflightPolicies,
			url:        "prometheus:9090",
			wantCode:   2,
			wantStdout: "policy file ok: 1 policy (web)\n",
			wantStderr: `prescale: --prometheus prometheus:9090: prometheus source options: url: must be an absolute http or https URL, got "prometheus:9090"` + "\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PRESCALE_FILE", "")
			fake := &preflightProm{results: tc.results, authorized: tc.authorized}
			srv := httptest.NewServer(fake)
			defer srv.Close()
			url := srv.URL
			if tc.url != "" {
				url = tc.url
			}
			code, stdout, stderr := runPrescale(t, tc.file, "validate", "-f", "-", "--prometheus", url)
			if code != tc.wantCode {
				t.Errorf("exit code = %d, want %d; stderr:\n%s", code, tc.wantCode, stderr)
			}
			if diff := cmp.Diff(strings.ReplaceAll(tc.wantStdout, "{url}", url), stdout); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			wantStderr := strings.ReplaceAll(tc.wantStderr, "{url}", url)
			if tc.url != "" {
				if !strings.HasPrefix(stderr, wantStderr) {
					t.Errorf("stderr = %q, want it to start with %q", stderr, wantStderr)
				}
			} else if diff := cmp.Diff(wantStderr, stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			if strings.Contains(stderr, "s3cr3t") {
				t.Errorf("stderr shows the password: %s", stderr)
			}
			fake.mu.Lock()
			defer fake.mu.Unlock()
			if diff := cmp.Diff(tc.wantLookbacks, sorted(fake.lookbacks)); diff != "" {
				t.Errorf("lookbacks sent (-want +got):\n%s", diff)
			}
		})
	}
}

// sorted is a sorted copy of s: the queries run concurrently.
func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
