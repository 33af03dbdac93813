package datapath

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/bpffs"
)

// Layouts before 3 kept the interface table inside the config pin (.rodata, after the groups),
// with no ifaces pin. A pod attached by such a build is read, and its configuration rebuilt
// for an upgrade, from that pin alone, through its BTF.
func TestReadConfigOfLayout2(t *testing.T) {
	layout := nstest.BPFRoot(t)
	dir, err := layout.Dir("layout-2")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	spec, err := parsedSpec()
	if err != nil {
		t.Fatal(err)
	}
	constants := spec.Maps[configMap].Value.(*btf.Datasec)
	table := spec.Maps[ifacesMap].Value.(*btf.Datasec)

	// The .rodata of layout 2: this build's constants, then the interface table at 392.
	const tableAt = 392
	old := &btf.Datasec{Name: ".rodata", Size: tableAt + table.Size}
	old.Vars = append(old.Vars, constants.Vars...)
	for _, v := range table.Vars {
		v.Offset += tableAt
		old.Vars = append(old.Vars, v)
	}
	cfg := decConfig()
	cfg.LoopMark = 0x10
	raw := make([]byte, old.Size)
	l, err := embeddedConfigLayout()
	if err != nil {
		t.Fatal(err)
	}
	binary.NativeEndian.PutUint32(raw[l.loopMark.offset:], cfg.LoopMark)
	if _, err := binary.Encode(raw[l.groups.offset:], binary.NativeEndian, encodeGroups(cfg)); err != nil {
		t.Fatal(err)
	}
	if _, err := binary.Encode(raw[tableAt:], binary.NativeEndian, encodeInterfaces(cfg.Interfaces)); err != nil {
		t.Fatal(err)
	}
	pin := func(name string, ms *ebpf.MapSpec, contents []ebpf.MapKV) {
		t.Helper()
		ms = ms.Copy()
		ms.Contents = contents
		m, err := ebpf.NewMap(ms)
		if err != nil {
			t.Fatalf("map %s: %v", name, err)
		}
		defer m.Close()
		if err := m.Pin(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	pin(bpffs.ConfigPin, &ebpf.MapSpec{Name: ".rodata", Type: ebpf.Array, KeySize: 4, ValueSize: old.Size, MaxEntries: 1,
		Key: &btf.Void{}, Value: old}, []ebpf.MapKV{{Key: uint32(0), Value: raw}})
	pin(bpffs.FlowsPin, spec.Maps[flowsMap], nil)

	got, err := readPinnedConfig(dir)
	if err != nil {
		t.Fatalf("read the pins of layout 2: %v", err)
	}
	cfg.FlowEntries = DefaultFlowEntries
	cfg.Groups[2].Interfaces = nil // decoded in slot order, none: nil
	if !reflect.DeepEqual(got, *cfg) {
		t.Errorf("configuration of layout 2 read as\n%+v\nwant\n%+v", got, *cfg)
	}
}
