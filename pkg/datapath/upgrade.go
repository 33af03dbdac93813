package datapath

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/cilium/ebpf"

	"github.com/steernet/steer/pkg/bpffs"
)

// UpgradingPin is pinned while an upgrade of a container's attachment is under way: the version
// map of the build it rolls to. Renaming it over the version pin is the upgrade's last step, so
// a container that has it was left half-way, and the next Upgrade finishes (or reverses) it.
const UpgradingPin = "upgrading"

// upgradeStep is called after each step of Upgrade; tests stop an upgrade there, as a kill would.
var upgradeStep = func(string) error { return nil }

// Upgraded says what Upgrade did to one container's attachment.
type Upgraded struct {
	From, To Version
	// Hooks is the number of programs replaced; 0 when the attachment was at To already.
	Hooks int
	// Kept are the maps used on as they were (their layout did not change); Migrated the maps
	// rebuilt in the new layout with their entries carried over. Pin names.
	Kept, Migrated []string
}

// Upgrade replaces the programs of a container's attachment with obj's, in place. Each hook's
// link (or legacy cls_bpf filter) swaps to its new program atomically, so no packet meets a
// hook without a program. Maps whose layout obj keeps are used on as they are, so their state
// never moves; maps whose layout changed are rebuilt and their entries carried over field by
// field (see convert), with flows copied before and after the ingress hooks swap; maps obj
// adds start empty and maps it lacks are unpinned. A downgrade is the same operation.
//
// If obj does not load (the verifier refuses a program, a map cannot be created), the
// attachment keeps its programs and maps untouched and the error says so. Every step can be
// repeated: Upgrade finishes an upgrade that was interrupted (see UpgradingPin), to obj
// whatever build began it. netnsPath is needed only for legacy TC attachments.
func Upgrade(netnsPath, containerID string, obj *Object, opts Options) (Upgraded, error) {
	u := Upgraded{To: obj.Version}
	dir, err := opts.layout().Dir(containerID)
	if err != nil {
		return u, err
	}
	if u.From, err = readVersion(dir); err != nil {
		return u, err
	}
	_, err = os.Stat(filepath.Join(dir, UpgradingPin))
	if u.From == u.To && errors.Is(err, os.ErrNotExist) {
		return u, nil
	}

	hooks, err := findHooks(netnsPath, dir)
	if err != nil {
		return u, err
	}
	defer closeHooks(hooks)
	cfg, err := readPinnedConfig(dir)
	if err != nil {
		return u, err
	}
	spec, err := obj.prepare(&cfg)
	if err != nil {
		return u, err
	}
	live, err := liveMaps(hooks)
	if err != nil {
		return u, err
	}
	defer closeMaps(live)
	plan, err := planMaps(dir, spec, live)
	if err != nil {
		return u, err
	}
	defer plan.close()
	coll, err := newCollection(spec, plan.keep)
	if err != nil {
		return u, fmt.Errorf("programs stay at %s: %w", u.From, err)
	}
	defer coll.Close()
	if err := freezeInterfaces(coll); err != nil {
		return u, fmt.Errorf("programs stay at %s: %w", u.From, err)
	}
	if err := plan.migrate(coll, spec); err != nil {
		return u, fmt.Errorf("programs stay at %s: %w", u.From, err)
	}
	if err := upgradeStep("loaded"); err != nil {
		return u, err
	}

	// From here on the pod runs a mix until the end: mark it so that a death is finished.
	marker := filepath.Join(dir, UpgradingPin)
	_ = os.Remove(marker)
	if err := coll.Maps[versionMap].Pin(marker); err != nil {
		return u, fmt.Errorf("programs stay at %s: %w", u.From, err)
	}
	// Ingress first: once the learners write the new maps, a second copy catches what the old
	// ones learned meanwhile, before the egress hooks start reading them.
	for _, egress := range []bool{false, true} {
		for i := range hooks {
			if hooks[i].egress() != egress {
				continue
			}
			if err := hooks[i].replace(coll); err != nil {
				return u, fmt.Errorf("upgrade to %s left half-way (the next upgrade finishes it): %w", u.To, err)
			}
			u.Hooks++
			if err := upgradeStep(hooks[i].kind); err != nil {
				return u, err
			}
		}
		if err := plan.migrate(coll, spec); err != nil {
			return u, fmt.Errorf("upgrade to %s left half-way (the next upgrade finishes it): %w", u.To, err)
		}
	}
	if err := commitPins(dir, coll, plan.keep, upgradeStep); err != nil {
		return u, fmt.Errorf("upgrade to %s left half-way (the next upgrade finishes it): %w", u.To, err)
	}
	u.Kept, u.Migrated = plan.names()
	return u, nil
}

