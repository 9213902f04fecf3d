package demo

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/prescale/prescale/examples"
)

// The example's target, which the demo substitutes.
const (
	exampleNamespace = "inference"
	exampleName      = "llama-70b"
)

// scaled is a duration of the example divided by the demo's compression, rounded to whole
// seconds and at least one.
func scaled(d time.Duration, compression float64) time.Duration {
	return max(time.Second, (time.Duration(float64(d)/compression) + time.Second/2).Truncate(time.Second))
}

// examplePolicy returns examples/servers/vllm.yaml (embedded, as shipped) for the Deployment
// name in the demo's namespace, on the demo's time scale: every duration of the policy
// divided by compression (the queries' 1m windows, the behavior's periods and windows) and
// the forecast's season, horizon, history, gate window and hold set for a run of a few
// model hours' history per real hour. dryRun adds dryRun: true. It fails when the example
// no longer has what it substitutes, so that the demo cannot drift from it silently.
func examplePolicy(name string, compression float64, history time.Duration, dryRun bool) (string, error) {
	text := string(examples.VLLM)
	i := strings.Index(text, "\npolicies:\n")
	if i < 0 {
		return "", fmt.Errorf("examples/servers/vllm.yaml: no policies: key")
	}
	text = text[i+len("\npolicies:\n"):]
	sec := func(d time.Duration) string { return fmt.Sprint(int(scaled(d, compression).Seconds())) }
	dur := func(d time.Duration) string { return scaled(d, compression).String() }
	forecast := fmt.Sprintf("\n        perReplica: auto\n      season: %s\n      horizon: %s\n      history: %s\n      gate: {window: %s}\n      hold: %s\n",
		// The pods' start-up and a tick are what horizon: auto plans for; the rate window
		// lags the load by half its width more, and a new pod is bound a second or two after
		// the scale write: plan 5 model minutes ahead.
		dur(24*time.Hour), dur(5*time.Minute), history.Round(time.Minute), dur(2*time.Hour), dur(time.Hour))
	var errs []string
	sub := func(what string, re *regexp.Regexp, to string) {
		if !re.MatchString(text) {
			errs = append(errs, what)
		}
		text = re.ReplaceAllString(text, to)
	}
	lit := regexp.QuoteMeta
	sub("the target's namespace", regexp.MustCompile(lit("namespace: "+exampleNamespace+",")), "namespace: "+namespace+",")
	sub("the selectors' namespace", regexp.MustCompile(lit(`namespace="`+exampleNamespace+`"`)), `namespace="`+namespace+`"`)
	sub("the Deployment's name", regexp.MustCompile(`\b`+lit(exampleName)+`\b`), name)
	sub("the 1m rate windows", regexp.MustCompile(lit("[1m]")), "["+dur(time.Minute)+"]")
	sub("the 15 s rate policies", regexp.MustCompile(`periodSeconds: 15\b`), "periodSeconds: "+sec(15*time.Second))
	sub("the 300 s scale-down window", regexp.MustCompile(`stabilizationWindowSeconds: 300\b`), "stabilizationWindowSeconds: "+sec(300*time.Second))
	sub("the forecast's perReplica: auto", regexp.MustCompile(lit("\n        perReplica: auto\n")), forecast)
	if dryRun {
		sub("the target line", regexp.MustCompile(`(\n    target: \{[^\n]*\}\n)`), "${1}    dryRun: true\n")
	}
	if len(errs) > 0 {
		return "", fmt.Errorf("examples/servers/vllm.yaml no longer has %s: update the demo's time scale (sandbox/demo/policy.go)", strings.Join(errs, ", "))
	}
	return text, nil
}

// policies returns the demo's policies: the vLLM example for each service, the HPA's in
// dry-run (prescale only serves its metrics, to the real HPA, through the external metrics
// API).
func policies(compression float64, history time.Duration) (string, error) {
	pre, err := examplePolicy(preService, compression, history, false)
	if err != nil {
		return "", err
	}
	hpa, err := examplePolicy(hpaService, compression, history, true)
	if err != nil {
		return "", err
	}
	return "policies:\n" + pre + hpa, nil
}
