//go:build e2e

package prom

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/config"
	"golang.org/x/crypto/bcrypt"

	"github.com/prescale/prescale/internal/testutil/promtest"
)

// serverName is the DNS name in the server certificate, besides 127.0.0.1.
const serverName = "prometheus.test"

// pki is a test CA and the files of a server and a client certificate it signed.
type pki struct {
	caFile, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	now := time.Now()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "prescale test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatalf("create CA: %v", err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{caFile: filepath.Join(dir, "ca.pem")}
	writePEM(t, p.caFile, "CERTIFICATE", caDER)

	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		key := newKey(t)
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial),
			Subject:      pkix.Name{CommonName: name},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.Add(time.Hour),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		}
		if usage == x509.ExtKeyUsageServerAuth {
			tmpl.DNSNames = []string{serverName}
			tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatalf("create %s certificate: %v", name, err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		certFile, keyFile = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem")
		writePEM(t, certFile, "CERTIFICATE", der)
		writePEM(t, keyFile, "EC PRIVATE KEY", keyDER)
		return certFile, keyFile
	}
	p.serverCert, p.serverKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func writePEM(t *testing.T, path, typ string, der []byte) {
	t.Helper()
	writeFile(t, path, string(pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})))
}

// TestTLSAndAuth runs Prometheus behind its own TLS and basic auth (--web.config.file), then
// with client certificates required, and checks what prometheus/common's client sends.
func TestTLSAndAuth(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	const user, password = "prescale", "s3cret"
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	passwordFile, wrongPasswordFile := filepath.Join(dir, "password"), filepath.Join(dir, "wrong")
	writeFile(t, passwordFile, password+"\n")
	writeFile(t, wrongPasswordFile, "not-"+password+"\n")

	tlsBasic := "tls_server_config:\n" +
		"  cert_file: " + p.serverCert + "\n" +
		"  key_file: " + p.serverKey + "\n" +
		"basic_auth_users:\n" +
		"  " + user + ": " + string(hash) + "\n"
	basic := func(file string) *config.BasicAuth { return &config.BasicAuth{Username: user, PasswordFile: file} }
	basicSrv := promtest.Start(t, promtest.Options{WebConfig: tlsBasic, HTTPS: true, Client: readyClient(t, config.HTTPClientConfig{
		TLSConfig: config.TLSConfig{CAFile: p.caFile}, BasicAuth: basic(passwordFile),
	})})

	mtls := "tls_server_config:\n" +
		"  cert_file: " + p.serverCert + "\n" +
		"  key_file: " + p.serverKey + "\n" +
		"  client_ca_file: " + p.caFile + "\n" +
		"  client_auth_type: RequireAndVerifyClientCert\n"
	mtlsSrv := promtest.Start(t, promtest.Options{WebConfig: mtls, HTTPS: true, Client: readyClient(t, config.HTTPClientConfig{
		TLSConfig: config.TLSConfig{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey},
	})})

	tests := []struct {
		name    string
		srv     *promtest.Server
		http    config.HTTPClientConfig
		wantErr error
		wantMsg string
	}{
		{
			name: "CA file and basic auth password file",
			srv:  basicSrv,
			http: config.HTTPClientConfig{TLSConfig: config.TLSConfig{CAFile: p.caFile}, BasicAuth: basic(passwordFile)},
		},
		{
			name:    "no CA: verification is on by default",
			srv:     basicSrv,
			http:    config.HTTPClientConfig{BasicAuth: basic(passwordFile)},
			wantErr: ErrUnavailable,
			wantMsg: "certificate signed by unknown authority",
		},
		{
			name: "insecure_skip_verify",
			srv:  basicSrv,
			http: config.HTTPClientConfig{TLSConfig: config.TLSConfig{InsecureSkipVerify: true}, BasicAuth: basic(passwordFile)},
		},
		{
			name: "server_name checked against the certificate",
			srv:  basicSrv,
			http: config.HTTPClientConfig{TLSConfig: config.TLSConfig{CAFile: p.caFile, ServerName: serverName}, BasicAuth: basic(passwordFile)},
		},
		{
			name:    "server_name not in the certificate",
			srv:     basicSrv,
			http:    config.HTTPClientConfig{TLSConfig: config.TLSConfig{CAFile: p.caFile, ServerName: "other.test"}, BasicAuth: basic(passwordFile)},
			wantErr: ErrUnavailable,
			wantMsg: "other.test",
		},
		{
			name:    "wrong password",
			srv:     basicSrv,
			http:    config.HTTPClientConfig{TLSConfig: config.TLSConfig{CAFile: p.caFile}, BasicAuth: basic(wrongPasswordFile)},
			wantErr: ErrBadQuery,
			wantMsg: "401",
		},
		{
			name:    "no basic auth",
			srv:     basicSrv,
			http:    config.HTTPClientConfig{TLSConfig: config.TLSConfig{CAFile: p.caFile}},
			wantErr: ErrBadQuery,
			wantMsg: "401",
		},
		{
			name: "client certificate required and given",
			srv:  mtlsSrv,
			http: config.HTTPClientConfig{TLSConfig: config.TLSConfig{CAFile: p.caFile, CertFile: p.clientCert, KeyFile: p.clientKey}},
		},
		{
			name:    "client certificate required and missing",
			srv:     mtlsSrv,
			http:    config.HTTPClientConfig{TLSConfig: config.TLSConfig{CAFile: p.caFile}},
			wantErr: ErrUnavailable,
			wantMsg: "certificate",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newSource(t, Options{URL: tc.srv.URL(), Timeout: 5 * time.Second, HTTP: tc.http})
			got, err := s.Sample(context.Background(), "vector(1)", time.Now(), generousAge)
			if !errorsIsOrNil(err, tc.wantErr) {
				t.Fatalf("Sample() error = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tc.wantMsg) {
					t.Errorf("Sample() error = %q, want it to contain %q", err, tc.wantMsg)
				}
				return
			}
			if got.Value != 1 {
				t.Errorf("Sample() = %+v, want Value 1", got)
			}
		})
	}
}

// readyClient is an HTTP client for the readiness check of a server, from cfg.
func readyClient(t *testing.T, cfg config.HTTPClientConfig) *http.Client {
	t.Helper()
	c, err := config.NewClientFromConfig(cfg, "readiness")
	if err != nil {
		t.Fatal(err)
	}
	return c
}
