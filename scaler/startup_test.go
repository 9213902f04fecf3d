package scaler

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func secs(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, s := range v {
		out[i] = time.Duration(s) * time.Second
	}
	return out
}

func TestP90(t *testing.T) {
	tests := []struct {
		name   string
		ds     []time.Duration
		want   time.Duration
		wantOK bool
	}{
		{name: "no start-ups", ds: nil, wantOK: false},
		// n 1: ceil(0.9) = 1st smallest
		{name: "one start-up is its own p90", ds: secs(42), want: 42 * time.Second, wantOK: true},
		// n 10: ceil(9) = 9th smallest of 1..10 = 9: one in ten may be slower
		{name: "ten start-ups: the 9th smallest", ds: secs(10, 1, 9, 2, 8, 3, 7, 4, 6, 5), want: 9 * time.Second, wantOK: true},
		// n 11: ceil(9.9) = 10th smallest of 1..11 = 10: past 10 the rank rounds up
		{name: "eleven start-ups: the 10th smallest", ds: secs(11, 1, 10, 2, 9, 3, 8, 4, 7, 5, 6), want: 10 * time.Second, wantOK: true},
		// n 20: ceil(18) = 18th smallest; the two slowest (100, 200) are above it
		{name: "twenty start-ups: two outliers above the p90",
			ds:   secs(30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 100, 200),
			want: 47 * time.Second, wantOK: true},
		// n 20 with three outliers: the 18th smallest is the first outlier, 100
		{name: "twenty start-ups: three outliers reach the p90",
			ds:   secs(30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 100, 150, 200),
			want: 100 * time.Second, wantOK: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := p90(tc.ds)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("p90 = %v, %v; want %v, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// pod is a pod created at epoch + created s; readyAfter < 0: not Ready.
func pod(uid string, created, readyAfter int) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{UID: types.UID(uid), CreationTimestamp: metav1.NewTime(epoch.Add(time.Duration(created) * time.Second))}}
	c := corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse}
	if readyAfter >= 0 {
		c.Status = corev1.ConditionTrue
		c.LastTransitionTime = metav1.NewTime(epoch.Add(time.Duration(created+readyAfter) * time.Second))
	}
	p.Status.Conditions = []corev1.PodCondition{c}
	return p
}

func TestStartups(t *testing.T) {
	var s startups
	if _, ok := s.p90(); ok {
		t.Fatal("p90 before any pod: want none")
	}
	// a: Ready after 30 s; b: not Ready yet; c: Ready again 2 h after its creation (a
	// probe failure, not a start-up: out of the window, not measured).
	s.observe([]*corev1.Pod{pod("a", 0, 30), pod("b", 10, -1), pod("c", 0, 7200)})
	if got, ok := s.p90(); !ok || got != 30*time.Second {
		t.Errorf("after a: p90 %v, %v; want 30s (a only)", got, ok)
	}
	// b becomes Ready after 50 s; a is seen again (not counted twice); c is gone.
	s.observe([]*corev1.Pod{pod("a", 0, 30), pod("b", 10, 50)})
	// {30, 50}: ceil(1.8) = 2nd smallest = 50
	if got, ok := s.p90(); !ok || got != 50*time.Second {
		t.Errorf("after b: p90 %v, %v; want 50s", got, ok)
	}
	if diff := cmp.Diff(map[types.UID]bool{"a": true, "b": true}, s.seen); diff != "" {
		t.Errorf("seen (-want +got):\n%s", diff)
	}
	// 25 more pods of 10 s each: the window keeps the last 20, all 10 s.
	for i := range 25 {
		s.observe([]*corev1.Pod{pod(string(rune('A'+i)), 100, 10)})
	}
	if got, ok := s.p90(); !ok || got != 10*time.Second || s.n != startupWindow {
		t.Errorf("after 25 more: p90 %v, %v over %d; want 10s over %d", got, ok, s.n, startupWindow)
	}
}
