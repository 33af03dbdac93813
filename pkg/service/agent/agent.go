// Package agent is steerd's node agent for Services on secondary networks: it follows the
// Services Steer proxies and their EndpointSlices, computes each attached pod of this node its
// complete set of entries (package service) and hands the pods whose entries changed to the
// datapath's Programmer.
package agent

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/steernet/steer/pkg/metrics"
	"github.com/steernet/steer/pkg/service"
)

// Source lists the containers of this node that Steer attached (pkg/engine's cache).
type Source interface {
	Containers() ([]Container, error)
}

// Options configure an Agent. Client, Source and Programmer are required.
type Options struct {
	Client     kubernetes.Interface
	Source     Source
	Programmer service.Programmer
	Log        *slog.Logger
	Metrics    *metrics.ServiceProxy // nil: none
	// Debounce gathers the changes of a burst into one pass (default 50 ms).
	Debounce time.Duration
	// PollEvery is how often the Source is read for new and removed attachments (default 1 s).
	PollEvery time.Duration
	// Resync programs every pod with entries again this often, repairing what went astray
	// (default 5 minutes).
	Resync time.Duration
	// RetryMin and RetryMax bound the backoff of a pod whose programming failed (200 ms, 30 s).
	RetryMin, RetryMax time.Duration
}

// Agent programs the Services of secondary networks into this node's pods.
type Agent struct {
	opts     Options
	log      *slog.Logger
	services corelisters.ServiceLister
	slices   cache.Indexer
	changed  chan struct{}

	// The rest belongs to Run's goroutine.
	programmed map[string][]service.Entry // by container ID: what the Programmer has
	bare       map[string]bool            // containers without Steer's datapath
	retries    map[string]*retry
	containers []Container
	pending    time.Time // when the first change not yet programmed happened
}

type retry struct {
	at    time.Time
	delay time.Duration
}

// New returns an agent; Run starts it.
func New(opts Options) *Agent {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	opts.Debounce = or(opts.Debounce, 50*time.Millisecond)
	opts.PollEvery = or(opts.PollEvery, time.Second)
	opts.Resync = or(opts.Resync, 5*time.Minute)
	opts.RetryMin = or(opts.RetryMin, 200*time.Millisecond)
	opts.RetryMax = or(opts.RetryMax, 30*time.Second)
	return &Agent{
		opts: opts, log: opts.Log, changed: make(chan struct{}, 1),
		programmed: map[string][]service.Entry{}, bare: map[string]bool{}, retries: map[string]*retry{},
	}
}

func or(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

const sliceIndex = "service"

func sliceService(obj any) ([]string, error) {
	s, ok := obj.(*discovery.EndpointSlice)
	if !ok || s.Labels[service.ServiceNameLabel] == "" {
		return nil, nil
	}
	return []string{s.Namespace + "/" + s.Labels[service.ServiceNameLabel]}, nil
}

func selector(key string, values []string) string {
	req, err := labels.NewRequirement(key, selection.In, values)
	if err != nil {
		panic(err) // constant input
	}
	return labels.NewSelector().Add(*req).String()
}

// dropManagedFields keeps the caches small: field ownership is most of a stored object.
func dropManagedFields(obj any) (any, error) {
	if m, err := meta.Accessor(obj); err == nil {
		m.SetManagedFields(nil)
	}
	return obj, nil
}

// Run follows the cluster and the Source until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if a.opts.Client == nil || a.opts.Source == nil || a.opts.Programmer == nil {
		return errors.New("the Service agent needs a client, a source of attachments and a programmer")
	}
	svcFactory := informers.NewSharedInformerFactoryWithOptions(a.opts.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = selector(service.ProxyNameLabel, service.ProxyNames)
		}))
	sliceFactory := informers.NewSharedInformerFactoryWithOptions(a.opts.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = selector(service.ManagedByLabel, service.ManagedBy)
		}))
	svcInf := svcFactory.Core().V1().Services().Informer()
	sliceInf := sliceFactory.Discovery().V1().EndpointSlices().Informer()
	if err := sliceInf.AddIndexers(cache.Indexers{sliceIndex: sliceService}); err != nil {
		return err
	}
	notify := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { a.notify() },
		UpdateFunc: func(any, any) { a.notify() },
		DeleteFunc: func(any) { a.notify() },
	}
	for _, inf := range []cache.SharedIndexInformer{svcInf, sliceInf} {
		if err := inf.SetTransform(dropManagedFields); err != nil {
			return err
		}
		if _, err := inf.AddEventHandler(notify); err != nil {
			return err
		}
	}
	a.services = svcFactory.Core().V1().Services().Lister()
	a.slices = sliceInf.GetIndexer()
	svcFactory.Start(ctx.Done())
	sliceFactory.Start(ctx.Done())
	defer svcFactory.Shutdown()
	defer sliceFactory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), svcInf.HasSynced, sliceInf.HasSynced) {
		return ctx.Err()
	}
	a.log.Info("Service agent started")
	return a.loop(ctx)
}

