// Package endpoints is the controller that writes the EndpointSlices of Services on secondary
// networks: for each Service labelled for multus-proxy (or Steer) and annotated with a network,
// slices holding the selected pods' addresses on that network, read from their network-status.
// One runs per cluster, elected (see package leader); the node agents read its slices.
package endpoints

import (
	"context"
	"errors"
	"log/slog"
	"time"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/steernet/steer/pkg/metrics"
	"github.com/steernet/steer/pkg/service"
)

// Component is the controller's name in Events.
const Component = "steer-endpointslice-controller"

// Event reasons.
const (
	ReasonInvalidNetwork = "InvalidServiceNetwork"
	ReasonNoEndpoints    = "NoEndpointsOnNetwork"
	ReasonServing        = "EndpointsOnNetwork"
	ReasonWriteFailed    = "FailedToUpdateEndpointSlices"
)

// Options configure a Controller. Client is required.
type Options struct {
	Client  kubernetes.Interface
	Log     *slog.Logger
	Metrics *metrics.EndpointSlices // nil: none
	// Workers sync that many Services at once (default 4).
	Workers int
	// MaxEndpointsPerSlice is Kubernetes' default, 100, unless set.
	MaxEndpointsPerSlice int
	// Resync replays the caches this often (default 10 minutes).
	Resync time.Duration
}

// Controller writes the EndpointSlices of Services on secondary networks.
type Controller struct {
	opts     Options
	log      *slog.Logger
	queue    workqueue.TypedRateLimitingInterface[string]
	services corelisters.ServiceLister
	pods     cache.Indexer // *corev1.Pod, or *metav1.PartialObjectMetadata for a pod on no secondary network
	slices   cache.Indexer
	tracker  *tracker
	recorder record.EventRecorder
	state    *serviceStates
}

// New returns a controller; Run starts it.
func New(opts Options) *Controller {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Workers <= 0 {
		opts.Workers = 4
	}
	if opts.MaxEndpointsPerSlice <= 0 {
		opts.MaxEndpointsPerSlice = 100
	}
	if opts.Resync <= 0 {
		opts.Resync = 10 * time.Minute
	}
	return &Controller{opts: opts, log: opts.Log, tracker: newTracker(10 * time.Second), state: newServiceStates()}
}

// servedSelector selects the Services labelled for a proxy Steer stands in for.
func servedSelector() string {
	req, err := labels.NewRequirement(service.ProxyNameLabel, selection.In, service.ProxyNames)
	if err != nil {
		panic(err) // constant input
	}
	return labels.NewSelector().Add(*req).String()
}

// sliceIndex indexes slices by their Service's namespace/name.
const sliceIndex = "service"

func sliceService(obj any) ([]string, error) {
	s, ok := obj.(*discovery.EndpointSlice)
	if !ok {
		return nil, nil
	}
	name := s.Labels[service.ServiceNameLabel]
	if name == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + name}, nil
}

// Run starts the informers, waits for their caches and syncs Services until ctx ends.
func (c *Controller) Run(ctx context.Context) error {
	client := c.opts.Client
	c.queue = workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "steer-endpointslices"})
	defer c.queue.ShutDown()

	svcFactory := informers.NewSharedInformerFactoryWithOptions(client, c.opts.Resync,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = servedSelector() }))
	sliceFactory := informers.NewSharedInformerFactoryWithOptions(client, c.opts.Resync,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = service.ManagedByLabel + "=" + service.SteerManagedBy
		}))
	podFactory := informers.NewSharedInformerFactory(client, c.opts.Resync)

	svcInf := svcFactory.Core().V1().Services()
	podInf := podFactory.Core().V1().Pods()
	sliceInf := sliceFactory.Discovery().V1().EndpointSlices()
	if err := podInf.Informer().SetTransform(trimPod); err != nil {
		return err
	}
	if err := sliceInf.Informer().AddIndexers(cache.Indexers{sliceIndex: sliceService}); err != nil {
		return err
	}
	c.services, c.pods, c.slices = svcInf.Lister(), podInf.Informer().GetIndexer(), sliceInf.Informer().GetIndexer()

	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{svcInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.enqueueObject,
			UpdateFunc: func(_, obj any) { c.enqueueObject(obj) },
			DeleteFunc: c.enqueueObject,
		}},
		{podInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.podChanged(nil, obj) },
			UpdateFunc: c.podChanged,
			DeleteFunc: func(obj any) { c.podChanged(nil, obj) },
		}},
		{sliceInf.Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    c.sliceChanged,
			UpdateFunc: func(_, obj any) { c.sliceChanged(obj) },
			DeleteFunc: c.sliceChanged,
		}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return err
		}
	}

	broadcaster := record.NewBroadcaster(record.WithContext(ctx))
	broadcaster.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	defer broadcaster.Shutdown()
	c.recorder = broadcaster.NewRecorder(scheme.Scheme, corev1.EventSource{Component: Component})

	for _, f := range []informers.SharedInformerFactory{svcFactory, sliceFactory, podFactory} {
		f.Start(ctx.Done())
		defer f.Shutdown()
	}
	if !cache.WaitForCacheSync(ctx.Done(), svcInf.Informer().HasSynced, podInf.Informer().HasSynced, sliceInf.Informer().HasSynced) {
		return ctx.Err()
	}
	c.log.Info("EndpointSlice controller started", "workers", c.opts.Workers)
	// Slices of Services that lost their label or annotation while no controller ran.
	for _, key := range c.slices.ListIndexFuncValues(sliceIndex) {
		c.queue.Add(key)
	}
	done := make(chan struct{})
	for range c.opts.Workers {
		go func() {
			defer func() { done <- struct{}{} }()
			wait.UntilWithContext(ctx, c.work, time.Second)
		}()
	}
	<-ctx.Done()
	c.queue.ShutDown()
	for range c.opts.Workers {
		<-done
	}
	return nil
}

