package main_test

// Integration tests: the real steer binary, called through libcni from inside a node
// namespace as containerd would, delegating to the reference plugins, against a real
// kube-apiserver. See package cninode for the harness.

import (
	"context"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/steernet/steer/internal/testbed/cninode"
	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/k8s"
)

func TestMain(m *testing.M) { kubetest.Main(m, removeStandalone) }

// fixture is a node with the cluster network as a conflist file (bridge cni0, 10.10.0.0/24)
// and two macvlan NADs in a fresh namespace: lan (eth1, 192.168.50.0/24) and mgmt (eth2,
// 192.168.60.0/24).
type fixture struct {
	*cninode.Node
	ns          string
	clusterPath string
}

func setup(t *testing.T) *fixture {
	t.Parallel()
	n := cninode.NewNode(t)
	f := &fixture{Node: n, ns: kubetest.Namespace(t)}
	f.clusterPath = n.WriteConfFile(t, "10-cbr0.conflist", n.BridgeConf("cbr0", "cni0", "10.10.0.0/24", "10.10.0.1"))
	n.CreateNAD(t, f.ns, "lan", n.MacvlanConf("lan", "eth1", "192.168.50.0/24"))
	n.CreateNAD(t, f.ns, "mgmt", n.MacvlanConf("mgmt", "eth2", "192.168.60.0/24"))
	return f
}

// conf is the node's steer config with clusterNetwork set to the conflist, plus extra.
func (f *fixture) conf(t *testing.T, extra map[string]any) []byte {
	all := map[string]any{"clusterNetwork": f.clusterPath}
	maps.Copy(all, extra)
	return f.Conf(t, all)
}

func (f *fixture) pod(t *testing.T, networks string) *cninode.Pod {
	ann := map[string]string{}
	if networks != "" {
		ann[k8s.NetworksAnnotation] = networks
	}
	return f.NewPod(t, f.ns, podName(t), ann)
}

// podName derives a valid pod name from the test's name.
func podName(t *testing.T) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimPrefix(t.Name(), "Test")) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && !strings.HasSuffix(b.String(), "-"):
			b.WriteByte('-')
		}
	}
	return strings.Trim(b.String()[:min(b.Len(), 60)], "-")
}

// del deletes the pod and checks that nothing is left of it.
func (f *fixture) del(t *testing.T, p *cninode.Pod, conf []byte) {
	t.Helper()
	if err := f.Del(t, p, conf, false); err != nil {
		t.Fatalf("DEL: %v", err)
	}
	f.AssertClean(t, p)
}

func addrPrefix(t *testing.T, p *cninode.Pod, ifName, prefix string) string {
	t.Helper()
	addrs := cninode.Addrs(t, p.NetNS, ifName)
	if len(addrs) != 1 || !strings.HasPrefix(addrs[0], prefix) {
		t.Fatalf("%s addresses %v, want one in %s*", ifName, addrs, prefix)
	}
	return addrs[0]
}

func TestAddCheckDel(t *testing.T) {
	f := setup(t)
	conf := f.conf(t, nil)
	p := f.pod(t, "lan, mgmt")
	res := f.MustAdd(t, p, conf)

	if links := cninode.Links(t, p.NetNS); !slices.Equal(links, []string{"eth0", "lo", "net1", "net2"}) {
		t.Errorf("pod links %v", links)
	}
	eth0 := addrPrefix(t, p, "eth0", "10.10.0.")
	net1 := addrPrefix(t, p, "net1", "192.168.50.")
	addrPrefix(t, p, "net2", "192.168.60.")
	// 224.0.0.0/4: no network lists groups, so multicast goes by the first secondary.
	wantRoutes := []string{"10.10.0.0/24 dev eth0", "192.168.50.0/24 dev net1", "192.168.60.0/24 dev net2", "224.0.0.0/4 dev net1", "default via 10.10.0.1 dev eth0"}
	if routes := cninode.Routes(t, p.NetNS); !slices.Equal(routes, wantRoutes) {
		t.Errorf("pod routes %v, want %v", routes, wantRoutes)
	}

	// The runtime gets the cluster network's IPs and every pod interface.
	var sandbox []string
	for _, i := range res.Interfaces {
		if i.Sandbox != "" {
			sandbox = append(sandbox, i.Name)
		}
	}
	if !slices.Equal(sandbox, []string{"eth0", "net1", "net2"}) || len(res.IPs) != 1 || res.IPs[0].Address.String() != eth0 {
		t.Errorf("result: sandbox interfaces %v, IPs %v", sandbox, res.IPs)
	}

	st := f.NetworkStatus(t, p)
	if len(st) != 3 {
		t.Fatalf("network-status %+v", st)
	}
	mac1 := cninode.MAC(t, p.NetNS, "net1")
	if st[0].Name != "cbr0" || st[0].Interface != "eth0" || !st[0].Default || st[0].IPs[0]+"/24" != eth0 ||
		!slices.Equal(st[0].Gateway, []string{"10.10.0.1"}) {
		t.Errorf("status[0] %+v", st[0])
	}
	if st[1].Name != f.ns+"/lan" || st[1].Interface != "net1" || st[1].Default || st[1].IPs[0]+"/24" != net1 || st[1].Mac != mac1 {
		t.Errorf("status[1] %+v (net1 MAC %s)", st[1], mac1)
	}
	if st[2].Name != f.ns+"/mgmt" || st[2].Interface != "net2" {
		t.Errorf("status[2] %+v", st[2])
	}

	if err := f.Check(t, p, conf); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	f.del(t, p, conf)
	if st := f.NetworkStatus(t, p); st != nil {
		t.Errorf("network-status after DEL: %+v", st)
	}
}

// TestVersion: the plugin and the shim speak every spec version.
func TestVersion(t *testing.T) {
	n := cninode.NewNode(t)
	for _, bin := range []string{api.PluginBinary, api.ShimBinary} {
		info, err := invoke.GetVersionInfo(context.Background(), filepath.Join(n.BinDir, bin), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := info.SupportedVersions(); !slices.Equal(got, version.All.SupportedVersions()) {
			t.Errorf("%s VERSION = %v, want every spec version %v", bin, got, version.All.SupportedVersions())
		}
	}
}

// Older runtimes and configs: the result comes back in the config's version.
func TestOldSpecVersions(t *testing.T) {
	f := setup(t)
	for _, v := range []string{"0.3.1", "0.4.0", "1.0.0"} {
		conf := f.conf(t, map[string]any{"cniVersion": v})
		p := f.NewPod(t, f.ns, "v"+strings.ReplaceAll(v, ".", ""), map[string]string{k8s.NetworksAnnotation: "lan"})
		res, err := f.AddRaw(t, p, conf)
		if err != nil {
			t.Fatalf("%s: %v", v, err)
		}
		if res.Version() != v {
			t.Errorf("result version %s, want the config's %s", res.Version(), v)
		}
		addrPrefix(t, p, "net1", "192.168.50.")
		f.del(t, p, conf)
	}
}
