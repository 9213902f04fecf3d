package main

import (
	"bytes"
	"fmt"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

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
// then the global settings, strictly decoded and validated (every problem at once).
func parseConfig(content []byte, flags *pflag.FlagSet) (Settings, []policy.Policy, error) {
	pf, err := policy.Parse(bytes.NewReader(content), settingKeys...)
	if err != nil {
		return Settings{}, nil, err
	}
	v, err := newSettingsViper(content, flags)
	if err != nil {
		return Settings{}, nil, err
	}
	s, err := loadSettings(v)
	if err != nil {
		return Settings{}, nil, err
	}
	if err := s.Validate(); err != nil {
		return Settings{}, nil, err
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
