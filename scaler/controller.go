package scaler

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	autoscalinglisters "k8s.io/client-go/listers/autoscaling/v2"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/scale"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/prescale/prescale/alloc"
	"github.com/prescale/prescale/policy"
)

// Deps are the controller's collaborators, built by cmd/ (or a test).
type Deps struct {
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	Scales  scale.ScalesGetter
	// Mapper maps a target's apiVersion and kind to its resource; a deferred discovery
	// mapper is reset when a lookup fails, so that CRDs installed later are found.
	Mapper meta.ResettableRESTMapper
	Source MetricSource
	// History loads the forecast's load history at start-up; nil: forecasts start
	// without history.
	History HistorySource
	// Latency samples the objectives' latency; nil: Source does, and a +Inf latency is
	// then missing.
	Latency  LatencySource
	Clock    clock.WithTicker
	Recorder record.EventRecorder
	// Writer makes the controller's writes; nil writes to the cluster through Scales,
	// Dynamic and Recorder under Options.Identity.
	Writer  Writer
	Metrics *Metrics
	// ErrorKind classifies a query error for prescale_errors_total; nil counts all as "query".
	ErrorKind func(error) string
	// APIServer names and checks the API server while the caches have not synced; nil:
	// Start waits without checking.
	APIServer *APIServer
}

// Controller runs the policies. Create it with New, start its caches with Start, and tick
// with Lead while holding the leader lease.
type Controller struct {
	opts    Options
	deps    Deps
	factory informers.SharedInformerFactory
	pods    corelisters.PodLister
	// podIndex is the pods' cache, indexed by label (podLabelIndex).
	podIndex cache.Indexer
	// deployments and statefulsets serve the targets' scale (Options.WatchTargets); nil
	// without.
	deployments  appslisters.DeploymentLister
	statefulsets appslisters.StatefulSetLister
	nodes        corelisters.NodeLister
	hpas         autoscalinglisters.HorizontalPodAutoscalerLister
	informers    []informer
	// syncCheck is what Start found of the API server while the caches had not synced.
	syncCheck syncCheck

	writer     Writer
	querySlots chan struct{}
	// lease is the context of the lease this instance holds (Lead's), nil while it holds
	// none: the right to write is this context being alive, read once per tick, and every
	// write of the tick runs under it.
	lease atomic.Pointer[leaseHold]
	// dryRun is the global dry-run setting (Options.DryRun, then SetDryRun): live, so that
	// a reload can stop the writes without a restart.
	dryRun atomic.Bool
	tickMu sync.Mutex
	// recordsWG counts the batches of decision records being written (writeRecords).
	recordsWG sync.WaitGroup
	ready     atomic.Bool

	// nodeLeads is each node pool's measured lead time; the tick's.
	nodeLeads nodeLeads
	// nodePools lists Karpenter's NodePools (nil where their API is not served, or
	// capacity.mode is not cap); growth is what they can add, by GPU kind, as the tick's
	// observe found it (nil: unknown, the Pending allowance holds), growthErrs what it
	// said last of NodePools it could not read, to say each once.
	nodePools  cache.GenericLister
	poolsSync  cache.InformerSynced
	growth     map[string]alloc.Growth
	growthErrs string
	// leads is nodeLeads' p90 by pool, as the tick's observe found it.
	leads map[string]time.Duration
	// buffers lists prescale's CapacityBuffers (nil where their API is not served, or
	// capacity.buffers is off).
	buffers     cache.GenericLister
	buffersSync cache.InformerSynced

	mu       sync.Mutex
	policies []policy.Policy
	targets  map[string]*policyState // by policy name
}

