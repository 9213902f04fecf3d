package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"k8s.io/client-go/tools/clientcmd"
)

// prescale run finds its file as validate does: --file, else PRESCALE_FILE. Each case stops
// before any cluster is needed: at the file's problems, or at a kubeconfig that is missing,
// which the message names (never client-go's "try setting KUBERNETES_MASTER").
func TestRunFindsItsFile(t *testing.T) {
	dir := t.TempDir()
	bad := writeFile(t, "interval: 500ms\n"+policiesYAML)
	otherBad := writeFile(t, "staleness: 0s\n"+policiesYAML)
	good := writeFile(t, policiesYAML)
	noKubeconfig := filepath.Join(dir, "no-such-kubeconfig")
	tests := []struct {
		name string
		args []string
		env  map[string]string
		// wantStderr is the start of standard error.
		wantStderr string
	}{
		{name: "no file at all",
			args:       []string{"run"},
			wantStderr: "prescale: no policy file: give -f FILE\n"},
		{name: "PRESCALE_FILE names the file",
			args:       []string{"run"},
			env:        map[string]string{"PRESCALE_FILE": bad},
			wantStderr: "prescale: load " + bad + ": interval: must be at least 1s, got 500ms (line 1)\n"},
		{name: "--file wins over PRESCALE_FILE",
			args:       []string{"run", "--file", otherBad},
			env:        map[string]string{"PRESCALE_FILE": bad},
			wantStderr: "prescale: load " + otherBad + ": staleness: must be > 0, got 0s (line 1)\n"},
		{name: "a good PRESCALE_FILE gets as far as the clients (PRESCALE_KUBECONFIG names the kubeconfig)",
			args:       []string{"run"},
			env:        map[string]string{"PRESCALE_FILE": good, "PRESCALE_KUBECONFIG": noKubeconfig},
			wantStderr: "prescale: kubernetes client configuration: stat " + noKubeconfig + ": no such file or directory\n"},
		{name: "a KUBECONFIG that does not exist is named",
			args:       []string{"run", "-f", good},
			env:        map[string]string{"KUBECONFIG": noKubeconfig},
			wantStderr: "prescale: kubernetes client configuration: KUBECONFIG=" + noKubeconfig + ": no such file\n"},
		{name: "a KUBECONFIG of several files none of which exists names them",
			args:       []string{"run", "-f", good},
			env:        map[string]string{"KUBECONFIG": noKubeconfig + string(filepath.ListSeparator) + noKubeconfig + "-2"},
			wantStderr: "prescale: kubernetes client configuration: KUBECONFIG=" + noKubeconfig + string(filepath.ListSeparator) + noKubeconfig + "-2: no such file\n"},
	}
	if _, err := os.Stat(clientcmd.RecommendedHomeFile); errors.Is(err, fs.ErrNotExist) {
		tests = append(tests, struct {
			name       string
			args       []string
			env        map[string]string
			wantStderr string
		}{name: "no kubeconfig anywhere, and not in a pod: where it looked",
			args: []string{"run", "-f", good},
			wantStderr: "prescale: kubernetes client configuration: no kubeconfig: --kubeconfig and KUBECONFIG are not set, " +
				clientcmd.RecommendedHomeFile + " does not exist, and prescale does not run in a pod (KUBERNETES_SERVICE_HOST is not set)\n"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("PRESCALE_FILE", "")
			t.Setenv("PRESCALE_KUBECONFIG", "")
			t.Setenv("KUBECONFIG", "")
			t.Setenv("KUBERNETES_SERVICE_HOST", "")
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var stdout, stderr bytes.Buffer
			if code := execute(tc.args, strings.NewReader(""), &stdout, &stderr); code != 2 {
				t.Errorf("exit code = %d, want 2", code)
			}
			if !strings.HasPrefix(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr = %q, want it to start with %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

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
