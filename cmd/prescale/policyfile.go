package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/prescale/prescale/policy"
)

// readPolicyFile reads a policy file's content from r, at most one byte more than
// policy.MaxFileBytes: enough for policy.Parse to refuse a longer file, without holding all
// of it in memory.
func readPolicyFile(r io.Reader) ([]byte, error) {
	return io.ReadAll(io.LimitReader(r, policy.MaxFileBytes+1))
}

// readPolicyPath is readPolicyFile for the file at path.
func readPolicyPath(path string) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return readPolicyFile(fh)
}

// loadPolicy reads the policy file at path and returns the policy named name, or the only
// policy when name is empty and the file holds one.
func loadPolicy(path, name string) (*policy.Policy, error) {
	if path == "" {
		return nil, errors.New("no policy file: give -f FILE")
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open policy file: %w", err)
	}
	defer fh.Close()
	f, err := policy.Parse(fh, settingKeys...)
	if err != nil {
		return nil, fmt.Errorf("policy file %s has problems (run prescale validate -f %s):\n%w", path, path, err)
	}
	names := make([]string, len(f.Policies))
	for i := range f.Policies {
		if f.Policies[i].Name == name || (name == "" && len(f.Policies) == 1) {
			return &f.Policies[i], nil
		}
		names[i] = f.Policies[i].Name
	}
	if name == "" {
		return nil, fmt.Errorf("policy file %s holds %d policies (%s): choose one with --policy", path, len(names), strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("policy file %s has no policy %q (it has %s)", path, name, strings.Join(names, ", "))
}
