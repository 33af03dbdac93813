package emulation

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/lookup"
)

// TestThinModeWithSteerd: in thin mode steerd keeps collections loaded for the plugin under the
// bpffs root's _ready directory and answers its apiserver lookups. A steered pod's ADD (the real
// plugin, called by the simulated kubelet) runs on one of the sets, with its pod, NAD and
// network-status through steerd; the pod works, steerd makes the next set, and steerd unpins
// them all and removes its socket when it stops. The next pod's ADD, without steerd, asks the
// apiserver itself and loads its own collection.
func TestThinModeWithSteerd(t *testing.T) {
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

	page, err := e.steerd[0].MetricsPage(e.topo.Nodes[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{lookup.KindPod, lookup.KindNAD, lookup.KindStatus} {
		if lookups(page, kind, "ok") < 1 {
			t.Errorf("steerd answered no %s lookup of the plugin:\n%s", kind, grep(page, "steer_plugin_lookups_total"))
		}
	}
	expectNetworkStatus(t, pod, "eth0", "net1")

	for _, d := range e.steerd {
		if err := d.Stop(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("stopped steerd left %s (%v): %v", dir, err, sets())
	}
	socket := lookup.SocketPath(e.hosts[0].CNIDir())
	if _, err := os.Stat(socket); !os.IsNotExist(err) {
		t.Errorf("stopped steerd left its socket %s (%v)", socket, err)
	}
	b4, b6 := DMZ.Addr(33)
	alone := e.run(t, 0, "alone", ipsAnnotation("dmz", b4, b6))
	startEcho(t, alone)
	expectProbes(t, e.topo, "client", true, b4, b6)
	expectNetworkStatus(t, alone, "eth0", "net1")
}

// lookups is the count of the thin plugin's lookups of kind with result on a metrics page.
func lookups(page, kind, result string) int {
	want := fmt.Sprintf(`steer_plugin_lookups_total{kind=%q,result=%q} `, kind, result)
	for _, line := range strings.Split(page, "\n") {
		if v, ok := strings.CutPrefix(line, want); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return int(n)
		}
	}
	return 0
}

// expectNetworkStatus checks that the pod's network-status lists exactly ifaces.
func expectNetworkStatus(t *testing.T, pod *Pod, ifaces ...string) {
	t.Helper()
	got, err := kubetest.Cluster(t).Client().CoreV1().Pods(pod.Namespace).Get(context.Background(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var status []k8s.NetworkStatus
	if err := json.Unmarshal([]byte(got.Annotations[k8s.NetworkStatusAnnotation]), &status); err != nil {
		t.Fatalf("network-status of %s: %q: %v", pod.Name, got.Annotations[k8s.NetworkStatusAnnotation], err)
	}
	var names []string
	for _, st := range status {
		names = append(names, st.Interface)
	}
	if !slices.Equal(names, ifaces) {
		t.Errorf("network-status of %s lists %v, want %v", pod.Name, names, ifaces)
	}
}
