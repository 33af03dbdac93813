package endpoints

import (
	"errors"
	"sync"
	"time"

	discovery "k8s.io/api/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// errStale: the slice cache has not yet seen the controller's own last writes to a Service, so
// a sync now would write from an old view (and duplicate slices). The Service is retried shortly.
var errStale = errors.New("EndpointSlice cache behind the controller's writes")

// tracker remembers, per Service, the slices the controller wrote until the informer shows them,
// or for ttl at most: a slice that someone else deleted or changed meanwhile may never
// show as written.
type tracker struct {
	mu  sync.Mutex
	ttl time.Duration
	// per Service, per slice name
	written map[string]map[string]write
}

type write struct {
	gen int64 // deletedGen marks a deletion
	at  time.Time
}

const deletedGen = -1

func newTracker(ttl time.Duration) *tracker {
	return &tracker{ttl: ttl, written: map[string]map[string]write{}}
}

func (t *tracker) record(key, name string, gen int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.written[key]
	if m == nil {
		m = map[string]write{}
		t.written[key] = m
	}
	m[name] = write{gen: gen, at: time.Now()}
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
	ns, _, _ := cache.SplitMetaNamespaceKey(key)
	for name, w := range t.written[key] {
		obj, exists, _ := slices.GetByKey(ns + "/" + name)
		caught := time.Since(w.at) > t.ttl
		if w.gen == deletedGen {
			caught = caught || !exists
		} else if exists {
			caught = caught || obj.(*discovery.EndpointSlice).Generation >= w.gen
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
