//go:build e2e

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/prescale/prescale/policy"
)

// hpaSync is one sync of the real HPA, as the API server's audit log and prescale's log of
// the external metric it served tell it: what the HPA read and what it decided.
type hpaSync struct {
	at             time.Time // the HPA read the scale: the sync's start
	spec, status   int32     // the scale it read: spec.replicas, status.replicas
	values         []string  // the external metrics' values prescale served it, "" for none
	decided        int32     // status.desiredReplicas after the sync
	rescaled       bool      // the HPA wrote the scale in this sync
	replayed       int32     // prescale's HPA-equivalent engine on the same inputs
	replayReason   policy.Reason
	replayProposal int32
}

// auditEvent is the part of an audit.k8s.io/v1 Event that the parity replay reads.
type auditEvent struct {
	Stage     string `json:"stage"`
	Verb      string `json:"verb"`
	UserAgent string `json:"userAgent"`
	ObjectRef struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	RequestObject  json.RawMessage `json:"requestObject"`
	ResponseObject json.RawMessage `json:"responseObject"`
	StageTimestamp time.Time       `json:"stageTimestamp"`
}

// hpaUserAgent is in the user agent of the kube-controller-manager's HPA controller.
const hpaUserAgent = "horizontal-pod-autoscaler"

// hpaSyncs reads, from the audit log, every sync of the HPA on the Deployment ns/name since a
// time (each begins with a read of the scale), the status each wrote and whether it
// rescaled; and, from prescale's log, the value of each external metric served in each sync.
func hpaSyncs(t *testing.T, ns, name string, since time.Time, prescaleLog string, metrics ...string) []hpaSync {
	t.Helper()
	type write struct {
		at      time.Time
		desired int32
	}
	var syncs []hpaSync
	var statusWrites []write
	var scaleWrites []time.Time
	for _, ev := range auditEvents(t) {
		if ev.Stage != "ResponseComplete" || ev.ResponseStatus.Code >= 300 ||
			ev.ObjectRef.Namespace != ns || ev.ObjectRef.Name != name || ev.StageTimestamp.Before(since) ||
			!strings.Contains(ev.UserAgent, hpaUserAgent) {
			continue
		}
		switch {
		case ev.ObjectRef.Resource == "deployments" && ev.ObjectRef.Subresource == "scale" && ev.Verb == "get":
			var scale struct {
				Spec   struct{ Replicas int32 } `json:"spec"`
				Status struct{ Replicas int32 } `json:"status"`
			}
			if err := json.Unmarshal(ev.ResponseObject, &scale); err != nil {
				t.Fatalf("audit log: the HPA's scale read at %s: %v", ev.StageTimestamp, err)
			}
			syncs = append(syncs, hpaSync{at: ev.StageTimestamp, spec: scale.Spec.Replicas, status: scale.Status.Replicas})
		case ev.ObjectRef.Resource == "deployments" && ev.ObjectRef.Subresource == "scale":
			scaleWrites = append(scaleWrites, ev.StageTimestamp)
		case ev.ObjectRef.Resource == "horizontalpodautoscalers" && ev.ObjectRef.Subresource == "status":
			var hpa struct {
				Status struct{ DesiredReplicas int32 } `json:"status"`
			}
			if err := json.Unmarshal(ev.RequestObject, &hpa); err != nil {
				t.Fatalf("audit log: the HPA's status write at %s: %v", ev.StageTimestamp, err)
			}
			statusWrites = append(statusWrites, write{at: ev.StageTimestamp, desired: hpa.Status.DesiredReplicas})
		}
	}
	served := make([][]servedValue, len(metrics))
	for i, m := range metrics {
		served[i] = servedValues(t, prescaleLog, m)
	}
	within := func(at, from, to time.Time) bool { return !at.Before(from) && (to.IsZero() || at.Before(to)) }
	for k := range syncs {
		var next time.Time
		if k+1 < len(syncs) {
			next = syncs[k+1].at
		}
		s := &syncs[k]
		if k > 0 {
			s.decided = syncs[k-1].decided // no status write: the status did not change
		}
		for _, w := range statusWrites {
			if within(w.at, s.at, next) {
				s.decided = w.desired
			}
		}
		for _, at := range scaleWrites {
			if within(at, s.at, next) {
				s.rescaled = true
			}
		}
		s.values = make([]string, len(metrics))
		for i := range metrics {
			for _, v := range served[i] {
				if within(v.at, s.at, next) {
					s.values[i] = v.value
					break
				}
			}
		}
	}
	return syncs
}

