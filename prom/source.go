package prom

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/config"
	"github.com/prometheus/common/model"

	"github.com/prescale/prescale/policy"
)

const (
	// DefaultTimeout is the per-query timeout when Options.Timeout is zero.
	DefaultTimeout = 10 * time.Second
	// DefaultPodLabel is the pod label when Options.PodLabel is empty.
	DefaultPodLabel = "pod"
	// staleProbeLookback is how far back the second query of an empty result looks to tell
	// a stale result (series exist, older than maxAge) from an empty one.
	staleProbeLookback = time.Hour
	// clientName names the HTTP client in prometheus/common's metrics and errors.
	clientName = "prescale"
	// minMaxAge is the shortest lookback that Prometheus can be sent: a zero lookback_delta
	// is not sent at all, and means Prometheus' default of 5 minutes.
	minMaxAge = time.Millisecond
)

// Options configures a Source.
type Options struct {
	// URL is Prometheus' base URL, http or https, with any path prefix
	// (http://prometheus:9090, https://example.org/prometheus). Required.
	URL string
	// Timeout bounds each query, and is sent to Prometheus as the query's timeout
	// parameter (cut to whole seconds). Zero means DefaultTimeout. An empty result costs a
	// second query, so Sample can take up to twice as long.
	Timeout time.Duration
	// PodLabel is the label whose value names the pod of a per-pod series. Empty means
	// DefaultPodLabel.
	PodLabel string
	// HTTP holds authentication (bearer token or credentials file, re-read on change;
	// basic auth, password file), TLS (CA, client certificate, server name; verification
	// on unless insecure_skip_verify) and extra headers, as in Prometheus' configuration.
	// The zero value follows no redirects and speaks HTTP/1.1; unmarshalling YAML into it
	// starts from config.DefaultHTTPClientConfig.
	HTTP config.HTTPClientConfig
}

// Source runs instant queries against one Prometheus. It is safe for concurrent use.
type Source struct {
	api      v1.API
	timeout  time.Duration
	podLabel model.LabelName
	queries  atomic.Int64
}

// New checks o and returns a Source. Every problem of o is reported at once, each naming its
// field. It does not contact Prometheus.
func New(o Options) (*Source, error) {
	c, err := o.Client()
	if err != nil {
		return nil, err
	}
	s := &Source{api: v1.NewAPI(c), timeout: o.Timeout, podLabel: model.LabelName(o.PodLabel)}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if s.podLabel == "" {
		s.podLabel = DefaultPodLabel
	}
	return s, nil
}

// Client checks o as New does and returns the client of Prometheus' HTTP API that a Source
// of o queries through: o.URL with o.HTTP's authentication, TLS and headers (it reads the
// files they name). prescale backtest reads its load history through it, so that it reaches
// Prometheus exactly as prescale run does. Timeout and PodLabel are checked, not used.
func (o Options) Client() (api.Client, error) {
	httpCfg := o.httpCopy()
	if err := o.validate(&httpCfg); err != nil {
		return nil, fmt.Errorf("prometheus source options: %w", err)
	}
	hc, err := config.NewClientFromConfig(httpCfg, clientName)
	if err != nil {
		return nil, fmt.Errorf("prometheus source http client: %w", err)
	}
	c, err := api.NewClient(api.Config{Address: o.URL, Client: hc})
	if err != nil {
		return nil, fmt.Errorf("prometheus source client: %w", err)
	}
	return c, nil
}

// RedactedURL returns raw with its password, if any, replaced by "xxxxx"
// (url.URL.Redacted): the form of a Prometheus URL that logs, reports and errors show. A raw
// that does not parse as a URL gives "(a URL that does not parse)": its password cannot be
// told apart.
func RedactedURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(a URL that does not parse)"
	}
	return u.Redacted()
}

// Validate reports every problem of o at once, one error per field (url, timeout, podLabel,
// http), joined; nil when New would accept o. Unlike New it builds no client, so it reads
// none of the files o names (TLS CA, certificate and key, credentials): a configuration
// checks the same where those files are absent. It changes nothing in o.
func (o Options) Validate() error {
	httpCfg := o.httpCopy()
	return o.validate(&httpCfg)
}

