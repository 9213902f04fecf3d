package scaler

import (
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/policy"
)

// policyState is everything the controller keeps of one policy between ticks: the engine
// that decides (its History, forecast and refit schedule), what observe compares with (the
// object's UID, the pods' start-ups, the selector and pod template last read, the forecast
// history loading in the background), what act sends only on change (conditions, the
// decision record), and the last tick's outcome (status), which Status and
// ForecastReplicas read. What one tick does with it is a pass (sync.go).
//
// Its lock discipline (docs/architecture.md):
//   - The tick owns every field not named below. Ticks never overlap (Controller.tickMu),
//     and within a tick a policy's state is touched by its own pass only, one phase at a
//     time: markShared and allocate, which see every policy, run between the phases.
//   - status is under mu: Status and ForecastReplicas read it while a tick runs.
//   - annotation, recordGist and recordAt are written by the background record writer
//     while recordBusy is set; no tick reads or computes a record then.
//   - history's results are written by its loader before its done closes, and read only
//     after.
type policyState struct {
	ref policy.TargetRef
	eng *engine.Engine // nil until the first sync builds it

	// observe's
	uid     types.UID
	startup startups
	// selector is the target's scale's selector as last observed (nil: never, or the
	// target was not found since), for the check of selectors shared between policies.
	selector labels.Selector
	// template is the pod template last read from the workload (nil: it has none), at
	// the workload's templateVersion.
	template        *corev1.PodTemplateSpec
	templateVersion string
	// history is the forecast's history loading in the background (nil: none): observe
	// starts it, and hands it to the tick's pass once it has arrived.
	history *historyLoad

	// act's
	conditions map[string]string // condition key -> last message, so that each is sent on change
	annotation string            // the decision record last written (its key)
	// recordGist is that record's gist (recordGist), written at recordAt. While recordBusy,
	// a record of the target is being written, which sets the three: no tick reads or
	// computes a record then.
	recordGist string
	recordAt   time.Time
	recordBusy atomic.Bool
	lastTick   time.Time // the last synced tick, for the scorecard's time step
	// objMinutes and objViolated are the objective's counts at the last tick, which its
	// counters add the increase of.
	objMinutes, objViolated, objBeyond, objWaited int64
	// forecastSeries and objectiveSeries say that act has set the forecast's or the
	// objective's metric series of the policy, and not dropped them since: a policy without
	// either drops them once, not at every tick (each drop scans the family).
	forecastSeries, objectiveSeries bool

	mu sync.Mutex
	// status is the last tick's outcome, as Status and ForecastReplicas read it.
	status struct {
		synced        bool // a sync decided: the fields below are its outcome
		last          policy.Decision
		forecast      *ForecastStatus    // nil without a forecast
		objective     *ObjectiveStatus   // nil without an objective
		wake          *engine.WakeStatus // nil while wake-ahead is off
		hpaEquivalent int32
		hpa           *int32          // the real HPA's desired replicas, when one targets the workload
		conflict      string          // why prescale does not write: another autoscaler ("" for none)
		shared        string          // why the decision holds: another policy's target selects the same pods ("" for none)
		capacity      *CapacityStatus // nil when the policy was not allocated
		score         scorecard
	}
}

// setCondition remembers the last message under key and reports whether it changed.
func (t *policyState) setCondition(key, msg string) bool {
	if t.conditions == nil {
		t.conditions = map[string]string{}
	}
	if t.conditions[key] == msg {
		return false
	}
	t.conditions[key] = msg
	return true
}

func (t *policyState) forgetCondition(key string) { delete(t.conditions, key) }
