package datapath

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/steernet/steer/pkg/bpffs"
)

// Spares keeps one pod's collection loaded ahead of its ADD, in a process that attaches pod
// after pod (steerd): its maps, and its TC programs verified for the common pod (no multicast
// groups, the default loop mark and flow table). Verification is most of a load (on Linux 6.18,
// 4.8 ms of steer_egress and steer_ingress in 7.5) and creating the maps most of the rest, and
// the programs read the pod's interfaces from a table (.data.ifaces) rather than as constants,
// so an ADD that fits only writes its interface table. A pod with groups or another loop mark
// uses the maps and verifies its own programs; one with another flow table size makes its own.
//
// Attach takes the ready set and has the next one made once its pod is attached, off the pod's
// path. The first Attach makes the first set, so a process that never attaches holds no kernel
// memory for it. The thin plugin, one pod per process, claims a set steerd keeps pinned for it,
// or loads its own, while the delegates run (SparesForOnePod). Safe for concurrent use.
type Spares struct {
	mu     sync.Mutex
	ready  *readySet // nil while none
	making bool
	made   chan struct{} // closed when the set being made is ready (or failed)
	closed bool
	// onePod: the process attaches one pod (SparesForOnePod); its Attach waits for the set
	// being made, and no other follows. It first claims a set steerd keeps under claimFrom.
	onePod    bool
	claimFrom bpffs.Layout
}

// readySet is a collection loaded ahead of a pod: every map, the interface table unwritten,
// and the TC programs verified for no groups and the default loop mark.
type readySet struct {
	maps     map[string]*ebpf.Map
	programs map[string]*ebpf.Program
}

// SparesForOnePod returns the spares of the one pod a process attaches: the thin plugin, which
// calls Start once it knows the pod has secondaries, while the apiserver answers and the
// delegates run. Start claims a set steerd keeps ready under layout (see FillReady), or else
// loads one (parsing the object built into the binary). The pod's Attach waits for it. The
// caller closes it.
func SparesForOnePod(layout bpffs.Layout) *Spares { return &Spares{onePod: true, claimFrom: layout} }

// Start makes a set in the background unless one is ready or being made.
func (s *Spares) Start() { s.refill() }

// take returns the ready set for cfg, or nil when none is ready or it does not fit cfg's flow
// table. The caller owns it.
func (s *Spares) take(cfg *Config) *readySet {
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
	r := s.ready
	s.ready = nil
	return r
}

// attached has the next set made once a pod is attached, in a process that attaches pod after
// pod.
func (s *Spares) attached() {
	if s != nil && !s.onePod {
		s.refill()
	}
}

// refill makes the next set in the background unless one is ready or being made, or the
// process attaches only one pod and made its set.
func (s *Spares) refill() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready != nil || s.making || s.closed || s.onePod && s.made != nil {
		return
	}
	s.making = true
	s.made = make(chan struct{})
	load := loadWhenIdle
	if s.onePod {
		load = func(spec *ebpf.CollectionSpec) (*ebpf.Collection, error) { return newCollection(spec, nil) }
	}
	go func() {
		var r *readySet
		var err error
		if s.onePod && s.claimFrom.Root != "" {
			r = claimReady(s.claimFrom)
		}
		if r == nil {
			r, err = makeReadySet(load)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.making = false
		close(s.made)
		if err != nil || s.closed {
			r.close()
			return // Attach loads its collection itself, as without Spares
		}
		s.ready = r
	}()
}

// Close releases the ready set; Attach then loads its collection itself.
func (s *Spares) Close() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.ready.close()
	s.ready = nil
}

// makeReadySet loads, with load, the embedded object's collection as Attach would for a pod with
// no groups, the default loop mark and flow table, and no XDP, leaving its interface table
// unwritten.
func makeReadySet(load func(*ebpf.CollectionSpec) (*ebpf.Collection, error)) (*readySet, error) {
	obj, err := Embedded()
	if err != nil {
		return nil, err
	}
	spec, err := obj.prepare(&Config{})
	if err != nil {
		return nil, err
	}
	delete(spec.Programs, steerProgSteerIngressXdp)
	coll, err := load(spec)
	if err != nil {
		return nil, err
	}
	return &readySet{maps: coll.Maps, programs: coll.Programs}, nil
}

