package datapath_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/datapath"
)

// TestAttachCountsRealPacketsWithSpares is TestAttachCountsRealPackets with the pod's maps
// taken from the spares a previous pod left made: the programs learn and count in them.
func TestAttachCountsRealPacketsWithSpares(t *testing.T) {
	nstest.RequireRoot(t)
	spares := &datapath.Spares{}
	t.Cleanup(spares.Close)
	datapath.WaitSpare(t, spares)
	testAttach(t, datapath.Options{Ingress: datapath.IngressTC, Spares: spares})
}

// sparesPod is a pod namespace with eth0 and a pinned net1, and its configuration.
func sparesPod(t *testing.T) (ns.NetNS, datapath.Config) {
	t.Helper()
	pod, peer := nstest.NewNS(t), nstest.NewNS(t)
	eth0, _ := nstest.Veth(t, pod, "eth0", peer, "p0")
	net1, _ := nstest.Veth(t, pod, "net1", peer, "p1")
	cfg := datapath.Config{Interfaces: []datapath.Interface{
		{Name: "eth0", Index: eth0.Attrs().Index, MTU: 1500, Primary: true},
		{Name: "net1", Index: net1.Attrs().Index, MTU: 1500, Pin: true},
	}}
	return pod, cfg
}

// A pod attached with spares ready uses those very maps, and the next set is made for the pod
// after it; a pod whose flow table is not the default size makes its own and leaves the spares.
// Closing the spares frees them.
func TestSparesServeTheNextPod(t *testing.T) {
	pod, cfg := sparesPod(t)
	spares := &datapath.Spares{}
	t.Cleanup(spares.Close)
	opts := datapath.Options{Layout: nstest.BPFRoot(t), Ingress: datapath.IngressTC, Spares: spares}
	first := datapath.WaitSpare(t, spares)

	pinnedIDs := func(cid string) map[string]ebpf.MapID {
		t.Helper()
		dir, err := opts.Layout.Dir(cid)
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]ebpf.MapID{}
		for name := range first {
			if strings.HasPrefix(name, ".") {
				continue // a data section (.bss): not pinned
			}
			m, err := ebpf.LoadPinnedMap(filepath.Join(dir, datapath.PinName(name)), nil)
			if err != nil {
				t.Fatal(err)
			}
			info, err := m.Info()
			m.Close()
			if err != nil {
				t.Fatal(err)
			}
			ids[name], _ = info.ID()
		}
		return ids
	}

	const cid = "spares"
	if err := datapath.Attach(pod.Path(), cid, cfg, opts); err != nil {
		t.Fatalf("attach: %+v", err)
	}
	t.Cleanup(func() { _ = datapath.Detach(pod.Path(), cid, opts) })
	got := pinnedIDs(cid)
	if len(got) == 0 {
		t.Fatal("no pinned map among the spares")
	}
	for name, id := range got {
		if id != first[name] {
			t.Errorf("pinned %s is map %d, want the spare %d", name, id, first[name])
		}
	}
	if _, err := datapath.ReadPinned(opts.Layout, cid); err != nil {
		t.Errorf("read the pod's pins: %v", err)
	}

	second := datapath.WaitSpare(t, spares)
	for name, id := range second {
		if id == first[name] {
			t.Errorf("the next spare %s is the map the pod took (%d)", name, id)
		}
	}

	// A flow table of another size: the spares do not fit, and stay for the next pod.
	other := cfg
	other.FlowEntries = 2 * datapath.DefaultFlowEntries
	const cid2 = "spares-other"
	if err := datapath.Attach(pod.Path(), cid2, other, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = datapath.Detach(pod.Path(), cid2, opts) })
	for name, id := range pinnedIDs(cid2) {
		if id == second[name] {
			t.Errorf("a pod with %d flows took the spare %s", other.FlowEntries, name)
		}
	}
	if again := datapath.WaitSpare(t, spares); again[datapath.FlowsMap] != second[datapath.FlowsMap] {
		t.Errorf("spare flow table %d replaced by %d, want it kept", second[datapath.FlowsMap], again[datapath.FlowsMap])
	}

	// A map's ID goes with its last reference. A program array's last reference is dropped by a
	// kernel work item, which opening it by ID again re-arms: program arrays are not checked.
	spares.Close()
	left := map[string]ebpf.MapID{}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		clear(left)
		for name, id := range second {
			if m, err := ebpf.NewMapFromID(id); err == nil {
				if m.Type() != ebpf.ProgramArray {
					left[name] = id
				}
				m.Close()
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for name, id := range left {
		t.Errorf("spare %s (map %d) still exists after Close", name, id)
	}
}

// The thin plugin's spares: made while the pod's delegates run, taken by its Attach (which waits
// for them when they are not ready yet), and no other set made after.
func TestSparesForOnePod(t *testing.T) {
	pod, cfg := sparesPod(t)
	spares := datapath.SparesForOnePod()
	t.Cleanup(spares.Close)
	opts := datapath.Options{Layout: nstest.BPFRoot(t), Ingress: datapath.IngressTC, Spares: spares}
	const cid = "spares-one-pod"
	if err := datapath.Attach(pod.Path(), cid, cfg, opts); err != nil {
		t.Fatalf("attach: %+v", err)
	}
	t.Cleanup(func() { _ = datapath.Detach(pod.Path(), cid, opts) })
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		ready, making := datapath.SpareState(spares)
		if !making || time.Now().After(deadline) {
			if ready || making {
				t.Errorf("after the pod's Attach: a set ready %t, being made %t; want the one set taken, none after", ready, making)
			}
			break
		}
	}
	if _, err := datapath.ReadPinned(opts.Layout, cid); err != nil {
		t.Errorf("read the pod's pins: %v", err)
	}
}
