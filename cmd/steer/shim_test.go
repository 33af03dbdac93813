package main_test

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/steernet/steer/internal/testbed/cninode"
	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/k8s"
)

// TestShimWithoutSteerd: thick mode's config names steer-shim, which only talks to steerd. With
// steerd gone (not started yet, restarting, crashed), the shim hands the verbs that may run
// without it to the steer plugin next to it: DEL always, the others with thinFallback; the
// plugin then runs them in-process from the same config. Without thinFallback, ADD fails with
// a CNI error that names steerd, and leaves nothing.
func TestShimWithoutSteerd(t *testing.T) {
	f := setup(t)
	socket := filepath.Join(t.TempDir(), "steerd.sock") // nobody listens
	shim := func(extra map[string]any) []byte {
		all := map[string]any{"type": api.ShimBinary, "socketPath": socket}
		maps.Copy(all, extra)
		return f.conf(t, all)
	}

	fallback := shim(map[string]any{"thinFallback": true})
	p := f.pod(t, "lan")
	f.MustAdd(t, p, fallback)
	if links := cninode.Links(t, p.NetNS); !slices.Equal(links, []string{"eth0", "lo", "net1"}) {
		t.Errorf("pod links %v", links)
	}
	addrPrefix(t, p, "net1", "192.168.50.")
	if st := f.NetworkStatus(t, p); len(st) != 2 || st[1].Interface != "net1" {
		t.Errorf("network-status %+v", st)
	}
	if err := f.Check(t, p, fallback); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	if err := f.Status(t, fallback); err != nil {
		t.Errorf("STATUS: %v", err)
	}
	// DEL needs no thinFallback: it must succeed whatever steerd's state.
	f.del(t, p, shim(nil))

	q := f.NewPod(t, f.ns, "refused", map[string]string{k8s.NetworksAnnotation: "lan"})
	_, err := f.Add(t, q, shim(nil))
	if err == nil {
		t.Fatal("ADD without steerd and without thinFallback succeeded")
	}
	if te := cninode.CNIError(t, err); te.Code == 0 || !strings.Contains(te.Error(), "steerd") {
		t.Errorf("ADD without steerd: %v (code %d), want a CNI error naming steerd", te, te.Code)
	}
	f.AssertClean(t, q)
}