type servedValue struct {
	at    time.Time
	value string
}

var servedLine = regexp.MustCompile(`"Served external metric" metric="([^"]+)".* value="([^"]+)" at="([^"]+)"`)

// servedValues reads prescale's log lines "Served external metric" (klog, -v=2) of one
// external metric.
func servedValues(t *testing.T, path, metric string) []servedValue {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read prescale's log: %v", err)
	}
	var out []servedValue
	for _, line := range strings.Split(string(b), "\n") {
		m := servedLine.FindStringSubmatch(line)
		if m == nil || m[1] != metric {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, m[3])
		if err != nil {
			t.Fatalf("prescale's log: served at %q: %v", m[3], err)
		}
		out = append(out, servedValue{at: at, value: m[2]})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// replaySyncs runs prescale's HPA-equivalent engine (policy.Decide, no forecast, no capacity
// cap: what prescale_hpa_equivalent_replicas reports) over the HPA's syncs, each on exactly
// what that sync read: the scale's spec and status replicas and the external metrics' values,
// in the order of the policy's metrics.
// The history carries over from sync to sync, and a sync that rescaled records the scale
// event, as the HPA controller does.
func replaySyncs(t *testing.T, config string, syncs []hpaSync) {
	t.Helper()
	f, err := policy.Parse(strings.NewReader(config), "prometheus", "interval", "staleness", "leaderElection", "dryRun", "externalMetrics")
	if err != nil {
		t.Fatalf("parse the parity policy: %v", err)
	}
	p := &f.Policies[0]
	var hist policy.History
	for k := range syncs {
		s := &syncs[k]
		if len(s.values) != len(p.Metrics) {
			t.Fatalf("%d served values a sync for the %d metrics of policy %s", len(s.values), len(p.Metrics), p.Name)
		}
		samples := make([]policy.Sample, len(s.values))
		for i, v := range s.values {
			samples[i] = policy.Sample{Err: errors.New("no value served in this sync")}
			if v != "" {
				q, err := resource.ParseQuantity(v)
				if err != nil {
					t.Fatalf("served value %q: %v", v, err)
				}
				samples[i] = policy.Sample{Value: float64(q.MilliValue()) / 1000}
			}
		}
		in := policy.Observation{SpecReplicas: s.spec, StatusReplicas: s.status, Metrics: samples}
		var dec policy.Decision
		dec, hist = policy.Decide(p, in, hist, s.at)
		s.replayed, s.replayReason, s.replayProposal = dec.DesiredReplicas, dec.Reason, dec.Proposal
		if dec.DesiredReplicas != s.spec {
			hist = hist.RecordScale(p, s.spec, dec.DesiredReplicas, s.at)
		}
	}
}

// describeSync is one line of the parity report.
func describeSync(s hpaSync, start time.Time) string {
	var vs []string
	for _, v := range s.values {
		if v == "" {
			v = "none"
		}
		vs = append(vs, v)
	}
	v := strings.Join(vs, ", ")
	return fmt.Sprintf("+%6.1fs scale %d (status %d), served %s: HPA %d, prescale %d (%s, proposal %d)",
		s.at.Sub(start).Seconds(), s.spec, s.status, v, s.decided, s.replayed, s.replayReason, s.replayProposal)
}
