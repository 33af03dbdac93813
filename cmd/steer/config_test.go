package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/steernet/steer/internal/testbed/cninode"
	"github.com/steernet/steer/pkg/k8s"
)

// Every form clusterNetwork takes resolves as in Multus: NAD name (in steerNamespace or its
// Multus alias), then a config name in confDir, then a directory, then a file; or inline
// delegates.
func TestClusterNetworkForms(t *testing.T) {
	for _, tc := range []struct {
		name    string
		conf    func(*testing.T, *fixture) map[string]any
		subnet  string // of eth0
		network string // network-status name of eth0 ("NS/" is the test namespace)
	}{
		{"NAD in steerNamespace", func(t *testing.T, f *fixture) map[string]any {
			f.CreateNAD(t, f.ns, "cluster-nad", f.BridgeConf("cluster-nad", "cni1", "10.20.0.0/24", "10.20.0.1"))
			return map[string]any{"clusterNetwork": "cluster-nad", "steerNamespace": f.ns}
		}, "10.20.0.", "NS/cluster-nad"},
		{"NAD in multusNamespace", func(t *testing.T, f *fixture) map[string]any {
			f.CreateNAD(t, f.ns, "cluster-nad", f.BridgeConf("cluster-nad", "cni1", "10.20.0.0/24", "10.20.0.1"))
			return map[string]any{"clusterNetwork": "cluster-nad", "multusNamespace": f.ns}
		}, "10.20.0.", "NS/cluster-nad"},
		{"NAD wins over a file of the same name", func(t *testing.T, f *fixture) map[string]any {
			f.CreateNAD(t, f.ns, "dup", f.BridgeConf("dup", "cni1", "10.20.0.0/24", "10.20.0.1"))
			f.WriteConfFile(t, "30-dup.conflist", f.BridgeConf("dup", "cni3", "10.30.0.0/24", "10.30.0.1"))
			return map[string]any{"clusterNetwork": "dup", "steerNamespace": f.ns}
		}, "10.20.0.", "NS/dup"},
		{"config name in confDir", func(t *testing.T, f *fixture) map[string]any {
			f.WriteConfFile(t, "30-other.conflist", f.BridgeConf("other-net", "cni3", "10.30.0.0/24", "10.30.0.1"))
			return map[string]any{"clusterNetwork": "other-net", "steerNamespace": f.ns}
		}, "10.30.0.", "other-net"},
		{"directory", func(t *testing.T, f *fixture) map[string]any {
			dir := filepath.Join(f.Dir, "cluster.d")
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			for file, c := range map[string]string{
				"00-first.conflist": f.BridgeConf("first", "cni4", "10.40.0.0/24", "10.40.0.1"),
				"10-second.conf":    f.BridgeConf("second", "cni5", "10.50.0.0/24", "10.50.0.1"),
			} {
				if err := os.WriteFile(filepath.Join(dir, file), []byte(c), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			return map[string]any{"clusterNetwork": dir}
		}, "10.40.0.", "first"},
		{"single-plugin .conf file", func(t *testing.T, f *fixture) map[string]any {
			c := `{"cniVersion":"1.0.0","name":"single","type":"bridge","bridge":"cni6","isGateway":true,
 "ipam":{"type":"host-local","dataDir":"` + f.IPAMDir + `","subnet":"10.60.0.0/24","routes":[{"dst":"0.0.0.0/0"}]}}`
			return map[string]any{"clusterNetwork": f.WriteConfFile(t, "99-single.conf", c)}
		}, "10.60.0.", "single"},
		{"inline delegates", func(t *testing.T, f *fixture) map[string]any {
			var primary, second any
			_ = json.Unmarshal([]byte(f.BridgeConf("inline", "cni7", "10.70.0.0/24", "10.70.0.1")), &primary)
			_ = json.Unmarshal([]byte(f.MacvlanConf("inline-lan", "eth1", "192.168.80.0/24")), &second)
			return map[string]any{"clusterNetwork": nil, "delegates": []any{primary, second}}
		}, "10.70.0.", "inline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t)
			extra := tc.conf(t, f)
			conf := f.Conf(t, extra)
			p := f.pod(t, "mgmt")
			f.MustAdd(t, p, conf)
			addrPrefix(t, p, "eth0", tc.subnet)
			st := f.NetworkStatus(t, p)
			want := strings.Replace(tc.network, "NS/", f.ns+"/", 1)
			if len(st) == 0 || st[0].Name != want || !st[0].Default {
				t.Errorf("status %+v, want eth0 on %q", st, want)
			}
			last := st[len(st)-1]
			if _, inline := extra["delegates"]; inline {
				// delegates[1] is attached to every pod, on net1; the annotation comes after.
				addrPrefix(t, p, "net1", "192.168.80.")
				if len(st) != 3 || st[1].Name != "inline-lan" || last.Interface != "net2" {
					t.Errorf("status with inline delegates: %+v", st)
				}
			} else if last.Name != f.ns+"/mgmt" || last.Interface != "net1" {
				t.Errorf("status of the selected network: %+v", last)
			}
			f.del(t, p, conf)
		})
	}
}

func TestDefaultNetworks(t *testing.T) {
	f := setup(t)
	conf := f.conf(t, map[string]any{"defaultNetworks": []string{"lan"}, "steerNamespace": f.ns})
	p := f.pod(t, "mgmt")
	f.MustAdd(t, p, conf)
	addrPrefix(t, p, "net1", "192.168.50.")
	addrPrefix(t, p, "net2", "192.168.60.")
	if st := f.NetworkStatus(t, p); len(st) != 3 || st[1].Name != f.ns+"/lan" || st[2].Interface != "net2" {
		t.Errorf("status %+v", st)
	}
	f.del(t, p, conf)

	// Pods of systemNamespaces get no default networks.
	sys := f.conf(t, map[string]any{"defaultNetworks": []string{"lan"}, "steerNamespace": f.ns, "systemNamespaces": []string{f.ns}})
	q := f.NewPod(t, f.ns, "system-pod", map[string]string{k8s.NetworksAnnotation: "mgmt"})
	f.MustAdd(t, q, sys)
	if links := cninode.Links(t, q.NetNS); !slices.Equal(links, []string{"eth0", "lo", "net1"}) {
		t.Errorf("system pod links %v", links)
	}
	addrPrefix(t, q, "net1", "192.168.60.")
	f.del(t, q, sys)
}

func TestDefaultNetworkAnnotation(t *testing.T) {
	f := setup(t)
	f.CreateNAD(t, f.ns, "alt", f.BridgeConf("alt", "cni8", "10.80.0.0/24", "10.80.0.1"))
	conf := f.conf(t, map[string]any{"steerNamespace": f.ns})
	for i, ref := range []string{"alt", f.ns + "/alt"} {
		p := f.NewPod(t, f.ns, "alt-"+string(rune('a'+i)), map[string]string{
			k8s.DefaultNetworkAnnotation: ref,
			k8s.NetworksAnnotation:       "lan",
		})
		f.MustAdd(t, p, conf)
		addrPrefix(t, p, "eth0", "10.80.0.")
		addrPrefix(t, p, "net1", "192.168.50.")
		if st := f.NetworkStatus(t, p); st[0].Name != f.ns+"/alt" {
			t.Errorf("%s: status %+v", ref, st)
		}
		f.del(t, p, conf)
	}
}

// A NAD without spec.config uses the confDir file named after it; a config without "name"
// gets the NAD's (host-local then keeps its state under that name).
func TestNADConfigResolution(t *testing.T) {
	f := setup(t)
	f.WriteConfFile(t, "50-filenet.conf", f.MacvlanConf("filenet", "eth2", "192.168.70.0/24"))
	f.CreateNAD(t, f.ns, "filenet", "")
	f.CreateNAD(t, f.ns, "noname", `{"cniVersion":"1.0.0","type":"macvlan","master":"eth1",
 "ipam":{"type":"host-local","dataDir":"`+f.IPAMDir+`","subnet":"192.168.90.0/24"}}`)
	conf := f.conf(t, nil)
	p := f.pod(t, "filenet,noname")
	f.MustAdd(t, p, conf)
	addrPrefix(t, p, "net1", "192.168.70.")
	ip := strings.Split(addrPrefix(t, p, "net2", "192.168.90."), "/")[0]
	if !slices.Contains(f.IPAMAllocations(t), "noname/"+ip) {
		t.Errorf("allocations %v: want noname/%s", f.IPAMAllocations(t), ip)
	}
	f.del(t, p, conf)
}
