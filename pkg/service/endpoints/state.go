package endpoints

import (
	"errors"
	"sync"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/client-go/tools/cache"
)

// errStale: the slice cache has not yet seen the controller's own last writes to a Service, so
// a sync now would write from an old view (and duplicate slices). The Service is retried shortly.
var errStale = errors.New("EndpointSlice cache behind the controller's writes")

// tracker remembers, per Service, the slices the controller wrote until the informer shows them.
type tracker struct {
	mu sync.Mutex
	// generation written per slice name; deletedGen marks a deletion
	written map[string]map[string]int64
}

const deletedGen = -1

func newTracker() *tracker { return &tracker{written: map[string]map[string]int64{}} }

func (t *tracker) record(key, name string, gen int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.written[key]
	if m == nil {
		m = map[string]int64{}
		t.written[key] = m
	}
	m[name] = gen
}

func (t *tracker) wrote(key string, s *discovery.EndpointSlice) { t.record(key, s.Name, s.Generation) }
func (t *tracker) deleted(key string, s *discovery.EndpointSlice) {
	t.record(key, s.Name, deletedGen)
}

func (t *tracker) forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.written, key)
}

// stale reports whether the cache still lacks a write to the Service's slices; writes it shows
// are forgotten.
func (t *tracker) stale(key string, slices cache.Indexer) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	behind := false
	for name, gen := range t.written[key] {
		ns, _, _ := cache.SplitMetaNamespaceKey(key)
		obj, exists, _ := slices.GetByKey(ns + "/" + name)
		var caught bool
		if gen == deletedGen {
			caught = !exists
		} else if exists {
			caught = obj.(*discovery.EndpointSlice).Generation >= gen
		}
		if caught {
			delete(t.written[key], name)
		} else {
			behind = true
		}
	}
	if len(t.written[key]) == 0 {
		delete(t.written, key)
	}
	return behind
}

// serviceStates remembers what each Service's last sync found, so Events tell of changes
// rather than repeat every sync, and the endpoint gauges sum over Services.
type serviceStates struct {
	mu sync.Mutex
	m  map[string]serviceState
}

type serviceState struct {
	what            string
	ready, notReady int
}

func newServiceStates() *serviceStates { return &serviceStates{m: map[string]serviceState{}} }

// set records the Service's state and reports whether what it is changed.
func (s *serviceStates) set(key, what string, ready, notReady int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.m[key]
	s.m[key] = serviceState{what: what, ready: ready, notReady: notReady}
	return !ok || old.what != what || (what != "none" && (old.ready == 0) != (ready == 0))
}

func (s *serviceStates) forget(key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, key)
}

func (s *serviceStates) totals() (ready, notReady int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.m {
		ready += st.ready
		notReady += st.notReady
	}
	return
}

func equalPods(a, b *corev1.Pod) bool { return apiequality.Semantic.DeepEqual(a, b) }