// httpCopy returns a copy of o.HTTP that HTTPClientConfig.Validate may normalize
// (bearer_token into authorization, the default type "Bearer"): the client must be built
// from what it normalized, and the caller's Options stay as they were.
func (o Options) httpCopy() config.HTTPClientConfig {
	httpCfg := o.HTTP
	if httpCfg.Authorization != nil {
		a := *httpCfg.Authorization
		httpCfg.Authorization = &a
	}
	return httpCfg
}

// validate checks o, with httpCfg, a copy of o.HTTP, in place of o.HTTP.
func (o Options) validate(httpCfg *config.HTTPClientConfig) error {
	var errs []error
	if strings.TrimSpace(o.URL) == "" {
		errs = append(errs, errors.New("url: required"))
	} else if u, err := url.Parse(o.URL); err != nil {
		// url.Error quotes the whole URL, password included: keep only its cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		errs = append(errs, fmt.Errorf("url: does not parse: %w", err))
	} else if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("url: must be an absolute http or https URL, got %q", u.Redacted()))
	} else if u.RawQuery != "" || u.Fragment != "" {
		errs = append(errs, fmt.Errorf("url: must have no query or fragment, got %q", u.Redacted()))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout: must be ≥ 0, got %s", o.Timeout))
	}
	if o.PodLabel != "" && !model.LegacyValidation.IsValidLabelName(o.PodLabel) {
		errs = append(errs, fmt.Errorf("podLabel: must be a label name ([a-zA-Z_][a-zA-Z0-9_]*), got %q", o.PodLabel))
	}
	if err := httpCfg.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("http: %w", err))
	}
	return errors.Join(errs...)
}

// QueryCount returns how many queries the Source has sent, answered or not. An empty result
// costs two (see Sample).
func (s *Source) QueryCount() int64 { return s.queries.Load() }

// Sample runs query as an instant query evaluated at now, looking back at most maxAge for
// each series' latest sample, and returns its value (see the package doc for the shapes).
// maxAge must be at least a millisecond (else ErrBadQuery); it is cut to whole seconds (whole
// milliseconds below a second), as Prometheus parses no fractions in durations. An empty
// result is queried once more with a lookback of an hour beyond maxAge, to tell ErrStale
// (the series exist, with no sample newer than maxAge) from ErrEmpty. Every error names the
// query and wraps one of the package's sentinels, or context.Canceled. Prometheus' warnings
// about a result (a partial response: a shard or store that did not answer) are returned in
// Sample.Warnings, beside the value; an empty result's are in its error.
func (s *Source) Sample(ctx context.Context, query string, now time.Time, maxAge time.Duration) (policy.Sample, error) {
	out, warnings, err := instant(ctx, s, query, now, maxAge, func(v model.Value) (policy.Sample, error) { return decode(v, s.podLabel) })
	if err != nil {
		return policy.Sample{}, err
	}
	if len(warnings) > 0 {
		out.Warnings = warnings
	}
	return out, nil
}

// Latency runs query as Sample does and returns its one value, a latency in seconds: the
// result must be one series or a scalar. +Inf is a value (histogram_quantile's answer when
// the quantile lies in the +Inf bucket: a latency beyond any bound); NaN, -Inf, a result
// per pod or several series are errors (ErrNotFinite, ErrShape), as are an empty or stale
// result, never zero. Prometheus' warnings about a usable result are returned with it, as
// Sample returns them.
func (s *Source) Latency(ctx context.Context, query string, now time.Time, maxAge time.Duration) (float64, []string, error) {
	v, warnings, err := instant(ctx, s, query, now, maxAge, func(v model.Value) (float64, error) { return decodeLatency(v, s.podLabel) })
	if len(warnings) == 0 {
		warnings = nil
	}
	return v, warnings, err
}

// SeriesExist reports whether any series matching selector (a series selector such as
// {__name__="x_bucket"}) has a sample between now - lookback and now, by one request to
// Prometheus' series API asking for one series at most. It bounds the request by
// Options.Timeout and counts it in QueryCount. Its errors name the selector and wrap the
// class of the failure as Sample's do (ErrBadQuery, ErrTimeout, ErrUnavailable), or
// context.Canceled.
func (s *Source) SeriesExist(ctx context.Context, selector string, now time.Time, lookback time.Duration) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	s.queries.Add(1)
	set, _, _, err := s.api.Series(ctx, []string{selector}, now.Add(-lookback), now, v1.WithLimit(1))
	if err == nil {
		return len(set) > 0, nil
	}
	err = refine(err)
	if class := classify(ctx, err); class != nil {
		err = fmt.Errorf("%w: %w", class, err)
	}
	return false, fmt.Errorf("series %s: %w", selector, err)
}