// loadWhenIdle loads spec on an OS thread of its own scheduled SCHED_IDLE, for a pod to come:
// the verifier (most of a load, in the kernel on the calling thread) then runs only on CPU time
// nothing else on the node wants, so making the next set never delays the ADD that just ended,
// the next one, or the pods. The thread ends with its goroutine, its policy with it.
func loadWhenIdle(spec *ebpf.CollectionSpec) (*ebpf.Collection, error) {
	type loaded struct {
		coll *ebpf.Collection
		err  error
	}
	done := make(chan loaded, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		// Best effort: without it the set is made at the normal priority.
		_ = unix.SchedSetAttr(0, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}, 0)
		coll, err := ebpf.NewCollection(spec)
		done <- loaded{coll, err}
	}()
	l := <-done
	return l.coll, l.err
}

// collectionFor returns cfg's collection built on r. When r's programs fit cfg (no multicast
// groups, the default loop mark; take checked the flow table) it is r itself with cfg's
// interface table written, and the object is parsed only if a program r lacks (XDP) must be
// verified against its maps; a set that fails that is dropped and cfg's collection loaded anew.
// Otherwise it is cfg's programs verified on r's maps, or a new collection when r is nil. r is
// used up either way.
func (r *readySet) collectionFor(cfg *Config, xdp bool) (*ebpf.Collection, error) {
	if r != nil && len(cfg.Groups) == 0 && cfg.LoopMark == 0 {
		if coll, err := r.fill(cfg, xdp); err == nil {
			return coll, nil
		}
		r = nil
	}
	spec, err := preparedSpec(cfg, xdp)
	if err != nil {
		r.close()
		return nil, err
	}
	if r == nil {
		return newCollection(spec, nil)
	}
	closePrograms(r.programs)
	maps := r.maps
	for _, name := range []string{configMap, ifacesMap} { // spec's own are written at creation
		maps[name].Close()
		delete(maps, name)
	}
	defer closeMapSet(maps) // the collection holds its own references
	return newCollection(spec, maps)
}

// fill writes cfg's interface table into r and verifies the XDP program against its maps if
// xdp and r lacks it; on error r is closed.
func (r *readySet) fill(cfg *Config, xdp bool) (*ebpf.Collection, error) {
	coll := &ebpf.Collection{Maps: r.maps, Programs: r.programs}
	err := writeInterfaces(coll.Maps[ifacesMap], cfg.Interfaces)
	if err == nil && xdp && coll.Programs[steerProgSteerIngressXdp] == nil {
		var spec *ebpf.CollectionSpec
		if spec, err = preparedSpec(cfg, xdp); err == nil {
			coll.Programs[steerProgSteerIngressXdp], err = loadProgram(spec, steerProgSteerIngressXdp, coll.Maps)
		}
	}
	if err != nil {
		coll.Close()
		return nil, err
	}
	return coll, nil
}

// writeInterfaces writes the interface table of itfs into m, the .data.ifaces map: the section
// holds the table alone, at offset 0 (TestReadySetTable).
func writeInterfaces(m *ebpf.Map, itfs []Interface) error {
	if m == nil {
		return errors.New("the ready collection has no interface table")
	}
	value := make([]byte, m.ValueSize())
	if _, err := binary.Encode(value, binary.NativeEndian, encodeInterfaces(itfs)); err != nil {
		return fmt.Errorf("interface table: %w", err)
	}
	return m.Update(uint32(0), value, ebpf.UpdateExist)
}

func (r *readySet) close() {
	if r != nil {
		closeMapSet(r.maps)
		closePrograms(r.programs)
	}
}

func closeMapSet(maps map[string]*ebpf.Map) {
	for _, m := range maps {
		m.Close()
	}
}

func closePrograms(progs map[string]*ebpf.Program) {
	for _, p := range progs {
		p.Close()
	}
}
