package sandbox

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// pki holds the files of the sandbox's public key infrastructure, all in one folder.
type pki struct {
	CACert, CAKey           string // cluster CA
	ServingCert, ServingKey string // kube-apiserver serving certificate
	AdminCert, AdminKey     string // client certificate of system:masters
	SAKey, SAPub            string // service-account token signing key pair
	// FrontProxyCACert signs the client certificate the aggregator presents to extension
	// apiservers (FrontProxyClientCert, CN front-proxy-client); extension apiservers learn
	// it from kube-system/extension-apiserver-authentication.
	FrontProxyCACert, FrontProxyCAKey         string
	FrontProxyClientCert, FrontProxyClientKey string
}

func pkiIn(dir string) pki {
	p := func(n string) string { return filepath.Join(dir, n) }
	return pki{
		CACert: p("ca.crt"), CAKey: p("ca.key"),
		ServingCert: p("apiserver.crt"), ServingKey: p("apiserver.key"),
		AdminCert: p("admin.crt"), AdminKey: p("admin.key"),
		SAKey: p("sa.key"), SAPub: p("sa.pub"),
		FrontProxyCACert: p("front-proxy-ca.crt"), FrontProxyCAKey: p("front-proxy-ca.key"),
		FrontProxyClientCert: p("front-proxy-client.crt"), FrontProxyClientKey: p("front-proxy-client.key"),
	}
}

// generatePKI writes a fresh CA, the apiserver serving certificate (valid for
// loopback and the in-cluster names), an admin client certificate and the
// service-account key pair into dir.
func generatePKI(dir string, now time.Time) (pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return pki{}, fmt.Errorf("create pki folder %s: %w", dir, err)
	}
	files := pkiIn(dir)

	ca, caKey, err := generateCA("prescale-sandbox-ca", files.CACert, files.CAKey, now)
	if err != nil {
		return pki{}, err
	}

	serving := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.IPv4(10, 96, 0, 1)},
	}
	if err := signLeaf(serving, ca, caKey, files.ServingCert, files.ServingKey); err != nil {
		return pki{}, err
	}
	admin := &x509.Certificate{
		SerialNumber: big.NewInt(3),
		Subject:      pkix.Name{CommonName: "prescale-admin", Organization: []string{"system:masters"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if err := signLeaf(admin, ca, caKey, files.AdminCert, files.AdminKey); err != nil {
		return pki{}, err
	}

	fpCA, fpKey, err := generateCA("prescale-sandbox-front-proxy-ca", files.FrontProxyCACert, files.FrontProxyCAKey, now)
	if err != nil {
		return pki{}, err
	}
	frontProxy := &x509.Certificate{
		SerialNumber: big.NewInt(4),
		Subject:      pkix.Name{CommonName: FrontProxyClientName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if err := signLeaf(frontProxy, fpCA, fpKey, files.FrontProxyClientCert, files.FrontProxyClientKey); err != nil {
		return pki{}, err
	}

	// kube-apiserver and kube-controller-manager want an RSA or ECDSA key pair for
	// service-account tokens; RSA is what every tool expects.
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return pki{}, fmt.Errorf("generate service-account key: %w", err)
	}
	if err := writePEM(files.SAKey, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey), 0o600); err != nil {
		return pki{}, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return pki{}, fmt.Errorf("encode service-account public key: %w", err)
	}
	if err := writePEM(files.SAPub, "PUBLIC KEY", pub, 0o644); err != nil {
		return pki{}, err
	}
	return files, nil
}

// FrontProxyClientName is the common name of the aggregator's client certificate, the one
// name --requestheader-allowed-names accepts.
const FrontProxyClientName = "front-proxy-client"

// generateCA writes a self-signed CA certificate and its key.
func generateCA(name, certPath, keyPath string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA key %s: %w", name, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("sign CA certificate %s: %w", name, err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA certificate %s: %w", name, err)
	}
	if err := writeCert(certPath, der); err != nil {
		return nil, nil, err
	}
	if err := writeECKey(keyPath, key); err != nil {
		return nil, nil, err
	}
	return ca, key, nil
}

// IssueServingCert signs, with the sandbox's cluster CA, a serving certificate for
// localhost, 127.0.0.1 and hosts (IP addresses or DNS names), and writes it and its key into
// dir as name.crt and name.key. An APIService trusts it with the CA's PEM (CACertPEM) as
// caBundle; the aggregator checks the name <service>.<namespace>.svc, so give that too.
func (s *State) IssueServingCert(dir, name string, hosts ...string) (certFile, keyFile string, err error) {
	dnsNames, ips := []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
		} else {
			dnsNames = append(dnsNames, h)
		}
	}
	files := pkiIn(filepath.Join(s.Dir, "pki"))
	ca, caKey, err := loadCA(files.CACert, files.CAKey)
	if err != nil {
		return "", "", err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return "", "", fmt.Errorf("serial number: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", fmt.Errorf("create folder %s: %w", dir, err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	if err := signLeaf(tmpl, ca, caKey, certFile, keyFile); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}

// CACertPEM returns the sandbox's cluster CA certificate, PEM-encoded.
func (s *State) CACertPEM() ([]byte, error) {
	data, err := os.ReadFile(pkiIn(filepath.Join(s.Dir, "pki")).CACert)
	if err != nil {
		return nil, fmt.Errorf("read sandbox CA: %w", err)
	}
	return data, nil
}

func loadCA(certPath, keyPath string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read CA certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("read CA key: %w", err)
	}
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("decode CA %s: no PEM block", certPath)
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA certificate: %w", err)
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("parse CA key: %w", err)
	}
	return ca, key, nil
}

func signLeaf(tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey, certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate key for %s: %w", tmpl.Subject.CommonName, err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("sign certificate %s: %w", tmpl.Subject.CommonName, err)
	}
	if err := writeCert(certPath, der); err != nil {
		return err
	}
	return writeECKey(keyPath, key)
}

func writeCert(path string, der []byte) error {
	return writePEM(path, "CERTIFICATE", der, 0o644)
}

func writeECKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return fmt.Errorf("encode key %s: %w", path, err)
	}
	return writePEM(path, "EC PRIVATE KEY", der, 0o600)
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	data := pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
