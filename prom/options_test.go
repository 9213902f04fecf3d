package prom

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name string
		o    Options
		// wantMsg are substrings of the error; none means New must succeed.
		wantMsg []string
	}{
		{name: "http URL", o: Options{URL: "http://127.0.0.1:9090"}},
		{name: "https URL with a path prefix", o: Options{URL: "https://example.org/prometheus/"}},
		{name: "explicit timeout and pod label", o: Options{URL: "http://p:9090", Timeout: time.Second, PodLabel: "kubernetes_pod_name"}},
		{name: "URL missing", o: Options{}, wantMsg: []string{"url: required"}},
		{name: "URL blank", o: Options{URL: "  "}, wantMsg: []string{"url: required"}},
		{name: "relative URL", o: Options{URL: "prometheus:9090"}, wantMsg: []string{"url: must be an absolute http or https URL"}},
		{name: "URL without host", o: Options{URL: "http:///api"}, wantMsg: []string{"url: must be an absolute"}},
		{name: "other scheme", o: Options{URL: "ftp://p:9090"}, wantMsg: []string{`got "ftp://p:9090"`}},
		{name: "unparseable URL", o: Options{URL: "http://p:90 90"}, wantMsg: []string{"url: does not parse: invalid port"}},
		{name: "a password in a URL of another scheme is redacted", o: Options{URL: "ftp://u:secret@p:9090"}, wantMsg: []string{`got "ftp://u:xxxxx@p:9090"`}},
		{name: "a password in a URL with a query is redacted", o: Options{URL: "http://u:secret@p:9090/?x=1"}, wantMsg: []string{`got "http://u:xxxxx@p:9090/?x=1"`}},
		{name: "a password in an unparseable URL is left out", o: Options{URL: "http://u:secret@p:90 90"}, wantMsg: []string{"url: does not parse: invalid port"}},
		{name: "URL with a query", o: Options{URL: "http://p:9090/?x=1"}, wantMsg: []string{"url: must have no query"}},
		{name: "negative timeout", o: Options{URL: "http://p:9090", Timeout: -time.Second}, wantMsg: []string{"timeout: must be ≥ 0, got -1s"}},
		{name: "pod label not a label name", o: Options{URL: "http://p:9090", PodLabel: "pod-name"}, wantMsg: []string{`podLabel: must be a label name`, `"pod-name"`}},
		{
			name:    "http config checked by prometheus/common",
			o:       Options{URL: "http://p:9090", HTTP: config.HTTPClientConfig{BearerToken: "a", BearerTokenFile: "/f"}},
			wantMsg: []string{"http: at most one of bearer_token & bearer_token_file must be configured"},
		},
		{
			name:    "every problem at once",
			o:       Options{Timeout: -1, PodLabel: "1pod"},
			wantMsg: []string{"url: required", "timeout:", "podLabel:"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Validate and New judge alike.
			verr := tc.o.Validate()
			if (verr == nil) != (len(tc.wantMsg) == 0) {
				t.Errorf("Validate() = %v, want an error: %v", verr, len(tc.wantMsg) > 0)
			}
			for _, m := range tc.wantMsg {
				if verr != nil && !strings.Contains(verr.Error(), m) {
					t.Errorf("Validate() error = %q, want it to contain %q", verr, m)
				}
			}
			s, err := New(tc.o)
			if len(tc.wantMsg) == 0 {
				if err != nil || s == nil {
					t.Fatalf("New() = %v, %v, want a Source", s, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("New() error = nil, want one containing %q", tc.wantMsg)
			}
			for _, m := range tc.wantMsg {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("New() error = %q, want it to contain %q", err, m)
				}
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("New() error = %q shows the URL's password", err)
			}
		})
	}
}

func TestRedactedURL(t *testing.T) {
	for raw, want := range map[string]string{
		"http://prometheus:9090":             "http://prometheus:9090",
		"https://user:secret@example.org/p/": "https://user:xxxxx@example.org/p/",
		"http://user@example.org":            "http://user@example.org",
		"http://user:secret@p:90 90":         "(a URL that does not parse)",
	} {
		if got := RedactedURL(raw); got != want {
			t.Errorf("RedactedURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

// Validate reads none of the files the options name; New reads the TLS ones.
func TestValidateReadsNoFile(t *testing.T) {
	o := Options{URL: "https://p:9090", HTTP: config.HTTPClientConfig{
		Authorization: &config.Authorization{CredentialsFile: "/no/such/token"},
		TLSConfig:     config.TLSConfig{CAFile: "/no/such/ca.pem", CertFile: "/no/such/cert.pem", KeyFile: "/no/such/key.pem"}}}
	if err := o.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil: it must not read the files", err)
	}
	if o.HTTP.Authorization.Type != "" {
		t.Errorf("Validate() changed the caller's authorization type to %q", o.HTTP.Authorization.Type)
	}
	if _, err := New(o); err == nil {
		t.Error("New() with a missing CA file: no error, want one (the case does not show that Validate skips the files)")
	}
}

func TestNewDefaults(t *testing.T) {
	s, err := New(Options{URL: "http://127.0.0.1:9090"})
	if err != nil {
		t.Fatal(err)
	}
	if s.timeout != DefaultTimeout || s.podLabel != DefaultPodLabel {
		t.Errorf("New() timeout, podLabel = %s, %q, want %s, %q", s.timeout, s.podLabel, DefaultTimeout, DefaultPodLabel)
	}
}

func TestNewLeavesOptionsAlone(t *testing.T) {
	auth := &config.Authorization{CredentialsFile: "/run/secrets/token"}
	if _, err := New(Options{URL: "http://p:9090", HTTP: config.HTTPClientConfig{Authorization: auth}}); err != nil {
		t.Fatal(err)
	}
	// HTTPClientConfig.Validate defaults the type to "Bearer", on New's copy only.
	if auth.Type != "" {
		t.Errorf("New() changed the caller's authorization type to %q", auth.Type)
	}
}

func TestWireDuration(t *testing.T) {
	tests := []struct {
		in, want time.Duration
	}{
		{time.Millisecond, time.Millisecond},
		{1500 * time.Microsecond, time.Millisecond},
		{999 * time.Millisecond, 999 * time.Millisecond},
		{time.Second, time.Second},
		{1500 * time.Millisecond, time.Second},
		{2*time.Minute + 999*time.Millisecond, 2 * time.Minute},
		{time.Hour + 2*time.Minute + 3*time.Second, time.Hour + 2*time.Minute + 3*time.Second},
	}
	for _, tc := range tests {
		got := wireDuration(tc.in)
		if got != tc.want {
			t.Errorf("wireDuration(%s) = %s, want %s", tc.in, got, tc.want)
		}
		// What Prometheus does with the client library's formatting of it.
		if _, err := model.ParseDuration(got.String()); err != nil {
			t.Errorf("wireDuration(%s) = %s, which Prometheus cannot parse: %v", tc.in, got, err)
		}
	}
}
