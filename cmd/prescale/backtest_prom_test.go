package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fakePrometheus answers range queries with a rate of 10 requests/s at every step, when
// authorized says the request carries the credentials; else 401 with the reason.
func fakePrometheus(authorized func(r *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := authorized(r); err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			fmt.Fprintf(w, `{"status":"error","errorType":"unauthorized","error":%q}`, err.Error())
			return
		}
		if r.URL.Path != "/api/v1/query_range" || r.ParseForm() != nil {
			http.Error(w, "want a range query", http.StatusBadRequest)
			return
		}
		start, _ := strconv.ParseFloat(r.Form.Get("start"), 64)
		end, _ := strconv.ParseFloat(r.Form.Get("end"), 64)
		step, _ := strconv.ParseFloat(r.Form.Get("step"), 64)
		var values [][2]any
		for ts := start; ts <= end && step > 0; ts += step {
			values = append(values, [2]any{ts, "10"})
		}
		body, _ := json.Marshal(map[string]any{"status": "success", "data": map[string]any{
			"resultType": "matrix", "result": []any{map[string]any{"metric": map[string]string{}, "values": values}}}})
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
}

// writePEM writes one PEM block into a file of dir and returns its path.
func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// clientCert returns a self-signed client certificate and its key, as PEM files, and the
// certificate.
func clientCert(t *testing.T, dir string) (certFile, keyFile string, cert *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "prescale-backtest"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true, IsCA: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if cert, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return writePEM(t, dir, "client.pem", "CERTIFICATE", der), writePEM(t, dir, "client-key.pem", "EC PRIVATE KEY", keyDER), cert
}

