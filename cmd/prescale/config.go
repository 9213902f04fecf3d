package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/prescale/prescale/policy"
)

// The policy file is loaded one way for validate, for start-up and for every reload:
// parseConfig, whose settings pass Settings.Validate.

// newSettingsViper returns a viper with every default, the file's content, the environment
// and the setting flags given on the command line (settingFlags), in that order of
// precedence (lowest first). flags may be nil (validate has no setting flags).
func newSettingsViper(content []byte, flags *pflag.FlagSet) (*viper.Viper, error) {
	v := viper.New()
	settingDefaults(v)
	v.SetConfigType("yaml")
	v.SetEnvPrefix("PRESCALE")
	v.SetEnvKeyReplacer(envKeyReplacer)
	v.AutomaticEnv()
	if flags != nil {
		for name, key := range settingFlags {
			if fl := flags.Lookup(name); fl != nil && fl.Changed {
				if err := v.BindPFlag(key, fl); err != nil {
					return nil, fmt.Errorf("bind flag --%s: %w", name, err)
				}
			}
		}
	}
	if err := v.ReadConfig(bytes.NewReader(content)); err != nil {
		return nil, fmt.Errorf("read settings: %w", err)
	}
	return v, nil
}

// parseConfig checks a whole policy file: the policies first (every problem with its line),
// then the global settings, strictly decoded and validated (every problem at once, with
// its line when the file set the value). The policies' forecasts are checked at the
// interval the settings give (policy.ParseStep: the controller samples the load every
// interval), so the settings are read first; their problems are still reported only when
// the policies have none.
func parseConfig(content []byte, flags *pflag.FlagSet) (Settings, []policy.Policy, error) {
	v, settingsErr := newSettingsViper(content, flags)
	var s Settings
	if settingsErr == nil {
		s, settingsErr = loadSettings(v)
	}
	step := policy.MinForecastStep // an interval shorter than it is the settings' problem
	if settingsErr == nil {
		step = max(step, s.Interval)
	}
	pf, err := policy.ParseStep(bytes.NewReader(content), step, settingKeys...)
	if err != nil {
		return Settings{}, nil, err
	}
	if settingsErr != nil {
		return Settings{}, nil, settingsErr
	}
	if err := s.Validate(); err != nil {
		return Settings{}, nil, withLines(err, content, flags)
	}
	return s, pf.Policies, nil
}

// loadConfig reads and checks the file at path.
func loadConfig(path string, flags *pflag.FlagSet) (Settings, []policy.Policy, error) {
	content, err := readPolicyPath(path)
	if err != nil {
		return Settings{}, nil, fmt.Errorf("read policy file: %w", err)
	}
	return parseConfig(content, flags)
}

// withLines adds to each problem of Settings.Validate the line of its key in content, when
// the value it judges came from the file: not when the key is absent (a default), or given
// by a PRESCALE_* environment variable or a setting flag, which override the file.
func withLines(err error, content []byte, flags *pflag.FlagSet) error {
	lines := settingLines(content)
	overridden := func(path string) bool {
		if _, ok := os.LookupEnv("PRESCALE_" + strings.ToUpper(envKeyReplacer.Replace(path))); ok {
			return true
		}
		for name, key := range settingFlags {
			if key == path && flags != nil {
				if fl := flags.Lookup(name); fl != nil && fl.Changed {
					return true
				}
			}
		}
		return false
	}
	var out []error
	for _, p := range problems(err) {
		path, _, _ := strings.Cut(p.Error(), ":")
		if line, ok := lines[path]; ok && !overridden(path) {
			p = fmt.Errorf("%w (line %d)", p, line)
		}
		out = append(out, p)
	}
	return errors.Join(out...)
}

// settingLines maps the YAML path of each global setting in content (interval,
// prometheus.url, externalMetrics.tls) to the line of its key. It reads the file's nodes
// without following aliases, so it costs one pass over a file policy.Parse has accepted.
func settingLines(content []byte) map[string]int {
	lines := map[string]int{}
	var doc yaml.Node
	if yaml.Unmarshal(content, &doc) != nil || doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return lines
	}
	var walk func(prefix string, m *yaml.Node)
	walk = func(prefix string, m *yaml.Node) {
		if m.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i], m.Content[i+1]
			if prefix == "" && !slices.Contains(settingKeys, k.Value) {
				continue
			}
			path := prefix + k.Value
			lines[path] = k.Line
			walk(path+".", v)
		}
	}
	walk("", doc.Content[0])
	return lines
}
