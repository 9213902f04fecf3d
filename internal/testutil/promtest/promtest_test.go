package promtest

import (
	"testing"
	"time"
)

func TestScrapeConfig(t *testing.T) {
	for _, tc := range []struct {
		name     string
		interval time.Duration
		targets  []string
		want     string
	}{
		{name: "no targets: the global settings alone", interval: time.Second,
			want: "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"},
		{name: "whole seconds in s, the rest in ms, each target quoted", interval: 1500 * time.Millisecond, targets: []string{"127.0.0.1:1", "127.0.0.1:2"},
			want: "global:\n  scrape_interval: 1500ms\n  scrape_timeout: 1500ms\n  evaluation_interval: 1500ms\n" +
				"scrape_configs:\n  - job_name: \"vllm\"\n    static_configs:\n      - targets:\n          - \"127.0.0.1:1\"\n          - \"127.0.0.1:2\"\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ScrapeConfig("vllm", tc.interval, tc.targets...); got != tc.want {
				t.Errorf("ScrapeConfig =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
