package scaler

import (
	"errors"
	"fmt"
	"time"
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
	// QueryConcurrency bounds the Prometheus queries in flight.
	QueryConcurrency int
	// SyncConcurrency bounds the policies synced at once.
	SyncConcurrency int
	// Capacity configures the GPU capacity cap.
	Capacity CapacityOptions
	// Identity names this instance: the field manager of its writes and its lease holder
	// identity, so that every write can be traced to one process.
	Identity string
}

// CapacityOptions configure the GPU capacity cap.
type CapacityOptions struct {
	Mode CapacityMode
	// Resource is the extended resource that limits placement, e.g. nvidia.com/gpu.
	Resource string
	// PendingAllowance is how many Pending pods beyond what fits may be asked for.
	PendingAllowance int32
}

// DefaultOptions returns the defaults of every setting.
func DefaultOptions() Options {
	return Options{
		Interval:         15 * time.Second,
		Staleness:        2 * time.Minute,
		QueryConcurrency: 32,
		SyncConcurrency:  64,
		Capacity:         CapacityOptions{Mode: CapacityCap, Resource: "nvidia.com/gpu"},
		Identity:         "prescale",
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
	if o.Capacity.Resource == "" {
		errs = append(errs, errors.New("capacity.resource: required"))
	}
	if o.Capacity.PendingAllowance < 0 {
		errs = append(errs, fmt.Errorf("capacity.pendingAllowance: must be >= 0, got %d", o.Capacity.PendingAllowance))
	}
	if o.Identity == "" {
		errs = append(errs, errors.New("identity: required"))
	}
	return errors.Join(errs...)
}
