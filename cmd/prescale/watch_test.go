package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A ConfigMap volume: the file is a symlink through ..data, which the kubelet swaps
// atomically to a new timestamped folder.
func TestWatchConfigSeesConfigMapSwap(t *testing.T) {
	dir := t.TempDir()
	write := func(gen, content string) {
		t.Helper()
		d := filepath.Join(dir, gen)
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "prescale.yaml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		if err := os.Symlink(gen, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	write("..2026_01_01_00_00_00.1", "interval: 15s\n")
	if err := os.Symlink(filepath.Join("..data", "prescale.yaml"), filepath.Join(dir, "prescale.yaml")); err != nil {
		t.Fatal(err)
	}
	reloads := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// A poll of one hour: only the notification can trigger the reload in time.
	go watchConfig(ctx, filepath.Join(dir, "prescale.yaml"), time.Hour, func() { reloads <- struct{}{} })
	time.Sleep(200 * time.Millisecond) // the watch is set up

	write("..2026_01_01_00_01_00.2", "interval: 30s\n")
	select {
	case <-reloads:
	case <-time.After(5 * time.Second):
		t.Fatal("no reload after the ConfigMap's symlink swap")
	}
	// An event that does not change the content does not reload.
	if err := os.WriteFile(filepath.Join(dir, "unrelated"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reloads:
		t.Fatal("reloaded without a change of content")
	case <-time.After(500 * time.Millisecond):
	}
}

// Without notifications (or when they are missed), the poll still finds the change.
func TestWatchConfigPolls(t *testing.T) {
	file := filepath.Join(t.TempDir(), "prescale.yaml")
	if err := os.WriteFile(file, []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	reloads := make(chan struct{}, 10)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go watchConfig(ctx, file, 100*time.Millisecond, func() { reloads <- struct{}{} })
	time.Sleep(50 * time.Millisecond)
	if err := os.WriteFile(file, []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case <-reloads:
	case <-time.After(3 * time.Second):
		t.Fatal("no reload")
	}
}
