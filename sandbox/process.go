package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Process is the record of one started component, kept in the state file so that
// Down can stop it from another process.
type Process struct {
	Name string `json:"name"`
	PID  int    `json:"pid"`
	Exe  string `json:"exe"` // resolved binary path, checked before signalling
	Log  string `json:"log"`
	// Args are the arguments it was started with, to start it again (State.Backfill).
	Args []string `json:"args,omitempty"`
}

// child is a component started by this process: it can be waited for.
type child struct {
	Process
	done chan struct{}
	err  error
}

// startProcess starts bin detached in its own session (it outlives this process
// and a Ctrl-C on the terminal), with stdout and stderr appended to logDir/name.log
// and env added to this process's environment.
func startProcess(name, bin string, args, env []string, logDir string) (*child, error) {
	exe, err := filepath.EvalSymlinks(bin)
	if err != nil {
		return nil, fmt.Errorf("find binary of %s (run make tools): %w", name, err)
	}
	logPath := filepath.Join(logDir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	defer logFile.Close()
	fmt.Fprintf(logFile, "==== %s %s %s\n", time.Now().UTC().Format(time.RFC3339), exe, strings.Join(args, " "))

	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{
		Process: Process{Name: name, PID: cmd.Process.Pid, Exe: exe, Log: logPath, Args: args},
		done:    make(chan struct{}),
	}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// exited reports an error with the tail of the log if the child has stopped.
func (c *child) exited() error {
	select {
	case <-c.done:
		return fmt.Errorf("%s exited (%v); last lines of %s:\n%s", c.Name, c.err, c.Log, tail(c.Log, 20))
	default:
		return nil
	}
}

// stop stops a child of this process: SIGTERM to its process group, SIGKILL after
// grace. The child is not reaped before it is done, so its pid cannot be recycled.
func (c *child) stop(grace time.Duration) {
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(-c.PID, syscall.SIGTERM)
	select {
	case <-c.done:
		return
	case <-time.After(grace):
	}
	_ = syscall.Kill(-c.PID, syscall.SIGKILL)
	<-c.done
}

// waitReady polls check until it succeeds, the child dies, or timeout passes.
func (c *child) waitReady(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if err := c.exited(); err != nil {
			return err
		}
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		last = check(cctx)
		ccancel()
		if last == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s to be ready: %w (last check: %v); last lines of %s:\n%s", c.Name, ctx.Err(), last, c.Log, tail(c.Log, 20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// alive reports whether pid runs the binary exe (and is not a zombie), so that a
// recycled pid is never signalled.
func alive(p Process) bool {
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.PID))
	if err != nil || strings.TrimSuffix(exe, " (deleted)") != p.Exe {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.PID))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	return true
}

// stop sends SIGTERM to the process group of p, then SIGKILL after grace.
func stop(p Process, grace time.Duration) error {
	if !alive(p) {
		return nil
	}
	_ = syscall.Kill(-p.PID, syscall.SIGTERM)
	_ = syscall.Kill(p.PID, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(p) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = syscall.Kill(-p.PID, syscall.SIGKILL)
	_ = syscall.Kill(p.PID, syscall.SIGKILL)
	for range 100 {
		if !alive(p) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("stop %s (pid %d): still running after SIGKILL", p.Name, p.PID)
}

// freePort asks the kernel for a free loopback TCP port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    " + strings.Join(lines, "\n    ")
}