// New returns a controller for opts and the policies of a validated policy file.
func New(opts Options, deps Deps, policies []policy.Policy) (*Controller, error) {
	if err := opts.Validate(); err != nil {
		return nil, fmt.Errorf("controller options: %w", err)
	}
	if deps.ErrorKind == nil {
		deps.ErrorKind = func(error) string { return "query" }
	}
	factory := informers.NewSharedInformerFactoryWithOptions(deps.Kube, 0, informers.WithTransform(stripCached))
	writer := deps.Writer
	if writer == nil {
		writer = kubeWriter{scales: deps.Scales, dynamic: deps.Dynamic, recorder: deps.Recorder, manager: opts.Identity}
	}
	c := &Controller{
		opts:       opts,
		deps:       deps,
		writer:     writer,
		factory:    factory,
		pods:       factory.Core().V1().Pods().Lister(),
		nodes:      factory.Core().V1().Nodes().Lister(),
		hpas:       factory.Autoscaling().V2().HorizontalPodAutoscalers().Lister(),
		querySlots: make(chan struct{}, opts.QueryConcurrency),
		targets:    map[string]*policyState{},
		nodeLeads:  nodeLeads{},
	}
	podInformer := factory.Core().V1().Pods().Informer()
	if err := podInformer.AddIndexers(cache.Indexers{podLabelIndex: podLabelKeys}); err != nil {
		return nil, fmt.Errorf("index the pods by label: %w", err)
	}
	c.podIndex = podInformer.GetIndexer()
	c.SetDryRun(opts.DryRun)
	c.informers = []informer{
		{"pods", podInformer.HasSynced},
		{"nodes", factory.Core().V1().Nodes().Informer().HasSynced},
		{"horizontalpodautoscalers", factory.Autoscaling().V2().HorizontalPodAutoscalers().Informer().HasSynced},
	}
	if opts.WatchTargets {
		c.deployments = factory.Apps().V1().Deployments().Lister()
		c.statefulsets = factory.Apps().V1().StatefulSets().Lister()
		c.informers = append(c.informers, informer{"deployments", factory.Apps().V1().Deployments().Informer().HasSynced},
			informer{"statefulsets", factory.Apps().V1().StatefulSets().Informer().HasSynced})
	}
	c.SetPolicies(policies)
	return c, nil
}

// stripCached keeps only what the controller reads of a pod, and of a Deployment or
// StatefulSet their scale and what the GPU allocation reads of their pod template
// (allocationTemplate), to bound the caches' memory.
func stripCached(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		o.ManagedFields = nil
		o.Annotations = nil
		for i := range o.Spec.Containers {
			c := &o.Spec.Containers[i]
			c.Env, c.EnvFrom, c.VolumeMounts, c.Command, c.Args = nil, nil, nil, nil, nil
			c.LivenessProbe, c.ReadinessProbe, c.StartupProbe = nil, nil, nil
		}
		o.Spec.Volumes = nil
		o.Status.ContainerStatuses, o.Status.InitContainerStatuses = nil, nil
	case *appsv1.Deployment:
		o.ManagedFields, o.Annotations, o.Labels = nil, nil, nil
		o.Spec.Template = allocationTemplate(o.Spec.Template)
		o.Status.Conditions = nil
	case *appsv1.StatefulSet:
		o.ManagedFields, o.Annotations, o.Labels = nil, nil, nil
		o.Spec.Template, o.Spec.VolumeClaimTemplates = allocationTemplate(o.Spec.Template), nil
		o.Status.Conditions = nil
	}
	return obj, nil
}

// allocationTemplate is what the GPU allocation reads of a pod template (claimOf): the
// containers' and init containers' resources (and whether an init container is a sidecar),
// the pod's resources and overhead, and the nodeSelector, node affinity and tolerations.
func allocationTemplate(t corev1.PodTemplateSpec) corev1.PodTemplateSpec {
	keep := func(cs []corev1.Container) []corev1.Container {
		if cs == nil {
			return nil
		}
		out := make([]corev1.Container, len(cs))
		for i, c := range cs {
			out[i] = corev1.Container{Name: c.Name, Resources: c.Resources, RestartPolicy: c.RestartPolicy}
		}
		return out
	}
	s := t.Spec
	out := corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: keep(s.Containers), InitContainers: keep(s.InitContainers),
		Resources: s.Resources, Overhead: s.Overhead, NodeSelector: s.NodeSelector, Tolerations: s.Tolerations}}
	if s.Affinity != nil && s.Affinity.NodeAffinity != nil {
		out.Spec.Affinity = &corev1.Affinity{NodeAffinity: s.Affinity.NodeAffinity}
	}
	return out
}

