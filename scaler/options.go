package scaler

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
)

// CapacityMode says what the controller does with the GPUs left in the cluster.
type CapacityMode string

const (
	// CapacityCap never asks for more pods than can be placed (CapacityLimited).
	CapacityCap CapacityMode = "cap"
	// CapacityOff asks for what the metrics want, for clusters whose node autoscaler needs
	// Pending pods to grow.
	CapacityOff CapacityMode = "off"
)

// Options are the controller's settings (the policy file's global section).
type Options struct {
	// Interval between ticks.
	Interval time.Duration
	// DryRun decides and reports but never writes; a policy's dryRun overrides it. It is
	// the value at start: Controller.SetDryRun changes it live.
	DryRun bool
	// Staleness: samples older than this are missing.
	Staleness time.Duration
	// MissingAfter is how long a policy's objective or forecast load may have no usable
	// sample before the controller says so with an event (ObjectiveMissing,
	// ForecastLoadMissing); the prescale_*_missing gauges say it at once.
	MissingAfter time.Duration
	// QueryConcurrency bounds the Prometheus queries in flight.
	QueryConcurrency int
	// SyncConcurrency bounds the policies synced at once.
	SyncConcurrency int
	// Capacity configures the GPU capacity cap.
	Capacity CapacityOptions
	// WatchTargets reads the scale of apps/v1 Deployments and StatefulSets from informers
	// (a watch) instead of one GET of the scale subresource per policy and tick; other
	// kinds are always read through their scale subresource.
	WatchTargets bool
	// Identity names this instance: the field manager of its writes and its lease holder
	// identity, so that every write can be traced to one process.
	Identity string
	// Install names this installation among others in the cluster (a label value): its
	// CapacityBuffers carry it (prescale.io/install), and it sizes and deletes no other's.
	Install string
}

// CapacityOptions configure the GPU allocation (docs/capacity.md).
type CapacityOptions struct {
	Mode CapacityMode
	// Resources are the GPU kinds: the extended resources that limit placement, each a
	// name (nvidia.com/gpu) or a prefix ending in * (nvidia.com/mig-*). Each kind is a pool.
	Resources []string
	// PendingAllowance is how many Pending pods beyond what fits may be asked for, in each
	// pool that Pools does not name.
	PendingAllowance int32
	// Pools set a pool's own allowance.
	Pools []PoolOptions
	// Buffers says whether a policy with a forecast sizes a CapacityBuffer, so that a node
	// autoscaler provisions the nodes its forecast needs ahead of the surge
	// (docs/capacity.md). Auto: where the CapacityBuffer API is served.
	Buffers BufferMode
	// NodeLead is the node lead time a buffer is sized for until a node pool's lead time
	// (creation to Ready) has been measured: a GPU VM's boot, driver and image pull.
	NodeLead time.Duration
}

// BufferMode says whether prescale writes CapacityBuffers.
type BufferMode string

const (
	// BuffersAuto sizes a CapacityBuffer for each policy with a forecast, where the API is
	// served.
	BuffersAuto BufferMode = "auto"
	// BuffersOff writes none.
	BuffersOff BufferMode = "off"
)

// DefaultNodeLead is Options.Capacity.NodeLead by default: a GPU node's provisioning in a
// cloud, 5 to 15 minutes.
const DefaultNodeLead = 10 * time.Minute

// PoolOptions configure one pool: the GPUs of one kind.
type PoolOptions struct {
	// Resource is the kind's name, e.g. nvidia.com/mig-1g.10gb.
	Resource string
	// PendingAllowance is how many Pending pods of the kind beyond what fits may be asked
	// for.
	PendingAllowance int32
}

// DefaultResources are the GPU kinds by default: NVIDIA GPUs, their MIG profiles, AMD GPUs.
var DefaultResources = []string{"nvidia.com/gpu", "nvidia.com/mig-*", "amd.com/gpu"}

// IsGPU reports whether the resource name is one of the GPU kinds.
func (o CapacityOptions) IsGPU(name string) bool {
	for _, r := range o.Resources {
		if prefix, ok := strings.CutSuffix(r, "*"); ok {
			if strings.HasPrefix(name, prefix) {
				return true
			}
		} else if r == name {
			return true
		}
	}
	return false
}

// Allowance returns the Pending pods allowed in the pool of kind.
func (o CapacityOptions) Allowance(kind string) int32 {
	for _, p := range o.Pools {
		if p.Resource == kind {
			return p.PendingAllowance
		}
	}
	return o.PendingAllowance
}