// MetricNames returns the names of the series that have a sample between now - lookback and
// now (the values of __name__), by one request to Prometheus' label values API: what
// prometheus-adapter's series discovery lists. It bounds the request by Options.Timeout and
// counts it in QueryCount; its errors wrap the class of the failure as SeriesExist's do.
func (s *Source) MetricNames(ctx context.Context, now time.Time, lookback time.Duration) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	s.queries.Add(1)
	vals, _, _, err := s.api.LabelValues(ctx, model.MetricNameLabel, nil, now.Add(-lookback), now)
	if err == nil {
		names := make([]string, len(vals))
		for i, v := range vals {
			names[i] = string(v)
		}
		return names, nil
	}
	err = refine(err)
	if class := classify(ctx, err); class != nil {
		err = fmt.Errorf("%w: %w", class, err)
	}
	return nil, fmt.Errorf("label values of %s: %w", model.MetricNameLabel, err)
}

// instant runs one instant query and decodes its result, returned with Prometheus' warnings
// about it; an empty result is told from a stale one (see Sample).
func instant[T any](ctx context.Context, s *Source, query string, now time.Time, maxAge time.Duration,
	decode func(model.Value) (T, error)) (T, []string, error) {
	var zero T
	if maxAge < minMaxAge {
		return zero, nil, fmt.Errorf("query %q: maxAge must be at least %s, got %s: %w", query, minMaxAge, maxAge, ErrBadQuery)
	}
	maxAge = wireDuration(maxAge)
	v, warnings, err := s.query(ctx, query, now, maxAge)
	if err != nil {
		return zero, nil, fmt.Errorf("query %q: %w", query, err)
	}
	out, err := decode(v)
	if errors.Is(err, ErrEmpty) {
		err = s.whyEmpty(ctx, query, now, maxAge, warnings)
	}
	if err != nil {
		return zero, nil, fmt.Errorf("query %q: %w", query, err)
	}
	return out, warnings, nil
}

// whyEmpty tells a stale result from an empty one, by the same query with a longer lookback.
func (s *Source) whyEmpty(ctx context.Context, query string, now time.Time, maxAge time.Duration, warnings v1.Warnings) error {
	v, _, err := s.query(ctx, query, now, maxAge+staleProbeLookback)
	if err == nil && !isEmpty(v) {
		return fmt.Errorf("no sample newer than %s: %w", maxAge, ErrStale)
	}
	if len(warnings) > 0 {
		return fmt.Errorf("%w (warnings: %s)", ErrEmpty, strings.Join(warnings, "; "))
	}
	return ErrEmpty
}

// query sends one instant query; its error wraps the class's sentinel and the cause.
func (s *Source) query(ctx context.Context, query string, now time.Time, lookback time.Duration) (model.Value, v1.Warnings, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	s.queries.Add(1)
	v, warnings, _, err := s.api.Query(ctx, query, now,
		v1.WithTimeout(wireDuration(s.timeout)), v1.WithLookbackDelta(wireDuration(lookback)))
	if err == nil {
		return v, warnings, nil
	}
	err = refine(err)
	class := classify(ctx, err)
	if class == nil { // the caller cancelled: err wraps context.Canceled
		return nil, nil, err
	}
	return nil, nil, fmt.Errorf("%w: %w", class, err)
}

// wireDuration cuts d to a duration that Prometheus can parse once the client library has
// formatted it with Duration.String: "1m30s" and "250ms" parse, "1.5s" does not. It cuts
// down, so that a lookback never reaches further back than asked.
func wireDuration(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Truncate(time.Second)
	}
	return d.Truncate(time.Millisecond)
}

func isEmpty(v model.Value) bool {
	vec, ok := v.(model.Vector)
	return ok && len(vec) == 0
}