// Start starts the informers and waits for their caches. Followers call it too, so that a
// new leader ticks at once. While it waits, it checks the API server (Deps.APIServer) and
// warns, naming it, when it cannot be reached or the caches are slow to sync. When ctx ends
// first, the error is ErrNotSynced, saying why they had not.
func (c *Controller) Start(ctx context.Context) error {
	c.factory.Start(ctx.Done())
	c.startNodePools(ctx)
	c.startBuffers(ctx)
	if err := c.waitForSync(ctx); err != nil {
		return err
	}
	c.ready.Store(true)
	return nil
}

// Ready reports whether the caches have synced.
func (c *Controller) Ready() bool { return c.ready.Load() }

// leaseHold is one holding of the lease: Lead's context, cancelled the moment it is lost.
type leaseHold struct{ ctx context.Context }

// heldLease returns the lease this instance holds now, nil when none (or it was just lost).
func (c *Controller) heldLease() *leaseHold {
	if h := c.lease.Load(); h != nil && h.ctx.Err() == nil {
		return h
	}
	return nil
}

// Leading reports whether this instance holds the lease now, and so may write.
func (c *Controller) Leading() bool { return c.heldLease() != nil }

// SetPolicies replaces the configuration; it takes effect at the next tick. Policies that
// keep their name and target keep their engine: their history, and their forecaster unless
// their forecast block changed (then the next tick fits it again, history loaded again).
func (c *Controller) SetPolicies(policies []policy.Policy) {
	c.mu.Lock()
	defer c.mu.Unlock()
	kept := make(map[string]*policyState, len(policies))
	for i := range policies {
		p := &policies[i]
		if t, ok := c.targets[p.Name]; ok && t.ref == p.Target {
			kept[p.Name] = t
			continue
		}
		kept[p.Name] = &policyState{ref: p.Target}
	}
	for name := range c.targets {
		if _, ok := kept[name]; !ok && c.deps.Metrics != nil {
			c.deps.Metrics.forget(name)
		}
	}
	c.policies, c.targets = policies, kept
}

// SetDryRun replaces the global dry-run setting (a policy's dryRun still overrides it). A
// sync reads it as it starts: from the next tick at the latest, a policy without its own
// dryRun writes nothing while it is on (the kill switch), and writes again once it is off.
func (c *Controller) SetDryRun(on bool) {
	c.dryRun.Store(on)
	if c.deps.Metrics == nil {
		return
	}
	if on {
		c.deps.Metrics.DryRun.Set(1)
	} else {
		c.deps.Metrics.DryRun.Set(0)
	}
}

// Policies returns the policies in force. The slice is shared: callers must not modify it.
func (c *Controller) Policies() []policy.Policy {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.policies
}

// snapshot returns the policies of this tick and their state.
func (c *Controller) snapshot() ([]policy.Policy, map[string]*policyState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.policies, c.targets
}

// Lead ticks every interval until ctx ends: while it runs, this instance writes. Cancel ctx
// the moment the lease is lost.
func (c *Controller) Lead(ctx context.Context) {
	// The right to write is ctx itself: a hold whose ctx is already cancelled (the lease
	// lost before this goroutine ran) grants nothing, and a later holding replaces this one
	// only through its own Lead.
	h := &leaseHold{ctx: ctx}
	c.lease.Store(h)
	c.deps.Metrics.Leader.Set(1)
	defer func() {
		c.awaitRecords() // cancelled with ctx: they end at once
		c.lease.CompareAndSwap(h, nil)
		c.deps.Metrics.Leader.Set(0)
	}()
	t := c.deps.Clock.NewTicker(c.opts.Interval)
	defer t.Stop()
	for {
		c.Tick(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C():
		}
	}
}

