package main

import (
	"bytes"
	"flag"
	"regexp"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

// klogFlagNames are the flags klog registers: 15 today (add_dir_header, alsologtostderr,
// alsologtostderrthreshold, legacy_stderr_threshold_behavior, log_backtrace_at, log_dir,
// log_file, log_file_max_size, logtostderr, one_output, skip_headers, skip_log_headers,
// stderrthreshold, v, vmodule).
func klogFlagNames(t *testing.T) []string {
	t.Helper()
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	var names []string
	fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
	if len(names) < 2 {
		t.Fatalf("klog registers %d flags: %v", len(names), names)
	}
	return names
}

// The help hides klog's flags, as kubectl's does; prescale options lists them, and every
// command still takes them.
func TestLogFlags(t *testing.T) {
	names := klogFlagNames(t)
	for _, tc := range []struct {
		name     string
		args     []string
		wantList bool
	}{
		{name: "root help", args: []string{"--help"}},
		{name: "help command", args: []string{"help"}},
		{name: "run help", args: []string{"run", "--help"}},
		{name: "validate help", args: []string{"validate", "--help"}},
		{name: "options lists them", args: []string{"options"}, wantList: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := execute(tc.args, strings.NewReader(""), &stdout, &stderr); code != 0 {
				t.Fatalf("exit code %d, stderr %q", code, stderr.String())
			}
			out := stdout.String()
			for _, n := range names {
				listed := regexp.MustCompile(`--` + regexp.QuoteMeta(n) + `\b`).MatchString(out)
				if listed != tc.wantList {
					t.Errorf("--%s listed: %v, want %v", n, listed, tc.wantList)
				}
			}
			if !tc.wantList && !strings.Contains(out, `Use "prescale options" for the logging flags`) {
				t.Errorf("the help does not point to prescale options:\n%s", out)
			}
		})
	}

	t.Run("still accepted", func(t *testing.T) {
		// Their defaults: parsing them leaves klog as the other tests find it.
		var stdout, stderr bytes.Buffer
		args := []string{"-v=0", "--vmodule=", "--log_dir=", "validate", "-f", "../../examples/policy.yaml"}
		if code := execute(args, strings.NewReader(""), &stdout, &stderr); code != 0 {
			t.Errorf("exit code %d, stderr %q", code, stderr.String())
		}
	})
}