func (c *Controller) enqueueObject(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		utilruntime.HandleError(err)
		return
	}
	c.queue.Add(key)
}

// podChanged queues the Services that select the pod, before or after the change. A change
// the trimmed pod does not show (most of them) queues nothing.
func (c *Controller) podChanged(old, obj any) {
	before, after := podOf(old), podOf(obj)
	if old != nil && samePod(old, obj) {
		return
	}
	var sets []labels.Set
	ns := ""
	for _, p := range []*corev1.Pod{before, after} {
		if p != nil {
			sets, ns = append(sets, p.Labels), p.Namespace
		}
	}
	if len(sets) == 0 {
		return // on no secondary network, before or after
	}
	svcs, err := c.services.Services(ns).List(labels.Everything())
	if err != nil {
		return
	}
	for _, svc := range svcs {
		if svc.Spec.Selector == nil {
			continue
		}
		sel := labels.SelectorFromValidatedSet(svc.Spec.Selector)
		for _, set := range sets {
			if sel.Matches(set) {
				c.queue.Add(svc.Namespace + "/" + svc.Name)
				break
			}
		}
	}
}

// podOf is the pod in an informer's object when it is on a secondary network, else nil.
func podOf(obj any) *corev1.Pod {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, _ := obj.(*corev1.Pod)
	return pod
}

// samePod reports whether two trimmed versions of a pod differ only in resourceVersion.
func samePod(a, b any) bool {
	strip := func(o any) any {
		switch o := o.(type) {
		case *corev1.Pod:
			o = o.DeepCopy()
			o.ResourceVersion = ""
			return o
		case *metav1.PartialObjectMetadata:
			o = o.DeepCopy()
			o.ResourceVersion = ""
			return o
		}
		return o
	}
	return apiequality.Semantic.DeepEqual(strip(a), strip(b))
}

// selectedPods are the pods on a secondary network in namespace that sel selects.
func (c *Controller) selectedPods(namespace string, sel labels.Selector) ([]*corev1.Pod, error) {
	var out []*corev1.Pod
	err := cache.ListAllByNamespace(c.pods, namespace, sel, func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok {
			out = append(out, p)
		}
	})
	return out, err
}

func (c *Controller) sliceChanged(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	s, ok := obj.(*discovery.EndpointSlice)
	if !ok {
		return
	}
	if keys, _ := sliceService(s); len(keys) == 1 {
		c.queue.Add(keys[0])
	}
}

func (c *Controller) work(ctx context.Context) {
	for {
		key, quit := c.queue.Get()
		if quit {
			return
		}
		err := c.syncLogged(ctx, key)
		switch {
		case err == nil:
			c.queue.Forget(key)
		case errors.Is(err, errStale):
			c.queue.AddAfter(key, 100*time.Millisecond)
		case ctx.Err() != nil: // stopping: the next leader syncs it
		default:
			c.log.Warn("sync Service on secondary network", "service", key, "err", err)
			c.queue.AddRateLimited(key)
		}
		c.queue.Done(key)
	}
}

func (c *Controller) syncLogged(ctx context.Context, key string) error {
	start := time.Now()
	result, err := c.sync(ctx, key)
	if m := c.opts.Metrics; m != nil && !errors.Is(err, errStale) {
		m.Duration.Observe(time.Since(start).Seconds())
		if err != nil {
			result = "error"
		}
		m.Syncs.WithLabelValues(result).Inc()
		ready, notReady := c.state.totals()
		m.Endpoints.WithLabelValues("ready").Set(float64(ready))
		m.Endpoints.WithLabelValues("not_ready").Set(float64(notReady))
	}
	return err
}
