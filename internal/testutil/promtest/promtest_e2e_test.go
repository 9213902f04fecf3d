//go:build e2e

package promtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A backfilled series is served; after Stop the server refuses connections, and after
// Restart it serves the same data on the same address.
func TestStartBackfillStopRestart(t *testing.T) {
	at := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	var om strings.Builder
	om.WriteString("# TYPE promtest_backfilled gauge\n")
	for m := 0; m <= 10; m++ {
		fmt.Fprintf(&om, "promtest_backfilled %d %d\n", m, at.Add(time.Duration(m)*time.Minute).Unix())
	}
	om.WriteString("# EOF\n")
	p := Start(t, Options{Backfill: om.String()})
	// At the last sample's time: its value, 10.
	query := func() (string, error) {
		resp, err := http.Get(p.URL() + "/api/v1/query?query=promtest_backfilled&time=" + fmt.Sprint(at.Add(10*time.Minute).Unix()))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var body struct {
			Data struct {
				Result []struct {
					Value [2]any `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			return "", err
		}
		if len(body.Data.Result) != 1 {
			return "", fmt.Errorf("%d series, want 1", len(body.Data.Result))
		}
		return fmt.Sprint(body.Data.Result[0].Value[1]), nil
	}
	if v, err := query(); err != nil || v != "10" {
		t.Fatalf("backfilled value = %q, %v; want 10", v, err)
	}
	p.Stop(t)
	if _, err := query(); err == nil {
		t.Fatalf("a query after Stop succeeded, want connection refused")
	}
	p.Restart(t)
	if v, err := query(); err != nil || v != "10" {
		t.Fatalf("after Restart: value = %q, %v; want 10", v, err)
	}
}
