package emulation

import (
	"context"
	"testing"
	"time"

	"github.com/steernet/steer/internal/testbed/cniplugins"
	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/datapath"
)

func pluginDir(t *testing.T) string {
	dir, err := cniplugins.Dir()
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

func topology(t *testing.T) *Topology {
	nstest.RequireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	topo, err := Build(ctx, "st"+nstest.Suffix())
	if err != nil {
		t.Fatalf("build topology: %v", err)
	}
	t.Cleanup(func() { _ = topo.Close() })
	return topo
}

// TestSeed002ReturnTraffic: a client on a remote subnet reaches a pod's macvlan address through
// the router; without steering the reply follows the default route into the overlay and is
// lost (and strict rp_filter drops the request), with Steer it leaves by net1. The LAN host on
// net1's own subnet works either way.
func TestSeed002ReturnTraffic(t *testing.T) {
	topo := topology(t)
	layout := nstest.BPFRoot(t)
	for _, steer := range modes() {
		t.Run(modeName(steer), func(t *testing.T) {
			pod := addPod(t, topo, layout, 0, "web", steer, []Network{eth0(t, 0), secondary("net1", DMZ, 10)})
			startEcho(t, pod)
			a4, a6 := DMZ.Addr(10)
			expectProbes(t, topo, "lanhost", true, a4, a6)
			expectProbes(t, topo, "client", steer, a4, a6)
			if steer {
				if n := counter(t, layout, pod.ContainerID, "net1", datapath.ReasonPinned); n == 0 {
					t.Error("no reply was pinned")
				}
			}
		})
	}
}
