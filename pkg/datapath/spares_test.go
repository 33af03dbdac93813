package datapath_test

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/bpffs"
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

// A pod attached with a ready set uses its very maps and programs, with its interface table
// written and frozen, and the next set is made for the pod after it. A pod with multicast
// groups (other constants) uses the set's maps but verifies programs of its own. A pod whose
// flow table is not the default size loads its own collection and leaves the set. Closing the
// spares frees them.
func TestSparesServeTheNextPod(t *testing.T) {
	pod, cfg := sparesPod(t)
	spares := &datapath.Spares{}
	t.Cleanup(spares.Close)
	opts := datapath.Options{Layout: nstest.BPFRoot(t), Ingress: datapath.IngressTC, Spares: spares}
	first := datapath.WaitSpare(t, spares)

	dirOf := func(cid string) string {
		t.Helper()
		dir, err := opts.Layout.Dir(cid)
		if err != nil {
			t.Fatal(err)
		}
		return dir
	}
	pinnedIDs := func(cid string) map[string]ebpf.MapID {
		t.Helper()
		ids := map[string]ebpf.MapID{}
		for name := range first.Maps {
			if !datapath.IsDataSection(name) { // data sections are not pinned
				ids[name] = nstest.PinnedMapID(t, filepath.Join(dirOf(cid), datapath.PinName(name)))
			}
		}
		return ids
	}
	// attachedPrograms are the IDs of the programs the pod's egress and ingress links run.
	attachedPrograms := func(cid string) map[string]ebpf.ProgramID {
		t.Helper()
		return map[string]ebpf.ProgramID{
			"steer_egress":  linkProgramID(t, filepath.Join(dirOf(cid), bpffs.LinkPin("eth0", bpffs.HookEgress))),
			"steer_ingress": linkProgramID(t, filepath.Join(dirOf(cid), bpffs.LinkPin("net1", bpffs.HookIngress))),
		}
	}

	const cid = "spares"
	if err := datapath.Attach(pod.Path(), cid, cfg, opts); err != nil {
		t.Fatalf("attach: %+v", err)
	}
	t.Cleanup(func() { _ = datapath.Detach(pod.Path(), cid, opts) })
	got := pinnedIDs(cid)
	if len(got) == 0 {
		t.Fatal("no pinned map in the ready set")
	}
	for name, id := range got {
		if id != first.Maps[name] {
			t.Errorf("pinned %s is map %d, want the ready set's %d", name, id, first.Maps[name])
		}
	}
	for name, id := range attachedPrograms(cid) {
		if id != first.Programs[name] {
			t.Errorf("attached %s is program %d, want the ready set's %d", name, id, first.Programs[name])
		}
	}
	st, err := datapath.ReadPinned(opts.Layout, cid)
	if err != nil {
		t.Fatalf("read the pod's pins: %v", err)
	}
	if len(st.Interfaces) != 2 || st.Interfaces[0].Name != "eth0" || st.Interfaces[1].Name != "net1" || !st.Interfaces[1].Pin {
		t.Errorf("pinned interfaces %+v, want the pod's eth0 and pinned net1", st.Interfaces)
	}
	table, err := ebpf.LoadPinnedMap(filepath.Join(dirOf(cid), bpffs.IfacesPin), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer table.Close()
	if err := table.Update(uint32(0), make([]byte, table.ValueSize()), ebpf.UpdateAny); err == nil {
		t.Error("the pod's interface table was rewritten through its pin: want it frozen")
	}

	second := datapath.WaitSpare(t, spares)
	for name, id := range second.Maps {
		if id == first.Maps[name] {
			t.Errorf("the next ready %s is the map the pod took (%d)", name, id)
		}
	}

	// Multicast groups: the programs are verified for them, on the set's maps.
	grouped := cfg
	grouped.Groups = []datapath.Group{{Prefix: netip.MustParsePrefix("239.0.2.0/24"), Interfaces: []string{"net1"}}}
	const cidGroups = "spares-groups"
	if err := datapath.Attach(pod.Path(), cidGroups, grouped, opts); err != nil {
		t.Fatalf("attach with groups: %+v", err)
	}
	t.Cleanup(func() { _ = datapath.Detach(pod.Path(), cidGroups, opts) })
	for name, id := range pinnedIDs(cidGroups) {
		configuration := name == datapath.ConfigMap || name == datapath.IfacesMap
		if configuration == (id == second.Maps[name]) {
			t.Errorf("pod with groups: pinned %s is map %d, the ready set's is %d; want the set's maps but its own configuration", name, id, second.Maps[name])
		}
	}
	for name, id := range attachedPrograms(cidGroups) {
		if id == second.Programs[name] {
			t.Errorf("pod with groups runs the ready set's %s, verified without them", name)
		}
	}
	if st, err := datapath.ReadPinned(opts.Layout, cidGroups); err != nil || len(st.Groups) != 1 || len(st.Interfaces) != 2 {
		t.Errorf("pins of the pod with groups: %+v, %v", st, err)
	}

	// A flow table of another size: the set does not fit, and stays for the next pod.
	third := datapath.WaitSpare(t, spares)
	other := cfg
	other.FlowEntries = 2 * datapath.DefaultFlowEntries
	const cid2 = "spares-other"
	if err := datapath.Attach(pod.Path(), cid2, other, opts); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = datapath.Detach(pod.Path(), cid2, opts) })
	for name, id := range pinnedIDs(cid2) {
		if id == third.Maps[name] {
			t.Errorf("a pod with %d flows took the ready %s", other.FlowEntries, name)
		}
	}
	if again := datapath.WaitSpare(t, spares); again.Maps[datapath.FlowsMap] != third.Maps[datapath.FlowsMap] {
		t.Errorf("ready flow table %d replaced by %d, want it kept", third.Maps[datapath.FlowsMap], again.Maps[datapath.FlowsMap])
	}

	// A map's ID goes with its last reference. A program array's last reference is dropped by a
	// kernel work item, which opening it by ID again re-arms: program arrays are not checked.
	spares.Close()
	left := map[string]ebpf.MapID{}
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		clear(left)
		for name, id := range third.Maps {
			if m, err := ebpf.NewMapFromID(id); err == nil {
				if m.Type() != ebpf.ProgramArray {
					left[name] = id
				}
				m.Close()
			}
		}
		for name, id := range third.Programs {
			if p, err := ebpf.NewProgramFromID(id); err == nil {
				left[name] = ebpf.MapID(id)
				p.Close()
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			break
		}
	}
	for name, id := range left {
		t.Errorf("ready %s (id %d) still exists after Close", name, id)
	}
}

