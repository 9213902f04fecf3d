package replay

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"

	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prescale/prescale/engine"
	"github.com/prescale/prescale/policy"
	"github.com/prescale/prescale/prom"
)

// MaxLine bounds one observation line, in bytes, not counting its end ("\n" or "\r\n"):
// a sync of thousands of pods fits easily.
const MaxLine = 16 << 20

// ErrLineTooLong is the error, wrapped with its line number, for a line over MaxLine.
var ErrLineTooLong = fmt.Errorf("longer than the %d MiB limit", MaxLine>>20)

// Line is one recorded sync, as read from the input.
type Line struct {
	Time           time.Time               `json:"time"`
	SpecReplicas   *int32                  `json:"specReplicas"`
	StatusReplicas *int32                  `json:"statusReplicas"`
	Pods           []policy.Pod            `json:"pods"`
	Metrics        map[string]MetricSample `json:"metrics"`
	// Load is the sample of the policy's forecast.load.query at this sync, for a policy
	// with a forecast: exactly one of perPod (summed), value and error. A line without it
	// did not sample the load (the forecast made at the last sample carries on); a policy
	// without a forecast rejects it.
	Load *MetricSample `json:"load"`
	// Latency is the sample of the policy's objective.query at this sync, for a policy with
	// an objective: exactly one of value (seconds; "+Inf" is over any SLO) and error. A line
	// without it took no sample (a minute without one counts for nothing); a policy without
	// an objective rejects it.
	Latency *MetricSample `json:"latency"`
	// Waiting is the sample of the policy's objective.waiting at this sync, for a policy
	// whose objective has one: exactly one of perPod (summed), value and error. A sync
	// without a latency while it is above 0 is over the SLO. A line without it took no
	// sample; a policy without objective.waiting rejects it.
	Waiting *MetricSample `json:"waiting"`
	// Activation is the sample of the policy's scaleToZero.activation.query at this sync,
	// for a policy with scaleToZero: exactly one of perPod (summed), value and error. A line
	// without it had none (missing: the target neither idles to zero nor wakes on it); a
	// policy without scaleToZero rejects it.
	Activation *MetricSample `json:"activation"`
	// Restart says that prescale restarted before this sync (or another instance took the
	// lease, or a reload renamed the policy or changed its target): the decision History is
	// forgotten, as by a fresh controller, which then reads the decision record stored on
	// the target (Record). The forecast and the objective carry on: a restarted controller
	// loads the load's history from Prometheus again.
	Restart bool `json:"restart"`
	// Record is what the decision record stored on the target (the prescale.io/decision
	// annotation) said at this sync, as a fresh engine reads it: its scaledToZero says
	// whether prescale scaled the target to zero, so that a restart at zero still wakes
	// it. Only on the first line or a restart line, where the engine is fresh; without it
	// a fresh engine finds no record (a zero it reads as set by hand).
	Record *engine.Stored `json:"record"`
}

// Options are how the recorded controller ticked: they set the forecast's step and
// horizon: auto, as in prescale run.
type Options struct {
	// Interval is the recorded controller's sync interval (prescale run's interval).
	Interval time.Duration
	// Startup is the pods' start-up time that horizon: auto assumes.
	Startup time.Duration
	// Warn, when set, is told what the replay does other than the policy says: a policy
	// that runs without its forecast, which cannot be built at Interval, and why.
	Warn func(msg string)
}

// Record is one output line: the decision, for a policy with a forecast the forecast's
// status (horizon, the gate's error, why the load was missing), and for a policy with an
// objective the objective's (the latency or why it was missing, the quantile planned for,
// the minutes and violated minutes so far). The decision's own "forecast" holds the
// forecast of the load and its proposal.
type Record struct {
	policy.Decision
	ForecastStatus  *engine.ForecastStatus  `json:"forecastStatus,omitempty"`
	ObjectiveStatus *engine.ObjectiveStatus `json:"objectiveStatus,omitempty"`
}

// MetricSample is one metric of a recorded sync: exactly one of perPod, value and error.
type MetricSample struct {
	PerPod map[string]Number `json:"perPod"`
	Value  *Number           `json:"value"`
	Error  *string           `json:"error"`
}

// Number is a float64 that also reads Prometheus' string forms "NaN", "+Inf", "-Inf" and
// numbers written as strings, so that recorded samples replay as they were.
type Number float64

// UnmarshalJSON accepts a JSON number or a string holding a number, NaN or ±Inf.
func (n *Number) UnmarshalJSON(b []byte) error {
	s := string(b)
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return fmt.Errorf("want a number, NaN or ±Inf, got %s", b)
	}
	*n = Number(v)
	return nil
}

