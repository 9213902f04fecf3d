package sim

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestStep(t *testing.T) {
	dt := 15 * time.Second
	cases := []struct {
		name   string
		q      float64
		lambda float64
		mu     float64
		ready  int
		want   Tick
	}{
		{
			// capacity 2*10*15 = 300 >= 150 arrived: all served, util 150/300 = 50%.
			name: "under capacity serves everything", lambda: 10, mu: 10, ready: 2,
			want: Tick{Arrived: 150, Served: 150, Capacity: 300, Util: 50},
		},
		{
			// capacity exactly 150 = arrivals: lambda == mu*R is not under-provisioned.
			name: "exactly at capacity is not under-provisioned", lambda: 10, mu: 10, ready: 1,
			want: Tick{Arrived: 150, Served: 150, Capacity: 150, Util: 100},
		},
		{
			// 15*15 = 225 arrive, 150 served, 75 queue; per pod 75; delay 75/10 = 7.5 s.
			name: "over capacity builds a queue", lambda: 15, mu: 10, ready: 1,
			want: Tick{Arrived: 225, Served: 150, Capacity: 150, Queue: 75, Util: 100, QueuePerPod: 75, Delay: 7.5, UnderProvisioned: true},
		},
		{
			// queue 100 + 75 arrive = 175 <= capacity 300: all served, util 175/300.
			name: "spare capacity drains the queue", q: 100, lambda: 5, mu: 10, ready: 2,
			want: Tick{Arrived: 75, Served: 175, Capacity: 300, Util: 100 * 175.0 / 300},
		},
		{
			name: "no ready pod queues everything", lambda: 1, mu: 10, ready: 0,
			want: Tick{Arrived: 15, Queue: 15, Util: 100, QueuePerPod: 15, Delay: math.Inf(1), UnderProvisioned: true},
		},
		{
			name: "no ready pod and no load is idle", lambda: 0, mu: 10, ready: 0,
			want: Tick{Util: 100},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st, got := Step(State{Queue: c.q}, c.lambda, c.mu, c.ready, dt)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("Step tick (-want +got):\n%s", diff)
			}
			if st.Queue != c.want.Queue {
				t.Errorf("Step state queue = %v, want %v", st.Queue, c.want.Queue)
			}
		})
	}
}

func TestMu(t *testing.T) {
	// 8400 requests/min = 140 req/s; 140 / (10 * 0.7) = 20 req/s per replica.
	if got := Mu(8400, 10, 0.7); math.Abs(got-20) > 1e-9 {
		t.Errorf("Mu(8400, 10, 0.7) = %v, want 20", got)
	}
}

func TestReadCSV(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    Trace
		wantErr string
	}{
		{name: "minutes in order", in: "minute,requests\n0,10\n1,20\n", want: Trace{10, 20}},
		{name: "a missing minute is zero", in: "minute,requests\n0,10\n2,30\n", want: Trace{10, 0, 30}},
		{name: "wrong header", in: "t,n\n0,1\n", wantErr: "want \"minute,requests\""},
		{name: "minutes going back", in: "minute,requests\n1,1\n0,1\n", wantErr: "line 3: minute \"0\""},
		{name: "negative requests", in: "minute,requests\n0,-1\n", wantErr: "line 2: requests \"-1\""},
		{name: "no rows", in: "minute,requests\n", wantErr: "no minutes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ReadCSV(strings.NewReader(c.in))
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("ReadCSV error = %v, want one containing %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ReadCSV: %v", err)
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("ReadCSV (-want +got):\n%s", diff)
			}
		})
	}
}

func TestGenerator(t *testing.T) {
	g := Generator{Mean: 100, DailyAmplitude: 0.5, DayMinutes: 60}
	// Minute 0 is the trough: 100 * (1 - 0.5) = 50; minute 30 the crest: 150.
	if got := g.RequestsPerMinute(0); math.Abs(got-50) > 1e-9 {
		t.Errorf("trough = %v, want 50", got)
	}
	if got := g.RequestsPerMinute(30); math.Abs(got-150) > 1e-9 {
		t.Errorf("crest = %v, want 150", got)
	}
	s := Generator{Mean: 100, Surges: []Surge{{At: 10, Minutes: 5, Factor: 3}}}
	for _, c := range []struct {
		m    int
		want float64
	}{{9, 100}, {10, 300}, {14, 300}, {15, 100}} {
		if got := s.RequestsPerMinute(c.m); got != c.want {
			t.Errorf("surge minute %d = %v, want %v", c.m, got, c.want)
		}
	}
	n := Generator{Mean: 100, Noise: 0.2, BurstsPerDay: 20, BurstMinutes: 10, BurstFactor: 2, Seed: 7}
	for m := range 100 {
		if a, b := n.RequestsPerMinute(m), n.RequestsPerMinute(m); a != b || a < 0 {
			t.Fatalf("minute %d: %v then %v, want the same non-negative value", m, a, b)
		}
	}
	if a, b := Peak(n, 1440), Peak(Generator{Mean: 100, Noise: 0.2, BurstsPerDay: 20, BurstMinutes: 10, BurstFactor: 2, Seed: 8}, 1440); a == b {
		t.Errorf("seeds 7 and 8 give the same peak %v, want different loads", a)
	}
}

func BenchmarkGeneratorDay(b *testing.B) {
	g := Generator{Mean: 100, DailyAmplitude: 0.5, Noise: 0.1, BurstsPerDay: 4, BurstMinutes: 15, BurstFactor: 2, Seed: 1}
	b.ReportAllocs()
	for b.Loop() {
		Peak(g, 1440)
	}
}
