package emulation

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/bpffs"
)

// TestThinModeReadySets: in thin mode steerd keeps collections loaded for the plugin under the
// bpffs root's _ready directory. A steered pod's ADD (the real plugin, called by the simulated
// kubelet) runs on one of them, the pod works, steerd makes the next set, and steerd unpins them
// all when it stops.
func TestThinModeReadySets(t *testing.T) {
	e := newSteerdEnv(t, DualStack, SteerdOptions{Thin: true})
	dir := e.layout.ReadyDir()
	sets := func() []string {
		entries, _ := os.ReadDir(dir)
		var names []string
		for _, en := range entries {
			if strings.HasPrefix(en.Name(), "set-") {
				names = append(names, en.Name())
			}
		}
		return names
	}
	waitSets := func(n int) []string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for len(sets()) < n && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		got := sets()
		if len(got) < n {
			t.Fatalf("steerd keeps %v ready under %s, want %d sets", got, dir, n)
		}
		return got
	}
	ready := map[ebpf.MapID]string{}
	for _, set := range waitSets(2) {
		ready[nstest.PinnedMapID(t, filepath.Join(dir, set, "steer_flows"))] = set
	}

	a4, a6 := DMZ.Addr(32)
	pod := e.run(t, 0, "ready", ipsAnnotation("dmz", a4, a6))
	startEcho(t, pod)
	expectProbes(t, e.topo, "client", true, a4, a6)
	podDir, err := e.layout.Dir(pod.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	id := nstest.PinnedMapID(t, filepath.Join(podDir, bpffs.FlowsPin))
	set, ok := ready[id]
	if !ok {
		t.Fatalf("the pod's flow table (map %d) is none of the sets steerd kept ready %v: the plugin loaded its own", id, ready)
	}
	for _, s := range waitSets(2) {
		if s == set {
			t.Errorf("the set the pod took (%s) is still offered", set)
		}
	}

	for _, d := range e.steerd {
		if err := d.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("stopped steerd left %s (%v): %v", dir, err, sets())
	}
}