// notify records a change for the loop; a burst of them costs one pass.
func (a *Agent) notify() {
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

func (a *Agent) loop(ctx context.Context) error {
	poll := time.NewTicker(a.opts.PollEvery)
	defer poll.Stop()
	resync := time.NewTicker(a.opts.Resync)
	defer resync.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()

	a.pending = time.Now()
	a.poll()
	a.pass(false)
	for {
		if next, ok := a.nextRetry(); ok {
			retry.Reset(time.Until(next))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.changed:
			if a.pending.IsZero() {
				a.pending = time.Now()
			}
			select { // gather the rest of the burst
			case <-ctx.Done():
				return nil
			case <-time.After(a.opts.Debounce):
			}
			a.pass(false)
		case <-poll.C:
			if a.poll() {
				a.pass(false)
			}
		case <-retry.C:
			a.pass(false)
		case <-resync.C:
			a.poll()
			a.pass(true)
		}
	}
}

// poll reads the Source and reports whether the containers changed.
func (a *Agent) poll() bool {
	cs, err := a.opts.Source.Containers()
	if err != nil {
		a.log.Warn("list attached pods", "err", err)
		return false
	}
	slices.SortFunc(cs, func(x, y Container) int { return cmp.Compare(x.ID, y.ID) })
	if slices.EqualFunc(cs, a.containers, equalContainer) {
		return false
	}
	a.containers = cs
	if a.pending.IsZero() {
		a.pending = time.Now()
	}
	return true
}

func equalContainer(a, b Container) bool {
	return a.ID == b.ID && a.Namespace == b.Namespace && a.Pod == b.Pod && slices.Equal(a.Interfaces, b.Interfaces)
}

// pass computes every container's entries and programs those that differ from what the
// Programmer has, those due a retry, and all with entries when all is set.
func (a *Agent) pass(all bool) {
	byNetwork := a.frontendsByNetwork()
	now := time.Now()
	live := make(map[string]bool, len(a.containers))
	pods, entries, done := 0, 0, 0
	for _, c := range a.containers {
		live[c.ID] = true
		want := containerEntries(c, byNetwork)
		have, known := a.programmed[c.ID]
		r := a.retries[c.ID]
		due := r != nil && !now.Before(r.at)
		switch {
		case due, all && (len(want) > 0 || len(have) > 0):
		case r != nil: // waiting for its retry
			continue
		case !known && len(want) == 0, known && equalEntries(want, have):
			if len(have) > 0 && !a.bare[c.ID] {
				pods++
				entries += len(have)
			}
			continue
		}
		err := a.opts.Programmer.Program(c.ID, want)
		if errors.Is(err, service.ErrNoDatapath) {
			// Nothing to program: not retried, tried again when its entries change.
			a.log.Debug("pod without Steer's datapath", "pod", c.Namespace+"/"+c.Pod, "container", c.ID)
			delete(a.retries, c.ID)
			a.programmed[c.ID], a.bare[c.ID] = want, true
			continue
		}
		if err != nil {
			a.failed(c, r, err)
			continue
		}
		delete(a.retries, c.ID)
		delete(a.bare, c.ID)
		a.programmed[c.ID] = want
		a.observe("ok")
		done++
		if len(want) > 0 {
			pods++
			entries += len(want)
		}
	}
	for id := range a.programmed {
		if !live[id] {
			delete(a.programmed, id)
			delete(a.bare, id)
			delete(a.retries, id)
		}
	}
	for id := range a.retries {
		if !live[id] {
			delete(a.retries, id)
		}
	}
	if m := a.opts.Metrics; m != nil {
		m.Pods.Set(float64(pods))
		m.Entries.Set(float64(entries))
		if !a.pending.IsZero() && done > 0 && len(a.retries) == 0 {
			m.Latency.Observe(time.Since(a.pending).Seconds())
		}
	}
	if len(a.retries) == 0 {
		a.pending = time.Time{}
	}
}

func (a *Agent) failed(c Container, r *retry, err error) {
	if r == nil {
		r = &retry{delay: a.opts.RetryMin}
		a.retries[c.ID] = r
	} else {
		r.delay = min(2*r.delay, a.opts.RetryMax)
	}
	r.at = time.Now().Add(r.delay)
	a.observe("error")
	a.log.Warn("program Services into pod", "pod", c.Namespace+"/"+c.Pod, "container", c.ID, "retry", r.delay, "err", err)
}

func (a *Agent) observe(result string) {
	if a.opts.Metrics != nil {
		a.opts.Metrics.Programs.WithLabelValues(result).Inc()
	}
}

func (a *Agent) nextRetry() (time.Time, bool) {
	var next time.Time
	for _, r := range a.retries {
		if next.IsZero() || r.at.Before(next) {
			next = r.at
		}
	}
	return next, !next.IsZero()
}

// frontendsByNetwork computes every Service's entries, by network.
func (a *Agent) frontendsByNetwork() map[string][]frontends {
	svcs, err := a.services.List(labels.Everything())
	if err != nil {
		return nil
	}
	out := map[string][]frontends{}
	for _, svc := range svcs {
		key := svc.Namespace + "/" + svc.Name
		objs, _ := a.slices.ByIndex(sliceIndex, key)
		f, ok := serviceEntries(svc, managedSlices(objs, svc))
		if ok {
			out[f.network] = append(out[f.network], f)
		}
	}
	return out
}

// managedSlices are the Service's slices of one manager: Steer's once it wrote any, before
// that multus-service's.
func managedSlices(objs []any, svc *corev1.Service) []*discovery.EndpointSlice {
	byManager := map[string][]*discovery.EndpointSlice{}
	for _, o := range objs {
		s, ok := o.(*discovery.EndpointSlice)
		if !ok || !ownedBy(s, svc) {
			continue
		}
		m := s.Labels[service.ManagedByLabel]
		byManager[m] = append(byManager[m], s)
	}
	for _, m := range service.ManagedBy {
		if len(byManager[m]) > 0 {
			return byManager[m]
		}
	}
	return nil
}

// ownedBy: a slice left from an earlier Service of the same name is not this one's.
func ownedBy(s *discovery.EndpointSlice, svc *corev1.Service) bool {
	if len(s.OwnerReferences) == 0 {
		return true
	}
	for _, o := range s.OwnerReferences {
		if o.UID == svc.UID {
			return true
		}
	}
	return false
}