// kernelName is the name the kernel keeps of a map named name (BPF_OBJ_NAME_LEN).
func kernelName(name string) string {
	if len(name) > 15 {
		return name[:15]
	}
	return name
}

// mapPlan says, for each map of the new object, whether the pinned map is used on and where
// entries are carried from.
type mapPlan struct {
	keep    map[string]*ebpf.Map   // by map name: pinned maps of the same layout, used on
	sources map[string][]*ebpf.Map // by map name: maps to carry entries from
	opened  []*ebpf.Map
}

func planMaps(dir string, spec *ebpf.CollectionSpec, live map[string][]*ebpf.Map) (*mapPlan, error) {
	p := &mapPlan{keep: map[string]*ebpf.Map{}, sources: map[string][]*ebpf.Map{}}
	for name, ms := range spec.Maps {
		if name == configMap || name == ifacesMap || name == versionMap {
			continue // rebuilt from the pod's configuration and the object
		}
		var pinID ebpf.MapID
		if !isDataSection(name) {
			pinned, err := ebpf.LoadPinnedMap(filepath.Join(dir, PinName(name)), nil)
			if err != nil && !errors.Is(err, os.ErrNotExist) {
				p.close()
				return nil, fmt.Errorf("open pin %s: %w", PinName(name), err)
			}
			if pinned != nil {
				p.opened = append(p.opened, pinned)
				if info, err := pinned.Info(); err == nil {
					pinID, _ = info.ID()
				}
				if compatible(pinned, ms) {
					p.keep[name] = pinned
				} else {
					p.sources[name] = append(p.sources[name], pinned)
				}
			}
		}
		// Maps of the running programs that are not the pin: data sections, and the maps of
		// the other build when an upgrade was interrupted. Fresher than the pin: first.
		for _, m := range live[kernelName(name)] {
			if info, err := m.Info(); err == nil {
				if id, _ := info.ID(); id == pinID {
					continue
				}
			}
			p.sources[name] = append([]*ebpf.Map{m}, p.sources[name]...)
		}
	}
	return p, nil
}

func (p *mapPlan) close() {
	for _, m := range p.opened {
		m.Close()
	}
}

// names returns the pin names of the maps kept and migrated.
func (p *mapPlan) names() (kept, migrated []string) {
	for name := range p.keep {
		kept = append(kept, PinName(name))
	}
	for name := range p.sources {
		if _, ok := p.keep[name]; !ok && carried(name, p.sources[name][0]) {
			migrated = append(migrated, PinName(name))
		}
	}
	slices.Sort(kept)
	slices.Sort(migrated)
	return kept, migrated
}

// carried tells whether entries of src are carried into a new map name: hash tables entry by
// entry and data sections (the programs' variables) by name. Other arrays (counters) start
// afresh in a new layout: their rows' meaning is the layout's.
func carried(name string, src *ebpf.Map) bool {
	switch src.Type() {
	case ebpf.Hash, ebpf.LRUHash:
		return true
	case ebpf.Array:
		return isDataSection(name)
	}
	return false
}

// compatible tells whether the pinned map m can serve as spec's: same kind, size and layout.
func compatible(m *ebpf.Map, spec *ebpf.MapSpec) bool {
	info, err := m.Info()
	if err != nil || info.Type != spec.Type || info.KeySize != spec.KeySize || info.ValueSize != spec.ValueSize ||
		info.MaxEntries != spec.MaxEntries || info.Flags != spec.Flags || spec.Value == nil {
		return false
	}
	key, value, err := mapTypes(m)
	if err != nil {
		return false
	}
	return sameLayout(value, spec.Value) && (spec.Key == nil || key != nil && sameLayout(key, spec.Key))
}