// Run replays r through policy p's engine, as prescale run drives it, writing one Record
// per input line to w: the forecast, when the policy has one, learns from the lines' load
// (the lines are its only history; it is refitted daily on them), and the objective, when
// it has one, counts the minutes of the lines' latency and adapts its quantile to them. Blank lines are skipped.
// It stops at the first malformed line with an error naming its line number.
func Run(p *policy.Policy, opts Options, r io.Reader, w io.Writer) error {
	eng, err := engine.New(p, engine.Options{Tick: opts.Interval, DefaultStartup: opts.Startup, KeepLoad: true})
	if err != nil {
		return err
	}
	if p.Forecast != nil {
		// The lines' load is what the query returned, so it trails demand as it did in run.
		lag, err := prom.Lag(p.Forecast.Load.Query)
		if err != nil {
			return fmt.Errorf("forecast.load.query of policy %s: %w", p.Name, err)
		}
		eng.SetLoadLag(lag)
	}
	sc := bufio.NewScanner(r)
	// Room for MaxLine bytes and a "\r\n"; a longer line stops the scanner (ErrTooLong)
	// or, with a lone "\n", is caught below.
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine+2)
	enc := json.NewEncoder(w)
	var last time.Time
	first := true
	n := 1 // the line being read, also when the scanner fails on it
	for ; sc.Scan(); n++ {
		if len(sc.Bytes()) > MaxLine {
			return fmt.Errorf("line %d: %w", n, ErrLineTooLong)
		}
		raw := bytes.TrimSpace(sc.Bytes())
		if len(raw) == 0 {
			continue
		}
		in, now, ctl, err := parseLine(p, raw)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		if ctl.Restart {
			eng.Reset()
		}
		if ctl.Record != nil {
			if !eng.Fresh() {
				return fmt.Errorf("line %d: record: only on the first line or a line with \"restart\": true, where a fresh engine reads it", n)
			}
			eng.Restore(*ctl.Record)
		}
		if now.Before(last) {
			return fmt.Errorf("line %d: time %s is before the previous line's %s", n, now.Format(time.RFC3339), last.Format(time.RFC3339))
		}
		if first && engine.Forecasting(p) != nil {
			// Built now, as the first Step would build it, to learn why it cannot be.
			if _, err := eng.Fit(nil, nil, now); err != nil && opts.Warn != nil {
				opts.Warn(fmt.Sprintf("policy %s runs without its forecast, which cannot be built at the interval of %v: %v", p.Name, opts.Interval, err))
			}
		}
		first, last = false, now
		// A scale counts as written whenever the decision differs from the line's spec.
		in.Writes = true
		res := eng.Step(in, now)
		d := res.Decision
		if d.DesiredReplicas != in.SpecReplicas {
			eng.Scaled(in.SpecReplicas, d.DesiredReplicas, now)
		}
		rec := Record{Decision: d, ForecastStatus: res.Forecast, ObjectiveStatus: res.Objective}
		if rec.ForecastStatus != nil {
			st := *rec.ForecastStatus
			st.ForecastResult = nil // the decision's "forecast"
			rec.ForecastStatus = &st
		}
		if err := enc.Encode(rec); err != nil {
			return fmt.Errorf("write decision for line %d: %w", n, err)
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return fmt.Errorf("line %d: %w", n, ErrLineTooLong)
	} else if err != nil {
		return fmt.Errorf("read observations at line %d: %w", n, err)
	}
	return nil
}

// control is what a line says of the engine rather than of the target: a restart and the
// stored record.
type control struct {
	Restart bool
	Record  *engine.Stored
}

// lineType is the type a line decodes into.
var lineType = reflect.TypeFor[Line]()