// TestBacktestCommandPrometheusSettings: --prometheus reaches Prometheus with the policy
// file's prometheus settings, the ones prescale run uses (bearer token file, basic auth,
// TLS with a CA, a client certificate or without verification, headers), and shows a URL's
// password nowhere: not in the text, the JSON nor the HTML report.
func TestBacktestCommandPrometheusSettings(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	tokenFile, passwordFile := write("token", "s3cr3t-token\n"), write("password", "s3cr3t-password\n")
	examplePolicies, err := os.ReadFile("../../examples/backtest-policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(r *http.Request) error {
		if got := r.Header.Get("Authorization"); got != "Bearer s3cr3t-token" {
			return fmt.Errorf("want the bearer token, got authorization %q", got)
		}
		return nil
	}
	basic := func(user, password string) func(r *http.Request) error {
		return func(r *http.Request) error {
			if u, p, ok := r.BasicAuth(); !ok || u != user || p != password {
				return fmt.Errorf("want basic auth %s, got %q %q %v", user, u, p, ok)
			}
			return nil
		}
	}
	anyone := func(*http.Request) error { return nil }

	plain := httptest.NewServer(fakePrometheus(bearer))
	defer plain.Close()
	basicSrv := httptest.NewServer(fakePrometheus(basic("prescale", "s3cr3t-password")))
	defer basicSrv.Close()
	inURL := httptest.NewServer(fakePrometheus(basic("user", "s3cr3t-in-url")))
	defer inURL.Close()
	headers := httptest.NewServer(fakePrometheus(func(r *http.Request) error {
		if got := r.Header.Get("X-Scope-OrgID"); got != "inference" {
			return fmt.Errorf("want X-Scope-OrgID inference, got %q", got)
		}
		return nil
	}))
	defer headers.Close()
	tlsSrv := httptest.NewUnstartedServer(fakePrometheus(bearer))
	tlsSrv.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshake a client without the CA fails
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	caFile := writePEM(t, dir, "ca.pem", "CERTIFICATE", tlsSrv.Certificate().Raw)
	certFile, keyFile, cert := clientCert(t, dir)
	mtls := httptest.NewUnstartedServer(fakePrometheus(func(r *http.Request) error {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			return fmt.Errorf("want a client certificate")
		}
		return nil
	}))
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	mtls.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	mtls.StartTLS()
	defer mtls.Close()
	mtlsCA := writePEM(t, dir, "mtls-ca.pem", "CERTIFICATE", mtls.Certificate().Raw)
	insecure := httptest.NewTLSServer(fakePrometheus(anyone))
	defer insecure.Close()

	withPassword := strings.Replace(inURL.URL, "http://", "http://user:s3cr3t-in-url@", 1)
	tests := []struct {
		name, url string
		settings  string // the policy file's prometheus block
		env       map[string]string
		code      int
		stdout    string // a substring of the text output
		stderr    string // a substring of standard error
	}{
		{name: "a bearer token file", url: plain.URL, settings: "prometheus: {bearerTokenFile: " + tokenFile + "}\n",
			stdout: plain.URL + " sum(rate("},
		{name: "no bearer token: 401", url: plain.URL, code: 1, stderr: "client error: 401"},
		{name: "the bearer token file from the environment", url: plain.URL,
			env: map[string]string{"PRESCALE_PROMETHEUS_BEARERTOKENFILE": tokenFile}, stdout: "60 minutes"},
		{name: "basic auth with a password file", url: basicSrv.URL,
			settings: "prometheus: {basicAuth: {username: prescale, passwordFile: " + passwordFile + "}}\n", stdout: "60 minutes"},
		{name: "credentials in the URL, shown redacted", url: withPassword,
			stdout: strings.Replace(inURL.URL, "http://", "http://user:xxxxx@", 1) + " sum(rate("},
		{name: "headers", url: headers.URL, settings: "prometheus: {headers: {X-Scope-OrgID: inference}}\n", stdout: "60 minutes"},
		{name: "TLS with the file's CA and a bearer token", url: tlsSrv.URL,
			settings: "prometheus: {bearerTokenFile: " + tokenFile + ", tls: {caFile: " + caFile + "}}\n", stdout: "60 minutes"},
		{name: "TLS without the CA: verification fails", url: tlsSrv.URL,
			settings: "prometheus: {bearerTokenFile: " + tokenFile + "}\n", code: 1, stderr: "certificate"},
		{name: "TLS with a client certificate", url: mtls.URL,
			settings: "prometheus: {tls: {caFile: " + mtlsCA + ", certFile: " + certFile + ", keyFile: " + keyFile + "}}\n", stdout: "60 minutes"},
		{name: "TLS without verification", url: insecure.URL, settings: "prometheus: {tls: {insecureSkipVerify: true}}\n", stdout: "60 minutes"},
		{name: "a bearer token and basic auth", url: plain.URL,
			settings: "prometheus: {bearerTokenFile: " + tokenFile + ", basicAuth: {username: u, passwordFile: " + passwordFile + "}}\n", code: 2,
			stderr: "prometheus: bearerTokenFile and basicAuth are exclusive"},
		{name: "a CA file that is missing", url: tlsSrv.URL, settings: "prometheus: {tls: {caFile: " + filepath.Join(dir, "missing.pem") + "}}\n", code: 2,
			stderr: "missing.pem"},
		{name: "an unknown setting", url: plain.URL, settings: "prometheus: {bearerToken: x}\n", code: 2, stderr: "'prometheus' has invalid keys: bearertoken"},
		{name: "a URL with a password that is no http URL", url: "ftp://user:s3cr3t-in-url@p:9090", code: 2,
			stderr: `prescale: --prometheus ftp://user:xxxxx@p:9090 with the prometheus settings of `},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			policyFile := write(fmt.Sprintf("policy-%d.yaml", i), tc.settings+string(examplePolicies))
			html := filepath.Join(dir, fmt.Sprintf("report-%d.html", i))
			args := []string{"backtest", "-f", policyFile, "--prometheus", tc.url, "--from", "0", "--to", "3600"}
			code, out, stderr := runPrescale(t, "", args...)
			if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d, stdout:\n%s\nstderr: %s\nwant exit %d, stdout with %q, stderr with %q", code, out, stderr, tc.code, tc.stdout, tc.stderr)
			}
			if tc.code != 0 {
				if strings.Contains(stderr, "s3cr3t") {
					t.Errorf("stderr shows a secret: %s", stderr)
				}
				return
			}
			// Every output: the text above, the JSON, and the HTML report.
			_, jsonOut, _ := runPrescale(t, "", append(args, "--json")...)
			if code, _, stderr := runPrescale(t, "", append(args, "--html", html)...); code != 0 {
				t.Fatalf("--html: exit %d, stderr: %s", code, stderr)
			}
			page, err := os.ReadFile(html)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Trace string `json:"trace"`
			}
			if err := json.Unmarshal([]byte(jsonOut), &got); err != nil || !strings.HasPrefix(got.Trace, strings.Replace(tc.url, "s3cr3t-in-url", "xxxxx", 1)+" ") {
				t.Errorf("json trace %q (%v), want the URL redacted", got.Trace, err)
			}
			for what, s := range map[string]string{"text": out, "json": jsonOut, "html": string(page), "stderr": stderr} {
				if strings.Contains(s, "s3cr3t") {
					t.Errorf("the %s output shows a secret:\n%.3000s", what, s)
				}
			}
		})
	}
}
