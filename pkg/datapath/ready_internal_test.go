package datapath

import (
	"bytes"
	"testing"

	"github.com/cilium/ebpf"
)

// sectionBytes returns the value spec writes into the data section name (see foldVariables).
func sectionBytes(t *testing.T, spec *ebpf.CollectionSpec, name string) []byte {
	t.Helper()
	ms := spec.Maps[name]
	if ms == nil || len(ms.Contents) != 1 {
		t.Fatalf("section %s has no contents", name)
	}
	b, ok := ms.Contents[0].Value.([]byte)
	if !ok {
		t.Fatalf("section %s holds %T", name, ms.Contents[0].Value)
	}
	return b
}

// TestReadySetTable: what a ready set's programs are verified with does not depend on a pod's
// interfaces, and the interface table written into it is what a load for the pod writes; and the
// version the thin plugin checks a set against without parsing the object is the parsed one's.
func TestReadySetTable(t *testing.T) {
	obj, err := Embedded()
	if err != nil {
		t.Fatal(err)
	}
	if embeddedVersion() != obj.Version {
		t.Errorf("version without parsing %v, parsed %v", embeddedVersion(), obj.Version)
	}
	ready, err := obj.prepare(&Config{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := decConfig()
	cfg.Groups = nil
	pod, err := obj.prepare(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(sectionBytes(t, ready, configMap), sectionBytes(t, pod, configMap)) {
		t.Error("a pod's interfaces change the constants the programs are verified with")
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: pod.Maps[ifacesMap].ValueSize, MaxEntries: 1})
	if err != nil {
		t.Skipf("no BPF maps here: %v", err)
	}
	defer m.Close()
	if err := writeInterfaces(m, cfg.Interfaces); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, m.ValueSize())
	if err := m.Lookup(uint32(0), &got); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sectionBytes(t, pod, ifacesMap)) {
		t.Error("the interface table written into a ready set differs from the one a load writes")
	}
}
