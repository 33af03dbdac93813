package datapath

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/steernet/steer/pkg/bpffs"
)

var updateLayouts = flag.Bool("update-layouts", false, "record the pinned maps' layouts in testdata/layout-<N>.txt")

// TestLayoutRecorded: the key and value layout of every pinned map of each build is recorded
// per STEER_LAYOUT in testdata/layout-<N>.txt. ReadPinned reads pins of its own layout number
// without converting them, so a map whose layout changes under the same number would be
// misread: that fails here. Adding a map keeps the layout; record it with -update-layouts.
func TestLayoutRecorded(t *testing.T) {
	next, err := os.ReadFile("steer_next_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	for _, elf := range [][]byte{_SteerBytes, next} {
		obj, err := ParseObject(elf)
		if err != nil {
			t.Fatal(err)
		}
		got := describeLayout(obj)
		path := filepath.Join("testdata", fmt.Sprintf("layout-%d.txt", obj.Version.Layout))
		if *updateLayouts {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("layout %d is not recorded (a new STEER_LAYOUT: run go test -run TestLayoutRecorded -update-layouts): %v", obj.Version.Layout, err)
		}
		wantMaps, gotMaps := layoutLines(string(want)), layoutLines(got)
		for pin, w := range wantMaps {
			if g, ok := gotMaps[pin]; ok && g != w {
				t.Errorf("map %s changed its layout under STEER_LAYOUT %d: bump STEER_LAYOUT_THIS in bpf/lib/version.h, then record the layouts with -update-layouts (the next build's record moves up with it)\nwas: %s\nnow: %s", pin, obj.Version.Layout, w, g)
			}
		}
		if !slices.Equal(sortedKeys(wantMaps), sortedKeys(gotMaps)) {
			t.Errorf("layout %d: maps %v recorded, the object has %v: record the change with -update-layouts (adding a map keeps the layout)", obj.Version.Layout, sortedKeys(wantMaps), sortedKeys(gotMaps))
		}
	}
}

// describeLayout describes every pinned map's key and value, one line per pin.
func describeLayout(obj *Object) string {
	var lines []string
	for name, ms := range obj.spec.Maps {
		if isDataSection(name) || name == versionMap {
			continue // not pinned; the version's layout never changes
		}
		lines = append(lines, fmt.Sprintf("%s: %s %s -> %s", PinName(name), ms.Type, describeType(ms.Key), describeType(ms.Value)))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n") + "\n"
}

// describeType spells out what sameLayout compares.
func describeType(t btf.Type) string {
	switch t := btf.UnderlyingType(t).(type) {
	case nil, *btf.Void:
		return "-"
	case *btf.Int:
		return fmt.Sprintf("int%d%s", t.Size*8, map[bool]string{true: "s", false: ""}[t.Encoding == btf.Signed])
	case *btf.Enum:
		return fmt.Sprintf("enum%d", t.Size*8)
	case *btf.Pointer:
		return "ptr"
	case *btf.Array:
		return fmt.Sprintf("[%d]%s", t.Nelems, describeType(t.Type))
	case *btf.Struct:
		return "struct{" + describeMembers(t.Members) + "}"
	case *btf.Union:
		return "union{" + describeMembers(t.Members) + "}"
	case *btf.Datasec:
		var vs []string
		for _, v := range t.Vars {
			vs = append(vs, fmt.Sprintf("%s@%d %s", varName(v), v.Offset, describeType(varType(v))))
		}
		return "section{" + strings.Join(vs, "; ") + "}"
	default:
		return fmt.Sprintf("%T", t)
	}
}

func describeMembers(ms []btf.Member) string {
	var out []string
	for _, m := range ms {
		s := fmt.Sprintf("%s@%d %s", m.Name, m.Offset.Bytes(), describeType(m.Type))
		if m.BitfieldSize != 0 {
			s += fmt.Sprintf(":%d@bit%d", m.BitfieldSize, m.Offset)
		}
		out = append(out, s)
	}
	return strings.Join(out, "; ")
}

func layoutLines(s string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if pin, _, ok := strings.Cut(l, ":"); ok {
			m[pin] = l
		}
	}
	return m
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestPinNames: the pins bpffs names are the ones the maps of the object pin as.
func TestPinNames(t *testing.T) {
	for name, pin := range map[string]string{"steer_flows": bpffs.FlowsPin, "steer_counters": bpffs.CountersPin, ".rodata": bpffs.ConfigPin, "steer_version": bpffs.VersionPin, ".data.ifaces": bpffs.IfacesPin, "steer_svc_conns": "svc-conns"} {
		if got := PinName(name); got != pin {
			t.Errorf("map %s pins as %s, want %s", name, got, pin)
		}
	}
	obj, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{flowsMap, "steer_counters", configMap, ifacesMap, versionMap} {
		if obj.spec.Maps[name] == nil {
			t.Errorf("the object has no map %s", name)
		}
	}
}
