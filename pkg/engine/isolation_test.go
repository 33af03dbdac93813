package engine

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/pkg/k8s"
)

// Under namespaceIsolation the default-network annotation's bare name (a NAD of
// steerNamespace) is checked like "namespace/name": "kube-system/d1" was refused but "d1"
// gave a pod in another namespace eth0 on kube-system's network.
func TestDefaultNetworkIsolation(t *testing.T) {
	for _, tc := range []struct {
		name, podNS, annotation, extra string
		refused                        bool
	}{
		{"bare name", "ns1", "d1", `,"namespaceIsolation":true`, true},
		{"namespace/name", "ns1", "kube-system/d1", `,"namespaceIsolation":true`, true},
		{"bare name, isolation off", "ns1", "d1", "", false},
		{"bare name, steerNamespace global", "ns1", "d1", `,"namespaceIsolation":true,"globalNamespaces":"default,kube-system"`, false},
		{"bare name, pod in steerNamespace", "kube-system", "d1", `,"namespaceIsolation":true`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.withNADs()
			pod := e.addPod(tc.podNS, "web", map[string]string{k8s.DefaultNetworkAnnotation: tc.annotation})
			conf := e.conf(tc.extra)
			_, err := e.eng.Add(t.Context(), conf, e.args("cid1", pod, conf.Raw))
			if !tc.refused {
				if err != nil {
					t.Fatalf("Add: %v", err)
				}
				if got := e.exec.seq("ADD"); len(got) == 0 || !strings.HasPrefix(got[0], "dflt ADD eth0") {
					t.Errorf("calls %v, want d1's plugin on eth0", got)
				}
				return
			}
			te := cniCode(t, err)
			if te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, `namespace "kube-system"`) {
				t.Errorf("error %d %q, want code 7 naming kube-system", te.Code, te.Msg)
			}
			if calls := e.exec.seq(""); len(calls) > 0 {
				t.Errorf("something ran: %v", calls)
			}
		})
	}
}