// DefaultOptions returns the defaults of every setting.
func DefaultOptions() Options {
	return Options{
		Interval:         15 * time.Second,
		Staleness:        2 * time.Minute,
		MissingAfter:     5 * time.Minute,
		QueryConcurrency: 32,
		SyncConcurrency:  64,
		Capacity: CapacityOptions{Mode: CapacityCap, Resources: slices.Clone(DefaultResources),
			Buffers: BuffersAuto, NodeLead: DefaultNodeLead},
		WatchTargets: true,
		Identity:     "prescale",
		Install:      "prescale",
	}
}

// Validate reports every invalid setting at once.
func (o Options) Validate() error {
	var errs []error
	if o.Interval < time.Second {
		errs = append(errs, fmt.Errorf("interval: must be at least 1s, got %s", o.Interval))
	}
	if o.Staleness <= 0 {
		errs = append(errs, fmt.Errorf("staleness: must be > 0, got %s", o.Staleness))
	}
	if o.MissingAfter <= 0 {
		errs = append(errs, fmt.Errorf("missingAfter: must be > 0, got %s", o.MissingAfter))
	}
	if o.QueryConcurrency < 1 {
		errs = append(errs, fmt.Errorf("prometheus.concurrency: must be >= 1, got %d", o.QueryConcurrency))
	}
	if o.SyncConcurrency < 1 {
		errs = append(errs, fmt.Errorf("syncConcurrency: must be >= 1, got %d", o.SyncConcurrency))
	}
	switch o.Capacity.Mode {
	case CapacityCap, CapacityOff:
	default:
		errs = append(errs, fmt.Errorf("capacity.mode: must be cap or off, got %q", o.Capacity.Mode))
	}
	errs = append(errs, o.Capacity.validate()...)
	if o.Identity == "" {
		errs = append(errs, errors.New("identity: required"))
	}
	if msgs := validation.IsValidLabelValue(o.Install); o.Install == "" || len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("install: must be a label value, got %q", o.Install))
	}
	return errors.Join(errs...)
}

// validate reports every invalid capacity setting.
func (o CapacityOptions) validate() []error {
	var errs []error
	if len(o.Resources) == 0 {
		errs = append(errs, errors.New("capacity.resources: at least one GPU kind is required"))
	}
	seen := map[string]int{}
	for i, r := range o.Resources {
		name := strings.TrimSuffix(r, "*")
		switch {
		case name == "" || strings.Contains(name, "*"):
			errs = append(errs, fmt.Errorf("capacity.resources[%d]: must be a resource name, or a prefix ending in *, got %q", i, r))
		default:
			if j, ok := seen[r]; ok {
				errs = append(errs, fmt.Errorf("capacity.resources[%d]: duplicate %q, also capacity.resources[%d]", i, r, j))
			}
			seen[r] = i
		}
	}
	if o.PendingAllowance < 0 {
		errs = append(errs, fmt.Errorf("capacity.pendingAllowance: must be >= 0, got %d", o.PendingAllowance))
	}
	switch o.Buffers {
	case BuffersAuto, BuffersOff:
	default:
		errs = append(errs, fmt.Errorf("capacity.buffers: must be auto or off, got %q", o.Buffers))
	}
	if o.NodeLead < time.Second || o.NodeLead > time.Hour {
		errs = append(errs, fmt.Errorf("capacity.nodeLead: must be within 1s..1h, got %s", o.NodeLead))
	}
	pools := map[string]int{}
	for i, p := range o.Pools {
		switch {
		case p.Resource == "" || strings.Contains(p.Resource, "*"):
			errs = append(errs, fmt.Errorf("capacity.pools[%d].resource: must be a resource name, got %q", i, p.Resource))
		case !o.IsGPU(p.Resource):
			errs = append(errs, fmt.Errorf("capacity.pools[%d].resource: must be one of capacity.resources %v, got %q", i, o.Resources, p.Resource))
		default:
			if j, ok := pools[p.Resource]; ok {
				errs = append(errs, fmt.Errorf("capacity.pools[%d].resource: duplicate %q, also capacity.pools[%d]", i, p.Resource, j))
			}
			pools[p.Resource] = i
		}
		if p.PendingAllowance < 0 {
			errs = append(errs, fmt.Errorf("capacity.pools[%d].pendingAllowance: must be >= 0, got %d", i, p.PendingAllowance))
		}
	}
	return errs
}
