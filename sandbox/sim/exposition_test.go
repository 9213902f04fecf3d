package sim

import (
	"io"
	"math"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"k8s.io/client-go/kubernetes/fake"
)

// testMaxModelLen is the context length of the exposition test's servers: vllm.txt's
// example of the 1-2-5 token buckets is at 8192.
const testMaxModelLen = 8192

// newServerTestSim builds a Sim in mode with the dcgm-exporter and gateway imitations on:
// 20 requests/s per pod, a batch of 16, 15 s ticks.
func newServerTestSim(t *testing.T, mode Server) *Sim {
	t.Helper()
	s, err := New(fake.NewClientset(), Options{
		Namespace: "ns", Deployment: "llm", Load: Trace{0}, Mu: 20, Tick: 15 * time.Second,
		Compression: 15000, BatchSize: 16, Server: mode, DCGM: true, Gateway: true,
		MaxModelLen: testMaxModelLen, Seed: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testHolders are the pods of the scenarios: two Ready, one loading its model.
var testHolders = []holder{
	{namespace: "ns", pod: "llm-a", node: "n0", container: "server"},
	{namespace: "ns", pod: "llm-b", node: "n1", container: "server"},
	{namespace: "ns", pod: "llm-c", node: "n1", container: "server"},
}

// phase is a run of ticks at one arrival rate with some Ready pods.
type phase struct {
	ticks  int
	lambda float64 // requests/s
	ready  []string
}

// driver runs the fluid model through phases and exports each tick, as Run does; model
// time goes on from one call to the next.
type driver struct {
	s  *Sim
	st State
	n  int
}

func (d *driver) run(phases ...phase) {
	for _, p := range phases {
		for range p.ticks {
			r := Report{N: d.n, ModelTime: time.Duration(d.n) * d.s.o.Tick, Lambda: p.lambda, Mu: d.s.o.Mu, Ready: len(p.ready)}
			d.st, r.Tick = Step(d.st, r.Lambda, d.s.o.Mu, r.Ready, d.s.o.Tick)
			d.s.exportServers(r, p.ready, testHolders, time.Now())
			d.n++
		}
	}
}

// drive runs a new driver of s through the phases.
func drive(s *Sim, phases ...phase) { (&driver{s: s}).run(phases...) }

// everyPhase touches every series the simulator ever writes: requests before any pod is
// Ready (the gateway's error counter), half the capacity of two pods, an overload that
// builds a queue, and its drain; seven ticks, so that dcgm-exporter collects at 0, 30, 60
// and 90 s.
var everyPhase = []phase{
	{ticks: 1, lambda: 5},
	{ticks: 2, lambda: 20, ready: []string{"llm-a", "llm-b"}},
	{ticks: 2, lambda: 60, ready: []string{"llm-a", "llm-b"}},
	{ticks: 2, lambda: 10, ready: []string{"llm-a", "llm-b"}},
}

func scrape(t *testing.T, s *Sim) string {
	t.Helper()
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, err := io.ReadAll(rec.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// scraped is a scrape as a reader of the text sees it: the parsed families, and per
// family the sample names and the le values exactly as printed.
type scraped struct {
	families map[string]*dto.MetricFamily
	samples  map[string][]string
	les      map[string][]string
}

var leValue = regexp.MustCompile(`[{,]le="([^"]*)"`)

func parseExposition(t *testing.T, text string) scraped {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse the simulator's /metrics: %v", err)
	}
	e := scraped{families: fams, samples: map[string][]string{}, les: map[string][]string{}}
	var family string
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			family = strings.Fields(rest)[0]
			continue
		}
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name := line[:strings.IndexAny(line, "{ ")]
		if !slices.Contains(e.samples[family], name) {
			e.samples[family] = append(e.samples[family], name)
		}
		if m := leValue.FindStringSubmatch(line); m != nil && !slices.Contains(e.les[family], m[1]) {
			e.les[family] = append(e.les[family], m[1])
		}
	}
	return e
}

// upstreamSpec is one upstream file as a mode exports it: which of its blocks, and the
// target labels the simulator adds to them.
type upstreamSpec struct {
	file   string
	blocks func(upstreamBlock) bool // nil: all
	target []string
}

// neverTouched are the families a simulated program defines but never writes, so never
// exports, as the real one does not before the event: requests and batches never fail,
// requests are never aborted, flow control is off. The test checks their definitions
// against the files, not their exposition.
var neverTouched = map[string]bool{
	"tgi_request_failure":                         true,
	"tgi_batch_inference_failure":                 true,
	"sglang:num_aborted_requests_total":           true,
	"inference_extension_flow_control_queue_size": true,
}

// TestExpositionMatchesUpstream holds each server mode's /metrics, with the dcgm-exporter
// and gateway imitations on, against testdata/upstream, read now: the files are the
// single source of truth. For every family a file lists (the gateway file: the endpoint
// picker's, not ingress-nginx's or Envoy's), the scrape must have it with the file's
// type, exactly the file's label names plus the target labels a scrape adds (namespace,
// service and pod for a server; namespace for the gateway; none for dcgm-exporter, whose
// pod labels are its own), only the listed label values, the file's bucket bounds and
// quantiles, and exactly the file's sample names (so a counter's _total, a histogram's
// _bucket/_sum/_count, vLLM's _created gauges); and the scrape must have no family that
// is not in a file. The simulator registers no process or Go collector, so there is no
// exception. The family definitions behind the exposition are held against the files too,
// units included, so that the families never exported (neverTouched) are checked as well.
//
// Bucket bounds are compared as numbers. le is compared as client_golang prints it
// (strconv 'g'): prometheus_client prints 1 as "1.0", which no Go client can; Prometheus 3
// normalises le and quantile values when it parses a scrape (textparse,
// normalizeFloatsInLabelValues), so the stored series are the same. The test logs each
// such difference in spelling. Label order is client_golang's (sorted), not the
// servers' or dcgm-exporter's template order; order carries no meaning in the exposition.
func TestExpositionMatchesUpstream(t *testing.T) {
	epp := func(b upstreamBlock) bool {
		for _, s := range b["source"] {
			if strings.Contains(s, "pkg/epp/") {
				return true
			}
		}
		return false
	}
	for _, mode := range []Server{ServerVLLM, ServerTGI, ServerSGLang, ServerTriton} {
		t.Run(string(mode), func(t *testing.T) {
			s := newServerTestSim(t, mode)
			drive(s, everyPhase...)
			e := parseExposition(t, scrape(t, s))
			specs := []upstreamSpec{
				{file: string(mode) + ".txt", target: podTarget},
				{file: "dcgm.txt"},
				{file: "gateway.txt", blocks: epp, target: []string{"namespace"}},
			}
			defs := map[string]*family{}
			for _, c := range []*component{s.expo.comp, s.expo.dcgm.comp, s.expo.gateway.comp} {
				for _, f := range c.families {
					defs[f.name] = f
				}
			}
			expected := map[string]bool{}
			for _, spec := range specs {
				u := readUpstream(t, spec.file)
				for _, b := range u.blocks {
					if spec.blocks != nil && !spec.blocks(b) {
						continue
					}
					for _, name := range checkBlock(t, u, b, spec.target, e, defs) {
						expected[name] = true
					}
				}
			}
			for name := range e.families {
				if !expected[name] {
					t.Errorf("%s: exported, but in no upstream file of the mode", name)
				}
			}
		})
	}
}

// exposedName is the family name a block's series are exposed under: a counter's is the
// sample that is not _created (the name with the library's suffix).
func exposedName(b upstreamBlock) string {
	metric := b.get("metric")
	if b.get("type") != "counter" {
		return metric
	}
	for _, s := range strings.Split(b.get("samples"), ",") {
		if s != metric+"_created" {
			return s
		}
	}
	return metric
}

var dtoType = map[string]dto.MetricType{
	"counter": dto.MetricType_COUNTER, "gauge": dto.MetricType_GAUGE,
	"histogram": dto.MetricType_HISTOGRAM, "summary": dto.MetricType_SUMMARY,
}

var kindName = map[kind]string{counter: "counter", gauge: "gauge", histogram: "histogram", summary: "summary"}

// checkBlock checks one upstream block against the definition and the scrape, and returns
// the family names the block accounts for.
func checkBlock(t *testing.T, u upstreamFile, b upstreamBlock, target []string, e scraped, defs map[string]*family) []string {
	t.Helper()
	metric, typ, name := b.get("metric"), b.get("type"), exposedName(b)
	labels, open := b.labels()
	samples := strings.Split(b.get("samples"), ",")
	created := metric + "_created"
	hasCreated := slices.Contains(samples, created)
	var bounds []float64
	if typ == "histogram" {
		var err error
		if bounds, err = b.buckets(bucketContext{maxModelLen: testMaxModelLen}); err != nil {
			t.Errorf("%s %s: buckets: %v", u.name, metric, err)
		}
	}
	var quantiles []float64
	if q := b.get("quantiles"); q != "" {
		quantiles, _ = parseFloats(q)
	}

	// The definition.
	f := defs[name]
	if f == nil {
		t.Errorf("%s %s: the simulator defines no family %s", u.name, metric, name)
		return []string{name}
	}
	if kindName[f.kind] != typ {
		t.Errorf("%s: defined as a %s, upstream a %s", name, kindName[f.kind], typ)
	}
	if f.unit != b.get("unit") {
		t.Errorf("%s: defined in %q, upstream in %q", name, f.unit, b.get("unit"))
	}
	if open {
		if !slices.Equal(f.labels[:min(len(labels), len(f.labels))], labels) {
			t.Errorf("%s: defined with labels %v, upstream starting with %v", name, f.labels, labels)
		}
	} else if !slices.Equal(f.labels, labels) {
		t.Errorf("%s: defined with labels %v, upstream %v", name, f.labels, labels)
	}
	if !slices.Equal(f.buckets, bounds) {
		t.Errorf("%s: defined with buckets %v, upstream %v", name, f.buckets, bounds)
	}
	if !slices.Equal(f.quantiles, quantiles) {
		t.Errorf("%s: defined with quantiles %v, upstream %v", name, f.quantiles, quantiles)
	}
	if f.created != hasCreated {
		t.Errorf("%s: defined with a _created gauge %v, upstream %v", name, f.created, hasCreated)
	}

	// The scrape.
	fam := e.families[name]
	if fam == nil {
		if !neverTouched[name] {
			t.Errorf("%s (%s): not exported", name, u.name)
		}
		return []string{name, created}
	}
	if fam.GetType() != dtoType[typ] {
		t.Errorf("%s: exported as %v, upstream %s", name, fam.GetType(), typ)
	}
	want := append(slices.Clone(labels), target...)
	sort.Strings(want)
	allowed := b.values()
	labelsWrong := false // report a wrong label set once per family
	for _, m := range fam.GetMetric() {
		var got []string
		for _, lp := range m.GetLabel() {
			got = append(got, lp.GetName())
			if vs, ok := allowed[lp.GetName()]; ok && !slices.Contains(vs, lp.GetValue()) {
				t.Errorf("%s: label %s=%q, upstream only %v", name, lp.GetName(), lp.GetValue(), vs)
			}
		}
		sort.Strings(got)
		switch {
		case labelsWrong:
		case open:
			for _, l := range want {
				if !slices.Contains(got, l) {
					t.Errorf("%s: labels %v lack %s", name, got, l)
					labelsWrong = true
				}
			}
		case !slices.Equal(got, want):
			t.Errorf("%s: labels %v, want upstream's %v and the target's %v", name, got, labels, target)
			labelsWrong = true
		}
		if typ == "histogram" {
			var ub []float64
			for _, bk := range m.GetHistogram().GetBucket() {
				if !math.IsInf(bk.GetUpperBound(), 1) {
					ub = append(ub, bk.GetUpperBound())
				}
			}
			if !slices.Equal(ub, bounds) {
				t.Errorf("%s: buckets %v, upstream %v", name, ub, bounds)
			}
		}
		if typ == "summary" {
			var qs []float64
			for _, q := range m.GetSummary().GetQuantile() {
				qs = append(qs, q.GetQuantile())
			}
			if !slices.Equal(qs, quantiles) {
				t.Errorf("%s: quantiles %v, upstream %v", name, qs, quantiles)
			}
		}
	}
	if typ == "histogram" {
		var wantLe []string
		for _, f := range bounds {
			wantLe = append(wantLe, goLe(f))
		}
		wantLe = append(wantLe, "+Inf")
		if !slices.Equal(e.les[name], wantLe) {
			t.Errorf("%s: le %v, want %v", name, e.les[name], wantLe)
		}
		if up := u.upstreamLe(b, bounds); len(up) == len(bounds) {
			var diff []string
			for i, f := range bounds {
				if up[i] != goLe(f) {
					diff = append(diff, up[i]+"→"+goLe(f))
				}
			}
			if len(diff) > 0 {
				t.Logf("%s: le spelled as client_golang prints it, not as %s (%s): %d of %d bounds, e.g. %s",
					name, strings.Fields(u.header["library"][0])[0], u.header["le-format"][0], len(diff), len(bounds), diff[0])
			}
		}
	}
	got := slices.Clone(e.samples[name])
	if hasCreated {
		if c := e.families[created]; c == nil || c.GetType() != dto.MetricType_GAUGE {
			t.Errorf("%s: no gauge family %s beside it", name, created)
		}
		got = append(got, e.samples[created]...)
	}
	sort.Strings(got)
	sort.Strings(samples)
	if !slices.Equal(got, samples) {
		t.Errorf("%s: samples %v, upstream %v", name, got, samples)
	}
	return []string{name, created}
}

// sampleValue returns the value of the sample of family name whose labels include want,
// summed over the matching series; ok is false with none.
func sampleValue(e scraped, name string, want map[string]string, field func(*dto.Metric) float64) (float64, bool) {
	fam := e.families[name]
	if fam == nil {
		return 0, false
	}
	sum, ok := 0.0, false
	for _, m := range fam.GetMetric() {
		match := true
		for k, v := range want {
			found := false
			for _, lp := range m.GetLabel() {
				found = found || (lp.GetName() == k && lp.GetValue() == v)
			}
			match = match && found
		}
		if match {
			sum += field(m)
			ok = true
		}
	}
	return sum, ok
}

func value(m *dto.Metric) float64 {
	switch {
	case m.GetCounter() != nil:
		return m.GetCounter().GetValue()
	case m.GetGauge() != nil:
		return m.GetGauge().GetValue()
	}
	return math.NaN()
}

func histSum(m *dto.Metric) float64   { return m.GetHistogram().GetSampleSum() }
func histCount(m *dto.Metric) float64 { return float64(m.GetHistogram().GetSampleCount()) }
