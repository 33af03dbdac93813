package main_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/steernet/steer/internal/testbed/cninode"
	"github.com/steernet/steer/internal/testutil/kubetest"
)

// The comma form with namespaces and interface names, and NADs of another namespace with
// and without namespaceIsolation.
func TestSelectionCommaForm(t *testing.T) {
	f := setup(t)
	shared := kubetest.Namespace(t)
	f.CreateNAD(t, shared, "shared-lan", f.MacvlanConf("shared-lan", "eth1", "192.168.40.0/24"))
	for _, tc := range []struct {
		name string
		conf map[string]any
	}{
		{"no isolation", nil},
		{"isolation with a global namespace", map[string]any{"namespaceIsolation": true, "globalNamespaces": "default," + shared}},
	} {
		conf := f.conf(t, tc.conf)
		p := f.NewPod(t, f.ns, fmt.Sprintf("comma-%d", len(tc.name)), map[string]string{
			"k8s.v1.cni.cncf.io/networks": fmt.Sprintf(" lan@lan0 , %s/mgmt,%s/shared-lan", f.ns, shared),
		})
		f.MustAdd(t, p, conf)
		if links := cninode.Links(t, p.NetNS); !slices.Equal(links, []string{"eth0", "lan0", "lo", "net2", "net3"}) {
			t.Errorf("%s: links %v", tc.name, links)
		}
		addrPrefix(t, p, "lan0", "192.168.50.")
		addrPrefix(t, p, "net2", "192.168.60.")
		addrPrefix(t, p, "net3", "192.168.40.")
		if st := f.NetworkStatus(t, p); len(st) != 4 || st[3].Name != shared+"/shared-lan" || st[1].Interface != "lan0" {
			t.Errorf("%s: status %+v", tc.name, st)
		}
		f.del(t, p, conf)
	}
}

// The JSON form: interface, ips and mac through capabilities, cni-args into args.cni, and
// default-route moving the pod's default route off the cluster network.
func TestSelectionJSONForm(t *testing.T) {
	f := setup(t)
	f.CreateNAD(t, f.ns, "lanx", fmt.Sprintf(`{"cniVersion":"1.0.0","name":"lanx","type":"macvlan","master":"eth1",
 "capabilities":{"ips":true,"mac":true},"ipam":{"type":"host-local","dataDir":%q,"subnet":"192.168.55.0/24"}}`, f.IPAMDir))
	conf := f.conf(t, nil)
	p := f.pod(t, `[
	  {"name":"lanx","interface":"data0","ips":["192.168.55.9/24"],"mac":"02:42:c0:a8:37:09"},
	  {"name":"mgmt","cni-args":{"ips":["192.168.60.77"]}},
	  {"name":"lan","namespace":"`+f.ns+`","default-route":["192.168.50.1"]}
	]`)
	f.MustAdd(t, p, conf)

	if a := addrPrefix(t, p, "data0", "192.168.55."); a != "192.168.55.9/24" {
		t.Errorf("data0 has %s, want the requested 192.168.55.9/24", a)
	}
	if mac := cninode.MAC(t, p.NetNS, "data0"); mac != "02:42:c0:a8:37:09" {
		t.Errorf("data0 MAC %s", mac)
	}
	if a := addrPrefix(t, p, "net2", "192.168.60."); a != "192.168.60.77/24" {
		t.Errorf("net2 has %s, want 192.168.60.77 from cni-args", a)
	}
	addrPrefix(t, p, "net3", "192.168.50.")
	want := []string{"10.10.0.0/24 dev eth0", "192.168.50.0/24 dev net3", "192.168.55.0/24 dev data0",
		"192.168.60.0/24 dev net2", "224.0.0.0/4 dev data0", "default via 192.168.50.1 dev net3"}
	if routes := cninode.Routes(t, p.NetNS); !slices.Equal(routes, want) {
		t.Errorf("routes %v, want %v", routes, want)
	}

	st := f.NetworkStatus(t, p)
	if len(st) != 4 {
		t.Fatalf("status %+v", st)
	}
	if st[0].Default || len(st[0].Gateway) != 0 {
		t.Errorf("cluster network still default: %+v", st[0])
	}
	if !st[3].Default || !slices.Equal(st[3].Gateway, []string{"192.168.50.1"}) || st[3].Interface != "net3" {
		t.Errorf("default-route network status %+v", st[3])
	}
	if st[1].Interface != "data0" || st[1].Mac != "02:42:c0:a8:37:09" || !slices.Equal(st[1].IPs, []string{"192.168.55.9"}) {
		t.Errorf("data0 status %+v", st[1])
	}
	if err := f.Check(t, p, conf); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	f.del(t, p, conf)
}