// Tick syncs every policy once, at one instant read from the clock, in four phases, each
// over every policy before the next (docs/architecture.md):
//
//  1. observe: every read, concurrently: the API server and the caches, Prometheus, the
//     forecast histories (started in the background, taken once arrived: never awaited);
//  2. decide: the engines, concurrently, on what was observed: no I/O, nothing sent;
//  3. allocate: the GPUs, once, across every decision (docs/capacity.md);
//  4. act: every write, event, log line and metric, concurrently.
//
// Whether this instance may write is read once, as the tick begins: a pass writes only if
// it led then and ctx (the lease's, when leading) is still alive. Observe and act each have
// one interval per policy; a policy's error is logged and counted here, once, and its pass
// goes no further. The decision records are written after the tick, in the background.
func (c *Controller) Tick(ctx context.Context) {
	// A hot standby's tick and the first tick as leader never run at once: they share the
	// policies' state.
	c.tickMu.Lock()
	defer c.tickMu.Unlock()
	start := time.Now()
	now := c.deps.Clock.Now() // every window in this tick is measured from this instant
	// The right to write, read once: the lease held as the tick begins. Its passes then run
	// under the lease's context, so that the lease lost mid-tick cancels every write not
	// yet made (a hot standby's tick, on the root context, that finds a lease just taken
	// writes under it too; one that finds none writes nothing).
	hold := c.heldLease()
	leading := hold != nil
	parent := ctx
	if leading {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(hold.ctx, cancel)()
	}
	c.deps.Metrics.LastTick.Set(float64(now.Unix()))
	policies, targets := c.snapshot()
	passes := make([]*pass, len(policies))
	loggers := make([]klog.Logger, len(policies))
	for i := range policies {
		loggers[i] = klog.FromContext(ctx).WithValues("policy", policies[i].Name, "target", policies[i].Target.String())
	}
	phases := &phaseTimer{vec: c.deps.Metrics.TickPhaseDuration, start: start, log: true}

	// 1. observe
	c.each(len(policies), func(i int) {
		p := &policies[i]
		octx, cancel := context.WithTimeout(klog.NewContext(ctx, loggers[i]), c.opts.Interval)
		defer cancel()
		r, err := c.observe(octx, p, targets[p.Name], now, leading)
		if err != nil {
			c.syncFailed(loggers[i], err)
			return
		}
		passes[i] = r
	})
	// One snapshot of the nodes for the tick: the lead times, the NodePools' growth and the
	// allocation read the same nodes, so that a node turning Ready in between is not counted
	// both as growth and as free.
	nodes, nodesErr := c.nodes.List(labelsEverything)
	if nodesErr == nil {
		c.nodeLeads.observe(nodes)
	}
	c.leads = c.nodeLeads.p90()
	c.observeGrowth(ctx, nodes)
	phases.done(phaseObserve)

	// 2. decide
	markShared(passes, policies, targets)
	c.each(len(policies), func(i int) {
		if passes[i] != nil {
			passes[i].decide(now)
		}
	})
	phases.done(phaseDecide)

	// 3. allocate
	c.allocate(ctx, passes, nodes, nodesErr)
	phases.done(tickPhaseAllocate)

	// 4. act
	c.each(len(policies), func(i int) {
		if passes[i] == nil {
			return
		}
		actx, cancel := context.WithTimeout(klog.NewContext(ctx, loggers[i]), c.opts.Interval)
		defer cancel()
		if err := passes[i].act(actx, now); err != nil {
			c.syncFailed(loggers[i], err)
		}
	})
	c.reportNodeLeads()
	if leading {
		c.pruneBuffers(ctx, policies)
	}
	phases.done(phaseAct)

	end := time.Now()
	c.deps.Metrics.TickDuration.Observe(end.Sub(start).Seconds())
	klog.FromContext(ctx).V(4).Info("Tick done", append([]any{"policies", len(policies), "duration", end.Sub(start)}, phases.kv...)...)
	if leading {
		c.writeRecords(parent, hold, passes, loggers)
	}
}

