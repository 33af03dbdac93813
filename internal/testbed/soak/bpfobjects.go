package soak

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"

	"github.com/cilium/ebpf"
)

// BPFObjects are the BPF programs and maps of one campaign: the maps pinned under its bpffs
// root, the programs using them, and those programs' other maps (.rodata and the like). The
// leftover check counts only these, so campaigns and tests sharing a machine do not count
// each other's objects. Record must run while the pins exist (after each ADD).
type BPFObjects struct {
	root  string
	mu    sync.Mutex
	progs map[ebpf.ProgramID]bool
	maps  map[ebpf.MapID]bool
}

// NewBPFObjects tracks the objects pinned under root.
func NewBPFObjects(root string) *BPFObjects {
	return &BPFObjects{root: root, progs: map[ebpf.ProgramID]bool{}, maps: map[ebpf.MapID]bool{}}
}

// Record adds the objects now pinned under the root, and the programs using them.
func (o *BPFObjects) Record() error {
	pinned, err := o.pinnedMaps()
	if err != nil {
		return err
	}
	if len(pinned) == 0 {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, id := range pinned {
		o.maps[id] = true
	}
	// The kernel keeps no map-to-program link: walk the programs and keep those using a map of
	// ours. Objects vanishing meanwhile (a concurrent DEL) are skipped.
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		} else if err != nil {
			return fmt.Errorf("BPF program IDs: %w", err)
		}
		id = next
		if o.progs[id] {
			continue
		}
		prog, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		info, err := prog.Info()
		_ = prog.Close()
		if err != nil {
			continue
		}
		ids, _ := info.MapIDs()
		if slices.ContainsFunc(ids, func(m ebpf.MapID) bool { return o.maps[m] }) {
			o.progs[id] = true
			for _, m := range ids {
				o.maps[m] = true
			}
		}
	}
}

func (o *BPFObjects) pinnedMaps() ([]ebpf.MapID, error) {
	var ids []ebpf.MapID
	err := filepath.WalkDir(o.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // a pod's directory removed meanwhile
		}
		m, err := ebpf.LoadPinnedMap(path, nil)
		if err != nil {
			return nil // not a map, or gone
		}
		defer m.Close()
		info, err := m.Info()
		if err != nil {
			return nil
		}
		if id, ok := info.ID(); ok {
			ids = append(ids, id)
		}
		return nil
	})
	return ids, err
}

// Live counts the recorded programs and maps the kernel still holds.
func (o *BPFObjects) Live() (progs, maps int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for id := range o.progs {
		if p, err := ebpf.NewProgramFromID(id); err == nil {
			_ = p.Close()
			progs++
		}
	}
	for id := range o.maps {
		if m, err := ebpf.NewMapFromID(id); err == nil {
			_ = m.Close()
			maps++
		}
	}
	return progs, maps
}

// Recorded counts the programs and maps recorded so far, live or not: zero after a campaign
// means the leftover count saw nothing and proved nothing.
func (o *BPFObjects) Recorded() (progs, maps int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.progs), len(o.maps)
}
