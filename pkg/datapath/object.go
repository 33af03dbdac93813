package datapath

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/steernet/steer/pkg/bpffs"
)

// Object is one build of bpf/steer.c: what Attach loads for new pods (Embedded, this binary's)
// and what Upgrade rolls running pods to.
type Object struct {
	spec    *ebpf.CollectionSpec // parsed once, read only: copied before each load
	Version Version
}

// Version says which build of the programs wrote a pod's pins (struct pin_version, the pin
// "version").
type Version struct {
	// Layout is the layout of the pinned maps' keys and values (STEER_LAYOUT).
	Layout uint32
	// Object is the CRC-32C of the object file, which tells the programs apart; 0 for pins
	// written before pins carried a version.
	Object uint32
}

// UnversionedLayout is the layout of pins that carry no version: the builds before the version
// pin wrote layout 1.
const UnversionedLayout = 1

func (v Version) String() string {
	if v.Object == 0 {
		return fmt.Sprintf("layout %d, unversioned", v.Layout)
	}
	return fmt.Sprintf("layout %d, object %08x", v.Layout, v.Object)
}

// Embedded returns the object built into this binary, parsed once per process.
func Embedded() (*Object, error) { return embedded() }

var embedded = sync.OnceValues(func() (*Object, error) { return ParseObject(_SteerBytes) })

// ParseObject reads a build of bpf/steer.c (bpf2go's little-endian ELF output).
func ParseObject(elf []byte) (*Object, error) {
	spec, err := ebpf.LoadCollectionSpecFromReader(bytes.NewReader(elf))
	if err != nil {
		return nil, fmt.Errorf("parse steer object: %w", err)
	}
	var layout *btf.Enum
	if err := spec.Types.TypeByName("steer_layout", &layout); err != nil {
		return nil, fmt.Errorf("steer object: enum steer_layout: %w", err)
	}
	o := &Object{spec: spec, Version: Version{Object: objectChecksum(elf)}}
	for _, v := range layout.Values {
		if v.Name == "STEER_LAYOUT" {
			o.Version.Layout = uint32(v.Value)
		}
	}
	if o.Version.Layout == 0 {
		return nil, fmt.Errorf("steer object: enum steer_layout has no STEER_LAYOUT")
	}
	if _, ok := spec.Maps[versionMap]; !ok {
		return nil, fmt.Errorf("steer object: no map %s", versionMap)
	}
	return o, nil
}

// objectChecksum tells builds of the object apart (Version.Object): CRC-32C of its bytes.
func objectChecksum(elf []byte) uint32 {
	return crc32.Checksum(elf, crc32.MakeTable(crc32.Castagnoli))
}

// Names in the object that every build keeps.
const (
	versionMap = "steer_version"
	flowsMap   = "steer_flows"
	configMap  = ".rodata"
	ifacesMap  = ".data.ifaces" // the interface table (bpf/lib/config.h)
)

// isDataSection tells the maps of the programs' global variables that are not pinned: their
// state is carried from the running programs' own references on upgrade.
func isDataSection(name string) bool { return name == ".bss" || name == ".data" }

// PinName is the pin of an object's map under the container's directory: its name without the
// "steer_" prefix and with hyphens for underscores ("steer_flows" pins as "flows",
// "steer_svc_conns" as "svc-conns"), the load-time constants as "config" and the interface
// table as "ifaces". A map added to bpf/ is pinned, upgraded and removed on DEL under this rule
// with no code.
func PinName(mapName string) string {
	switch mapName {
	case configMap:
		return bpffs.ConfigPin
	case ifacesMap:
		return bpffs.IfacesPin
	}
	return strings.ReplaceAll(strings.TrimPrefix(mapName, "steer_"), "_", "-")
}

// prepare returns a copy of the object's spec configured for cfg, ready to load.
func (o *Object) prepare(cfg *Config) (*ebpf.CollectionSpec, error) {
	spec := o.spec.Copy()
	if err := configure(spec, cfg); err != nil {
		return nil, err
	}
	if err := foldVariables(spec); err != nil {
		return nil, err
	}
	spec.Maps[versionMap].Contents = []ebpf.MapKV{{Key: uint32(0), Value: [2]uint32{o.Version.Layout, o.Version.Object}}}
	return spec, nil
}