// reportNodeLeads sets each node pool's measured lead time.
func (c *Controller) reportNodeLeads() {
	for pool, d := range c.leads {
		c.deps.Metrics.NodeLeadTime.WithLabelValues(pool).Set(d.Seconds())
	}
}

// writeRecords writes the tick's decision records (the prescale.io/decision annotation of
// each target whose record changed, and some of those due a refresh: recordsDue) in the
// background, once the tick has acted: the scale writes never wait behind a thousand
// explanations, nor the next tick behind a slow API server (docs/performance.md). They run
// under the lease, within one interval. A target has one record in flight at most: until
// it is written (or given up), the next ticks compute none for it (target.recordBusy), so
// a record is never written over a newer one.
func (c *Controller) writeRecords(ctx context.Context, hold *leaseHold, runs []*pass, loggers []klog.Logger) {
	due := recordsDue(runs, refreshesPerTick(len(runs), c.opts.Interval))
	if len(due) == 0 {
		return
	}
	for _, i := range due {
		runs[i].t.recordBusy.Store(true)
	}
	c.recordsWG.Add(1)
	rctx, cancel := context.WithTimeout(ctx, c.opts.Interval)
	stop := context.AfterFunc(hold.ctx, cancel)
	go func() {
		defer c.recordsWG.Done()
		defer cancel()
		defer stop()
		start := time.Now()
		c.each(len(due), func(j int) {
			i := due[j]
			// The write updates the target's record state before it is free again.
			defer runs[i].t.recordBusy.Store(false)
			if err := runs[i].record(klog.NewContext(rctx, loggers[i])); err != nil {
				c.syncFailed(loggers[i], err)
			}
		})
		c.deps.Metrics.TickPhaseDuration.WithLabelValues(tickPhaseRecord).Observe(time.Since(start).Seconds())
		klog.FromContext(ctx).V(4).Info("Records written", "records", len(due), "duration", time.Since(start))
	}()
}

// awaitRecords waits until every decision record in flight is written (or given up).
func (c *Controller) awaitRecords() { c.recordsWG.Wait() }

// each runs f(0..n-1) with at most SyncConcurrency at once, and waits for them all.
func (c *Controller) each(n int, f func(i int)) {
	slots := make(chan struct{}, c.opts.SyncConcurrency)
	var wg sync.WaitGroup
	for i := range n {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// syncFailed logs a failed sync and counts it under each of its kinds. A target that is
// not found is an expected state while a workload is redeployed: it is logged once, as
// information, and its history is held until it returns.
func (c *Controller) syncFailed(logger klog.Logger, err error) {
	for _, kind := range errorKinds(err) {
		c.deps.Metrics.Errors.WithLabelValues(kind).Inc()
	}
	se, _ := errors.AsType[*syncError](err)
	switch {
	case se != nil && se.repeat:
		logger.V(4).Info("Sync failed again", "err", err)
	case apierrors.IsNotFound(err):
		logger.Info("Target not found; holding its history until it returns", "err", err)
	default:
		logger.Error(err, "Sync failed")
	}
}

// hpaFor returns the real HPA that targets the same workload, nil for none.
func (c *Controller) hpaFor(ref policy.TargetRef) *autoscalingv2.HorizontalPodAutoscaler {
	list, err := c.hpas.HorizontalPodAutoscalers(ref.Namespace).List(labelsEverything)
	if err != nil {
		return nil
	}
	for _, h := range list {
		r := h.Spec.ScaleTargetRef
		if r.Kind == ref.Kind && r.Name == ref.Name && apiGroup(r.APIVersion) == apiGroup(ref.APIVersion) {
			return h
		}
	}
	return nil
}

func apiGroup(apiVersion string) string {
	gv, err := schema.ParseGroupVersion(apiVersion)
	if err != nil {
		return apiVersion
	}
	return gv.Group
}
