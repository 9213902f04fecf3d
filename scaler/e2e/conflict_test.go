//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/prescale/prescale/internal/testutil"
)

// Another writer changes the scale between prescale's read and its write, on the real API
// server: a proxy in front of it, at prescale's first scale update, first sets the replicas
// to 3 itself, so that prescale's update (from the replicas it read, 2) meets a 409. prescale
// must not write that stale decision (6) over the other writer's change: it counts the
// conflict and decides again, at the next tick, from the fresh 3 (to 3 + 4 = 7).
func TestScaleConflictDecidesAgain(t *testing.T) {
	st, kube := sharedSandbox(t)
	w := workload(t, "llm", 2, 1, 0)
	e := newExporter(t, w)
	p := startPrometheus(t, e.addr)
	e.setQueue(20) // per pod, target 5: from 2 the proposal is 8, limited to 2 + 4 = 6

	cfg, err := clientcmd.BuildConfigFromFlags("", st.Kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	transport, err := rest.TransportFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	scalePath := fmt.Sprintf("/apis/apps/v1/namespaces/%s/deployments/%s/scale", w.Namespace, w.Name)
	var once sync.Once
	interfered := make(chan struct{})
	proxy := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target); r.Out.Host = target.Host },
		Transport:     transport,
		FlushInterval: -1, // watches stream
	}
	handler := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == scalePath && strings.HasPrefix(r.UserAgent(), "prescale/") {
			once.Do(func() {
				s, err := kube.AppsV1().Deployments(w.Namespace).GetScale(r.Context(), w.Name, metav1.GetOptions{})
				if err == nil {
					s.Spec.Replicas = 3
					_, err = kube.AppsV1().Deployments(w.Namespace).UpdateScale(r.Context(), w.Name, s, metav1.UpdateOptions{})
				}
				if err != nil {
					t.Errorf("the other writer's update: %v", err)
				}
				close(interfered)
			})
		}
		proxy.ServeHTTP(rw, r)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: handler}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: proxy, cluster: {server: "http://%s"}}]
users: [{name: proxy, user: {}}]
contexts: [{name: proxy, context: {cluster: proxy, user: proxy}}]
current-context: proxy
`, ln.Addr())), 0o600); err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	in := startPrescale(t, "a", config(p.URL(), w, ""), "--kubeconfig", kubeconfig) // the last --kubeconfig wins
	select {
	case <-interfered:
	case <-time.After(60 * time.Second):
		t.Fatal("prescale wrote no scale within 60 s")
	}
	labels := map[string]string{"policy": w.Name, "result": "conflict"}
	testutil.Eventually(t, 30*time.Second, "the conflict counted", metricIs(in, "prescale_scales_total", labels, "1", func(v float64) bool { return v == 1 }))
	testutil.Eventually(t, 30*time.Second, "the log to say it decides again", logHas(in, "Scale changed by another writer since it was read"))
	// The next decision starts from the other writer's 3: up to 3 + 4 = 7.
	testutil.Eventually(t, 60*time.Second, "prescale to scale up from the other writer's 3", func() error {
		if got := specReplicas(t, w); got < 7 {
			return fmt.Errorf("replicas %d", got)
		}
		return nil
	})

	// The audit log: prescale's stale update was refused (409), and no update of prescale
	// ever wrote the stale 6. The API server logs an event as its response completes: await.
	testutil.Eventually(t, 20*time.Second, "prescale's writes in the audit log", func() error {
		var refused, written []string
		for _, ev := range auditEvents(t) {
			if ev.Stage != "ResponseComplete" || ev.ObjectRef.Namespace != w.Namespace || ev.ObjectRef.Subresource != "scale" ||
				ev.Verb != "update" || !strings.HasPrefix(ev.UserAgent, "prescale/a") || ev.StageTimestamp.Before(started) {
				continue
			}
			var obj struct {
				Spec struct {
					Replicas int32 `json:"replicas"`
				} `json:"spec"`
			}
			_ = json.Unmarshal(ev.RequestObject, &obj)
			entry := fmt.Sprintf("%d (code %d)", obj.Spec.Replicas, ev.ResponseStatus.Code)
			if ev.ResponseStatus.Code == http.StatusConflict {
				refused = append(refused, entry)
			} else if ev.ResponseStatus.Code < 300 {
				written = append(written, entry)
				if obj.Spec.Replicas == 6 {
					return fmt.Errorf("prescale wrote its stale 6 over the other writer's 3: %q", written)
				}
			}
		}
		if len(refused) != 1 || len(written) == 0 || !strings.HasPrefix(written[0], "7 ") {
			return fmt.Errorf("prescale's scale updates: refused %q, written %q; want one refused (6), then 7 first", refused, written)
		}
		t.Logf("prescale's scale updates: refused %q, then written %q", refused, written)
		return nil
	})
}
