package prom_test

import (
	"github.com/prescale/prescale/prom"
	"github.com/prescale/prescale/scaler"
)

// The Source is the controller's MetricSource. (An external test package, so that scaler
// may import prom.)
var (
	_ scaler.MetricSource  = (*prom.Source)(nil)
	_ scaler.LatencySource = (*prom.Source)(nil)
)
