package demo

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prescale/prescale/sandbox/sim"
)

func TestLine(t *testing.T) {
	cases := []struct {
		name string
		r    sim.Report
		want []string
	}{
		{
			name: "a served tick shows load, capacity and counts",
			r:    sim.Report{ModelTime: 75 * time.Second, Lambda: 27.1, Mu: 10.6, Desired: 4, Ready: 4, Tick: sim.Tick{Util: 64}},
			want: []string{"01:15", "27.1", "42.4", "64%"},
		},
		{
			name: "an under-provisioned tick is flagged",
			r:    sim.Report{ModelTime: 8 * time.Minute, Lambda: 66, Mu: 10, Ready: 4, Tick: sim.Tick{Queue: 353, Delay: 8.3, UnderProvisioned: true}},
			want: []string{"08:00", "353", "8.3s", "UNDER-PROVISIONED"},
		},
		{
			name: "no Ready pod with a queue shows an infinite delay",
			r:    sim.Report{Lambda: 1, Mu: 10, Pending: 2, Tick: sim.Tick{Queue: 15, Delay: math.Inf(1), UnderProvisioned: true}},
			want: []string{"inf", "UNDER-PROVISIONED"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := line(c.r)
			for _, w := range c.want {
				if !strings.Contains(got, w) {
					t.Errorf("line = %q, want it to contain %q", got, w)
				}
			}
		})
	}
}

func TestLoadSurges(t *testing.T) {
	l := Load(42)
	// The surge multiplies the load by 2.5 from minute 8 to minute 15 inclusive.
	before, during, after := l.RequestsPerMinute(7), l.RequestsPerMinute(8), l.RequestsPerMinute(16)
	if during < 2*before || during < 2*after {
		t.Errorf("load at minutes 7, 8, 16 = %.0f, %.0f, %.0f; want a surge of about 2.5x at 8", before, during, after)
	}
}