// migrate carries the entries of every source into coll's maps. Entries already there win:
// they were written by the new programs, or carried from a fresher source.
func (p *mapPlan) migrate(coll *ebpf.Collection, spec *ebpf.CollectionSpec) error {
	for name, srcs := range p.sources {
		if _, ok := p.keep[name]; ok {
			continue // the other build's map of an interrupted upgrade: see carryInto
		}
		for _, src := range srcs {
			if err := carryInto(coll.Maps[name], spec.Maps[name], name, src); err != nil {
				return fmt.Errorf("carry %s: %w", PinName(name), err)
			}
		}
	}
	for name, dst := range p.keep {
		for _, src := range p.sources[name] {
			if err := carryInto(dst, spec.Maps[name], name, src); err != nil {
				return fmt.Errorf("carry %s: %w", PinName(name), err)
			}
		}
	}
	return nil
}

// carryInto copies src's entries into dst (laid out as ds), converting them from src's layout.
func carryInto(dst *ebpf.Map, ds *ebpf.MapSpec, name string, src *ebpf.Map) error {
	if !carried(name, src) {
		return nil
	}
	sk, sv, err := mapTypes(src)
	if err != nil {
		return err
	}
	if isDataSection(name) {
		raw := make([]byte, src.ValueSize())
		if err := src.Lookup(uint32(0), &raw); err != nil {
			return err
		}
		val := make([]byte, dst.ValueSize())
		if err := convert(val, ds.Value, raw, sv); err != nil {
			return err
		}
		return dst.Update(uint32(0), val, ebpf.UpdateAny)
	}
	if sk == nil || ds.Key == nil {
		return errors.New("no key type")
	}
	var k, v []byte
	key, val := make([]byte, dst.KeySize()), make([]byte, dst.ValueSize())
	it := src.Iterate()
	for it.Next(&k, &v) {
		clear(key)
		clear(val)
		if err := errors.Join(convert(key, ds.Key, k, sk), convert(val, ds.Value, v, sv)); err != nil {
			return err
		}
		err := dst.Update(key, val, ebpf.UpdateNoExist)
		if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
			return err
		}
	}
	if err := it.Err(); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return err
	}
	return nil
}

// commitPins pins coll's new maps over the old ones (each pin replaced atomically by a
// rename), unpins the maps the object lacks, and, last, renames the upgrading pin over the
// version pin.
func commitPins(dir string, coll *ebpf.Collection, kept map[string]*ebpf.Map, step func(string) error) error {
	want := map[string]bool{UpgradingPin: true}
	for name, m := range pinsOf(coll) {
		want[name] = true
		if name == bpffs.VersionPin || kept[mapNameOfPin(coll, name)] != nil {
			continue
		}
		tmp := filepath.Join(dir, "new-"+name) // no dot: bpffs refuses dots in names
		_ = os.Remove(tmp)
		if err := m.Pin(tmp); err != nil {
			return fmt.Errorf("pin %s: %w", name, err)
		}
		if err := step("pin " + name); err != nil {
			return err
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			return fmt.Errorf("replace pin %s: %w", name, err)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !want[e.Name()] && !bpffs.IsLinkPin(e.Name()) && !e.IsDir() {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return fmt.Errorf("unpin %s: %w", e.Name(), err)
			}
		}
	}
	if err := os.Rename(filepath.Join(dir, UpgradingPin), filepath.Join(dir, bpffs.VersionPin)); err != nil {
		return fmt.Errorf("commit version: %w", err)
	}
	return nil
}

// mapNameOfPin is the name in coll of the map pinned as pin.
func mapNameOfPin(coll *ebpf.Collection, pin string) string {
	for name := range coll.Maps {
		if PinName(name) == pin && !isDataSection(name) {
			return name
		}
	}
	return ""
}
