package engine

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/pkg/k8s"
)

// Interface counts are checked before the first delegate runs: a selection naming one
// network 150 times used to create 150 interfaces, then fail in the dataplane and roll back.
func TestAddCountsNetworksFirst(t *testing.T) {
	many := func(n int) string { return strings.TrimSuffix(strings.Repeat("a,", n), ",") }
	for _, tc := range []struct {
		name, networks, extra string
		msg                   string // "" : ADD succeeds
	}{
		{"150 times one network", many(150), "", "at most 32 are supported"},
		{"150 unsteered", many(150), `,"steering":false`, "at most 32 are supported"},
		{"9 steered", many(8), "", "steering supports at most 8 interfaces"},
		{"9 unsteered", many(8), `,"steering":false`, ""},
		{"8 steered", many(7), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.withNADs()
			pod := e.addPod("ns1", "web", map[string]string{k8s.NetworksAnnotation: tc.networks})
			conf := e.conf(tc.extra)
			_, err := e.eng.Add(t.Context(), conf, e.args("cid1", pod, conf.Raw))
			if tc.msg == "" {
				if err != nil {
					t.Fatalf("Add: %v", err)
				}
				if err := e.eng.Del(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err != nil {
					t.Errorf("Del: %v", err)
				}
				return
			}
			te := cniCode(t, err)
			if te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, tc.msg) {
				t.Errorf("error %d %q, want code 7 containing %q", te.Code, te.Msg, tc.msg)
			}
			if calls := e.exec.seq(""); len(calls) > 0 {
				t.Errorf("%d delegate calls before the refusal: %v", len(calls), calls[:min(len(calls), 5)])
			}
		})
	}
}
