package emulation

import (
	"context"
	"net/netip"
	"os"
	"slices"
	"testing"

	"github.com/steernet/steer/pkg/bpffs"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/netconf"
	"github.com/steernet/steer/pkg/steering"
)

// addPod creates a pod on node with nets through the delegates, with Steer's dataplane or
// without (steering.Off: the cluster as Multus leaves it), removed at the end of the test.
func addPod(t *testing.T, topo *Topology, layout bpffs.Layout, node int, name string, steer bool, nets []Network) *Pod {
	t.Helper()
	var dp steering.Dataplane = steering.Off{}
	if steer {
		dp = steering.BPF{Options: datapath.Options{Layout: layout}}
	}
	return addPodWith(t, topo, dp, node, name, nets)
}

// addPodWith is addPod with a given dataplane.
func addPodWith(t *testing.T, topo *Topology, dp steering.Dataplane, node int, name string, nets []Network) *Pod {
	t.Helper()
	ctx := context.Background()
	d := NewDirect(pluginDir(t), t.TempDir(), dp)
	pod, err := NewPod("st", name, node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pod.Remove() })
	if err := pod.StrictRPFilter(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.Add(ctx, topo.Nodes[node], pod, nets); err != nil {
		t.Fatalf("add %s: %v", name, err)
	}
	t.Cleanup(func() { _ = d.Del(ctx, topo.Nodes[node], pod, nets) })
	return pod
}

func eth0(t *testing.T, node int) Network {
	return Network{IfName: "eth0", Conf: ClusterNetwork(node, t.TempDir()), Primary: true}
}

func secondary(ifname string, lan LAN, host int, groups ...string) Network {
	p := netconf.DefaultPolicy()
	for _, g := range groups {
		p.Multicast = append(p.Multicast, netip.MustParsePrefix(g))
	}
	return Network{IfName: ifname, Conf: lan.MacvlanConf(host, nil), Policy: p}
}

func modes() []bool { return []bool{false, true} }

func modeName(steer bool) string {
	if steer {
		return "with-steer"
	}
	return "without-steer"
}

// expectSources checks what a listener got: want with Steer, nothing without.
func expectSources(t *testing.T, what string, got []netip.Addr, steer bool, want ...netip.Addr) {
	t.Helper()
	slices.SortFunc(got, func(a, b netip.Addr) int { return a.Compare(b) })
	slices.SortFunc(want, func(a, b netip.Addr) int { return a.Compare(b) })
	if !steer {
		if len(got) != 0 {
			t.Errorf("%s: received from %v without Steer: the emulation does not show the problem", what, got)
		}
		return
	}
	if !slices.Equal(got, want) {
		t.Errorf("%s: received from %v, want %v", what, got, want)
	}
}

func steeringFor(layout bpffs.Layout) steering.Dataplane {
	return steering.BPF{Options: datapath.Options{Layout: layout}}
}

// tempDirOutsideTest is a directory that lives as long as the test binary.
func tempDirOutsideTest() (string, error) { return os.MkdirTemp("", "steer-plugin-") }
