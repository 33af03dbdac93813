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
// set, so a process that never attaches holds no kernel memory for it. The thin plugin, one pod
// per process, makes its pod's set while the delegates run (SparesForOnePod). Safe for
// concurrent use.
type Spares struct {
	mu     sync.Mutex
	maps   map[string]*ebpf.Map // the ready set, by map name; nil while none
	making bool
	made   chan struct{} // closed when the set being made is ready (or failed)
	closed bool
	// onePod: the process attaches one pod (SparesForOnePod); its Attach waits for the set
	// being made, and no other follows.
	onePod bool
}

// SparesForOnePod starts making, in the background, the maps of the one pod a process attaches:
// the thin plugin, while the apiserver answers and the pod's delegates run (which also parses
// the object built into the binary). The caller closes it.
func SparesForOnePod() *Spares {
	s := &Spares{onePod: true}
	s.refill()
	return s
}

// take returns the spare maps for cfg, or nil when none is ready or they do not fit it. The
// caller owns them.
func (s *Spares) take(cfg *Config) map[string]*ebpf.Map {
	if s == nil || cfg.FlowEntries != 0 && cfg.FlowEntries != DefaultFlowEntries {
		return nil
	}
	s.mu.Lock()
	if s.onePod && s.making {
		made := s.made
		s.mu.Unlock()
		<-made
		s.mu.Lock()
	}
	defer s.mu.Unlock()
	m := s.maps
	s.maps = nil
	return m
}

// refill makes the next set in the background unless one is ready or being made, or the
// process attaches only one pod and made its set.
func (s *Spares) refill() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.maps != nil || s.making || s.closed || s.onePod && s.made != nil {
		return
	}
	s.making = true
	s.made = make(chan struct{})
	go func() {
		maps, err := makeSpareMaps()
		s.mu.Lock()
		defer s.mu.Unlock()
		s.making = false
		close(s.made)
		if err != nil || s.closed {
			closeMapSet(maps)
			return // Attach creates its maps itself, as without Spares
		}
		s.maps = maps
	}()
}

// Close releases the spare set; Attach then creates its maps itself.
func (s *Spares) Close() {
	if s == nil {
		return
	}
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
