package sim

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestHistoryWritesTheCounterAtEveryTickEndingAtEnd(t *testing.T) {
	end := time.Date(2026, 11, 30, 7, 0, 0, 0, time.UTC)
	// Two minutes of 600 then 1200 req/min, a 30 s tick, compressed 10x: four samples a
	// service, 3 s apart, the last at end.
	h := History{Namespace: "demo", Services: []string{"a", "b"}, Load: Trace{600, 1200},
		Tick: 30 * time.Second, Compression: 10, Minutes: 2, End: end}
	var buf bytes.Buffer
	if err := h.WriteOpenMetrics(&buf); err != nil {
		t.Fatal(err)
	}
	ts := func(d time.Duration) string { return fmt.Sprintf("%.3f", float64(end.Add(d).UnixMilli())/1000) }
	want := "# TYPE inference_requests counter\n" +
		"# HELP inference_requests Requests that arrived at the service, as a gateway counts them (model requests).\n" +
		`inference_requests_total{namespace="demo",service="a"} 300 ` + ts(-9*time.Second) + "\n" +
		`inference_requests_total{namespace="demo",service="a"} 600 ` + ts(-6*time.Second) + "\n" +
		`inference_requests_total{namespace="demo",service="a"} 1200 ` + ts(-3*time.Second) + "\n" +
		`inference_requests_total{namespace="demo",service="a"} 1800 ` + ts(0) + "\n" +
		`inference_requests_total{namespace="demo",service="b"} 300 ` + ts(-9*time.Second) + "\n" +
		`inference_requests_total{namespace="demo",service="b"} 600 ` + ts(-6*time.Second) + "\n" +
		`inference_requests_total{namespace="demo",service="b"} 1200 ` + ts(-3*time.Second) + "\n" +
		`inference_requests_total{namespace="demo",service="b"} 1800 ` + ts(0) + "\n" +
		"# EOF\n"
	if got := buf.String(); got != want {
		t.Errorf("history:\n%s\nwant:\n%s", got, want)
	}
}

func TestHistoryRefusesBadFields(t *testing.T) {
	err := History{Tick: 0, Compression: -1, Minutes: -2}.WriteOpenMetrics(&bytes.Buffer{})
	for _, w := range []string{"load", "tick", "compression", "-1", "minutes", "-2"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("err = %v, want it to name %q", err, w)
		}
	}
}
