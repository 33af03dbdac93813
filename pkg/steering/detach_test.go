package steering

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/netconf"
)

// Detach puts the knobs of a steered interface that stays in the pod back to the namespace's
// defaults, whether the programs were attached with TCX links (the interfaces are read from the
// link pins) or legacy TC filters (from the pinned configuration); the primary keeps its own.
func TestDetachResetsKnobs(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		t.Run(fmt.Sprintf("legacyTC=%t", legacy), func(t *testing.T) {
			pod, peer := nstest.NewNS(t), nstest.NewNS(t)
			nstest.Veth(t, pod, "eth0", peer, "p0")
			nstest.Veth(t, pod, "net1", peer, "p1")
			nstest.AddAddr(t, pod, "eth0", "198.51.100.5/24")
			nstest.AddAddr(t, pod, "net1", "192.0.2.10/24")
			dp := BPF{Options: datapath.Options{Layout: nstest.BPFRoot(t), LegacyTC: legacy}}
			id := "knobs" + nstest.Suffix()
			atts := []Attachment{
				{IfName: "eth0", Primary: true, Policy: netconf.DefaultPolicy()},
				{IfName: "net1", Policy: netconf.DefaultPolicy()},
			}
			if err := dp.Attach(context.Background(), id, pod.Path(), atts); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = dp.Detach(context.Background(), id, pod.Path()) })
			defaults := readKnobs(t, pod, "default")
			for _, k := range knobs {
				if got := readKnobs(t, pod, "net1")[k.key]; got != k.val {
					t.Errorf("attached: net1 %s = %s, want %s", k.key, got, k.val)
				}
			}
			if err := dp.Detach(context.Background(), id, pod.Path()); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"eth0", "net1"} {
				got := readKnobs(t, pod, name)
				for _, k := range knobs {
					if got[k.key] != defaults[k.key] {
						t.Errorf("detached: %s %s = %s, want the default %s", name, k.key, got[k.key], defaults[k.key])
					}
				}
			}
		})
	}
}

// readKnobs reads the knobs of an interface ("default" for the namespace's defaults).
func readKnobs(t *testing.T, n ns.NetNS, ifname string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := n.Do(func(ns.NetNS) error {
		for _, k := range knobs {
			b, err := os.ReadFile(sysctlPath(ifname, k.key))
			if err != nil {
				return err
			}
			out[k.key] = strings.TrimSpace(string(b))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
