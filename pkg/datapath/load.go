package datapath

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Objects is one pod's loaded collection.
type Objects struct {
	steerObjects
	// Config is the .rodata map holding the load-time configuration, pinned for inspection.
	Config *ebpf.Map
}

// Close releases the process's references; pinned objects stay.
func (o *Objects) Close() error {
	return errors.Join(o.steerObjects.Close(), o.Config.Close())
}

// Load loads the programs and maps for cfg. The caller closes the returned objects; what must
// outlive the process is pinned by Attach.
func Load(cfg Config) (*Objects, error) {
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("datapath config: %w", err)
	}
	spec, err := loadSteer()
	if err != nil {
		return nil, err
	}
	if err := configure(spec, &cfg); err != nil {
		return nil, err
	}

	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		var verr *ebpf.VerifierError
		if errors.As(err, &verr) {
			return nil, fmt.Errorf("load steer programs: %+v", verr)
		}
		return nil, fmt.Errorf("load steer programs: %w", err)
	}
	defer coll.Close()

	objs := &Objects{Config: coll.DetachMap(".rodata")}
	if err := coll.Assign(&objs.steerObjects); err != nil {
		objs.Config.Close()
		return nil, fmt.Errorf("assign steer objects: %w", err)
	}
	return objs, nil
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
