package datapath

import (
	"errors"
	"fmt"
	"slices"

	"github.com/cilium/ebpf"
)

// Objects is one pod's loaded collection.
type Objects struct {
	// Programs and maps only: the variables are folded into the configuration maps at load
	// (foldVariables).
	steerPrograms
	steerMaps
	// config holds the configuration maps (.rodata, .data.ifaces), pinned for inspection.
	config map[string]*ebpf.Map
	pins   map[string]*ebpf.Map // every map Attach pins, by pin name; the same values as above
	proxy  *serviceMaps         // loaded by ProgramServices; nil until then
}

// Close releases the process's references; pinned objects stay.
func (o *Objects) Close() error {
	if o.proxy != nil {
		closeProxyMaps(o.proxy)
	}
	closeMapSet(o.config)
	return errors.Join(o.steerPrograms.Close(), o.steerMaps.Close())
}

// Load loads the programs and maps for cfg from this binary's object. The caller closes the
// returned objects; what must outlive the process is pinned by Attach.
func Load(cfg Config) (*Objects, error) { return load(cfg, true, nil) }

// load is Load, leaving the XDP program out unless xdp: most pods learn with TC only, and the
// XDP program's verification is a tenth of the load. It builds on the ready set of spares if
// there is one.
func load(cfg Config, xdp bool, spares *Spares) (*Objects, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("datapath config: %w", err)
	}
	coll, err := spares.take(&cfg).collectionFor(&cfg, xdp)
	if err != nil {
		return nil, err
	}
	defer coll.Close()
	if err := freezeInterfaces(coll); err != nil {
		return nil, err
	}

	objs := &Objects{pins: pinsOf(coll), config: map[string]*ebpf.Map{}}
	for _, name := range []string{configMap, ifacesMap} {
		objs.config[name] = coll.DetachMap(name)
	}
	if xdp {
		err = coll.Assign(&objs.steerPrograms)
	} else {
		objs.SteerEgress, objs.SteerIngress = coll.DetachProgram(steerProgSteerEgress), coll.DetachProgram(steerProgSteerIngress)
		if objs.SteerEgress == nil || objs.SteerIngress == nil {
			err = errors.New("steer object lacks its TC programs")
		}
	}
	err = errors.Join(err, coll.Assign(&objs.steerMaps))
	if err != nil {
		_ = objs.steerPrograms.Close()
		closeMapSet(objs.config)
		return nil, fmt.Errorf("assign steer objects: %w", err)
	}
	return objs, nil
}

// preparedSpec returns the embedded object's spec configured for cfg, without the XDP program
// unless xdp.
func preparedSpec(cfg *Config, xdp bool) (*ebpf.CollectionSpec, error) {
	obj, err := Embedded()
	if err != nil {
		return nil, err
	}
	spec, err := obj.prepare(cfg)
	if err != nil {
		return nil, err
	}
	if !xdp {
		delete(spec.Programs, steerProgSteerIngressXdp)
	}
	return spec, nil
}

// freezeInterfaces freezes the interface table of a collection just loaded, once written: the
// programs take it for the pod's configuration, which nothing changes but a new load. A table
// the programs read and userspace could rewrite would let the pin disagree with what steerd
// believes the pod runs. Collections of older builds (the table in .rodata) have none.
func freezeInterfaces(coll *ebpf.Collection) error {
	m := coll.Maps[ifacesMap]
	if m == nil {
		return nil
	}
	if err := m.Freeze(); err != nil {
		return fmt.Errorf("freeze the interface table: %w", err)
	}
	return nil
}

// newCollection loads spec, printing the verifier's log when it refuses a program. The maps
// are created first, in one collection (the programs refer to them by descriptor); then each
// program is verified in a goroutine of its own, so that a pod's load takes as long as its
// longest verification instead of the sum of them when a CPU is free. The verifier is most of
// a load: on Linux 6.18, 2.8 ms for steer_egress and 2.0 ms for steer_ingress of 7.5 ms.
func newCollection(spec *ebpf.CollectionSpec, replace map[string]*ebpf.Map) (*ebpf.Collection, error) {
	mapsOnly := *spec
	mapsOnly.Programs = nil
	coll, err := ebpf.NewCollectionWithOptions(&mapsOnly, ebpf.CollectionOptions{MapReplacements: replace})
	if err != nil {
		return nil, fmt.Errorf("load steer maps: %w", err)
	}
	coll.Programs = make(map[string]*ebpf.Program, len(spec.Programs))
	type loaded struct {
		name string
		prog *ebpf.Program
		err  error
	}
	done := make(chan loaded, len(spec.Programs))
	for name, ps := range spec.Programs {
		if ps.Type == ebpf.UnspecifiedProgram {
			done <- loaded{} // as NewCollection, which skips them
			continue
		}
		go func() {
			prog, err := loadProgram(spec, name, coll.Maps)
			done <- loaded{name, prog, err}
		}()
	}
	var errs []error
	for range spec.Programs {
		l := <-done
		switch {
		case l.err != nil:
			errs = append(errs, l.err)
		case l.prog != nil:
			coll.Programs[l.name] = l.prog
		}
	}
	if err := errors.Join(errs...); err != nil {
		coll.Close()
		return nil, err
	}
	return coll, nil
}

