package datapath

import (
	"errors"
	"fmt"
	"sync"

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
	spec, err := embeddedSpec()
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

// parsedSpec parses the embedded object once per process: steerd loads a collection per pod
// and reads every pod's config on each metrics scrape.
var parsedSpec = sync.OnceValues(loadSteer)

// embeddedSpec returns a private copy of the parsed object, safe to configure.
func embeddedSpec() (*ebpf.CollectionSpec, error) {
	spec, err := parsedSpec()
	if err != nil {
		return nil, err
	}
	return spec.Copy(), nil
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
