package datapath_test

import (
	"net/netip"
	"testing"

	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/datapath"
)

// TestCollectDefunct: the pins of a pod whose namespace vanished without DEL are collected;
// a live pod's are kept.
func TestCollectDefunct(t *testing.T) {
	layout := nstest.BPFRoot(t)
	opts := datapath.Options{Layout: layout, Ingress: datapath.IngressTC}
	attach := func(cid string) (func(), error) {
		pod, peer := nstest.NewNS(t), nstest.NewNS(t)
		net1, _ := nstest.Veth(t, pod, "net1", peer, "lan0")
		cfg := datapath.Config{Interfaces: []datapath.Interface{{Name: "net1", Index: net1.Attrs().Index, MTU: 1500,
			MAC: net1.Attrs().HardwareAddr, Pin: true, Addr4: netip.MustParseAddr("192.0.2.2")}}}
		if err := datapath.Attach(pod.Path(), cid, cfg, opts); err != nil {
			return nil, err
		}
		// Deleting the link is what the namespace's removal does to it.
		return func() { nstest.MustRun(t, pod, "ip", "link", "del", "net1") }, nil
	}
	kill, err := attach("gone")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attach("alive"); err != nil {
		t.Fatal(err)
	}
	if dead, err := datapath.Defunct(layout, "gone"); err != nil || dead {
		t.Fatalf("Defunct(gone) before removal = %v, %v", dead, err)
	}
	kill()
	removed, err := datapath.CollectDefunct(layout)
	if err != nil {
		t.Fatal(err)
	}
	if len(removed) != 1 || removed[0] != "gone" {
		t.Errorf("collected %v, want [gone]", removed)
	}
	if ids, _ := layout.Containers(); len(ids) != 1 || ids[0] != "alive" {
		t.Errorf("left %v, want [alive]", ids)
	}
}
