package main

import (
	"context"
	"fmt"
	"reflect"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"
	"k8s.io/klog/v2"

	"github.com/prescale/prescale/policy"
)

// liveConfig takes what a reload changes live; the next tick uses it (scaler.Controller).
type liveConfig interface {
	SetPolicies([]policy.Policy)
	SetDryRun(bool)
}

// liveSettings are the global settings (YAML paths) that a reload applies at once; every
// other one needs a restart.
var liveSettings = []string{"dryRun"}

// reloader applies a new version of the policy file, loaded and checked as at start-up
// (loadConfig: the policies, and every global setting through Settings.Validate); a version
// that fails is rejected whole and the last good one keeps running.
//
// What applies live, at the next tick: the policies (the whole policies list: added,
// removed and changed policies) and dryRun (liveSettings), so that dryRun: true is a kill
// switch that needs no restart. What needs a restart: every other global setting, i.e.
// every other field of Settings (prometheus.*, interval, staleness, missingAfter, syncConcurrency,
// capacity.*, leaderElection.*, listenAddress, kubernetes.*, externalMetrics.*): the
// controller, the Prometheus client, the Lease and the servers are built from them once.
// A changed one is logged by its YAML path (changedSettings).
type reloader struct {
	file  string
	flags *pflag.FlagSet
	// running are the settings in force: those prescale started with, and the live ones
	// as last reloaded.
	running Settings
	live    liveConfig
	// successful and timestamp are the controller's last-reload gauges.
	successful, timestamp prometheus.Gauge
}

// reload loads the file and applies its policies, or logs why it did not.
func (r *reloader) reload(ctx context.Context) {
	logger := klog.FromContext(ctx)
	s, policies, err := loadConfig(r.file, r.flags)
	if err == nil && s.Interval != r.running.Interval {
		// The new interval applies after a restart: until then the forecasts run at the
		// running one, and must be buildable at it too.
		if verr := (policy.File{Policies: policies}).ValidateStep(r.running.Interval); verr != nil {
			err = fmt.Errorf("check the policies at the running interval %s (the new interval %s applies after a restart): %w",
				r.running.Interval, s.Interval, verr)
		}
	}
	if err != nil {
		r.successful.Set(0)
		logger.Error(err, "Rejected the new configuration; the last good one keeps running", "file", r.file)
		return
	}
	restart := slices.DeleteFunc(changedSettings(r.running, s), func(path string) bool { return slices.Contains(liveSettings, path) })
	if len(restart) > 0 {
		logger.Info("Global settings changed; policies and dryRun reloaded now, these settings apply after a restart",
			"file", r.file, "settings", restart)
	}
	// The switch first: a reload that turns dry-run on and changes the policies never
	// lets the new policies write.
	if s.DryRun != r.running.DryRun {
		logger.Info("Global dryRun changed; applies from the next tick", "file", r.file, "dryRun", s.DryRun)
		r.live.SetDryRun(s.DryRun)
		r.running.DryRun = s.DryRun
	}
	r.live.SetPolicies(policies)
	markReloaded(r.successful, r.timestamp)
	logger.Info("Reloaded configuration", "file", r.file, "policies", len(policies))
}

// markReloaded records a successful load of the configuration.
func markReloaded(successful, timestamp prometheus.Gauge) {
	successful.Set(1)
	timestamp.SetToCurrentTime()
}

// changedSettings returns the YAML paths (prometheus.url, leaderElection.leaseDuration) of
// the global settings that differ between a and b, in the order of Settings' fields. It
// compares every field, structurally: a field added to Settings is compared without being
// listed here. Policies are not settings (they reload live) and are skipped.
func changedSettings(a, b Settings) []string {
	return changedFields("", reflect.ValueOf(a), reflect.ValueOf(b))
}

// changedFields walks the structs a and b, of one type, down to their leaves.
func changedFields(prefix string, a, b reflect.Value) []string {
	var paths []string
	for i := range a.NumField() {
		f := a.Type().Field(i)
		path := prefix + f.Tag.Get("mapstructure")
		switch {
		case path == "policies":
		case f.Type.Kind() == reflect.Struct:
			paths = append(paths, changedFields(path+".", a.Field(i), b.Field(i))...)
		case !reflect.DeepEqual(a.Field(i).Interface(), b.Field(i).Interface()):
			paths = append(paths, path)
		}
	}
	return paths
}
