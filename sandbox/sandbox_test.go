package sandbox

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGeneratePKI(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	p, err := generatePKI(t.TempDir(), now)
	if err != nil {
		t.Fatalf("generatePKI: %v", err)
	}
	caPEM, err := os.ReadFile(p.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		t.Fatal("CA certificate does not parse")
	}
	cases := []struct {
		name      string
		cert, key string
		usage     x509.ExtKeyUsage
		dnsName   string
		wantOrg   string
	}{
		{name: "the serving certificate is valid for 127.0.0.1", cert: p.ServingCert, key: p.ServingKey, usage: x509.ExtKeyUsageServerAuth, dnsName: "127.0.0.1"},
		{name: "the serving certificate is valid for kubernetes.default.svc", cert: p.ServingCert, key: p.ServingKey, usage: x509.ExtKeyUsageServerAuth, dnsName: "kubernetes.default.svc"},
		{name: "the admin certificate is a system:masters client", cert: p.AdminCert, key: p.AdminKey, usage: x509.ExtKeyUsageClientAuth, wantOrg: "system:masters"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			pair, err := tls.LoadX509KeyPair(c.cert, c.key)
			if err != nil {
				t.Fatalf("load key pair: %v", err)
			}
			leaf, err := x509.ParseCertificate(pair.Certificate[0])
			if err != nil {
				t.Fatal(err)
			}
			_, err = leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: c.dnsName, KeyUsages: []x509.ExtKeyUsage{c.usage}, CurrentTime: now.Add(time.Hour)})
			if err != nil {
				t.Errorf("verify: %v", err)
			}
			if c.wantOrg != "" && (len(leaf.Subject.Organization) != 1 || leaf.Subject.Organization[0] != c.wantOrg) {
				t.Errorf("organization = %v, want [%s]", leaf.Subject.Organization, c.wantOrg)
			}
		})
	}
	if _, err := os.Stat(p.SAPub); err != nil {
		t.Errorf("service-account public key: %v", err)
	}
}

