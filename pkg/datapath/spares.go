package datapath

import (
	"sync"

	"github.com/cilium/ebpf"
)

// Spares keeps the maps of one pod's collection created ahead of its ADD, in a process that
// attaches pod after pod (steerd): the maps depend on no pod's configuration but the flow
// table's size, and creating them is a sixth of a load (1.2 ms of 7.5 on Linux 6.18, most of it
// the flow table's preallocation). Attach takes the spare set when it fits and has the next one
// made once its own programs are loaded, off the pod's path. The first Attach makes the first
// set, so a process that never attaches holds no kernel memory for it. Safe for concurrent use.
type Spares struct {
	mu     sync.Mutex
	maps   map[string]*ebpf.Map // the ready set, by map name; nil while none
	making bool
	closed bool
}

// take returns the spare maps for cfg, or nil when none is ready or they do not fit it. The
// caller owns them.
func (s *Spares) take(cfg *Config) map[string]*ebpf.Map {
	if s == nil || cfg.FlowEntries != 0 && cfg.FlowEntries != DefaultFlowEntries {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.maps
	s.maps = nil
	return m
}

// refill makes the next set in the background unless one is ready or being made.
func (s *Spares) refill() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maps != nil || s.making || s.closed {
		return
	}
	s.making = true
	go func() {
		maps, err := makeSpareMaps()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.making = false
		if err != nil || s.closed {
			closeMapSet(maps)
			return // Attach creates its maps itself, as without Spares
		}
		s.maps = maps
	}()
}

// Close releases the spare set; Attach then creates its maps itself.
func (s *Spares) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	closeMapSet(s.maps)
	s.maps = nil
}

// makeSpareMaps creates the maps the embedded object's collection is loaded with, all but the
// configuration, exactly as load would for a pod with DefaultFlowEntries.
func makeSpareMaps() (map[string]*ebpf.Map, error) {
	obj, err := Embedded()
	if err != nil {
		return nil, err
	}
	spec, err := obj.prepare(&Config{})
	if err != nil {
		return nil, err
	}
	delete(spec.Maps, configMap)
	spec.Programs = nil
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		return nil, err
	}
	return coll.Maps, nil
}

func closeMapSet(maps map[string]*ebpf.Map) {
	for _, m := range maps {
		m.Close()
	}
}
