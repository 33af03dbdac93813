package soak

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/steernet/steer/internal/testutil/nstest"
)

// A program using a map pinned under the root is the campaign's while the kernel holds it,
// after its pin is gone too; objects of another root are not.
func TestBPFObjects(t *testing.T) {
	root := nstest.BPFRoot(t).Root
	other := nstest.BPFRoot(t).Root
	ours, ourProg := mapAndProg(t, filepath.Join(root, "pod", "flows"))
	_, theirProg := mapAndProg(t, filepath.Join(other, "pod", "flows"))
	defer theirProg.Close()

	o := NewBPFObjects(root)
	if err := o.Record(); err != nil {
		t.Fatal(err)
	}
	if p, m := o.Live(); p != 1 || m != 1 {
		t.Fatalf("live = %d programs, %d maps; want 1, 1", p, m)
	}
	// A leak: the pin is removed but the program (holding its map) stays loaded.
	if err := os.RemoveAll(filepath.Join(root, "pod")); err != nil {
		t.Fatal(err)
	}
	_ = ours.Close()
	if p, m := o.Live(); p != 1 || m != 1 {
		t.Fatalf("after unpinning, live = %d programs, %d maps; want 1, 1", p, m)
	}
	_ = ourProg.Close()
	// The kernel frees a program's maps after an RCU grace period, as settle allows for.
	p, m := o.Live()
	for deadline := time.Now().Add(5 * time.Second); (p != 0 || m != 0) && time.Now().Before(deadline); p, m = o.Live() {
		time.Sleep(20 * time.Millisecond)
	}
	if p != 0 || m != 0 {
		t.Fatalf("after closing, live = %d programs, %d maps; want 0, 0", p, m)
	}
}

// mapAndProg pins a map at pin and loads a program that reads it.
func mapAndProg(t *testing.T, pin string) (*ebpf.Map, *ebpf.Program) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(pin), 0o755); err != nil {
		t.Fatal(err)
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Pin(pin); err != nil {
		t.Fatal(err)
	}
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.SocketFilter, License: "GPL", Instructions: asm.Instructions{
		asm.StoreImm(asm.R10, -4, 0, asm.Word),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.LoadMapPtr(asm.R1, m.FD()),
		asm.FnMapLookupElem.Call(),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	return m, p
}
