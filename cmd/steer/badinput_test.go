package main_test

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/steernet/steer/internal/testbed/cninode"
	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/pkg/k8s"
)

// Every bad input fails ADD with a clear CNI error and leaves nothing behind: no link in the
// pod, no host-local allocation, no cache file, no veth on the node.
func TestBadInput(t *testing.T) {
	type fx = fixture
	for _, tc := range []struct {
		name     string
		networks string // the pod's selection annotation
		conf     map[string]any
		prepare  func(*testing.T, *fx, *cninode.Pod) // after the pod exists
		code     uint
		msg      string // "NS" is the test namespace
	}{
		{name: "malformed annotation JSON", networks: `[{"name":"lan",]`,
			code: types.ErrDecodingFailure, msg: "k8s.v1.cni.cncf.io/networks: not a JSON list"},
		{name: "unknown NAD", networks: "lan,nope",
			code: types.ErrInvalidNetworkConfig, msg: `network "NS/nope": NetworkAttachmentDefinition not found`},
		{name: "NAD in a forbidden namespace", networks: "lan,OTHER/shared", conf: map[string]any{"namespaceIsolation": true},
			code: types.ErrInvalidNetworkConfig, msg: `namespaceIsolation: pod in namespace "NS" may not use NetworkAttachmentDefinitions of namespace "OTHER"`},
		{name: "NAD config not JSON", networks: "lan,broken",
			prepare: func(t *testing.T, f *fx, _ *cninode.Pod) { f.CreateNAD(t, f.ns, "broken", `{"type": macvlan}`) },
			code:    types.ErrDecodingFailure, msg: `network "NS/broken": NetworkAttachmentDefinition "broken": network config: invalid JSON at byte 8`},
		{name: "two elements with one ifname", networks: "lan@data,mgmt@data",
			code: types.ErrInvalidNetworkConfig, msg: `"interface": "data" is also requested by element 0`},
		{name: "ifname too long", networks: "lan@averyveryverylongname",
			code: types.ErrInvalidNetworkConfig, msg: "is 21 bytes, the kernel allows at most 15"},
		{name: "ifname with a slash", networks: `[{"name":"lan","interface":"a/b"}]`,
			code: types.ErrInvalidNetworkConfig, msg: `"interface": interface name "a/b" contains '/'`},
		{name: "ifname taken in the pod", networks: "lan,mgmt",
			prepare: func(t *testing.T, f *fx, p *cninode.Pod) { addVeth(t, p.NetNS, "net2") },
			code:    types.ErrInvalidNetworkConfig, msg: `interface "net2" already exists in the pod network namespace`},
		{name: "delegate binary missing", networks: "lan,ipv",
			prepare: func(t *testing.T, f *fx, _ *cninode.Pod) {
				f.CreateNAD(t, f.ns, "ipv", `{"cniVersion":"1.0.0","type":"ipvlan","master":"eth1","ipam":{"type":"host-local","subnet":"10.99.0.0/24"}}`)
			},
			code: types.ErrInvalidNetworkConfig, msg: `plugin "ipvlan" is not in`},
		{name: "delegate fails", networks: "lan,nomaster",
			prepare: func(t *testing.T, f *fx, _ *cninode.Pod) {
				f.CreateNAD(t, f.ns, "nomaster", f.MacvlanConf("nomaster", "eth7", "192.168.77.0/24"))
			},
			code: types.ErrInternal, msg: `network "NS/nomaster" (net2): plugin type="macvlan" name="nomaster" failed (add)`},
		{name: "delegate fails half-way through its list", networks: "lan,chain",
			prepare: func(t *testing.T, f *fx, _ *cninode.Pod) {
				f.CreateNAD(t, f.ns, "chain", `{"cniVersion":"1.0.0","name":"chain","plugins":[
				  {"type":"macvlan","master":"eth2","ipam":{"type":"host-local","dataDir":"`+f.IPAMDir+`","subnet":"192.168.66.0/24"}},
				  {"type":"tuning","dataDir":"`+f.Dir+`/tuning","sysctl":{"net.ipv4.conf.IFNAME.no_such_knob":"1"}}]}`)
			},
			code: types.ErrInternal, msg: `network "NS/chain" (net2): plugin type="tuning" failed (add)`},
		{name: "annotation of 200 KB", networks: "lan," + strings.Repeat("x", 200<<10),
			code: types.ErrInvalidNetworkConfig, msg: "annotation is 204804 bytes, the limit is 65536"},
		{name: "annotation of 1 MB", networks: "lan",
			prepare: func(t *testing.T, f *fx, p *cninode.Pod) {
				// The apiserver refuses to store it (256 KiB for all annotations), so the
				// proxy serves it, as a broken or malicious apiserver or cache could.
				f.Proxy.SetRewrite(func(r *http.Request, body []byte) []byte {
					if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/pods/"+p.Name) {
						return body
					}
					var pod map[string]any
					if err := json.Unmarshal(body, &pod); err != nil {
						return body
					}
					md := pod["metadata"].(map[string]any)
					md["annotations"] = map[string]any{k8s.NetworksAnnotation: "lan," + strings.Repeat("x", 1<<20)}
					out, _ := json.Marshal(pod)
					return out
				})
			},
			code: types.ErrInvalidNetworkConfig, msg: "annotation is 1048580 bytes, the limit is 65536"},
		{name: "pod unknown to the apiserver", networks: "lan",
			prepare: func(t *testing.T, f *fx, p *cninode.Pod) { p.Name = "no-such-pod" },
			code:    types.ErrUnknownContainer, msg: "pod NS/no-such-pod: pod not found"},
		{name: "apiserver times out", networks: "lan", conf: map[string]any{"apiTimeout": "1s"},
			prepare: func(t *testing.T, f *fx, _ *cninode.Pod) {
				f.Proxy.SetFault(func(*http.Request) int { return cninode.Hang })
			},
			code: types.ErrTryAgainLater, msg: "get pod: "},
		{name: "network-status write fails", networks: "lan,mgmt",
			prepare: func(t *testing.T, f *fx, _ *cninode.Pod) {
				f.Proxy.SetFault(func(r *http.Request) int {
					if r.Method == http.MethodPatch {
						return http.StatusServiceUnavailable
					}
					return cninode.Pass
				})
			},
			code: types.ErrTryAgainLater, msg: "write network-status"},
		{name: "bad steer config value", networks: "lan", conf: map[string]any{"apiTimeout": "soon"},
			code: types.ErrInvalidNetworkConfig, msg: `steer config: "apiTimeout": "soon" is not a positive duration`},
		{name: "steer config value of the wrong type", networks: "lan", conf: map[string]any{"namespaceIsolation": 5},
			code: types.ErrDecodingFailure, msg: `steer config: "namespaceIsolation"`},
		{name: "delegates and clusterNetwork", networks: "lan", conf: map[string]any{"delegates": []any{map[string]any{"type": "bridge", "name": "x"}}},
			code: types.ErrInvalidNetworkConfig, msg: `"delegates" and "clusterNetwork" are mutually exclusive`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := setup(t)
			other := kubetest.Namespace(t)
			f.CreateNAD(t, other, "shared", f.MacvlanConf("shared", "eth1", "192.168.40.0/24"))
			expand := strings.NewReplacer("OTHER", other, "NS", f.ns)
			conf := f.conf(t, tc.conf)
			p := f.pod(t, expand.Replace(tc.networks))
			if tc.prepare != nil {
				tc.prepare(t, f, p)
			}
			start := time.Now()
			_, err := f.Add(t, p, conf)
			took := time.Since(start)
			f.Proxy.SetFault(nil)
			f.Proxy.SetRewrite(nil)
			if err == nil {
				t.Fatal("ADD succeeded")
			}
			te := cninode.CNIError(t, err)
			if want := expand.Replace(tc.msg); te.Code != tc.code || !strings.Contains(te.Msg, want) {
				t.Errorf("error %d %q\nwant code %d containing %q", te.Code, te.Msg, tc.code, want)
			}
			if tc.conf["apiTimeout"] == "1s" && took > 10*time.Second {
				t.Errorf("ADD took %s with apiTimeout 1s: the wait must be bounded", took)
			}
			if tc.name == "ifname taken in the pod" {
				// The interface was there before: the rollback must not have touched it.
				if links := cninode.Links(t, p.NetNS); !slices.Equal(links, []string{"lo", "net2", "net2p"}) {
					t.Errorf("pod links %v", links)
				}
				f.AssertClean(t)
				return
			}
			f.AssertClean(t, p)
		})
	}
}

func addVeth(t *testing.T, n ns.NetNS, name string) {
	t.Helper()
	err := n.Do(func(ns.NetNS) error {
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "p"})
	})
	if err != nil {
		t.Fatal(err)
	}
}
