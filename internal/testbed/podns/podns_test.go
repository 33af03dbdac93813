package podns

import (
	"os"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/steernet/steer/internal/testutil/nstest"
)

func TestNewRemove(t *testing.T) {
	nstest.RequireRoot(t)
	n, err := New("podns-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Remove() })
	err = n.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if lo.Attrs().OperState != netlink.OperUnknown && lo.Attrs().Flags&1 == 0 {
			t.Errorf("lo is down")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Remove(); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := os.Stat(n.Path()); !os.IsNotExist(err) {
		t.Errorf("%s still exists", n.Path())
	}
	if err := n.Remove(); err != nil {
		t.Errorf("second remove: %v", err)
	}
}
