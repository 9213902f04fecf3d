package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
	own := map[string]bool{"file": true, "kubeconfig": true, "identity": true, "profiling": true}
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

// prescale run against an API server that cannot be reached (a port on 127.0.0.1 that was
// just closed) says so at the default verbosity, naming the server and the error, within a
// check period (5 s) and not a minute; it is alive (/healthz) but not ready (/readyz, which
// says why); a SIGTERM then stops it cleanly (exit 0), saying the server was never reached.
func TestRunWithoutAPIServer(t *testing.T) {
	server := closedPort(t)
	kubeconfig := writeFile(t, `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://`+server+`"}}]
users: [{name: u, user: {token: t0ken}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`)
	p := startPrescale(t, "run", "-f", writeFile(t, policiesYAML), "--kubeconfig", kubeconfig, "--listen-address", "127.0.0.1:0")
	started := p.await(t, 10*time.Second, `"Starting prescale"`)
	listen := regexp.MustCompile(`listen="([^"]+)"`).FindStringSubmatch(started)
	if listen == nil {
		t.Fatalf("the start line names no listen address: %s", started)
	}
	warning := p.await(t, 20*time.Second, `"Cannot reach the API server; the informer caches have not synced"`)
	for _, want := range []string{`server="` + server + `"`, "connection refused"} {
		if !strings.Contains(warning, want) {
			t.Errorf("the warning lacks %s: %s", want, warning)
		}
	}
	if strings.Contains(warning, "t0ken") {
		t.Errorf("the warning shows the token: %s", warning)
	}
	for _, probe := range []struct {
		path     string
		wantCode int
		wantBody string
	}{
		{"/healthz", http.StatusOK, "ok"},
		{"/readyz", http.StatusServiceUnavailable, "informer caches not synced: cannot reach the API server " + server + ": "},
	} {
		resp, err := http.Get("http://" + listen[1] + probe.path)
		if err != nil {
			t.Fatalf("GET %s: %v", probe.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != probe.wantCode || !strings.HasPrefix(string(body), probe.wantBody) {
			t.Errorf("GET %s: %d %q, want %d and a body starting with %q", probe.path, resp.StatusCode, body, probe.wantCode, probe.wantBody)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code after SIGTERM = %d, want 0; standard error:\n%s", code, p.stderr())
	}
	if !strings.Contains(p.stderr(), `"Stopped while waiting for the informer caches" err="stopped before the informer caches synced: the API server `+server+` was never reached: `) {
		t.Errorf("standard error does not say the API server was never reached:\n%s", p.stderr())
	}
}

// prescaleProcess is prescale running in a process of its own: the test binary, as TestMain
// runs it.
type prescaleProcess struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when standard error is read to its end
	mu   sync.Mutex
	err  []string // standard error so far, by line
	// lines receives each line of standard error as it is read.
	lines chan string
}

// startPrescale starts prescale with args in a process of its own; the test's end kills it
// if it still runs.
func startPrescale(t *testing.T, args ...string) *prescaleProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "PRESCALE_TEST_MAIN=1")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &prescaleProcess{cmd: cmd, done: make(chan struct{}), lines: make(chan string, 1000)}
	go func() {
		defer close(p.done)
		s := bufio.NewScanner(stderr)
		for s.Scan() {
			p.mu.Lock()
			p.err = append(p.err, s.Text())
			p.mu.Unlock()
			select {
			case p.lines <- s.Text():
			default:
			}
		}
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
			_ = cmd.Wait()
		}
	})
	return p
}

// await returns the first line of standard error not read yet by await that contains s,
// waiting for it up to d; it fails the test without one.
func (p *prescaleProcess) await(t *testing.T, d time.Duration, s string) string {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case l := <-p.lines:
			if strings.Contains(l, s) {
				return l
			}
		case <-p.done:
			t.Fatalf("prescale ended without writing %s; standard error:\n%s", s, p.stderr())
		case <-deadline:
			t.Fatalf("no %s on standard error within %s:\n%s", s, d, p.stderr())
		}
	}
}

// wait waits up to d for prescale to end and returns its exit code.
func (p *prescaleProcess) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("prescale still runs %s after the signal; standard error:\n%s", d, p.stderr())
	}
	err := p.cmd.Wait()
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func (p *prescaleProcess) stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.err, "\n")
}
