package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
)

// Every flag of run either is one of run's own (file, kubeconfig, identity) or overrides a
// setting that exists, and overrides it when given.
func TestSettingFlags(t *testing.T) {
	own := map[string]bool{"file": true, "kubeconfig": true, "identity": true}
	cmd := newRunCmd(nil)
	for name := range settingFlags {
		if cmd.Flags().Lookup(name) == nil {
			t.Errorf("settingFlags names --%s, which prescale run does not have", name)
		}
	}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if _, ok := settingFlags[f.Name]; !ok && !own[f.Name] {
			t.Errorf("--%s is neither run's own flag nor in settingFlags", f.Name)
		}
	})

	given := map[string]string{
		"dry-run":                   "true",
		"interval":                  "7s",
		"prometheus-url":            "http://flag:9090",
		"listen-address":            ":1234",
		"leader-elect":              "false",
		"leader-election-namespace": "flag-ns",
		"external-metrics":          "true",
		"external-metrics-address":  ":5678",
	}
	var args []string
	for name, val := range given {
		args = append(args, "--"+name+"="+val)
	}
	v, err := newSettingsViper([]byte(policiesYAML), runFlagSet(t, args...))
	if err != nil {
		t.Fatal(err)
	}
	defaults := viper.New()
	settingDefaults(defaults)
	got, want := map[string]string{}, map[string]string{}
	for name, key := range settingFlags {
		if !defaults.IsSet(key) {
			t.Errorf("--%s overrides %s, which is not a setting", name, key)
		}
		got[name], want[name] = v.GetString(key), given[name]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("settings from the flags (-want +got):\n%s", diff)
	}
}
