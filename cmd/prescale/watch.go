package main

import (
	"context"
	"crypto/sha256"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
	"k8s.io/klog/v2"
)

// watchConfig calls reload whenever the content of file changes, until ctx ends. It watches
// the file's directory (so that editors' renames and a ConfigMap's symlink swap are seen) and,
// as a fallback for file systems without notifications, compares the content every poll.
func watchConfig(ctx context.Context, file string, poll time.Duration, reload func()) {
	logger := klog.FromContext(ctx)
	last := digest(file)
	changed := make(chan struct{}, 1)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		logger.Error(err, "Watching the configuration failed; polling only", "file", file)
	} else {
		defer w.Close()
		if err := w.Add(filepath.Dir(file)); err != nil {
			logger.Error(err, "Watching the configuration's folder failed; polling only", "file", file)
		}
		go func() {
			for {
				select {
				case _, ok := <-w.Events:
					if !ok {
						return
					}
					select {
					case changed <- struct{}{}:
					default:
					}
				case err, ok := <-w.Errors:
					if !ok {
						return
					}
					logger.Error(err, "Configuration watch error", "file", file)
				}
			}
		}()
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
			time.Sleep(100 * time.Millisecond) // let a multi-step write settle
		case <-t.C:
		}
		if d := digest(file); d != last {
			last = d
			reload()
		}
	}
}

// digest returns a hash of the file's content through any symlinks, or zero if unreadable.
func digest(file string) [32]byte {
	b, err := os.ReadFile(file)
	if err != nil {
		return [32]byte{}
	}
	return sha256.Sum256(b)
}