func TestWriteKwokStages(t *testing.T) {
	stages := t.TempDir()
	files := map[string]string{
		"node/fast/node-initialize.yaml": "kind: Stage\nspec:\n  selector:\n    matchExpressions:\n    - key: a\n      operator: NotIn\n  next:\n    statusTemplate: |\n" +
			"      {{ $lastTransitionTime := or .metadata.creationTimestamp $now }}\n",
		"node/heartbeat-with-lease/node-heartbeat-with-lease.yaml": "kind: Stage\nspec:\n  next:\n    statusTemplate: |\n" +
			"      {{ $lastTransitionTime := or .metadata.creationTimestamp $now }}\n      {{ range NodeConditions }}\n      - lastHeartbeatTime: x\n" +
			"        lastTransitionTime: {{ $lastTransitionTime | Quote }}\n      {{ end }}\n",
		"pod/fast/pod-ready.yaml":    "kind: Stage\nspec:\n  selector: {}\n  next:\n    statusTemplate: x\n",
		"pod/fast/pod-complete.yaml": "kind: Stage\nmetadata:\n  name: pod-complete\n",
		"pod/fast/pod-delete.yaml":   "kind: Stage\nmetadata:\n  name: pod-delete\n",
	}
	for f, body := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(stages, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(stages, f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := writeKwokStages(stages, filepath.Join(t.TempDir(), "kwok.yaml"))
	if err != nil {
		t.Fatalf("writeKwokStages: %v", err)
	}
	data, _ := os.ReadFile(out)
	want := `  selector: {}
  delay:
    durationMilliseconds: 0
    durationFrom:
      expressionFrom: '.metadata.annotations["sandbox.prescale.dev/startup-delay"]'
  next:
`
	if !strings.Contains(string(data), want) {
		t.Errorf("kwok config lacks the start-up delay before next:\n%s", data)
	}
	// The node's ready time is absolute: its creation plus the annotation's seconds.
	wantNode := `  selector:
    matchExpressions:
    - key: a
      operator: NotIn
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'Exists'
  delay:
    durationMilliseconds: 0
    durationFrom:
      expressionFrom: '(.metadata.creationTimestamp | fromdate) + (.metadata.annotations["sandbox.prescale.dev/node-ready-delay-seconds"] // "0" | tonumber) | todate'
  next:
    statusTemplate: |
      {{ $lastTransitionTime := $now }}
`
	if !strings.Contains(string(data), wantNode) {
		t.Errorf("kwok config lacks the node ready delay before next:\n%s", data)
	}
	// The heartbeat keeps each condition's transition time.
	wantHeartbeat := `      {{ range NodeConditions }}
      {{ $type := .type }}{{ $since := $lastTransitionTime }}{{ range $.status.conditions }}{{ if eq .type $type }}{{ $since = .lastTransitionTime }}{{ end }}{{ end }}
      - lastHeartbeatTime: x
        lastTransitionTime: {{ $since | Quote }}
`
	if !strings.Contains(string(data), wantHeartbeat) {
		t.Errorf("kwok config's heartbeat does not keep transition times:\n%s", data)
	}
	if !strings.Contains(string(data), "name: node-not-ready") {
		t.Errorf("kwok config lacks the node-not-ready stage:\n%s", data)
	}
	if !strings.Contains(string(data), "name: pod-ready-again") {
		t.Errorf("kwok config lacks the pod-ready-again stage:\n%s", data)
	}
	if n := strings.Count(string(data), "\n---\n"); n != 6 {
		t.Errorf("kwok config has %d separators, want 6 (7 stages)", n)
	}

	// A node-initialize or pod-ready stage of another shape is an error, not a silent
	// stage without delay.
	if err := os.WriteFile(filepath.Join(stages, "node/fast/node-initialize.yaml"), []byte("kind: Stage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := writeKwokStages(stages, filepath.Join(t.TempDir(), "kwok.yaml")); err == nil || !strings.Contains(err.Error(), "patch kwok stage node/fast/node-initialize.yaml") {
		t.Errorf("writeKwokStages of an unexpected node-initialize stage: error %v, want one naming the patch", err)
	}
	if err := os.WriteFile(filepath.Join(stages, "node/fast/node-initialize.yaml"), []byte(files["node/fast/node-initialize.yaml"]), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stages, "pod/fast/pod-ready.yaml"), []byte("kind: Stage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := writeKwokStages(stages, filepath.Join(t.TempDir(), "kwok.yaml")); err == nil || !strings.Contains(err.Error(), "patch kwok stage") {
		t.Errorf("writeKwokStages of an unexpected pod-ready stage: error %v, want one naming the patch", err)
	}
}

func TestCleanKeepsOtherFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"mine.txt", "kubeconfig", "logs/etcd.log", "etcd/member/x"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := clean(dir, false); err != nil {
		t.Fatalf("clean: %v", err)
	}
	for f, want := range map[string]bool{"mine.txt": true, "logs/etcd.log": true, "kubeconfig": false, "etcd/member/x": false, "pki": true} {
		_, err := os.Stat(filepath.Join(dir, f))
		if got := err == nil; got != want {
			t.Errorf("after clean, %s exists = %v, want %v", f, got, want)
		}
	}
}

func TestAggregationCertificates(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	p, err := generatePKI(filepath.Join(dir, "pki"), now)
	if err != nil {
		t.Fatal(err)
	}
	st := &State{Dir: dir}
	cert, key, err := st.IssueServingCert(filepath.Join(dir, "ext"), "ext", "192.0.2.2", "ext.ns.svc")
	if err != nil {
		t.Fatal(err)
	}
	pool := func(path string) *x509.CertPool {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(data) {
			t.Fatalf("%s does not parse", path)
		}
		return pool
	}
	leafOf := func(cert, key string) *x509.Certificate {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	cluster, front := pool(p.CACert), pool(p.FrontProxyCACert)
	caPEM, err := st.CACertPEM()
	if err != nil || !strings.Contains(string(caPEM), "BEGIN CERTIFICATE") {
		t.Fatalf("CACertPEM: %v", err)
	}
	for _, tc := range []struct {
		name    string
		leaf    *x509.Certificate
		roots   *x509.CertPool
		host    string
		usage   x509.ExtKeyUsage
		wantErr bool
	}{
		{name: "the issued serving certificate is valid for the service name", leaf: leafOf(cert, key), roots: cluster, host: "ext.ns.svc", usage: x509.ExtKeyUsageServerAuth},
		{name: "and for the host address", leaf: leafOf(cert, key), roots: cluster, host: "192.0.2.2", usage: x509.ExtKeyUsageServerAuth},
		{name: "and for 127.0.0.1", leaf: leafOf(cert, key), roots: cluster, host: "127.0.0.1", usage: x509.ExtKeyUsageServerAuth},
		{name: "but not for another name", leaf: leafOf(cert, key), roots: cluster, host: "other.ns.svc", usage: x509.ExtKeyUsageServerAuth, wantErr: true},
		{name: "the front-proxy client chains to the front-proxy CA", leaf: leafOf(p.FrontProxyClientCert, p.FrontProxyClientKey), roots: front, usage: x509.ExtKeyUsageClientAuth},
		{name: "and not to the cluster CA", leaf: leafOf(p.FrontProxyClientCert, p.FrontProxyClientKey), roots: cluster, usage: x509.ExtKeyUsageClientAuth, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.leaf.Verify(x509.VerifyOptions{Roots: tc.roots, DNSName: tc.host, KeyUsages: []x509.ExtKeyUsage{tc.usage}})
			if (err != nil) != tc.wantErr {
				t.Errorf("verify: %v, want error %v", err, tc.wantErr)
			}
		})
	}
	if cn := leafOf(p.FrontProxyClientCert, p.FrontProxyClientKey).Subject.CommonName; cn != FrontProxyClientName {
		t.Errorf("front-proxy client CN %q, want %q", cn, FrontProxyClientName)
	}
}