// loadProgram loads the program name of spec with the maps already created.
func loadProgram(spec *ebpf.CollectionSpec, name string, maps map[string]*ebpf.Map) (*ebpf.Program, error) {
	one := *spec
	one.Programs = map[string]*ebpf.ProgramSpec{name: spec.Programs[name]}
	coll, err := ebpf.NewCollectionWithOptions(&one, ebpf.CollectionOptions{MapReplacements: maps})
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("load steer program %s: %+v", name, verr)
		}
		return nil, fmt.Errorf("load steer program %s: %w", name, err)
	}
	defer coll.Close()
	return coll.DetachProgram(name), nil
}

// pinsOf names the maps of coll that are pinned, by pin name (see PinName).
func pinsOf(coll *ebpf.Collection) map[string]*ebpf.Map {
	pins := make(map[string]*ebpf.Map, len(coll.Maps))
	for name, m := range coll.Maps {
		if !isDataSection(name) {
			pins[PinName(name)] = m
		}
	}
	return pins
}

// foldVariables writes the variables' values into their sections and removes them from spec,
// so that NewCollection memory-maps none of them. A mapping is only released by the garbage
// collector, and it keeps its map alive in the kernel: steerd would hold two maps per attached
// pod until its next GC, and a burst of pods would pin kernel memory for minutes.
func foldVariables(spec *ebpf.CollectionSpec) error {
	sections := map[string][]byte{}
	for _, v := range spec.Variables {
		data, ok := sections[v.SectionName]
		if !ok {
			ms := spec.Maps[v.SectionName]
			if ms == nil {
				return fmt.Errorf("variable %s: no section %s", v.Name, v.SectionName)
			}
			if len(ms.Contents) == 0 && !slices.ContainsFunc(v.Value, func(b byte) bool { return b != 0 }) {
				continue // zero in a zero-filled section (.bss): nothing to write
			}
			if len(ms.Contents) != 1 {
				return fmt.Errorf("variable %s: section %s has %d entries, want 1", v.Name, v.SectionName, len(ms.Contents))
			}
			raw, ok := ms.Contents[0].Value.([]byte)
			if !ok {
				return fmt.Errorf("variable %s: section %s holds %T", v.Name, v.SectionName, ms.Contents[0].Value)
			}
			data = slices.Clone(raw) // the parsed spec shares it
			sections[v.SectionName] = data
			ms.Contents = []ebpf.MapKV{{Key: ms.Contents[0].Key, Value: data}}
		}
		end := int(v.Offset) + len(v.Value)
		if end > len(data) {
			return fmt.Errorf("variable %s exceeds section %s", v.Name, v.SectionName)
		}
		copy(data[v.Offset:end], v.Value)
	}
	spec.Variables = nil
	return nil
}

// parsedSpec is the embedded object's spec, parsed once per process (steerd loads a collection
// per pod and reads every pod's config on each metrics scrape). Read only.
func parsedSpec() (*ebpf.CollectionSpec, error) {
	obj, err := Embedded()
	if err != nil {
		return nil, err
	}
	return obj.spec, nil
}

// configure writes cfg into the spec's load-time constants and sizes the flow table.
func configure(spec *ebpf.CollectionSpec, cfg *Config) error {
	set := func(name string, v any) error {
		vs, ok := spec.Variables[name]
		if !ok {
			return fmt.Errorf("steer object has no variable %s", name)
		}
		if err := vs.Set(v); err != nil {
			return fmt.Errorf("set %s: %w", name, err)
		}
		return nil
	}
	if err := set(steerVarSteerIfaces, encodeInterfaces(cfg.Interfaces)); err != nil {
		return err
	}
	if err := set(steerVarSteerGroups, encodeGroups(cfg)); err != nil {
		return err
	}
	if cfg.LoopMark != 0 {
		if err := set(steerVarSteerLoopMark, cfg.LoopMark); err != nil {
			return err
		}
	}
	entries := cfg.FlowEntries
	if entries == 0 {
		entries = DefaultFlowEntries
	}
	spec.Maps[steerMapSteerFlows].MaxEntries = entries
	return nil
}
