package sim

import (
	"math"
	"time"
)

// dcgmExporter imitates NVIDIA dcgm-exporter with pod mapping on (--kubernetes, as its Helm
// chart sets it; testdata/upstream/dcgm.txt): one series per GPU with the GPU's labels and
// the pod, namespace and container holding it, refreshed every collection interval (30 s
// by default, model time here) and held in between, as the exporter serves its last
// collection to every scrape.
//
// DCGM_FI_DEV_GPU_UTIL is a duty cycle: the share of time any kernel ran (NVML), so a pod
// with any request in its batch reads near 100 (Engine.Occupancy's Busy), not load over
// capacity. DCGM_FI_PROF_GR_ENGINE_ACTIVE is the same share as a ratio. The other fields
// have the shape dcgm.txt describes (framebuffer flat at the KV cache's preallocation, the
// tensor pipe growing with the batch), with the constants of an H100 80GB; their values
// are not measurements.
type dcgmExporter struct {
	comp      *component
	s         *series // the last collection
	interval  time.Duration
	batch     float64
	last      time.Duration
	collected bool
	energy    map[gpu]float64 // millijoules since the simulated boot

	util, fbUsed, fbFree, memCopy, power, smClock, temp, energyTotal, grActive, tensor, dram *family
}

// The simulated GPU: an H100 80GB HBM3, its framebuffer 90 % taken by the server's weights
// and KV cache from its start (vLLM's default gpu_memory_utilization).
const (
	gpuModelName = "NVIDIA H100 80GB HBM3"
	gpuDriver    = "550.90.07"
	gpuFBTotal   = 81559.0 // MiB
	gpuFBUsed    = 73403.0 // MiB
	gpuIdleW     = 70.0
	gpuMaxW      = 700.0
	gpuSMClock   = 1980.0 // MHz
)

func newDCGM(interval time.Duration, batch int) *dcgmExporter {
	l := []string{"gpu", "UUID", "pci_bus_id", "device", "modelName", "Hostname", "DCGM_FI_DRIVER_VERSION",
		"container", "namespace", "pod"}
	g := func(name, unit, help string) *family {
		return &family{name: name, kind: gauge, unit: unit, help: help, labels: l}
	}
	d := &dcgmExporter{
		interval: interval, batch: float64(batch), energy: map[gpu]float64{},
		util:     g("DCGM_FI_DEV_GPU_UTIL", "percent", "Share of time a kernel ran, percent."),
		fbUsed:   g("DCGM_FI_DEV_FB_USED", "MiB", "Framebuffer used, MiB."),
		fbFree:   g("DCGM_FI_DEV_FB_FREE", "MiB", "Framebuffer free, MiB."),
		memCopy:  g("DCGM_FI_DEV_MEM_COPY_UTIL", "percent", "Share of time memory was read or written, percent."),
		power:    g("DCGM_FI_DEV_POWER_USAGE", "watts", "Power, watts."),
		smClock:  g("DCGM_FI_DEV_SM_CLOCK", "MHz", "SM clock, MHz."),
		temp:     g("DCGM_FI_DEV_GPU_TEMP", "celsius", "Temperature, Celsius."),
		grActive: g("DCGM_FI_PROF_GR_ENGINE_ACTIVE", "ratio", "Share of time the graphics engine was active."),
		tensor:   g("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", "ratio", "Share of cycles the tensor pipe was active."),
		dram:     g("DCGM_FI_PROF_DRAM_ACTIVE", "ratio", "Share of cycles the memory interface was active."),
		energyTotal: &family{name: "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", kind: counter, unit: "millijoules",
			help: "Energy since boot, millijoules.", labels: l},
	}
	d.comp = newComponent(d.families())
	d.s = newSeries(0)
	return d
}

func (d *dcgmExporter) families() []*family {
	return []*family{d.util, d.fbUsed, d.fbFree, d.memCopy, d.power, d.smClock, d.temp, d.energyTotal,
		d.grActive, d.tensor, d.dram}
}

// gpuLoad is what a GPU did in a tick: its duty cycle and its batch's fill.
type gpuLoad struct{ busy, fill float64 }

func (d *dcgmExporter) load(occ Occupancy, ok bool) gpuLoad {
	if !ok {
		return gpuLoad{} // a pod that is not Ready (loading its model) runs no batch
	}
	return gpuLoad{busy: occ.Busy, fill: occ.Running / d.batch}
}

func (l gpuLoad) powerW() float64 {
	return gpuIdleW + (gpuMaxW-gpuIdleW)*(l.busy+l.fill)/2
}

// tick accounts one tick of dt model seconds at model time at for the GPUs the holders
// hold (ready maps the Ready pods to their occupancy), and collects when the interval has
// passed since the last collection.
func (d *dcgmExporter) tick(at time.Duration, dt float64, g gpus, holders []holder, ready map[string]Occupancy) {
	loads := make([]gpuLoad, len(holders))
	for i, h := range holders {
		occ, ok := ready[h.pod]
		loads[i] = d.load(occ, ok)
		d.energy[g.byPod[h.pod]] += loads[i].powerW() * dt * 1000
	}
	if d.collected && at-d.last < d.interval {
		return
	}
	d.collected, d.last = true, at
	d.s = newSeries(0)
	for i, h := range holders {
		x := g.byPod[h.pod]
		lv := DCGMLabelValues(x.node, x.index, h.container, h.namespace, h.pod)
		l := loads[i]
		power := l.powerW()
		dram := l.busy * (0.3 + 0.4*l.fill) // decoding reads the weights every step, whatever the batch
		d.s.set(d.util, math.Round(100*l.busy), lv...)
		d.s.set(d.grActive, l.busy, lv...)
		d.s.set(d.tensor, 0.6*l.fill, lv...)
		d.s.set(d.dram, dram, lv...)
		d.s.set(d.memCopy, math.Round(100*dram), lv...)
		d.s.set(d.fbUsed, gpuFBUsed, lv...)
		d.s.set(d.fbFree, gpuFBTotal-gpuFBUsed, lv...)
		d.s.set(d.power, math.Round(power*1000)/1000, lv...)
		d.s.set(d.smClock, gpuSMClock, lv...)
		d.s.set(d.temp, math.Round(35+40*(power-gpuIdleW)/(gpuMaxW-gpuIdleW)), lv...)
		d.s.set(d.energyTotal, math.Round(d.energy[x]), lv...)
	}
}