// parseLine decodes and checks one line into the engine's Input for p.
func parseLine(p *policy.Policy, raw []byte) (engine.Input, time.Time, control, error) {
	var l Line
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return engine.Input{}, time.Time{}, control{}, fmt.Errorf("malformed observation: %w", err)
	}
	if dec.More() {
		return engine.Input{}, time.Time{}, control{}, errors.New("malformed observation: more than one JSON value on the line")
	}
	if err := strictKeys(raw, lineType); err != nil {
		return engine.Input{}, time.Time{}, control{}, fmt.Errorf("malformed observation: %w", err)
	}
	var errs []error
	if l.Time.IsZero() {
		errs = append(errs, errors.New("time: required"))
	}
	if l.SpecReplicas == nil {
		errs = append(errs, errors.New("specReplicas: required"))
	} else if *l.SpecReplicas < 0 {
		errs = append(errs, fmt.Errorf("specReplicas: must be >= 0, got %d", *l.SpecReplicas))
	}
	if l.StatusReplicas != nil && *l.StatusReplicas < 0 {
		errs = append(errs, fmt.Errorf("statusReplicas: must be >= 0, got %d", *l.StatusReplicas))
	}
	seen := make(map[string]bool, len(l.Pods))
	var live int32
	for i, pod := range l.Pods {
		switch {
		case pod.Name == "":
			errs = append(errs, fmt.Errorf("pods[%d].name: required", i))
		case seen[pod.Name]:
			errs = append(errs, fmt.Errorf("pods[%d].name: duplicate pod %q", i, pod.Name))
		}
		seen[pod.Name] = true
		switch pod.Phase {
		case "", policy.PodPending, policy.PodRunning, policy.PodSucceeded, policy.PodFailed, policy.PodUnknown:
		default:
			errs = append(errs, fmt.Errorf("pods[%d].phase: must be Pending, Running, Succeeded, Failed or Unknown, got %q", i, pod.Phase))
		}
		if !pod.Deleting {
			live++
		}
	}
	known := make(map[string]bool, len(p.Metrics))
	for _, m := range p.Metrics {
		known[m.Name] = true
	}
	var unknown []string
	for name := range l.Metrics {
		if !known[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	for _, name := range unknown {
		errs = append(errs, fmt.Errorf("metrics.%s: policy %s has no such metric", name, p.Name))
	}

	in := policy.Observation{Pods: l.Pods, Metrics: make([]policy.Sample, len(p.Metrics))}
	for i, m := range p.Metrics {
		s, ok := l.Metrics[m.Name]
		if !ok {
			in.Metrics[i] = policy.Sample{Err: errors.New("no sample in the observation")}
			continue
		}
		sample, err := s.sample()
		if err != nil {
			errs = append(errs, fmt.Errorf("metrics.%s: %w", m.Name, err))
		}
		in.Metrics[i] = sample
	}
	var load *policy.Sample
	switch {
	case l.Load != nil && engine.Forecasting(p) == nil:
		errs = append(errs, fmt.Errorf("load: policy %s has no forecast to take it", p.Name))
	case l.Load != nil:
		s, err := l.Load.sample()
		if err != nil {
			errs = append(errs, fmt.Errorf("load: %w", err))
		}
		load = &s
	}
	var latency *policy.Sample
	switch {
	case l.Latency != nil && p.Objective == nil:
		errs = append(errs, fmt.Errorf("latency: policy %s has no objective to take it", p.Name))
	case l.Latency != nil && l.Latency.PerPod != nil:
		errs = append(errs, errors.New(`latency: the objective's latency is one series: want "value" or "error", not "perPod"`))
	case l.Latency != nil:
		s, err := l.Latency.sample()
		if err != nil {
			errs = append(errs, fmt.Errorf("latency: %w", err))
		}
		latency = &s
	}
	var waiting *policy.Sample
	switch {
	case l.Waiting != nil && (p.Objective == nil || p.Objective.Waiting == ""):
		errs = append(errs, fmt.Errorf("waiting: policy %s has no objective.waiting to take it", p.Name))
	case l.Waiting != nil:
		s, err := l.Waiting.sample()
		if err != nil {
			errs = append(errs, fmt.Errorf("waiting: %w", err))
		}
		waiting = &s
	}
	switch {
	case l.Activation != nil && p.ScaleToZero == nil:
		errs = append(errs, fmt.Errorf("activation: policy %s has no scaleToZero to take it", p.Name))
	case l.Activation != nil:
		s, err := l.Activation.sample()
		if err != nil {
			errs = append(errs, fmt.Errorf("activation: %w", err))
		}
		in.Activation = &s
	}
	if len(errs) > 0 {
		return engine.Input{}, time.Time{}, control{}, errors.Join(errs...)
	}
	in.SpecReplicas = *l.SpecReplicas
	in.StatusReplicas = live
	if l.StatusReplicas != nil {
		in.StatusReplicas = *l.StatusReplicas
	}
	return engine.Input{Observation: in, Load: load, Latency: latency, Waiting: waiting}, l.Time, control{Restart: l.Restart, Record: l.Record}, nil
}

// sample converts a recorded metric; NaN and ±Inf pass through, so that the engine treats
// them as it would live (as missing).
func (s MetricSample) sample() (policy.Sample, error) {
	set := 0
	for _, b := range []bool{s.PerPod != nil, s.Value != nil, s.Error != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return policy.Sample{}, errors.New(`want exactly one of "perPod", "value" and "error"`)
	}
	switch {
	case s.Error != nil:
		msg := *s.Error
		if msg == "" {
			msg = "error (no message recorded)"
		}
		return policy.Sample{Err: errors.New(msg)}, nil
	case s.Value != nil:
		return policy.Sample{Value: float64(*s.Value)}, nil
	}
	m := make(map[string]float64, len(s.PerPod))
	for pod, v := range s.PerPod {
		m[pod] = float64(v)
	}
	return policy.Sample{PerPod: m}, nil
}