// The thin plugin's spares: nothing is made until Start (a pod without secondaries never
// starts them); then the set is loaded while the pod's delegates run, taken by its Attach (which
// waits for it when it is not ready yet), and no other set is made after.
func TestSparesForOnePod(t *testing.T) {
	pod, cfg := sparesPod(t)
	spares := datapath.SparesForOnePod(bpffs.Layout{})
	t.Cleanup(spares.Close)
	if ready, making := datapath.SpareState(spares); ready || making {
		t.Fatalf("before Start: a set ready %t, being made %t; want none", ready, making)
	}
	spares.Start()
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

// steerd keeps sets pinned for the thin plugin: FillReady makes as many as asked; the plugin's
// spares claim one (its directory gone, the pod running that set's very maps and programs with
// its interface table written); FillReady makes the next; a set of no known build and a claim
// whose process died are unpinned, a fresh claim is left to its plugin.
func TestReadySetsForThePlugin(t *testing.T) {
	pod, cfg := sparesPod(t)
	layout := nstest.BPFRoot(t)
	dir := layout.ReadyDir()
	entries := func() []string {
		t.Helper()
		es, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range es {
			names = append(names, e.Name())
		}
		return names
	}
	if err := datapath.FillReady(layout, 2); err != nil {
		t.Fatal(err)
	}
	sets := entries()
	if len(sets) != 2 || !strings.HasPrefix(sets[0], "set-") || !strings.HasPrefix(sets[1], "set-") {
		t.Fatalf("ready directory holds %v, want two sets", sets)
	}
	flows, egress := map[ebpf.MapID]bool{}, map[ebpf.ProgramID]bool{}
	for _, set := range sets {
		flows[nstest.PinnedMapID(t, filepath.Join(dir, set, datapath.FlowsMap))] = true
		egress[pinnedProgramID(t, filepath.Join(dir, set, "prog-steer_egress"))] = true
	}

	spares := datapath.SparesForOnePod(layout)
	t.Cleanup(spares.Close)
	spares.Start()
	opts := datapath.Options{Layout: layout, Ingress: datapath.IngressTC, Spares: spares}
	const cid = "ready-claimed"
	if err := datapath.Attach(pod.Path(), cid, cfg, opts); err != nil {
		t.Fatalf("attach: %+v", err)
	}
	t.Cleanup(func() { _ = datapath.Detach(pod.Path(), cid, opts) })
	podDir, err := layout.Dir(cid)
	if err != nil {
		t.Fatal(err)
	}
	if id := nstest.PinnedMapID(t, filepath.Join(podDir, bpffs.FlowsPin)); !flows[id] {
		t.Errorf("the pod's flow table (map %d) is none of the ready sets' %v", id, flows)
	}
	if id := linkProgramID(t, filepath.Join(podDir, bpffs.LinkPin("eth0", bpffs.HookEgress))); !egress[id] {
		t.Errorf("the pod's egress runs program %d, none of the ready sets' %v", id, egress)
	}
	if st, err := datapath.ReadPinned(layout, cid); err != nil || len(st.Interfaces) != 2 || st.Interfaces[1].Name != "net1" {
		t.Errorf("pins of the pod on a claimed set: %+v, %v", st, err)
	}
	if left := entries(); len(left) != 1 || !strings.HasPrefix(left[0], "set-") {
		t.Errorf("after the claim the ready directory holds %v, want the other set alone", left)
	}

	if err := datapath.FillReady(layout, 2); err != nil {
		t.Fatal(err)
	}
	fresh := fmt.Sprintf("claimed-%d-x", time.Now().UnixNano())
	for _, d := range []string{"claimed-1-x", fresh, "set-unknown"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := datapath.FillReady(layout, 2); err != nil {
		t.Fatal(err)
	}
	got := entries()
	if len(got) != 3 || !slices.Contains(got, fresh) || slices.Contains(got, "claimed-1-x") || slices.Contains(got, "set-unknown") {
		t.Errorf("ready directory holds %v, want two sets and %s", got, fresh)
	}
}

func pinnedProgramID(t *testing.T, path string) ebpf.ProgramID {
	t.Helper()
	p, err := ebpf.LoadPinnedProgram(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}

// linkProgramID is the ID of the program the link pinned at path runs.
func linkProgramID(t *testing.T, path string) ebpf.ProgramID {
	t.Helper()
	l, err := link.LoadPinnedLink(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info.Program
}

// A ready set that cannot take the pod's interface table is dropped: the pod loads its own
// collection instead of failing its ADD.
func TestSparesSpoiledSetFallsBack(t *testing.T) {
	pod, cfg := sparesPod(t)
	spares := &datapath.Spares{}
	t.Cleanup(spares.Close)
	opts := datapath.Options{Layout: nstest.BPFRoot(t), Ingress: datapath.IngressTC, Spares: spares}
	spoiled := datapath.WaitSpare(t, spares)
	datapath.SpoilReady(t, spares)
	const cid = "spares-spoiled"
	if err := datapath.Attach(pod.Path(), cid, cfg, opts); err != nil {
		t.Fatalf("attach on a spoiled set: %+v", err)
	}
	t.Cleanup(func() { _ = datapath.Detach(pod.Path(), cid, opts) })
	dir, err := opts.Layout.Dir(cid)
	if err != nil {
		t.Fatal(err)
	}
	if id := nstest.PinnedMapID(t, filepath.Join(dir, bpffs.IfacesPin)); id == spoiled.Maps[datapath.IfacesMap] {
		t.Error("the pod pinned the spoiled set's interface table")
	}
	if st, err := datapath.ReadPinned(opts.Layout, cid); err != nil || len(st.Interfaces) != 2 {
		t.Errorf("pins of the pod: %+v, %v", st, err)
	}
}
