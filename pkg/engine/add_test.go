package engine

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/steernet/steer/pkg/k8s"
)

// NAD configs as operators write them: without "name", with odd spacing and keys no struct
// models, and a Steer policy.
const (
	nadA = `{"cniVersion":"1.1.0", "type":"macvlan",  "master":"eth1", "ipam":{"type":"host-local","ranges":[[{"subnet":"10.9.0.0/24"}]]}}`
	nadB = `{"cniVersion":"1.1.0","name":"b-net","plugins":[{"type":"macvlan","capabilities":{"mac":true}},{"type":"tuning"}],"steer":{"multicast":["239.1.1.0/24"]}}`
	nadC = `{"cniVersion":"1.0.0","type":"ipvlan","capabilities":{"ips":true}}`
	nadD = `{"cniVersion":"1.0.0","type":"dflt"}`
)

func (e *env) withNADs() {
	e.api.nads["ns1/a"] = nadA
	e.api.nads["ns1/b"] = nadB
	e.api.nads["other/c"] = nadC
	e.api.nads["kube-system/d1"] = nadD
}

func TestAddOrderNamesCacheStatus(t *testing.T) {
	e := newEnv(t)
	e.withNADs()
	pod := e.addPod("ns1", "web", map[string]string{
		k8s.NetworksAnnotation: `[{"name":"a","cni-args":{"foo":"bar"}},{"name":"b","interface":"custom","mac":"02:11:22:33:44:55"},{"name":"c","namespace":"other","ips":["10.5.0.7/24"]}]`,
	})
	conf := e.conf(`,"defaultNetworks":["d1"],"runtimeConfig":{"portMappings":[{"hostPort":8080,"containerPort":80}]}`)
	res, err := e.eng.Add(t.Context(), conf, e.args("cid1", pod, conf.Raw))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"steering PREPARE ", "clusterplugin ADD eth0", "dflt ADD net1", "macvlan ADD net2", "macvlan ADD custom", "tuning ADD custom", "ipvlan ADD net4", "steering ATTACH "}
	if got := e.exec.seq(""); !slices.Equal(got, want) {
		t.Errorf("calls:\n got %v\nwant %v", got, want)
	}
	// The dataplane is prepared with the plan, before any delegate runs: no results yet.
	var prepared []string
	for _, a := range e.dp.prepared {
		prepared = append(prepared, a.IfName)
		if a.Result != nil {
			t.Errorf("prepared %s with a result", a.IfName)
		}
	}
	if !slices.Equal(prepared, []string{"eth0", "net1", "net2", "custom", "net4"}) {
		t.Errorf("prepared with %v", prepared)
	}

	// Capabilities reach the right delegate only.
	stdin := func(i int) map[string]any {
		var m map[string]any
		_ = json.Unmarshal(e.exec.calls[1+i].Stdin, &m) // after PREPARE
		rc, _ := m["runtimeConfig"].(map[string]any)
		return rc
	}
	if rc := stdin(0); rc["portMappings"] == nil {
		t.Errorf("cluster network runtimeConfig %v lacks portMappings", rc)
	}
	if rc := stdin(1); rc != nil {
		t.Errorf("default network got runtimeConfig %v", rc)
	}
	if rc := stdin(3); rc["mac"] != "02:11:22:33:44:55" {
		t.Errorf("b runtimeConfig %v", rc)
	}
	if rc := stdin(5); rc["ips"] == nil {
		t.Errorf("c runtimeConfig %v", rc)
	}

	// The result is the cluster network's with every pod interface.
	cur := res.(*current.Result)
	var names []string
	for _, i := range cur.Interfaces {
		names = append(names, i.Name)
	}
	if !slices.Equal(names, []string{"eth0", "net1", "net2", "custom", "net4"}) || len(cur.IPs) != 1 || cur.IPs[0].Address.String() != "10.0.1.2/24" {
		t.Errorf("result interfaces %v ips %v", names, cur.IPs)
	}

	// The cache holds the delegate configs byte for byte as run: "a" got its name and
	// args.cni edited in place, nothing else changed.
	c := e.cacheEntry("cid1")
	if !c.Complete || len(c.Attachments) != 5 || c.Pod.UID != "uid-web" {
		t.Fatalf("cache %+v", c)
	}
	wantA := `{"cniVersion":"1.1.0", "type":"macvlan",  "master":"eth1", "ipam":{"type":"host-local","ranges":[[{"subnet":"10.9.0.0/24"}]]},"name":"a","args":{"cni":{"foo":"bar"}}}`
	if got := string(c.Attachments[2].Config); got != wantA {
		t.Errorf("cached config of a:\n got %s\nwant %s", got, wantA)
	}
	if got := string(c.Attachments[3].Config); got != nadB {
		t.Errorf("cached config of b changed:\n%s", got)
	}
	if c.Attachments[3].Result == nil || c.Attachments[3].Network != "ns1/b" {
		t.Errorf("cached b: %+v", c.Attachments[3])
	}

	// network-status: every attachment, the cluster network default.
	st := e.api.status["ns1/web"]
	if len(st) != 5 {
		t.Fatalf("status %+v", st)
	}
	if st[0].Name != "cluster" || !st[0].Default || st[0].Interface != "eth0" || st[0].IPs[0] != "10.0.1.2" ||
		!slices.Equal(st[0].Gateway, []string{"10.0.1.1"}) || st[0].DNS.Nameservers[0] != "10.96.0.10" {
		t.Errorf("status[0] %+v", st[0])
	}
	if st[1].Name != "kube-system/d1" || st[3].Name != "ns1/b" || st[3].Interface != "custom" || st[3].Default || st[3].Mac == "" {
		t.Errorf("status %+v", st)
	}

	// The dataplane saw every attachment with its policy.
	if len(e.dp.atts) != 5 || !e.dp.atts[0].Primary || e.dp.atts[3].IfName != "custom" ||
		len(e.dp.atts[3].Policy.Multicast) != 1 || !e.dp.atts[2].Policy.Steering {
		t.Errorf("dataplane attachments %+v", e.dp.atts)
	}
}

func TestAddRollsBackEverything(t *testing.T) {
	for _, tc := range []struct {
		name     string
		setup    func(*env)
		code     uint
		msg      string
		wantDels []string
	}{
		{"delegate fails half-way", func(e *env) { e.exec.fail["tuning ADD custom"] = true }, types.ErrTryAgainLater,
			`network "ns1/b" (custom): plugin type="tuning" failed (add)`,
			[]string{"tuning DEL custom", "macvlan DEL custom", "macvlan DEL net1", "clusterplugin DEL eth0"}},
		{"status write fails", func(e *env) { e.api.statusErr = errors.New("connection refused: dial tcp") }, types.ErrInternal,
			"write network-status",
			[]string{"ipvlan DEL net3", "tuning DEL custom", "macvlan DEL custom", "macvlan DEL net1", "clusterplugin DEL eth0"}},
		{"dataplane fails", func(e *env) { e.dp.attachErr = errors.New("no BPF") }, types.ErrInternal, "steering: no BPF",
			[]string{"ipvlan DEL net3", "tuning DEL custom", "macvlan DEL custom", "macvlan DEL net1", "clusterplugin DEL eth0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.withNADs()
			tc.setup(e)
			pod := e.addPod("ns1", "web", map[string]string{k8s.NetworksAnnotation: "a, b@custom, other/c"})
			conf := e.conf("")
			_, err := e.eng.Add(t.Context(), conf, e.args("cid1", pod, conf.Raw))
			te := cniCode(t, err)
			if te.Code != tc.code || !strings.Contains(te.Msg, tc.msg) || !strings.HasPrefix(te.Msg, "pod ns1/web: ") {
				t.Errorf("error %d %q, want code %d containing %q", te.Code, te.Msg, tc.code, tc.msg)
			}
			if got := e.exec.seq("DEL"); !slices.Equal(got, tc.wantDels) {
				t.Errorf("rollback DELs:\n got %v\nwant %v", got, tc.wantDels)
			}
			if e.cacheExists("cid1") {
				t.Error("cache kept after a complete rollback")
			}
			if st := e.api.status["ns1/web"]; st != nil {
				t.Errorf("status left: %+v", st)
			}
		})
	}
}

func TestAddRollbackFailureKeepsCache(t *testing.T) {
	e := newEnv(t)
	e.withNADs()
	e.exec.fail["macvlan ADD net1"] = true
	e.exec.fail["clusterplugin DEL eth0"] = true
	pod := e.addPod("ns1", "web", map[string]string{k8s.NetworksAnnotation: "a"})
	conf := e.conf("")
	_, err := e.eng.Add(t.Context(), conf, e.args("cid1", pod, conf.Raw))
	te := cniCode(t, err)
	if !strings.Contains(te.Msg, "rollback incomplete") || te.Code != types.ErrTryAgainLater {
		t.Errorf("error %+v", te)
	}
	if c := e.cacheEntry("cid1"); c.Complete || len(c.Attachments) != 2 {
		t.Fatalf("cache for the runtime's DEL: %+v", c)
	}
	// The runtime's DEL finishes the job.
	e.exec.fail = map[string]bool{}
	e.exec.reset()
	if err := e.eng.Del(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	if got := e.exec.seq(""); !slices.Equal(got, []string{"steering DETACH ", "macvlan DEL net1", "clusterplugin DEL eth0"}) {
		t.Errorf("DEL calls %v", got)
	}
}

func TestAddRefusals(t *testing.T) {
	for _, tc := range []struct {
		name  string
		setup func(*env, *k8s.Pod, *string)
		code  uint
		msg   string
	}{
		{"pod not found", func(e *env, p *k8s.Pod, _ *string) { delete(e.api.pods, "ns1/web") }, types.ErrUnknownContainer, "pod not found"},
		{"pod UID changed", func(e *env, p *k8s.Pod, _ *string) {
			e.api.pods["ns1/web"] = &k8s.Pod{Namespace: "ns1", Name: "web", UID: "recreated"}
		}, types.ErrUnknownContainer, "UID"},
		{"apiserver unreachable", func(e *env, _ *k8s.Pod, _ *string) { e.api.err = errors.New("x: connection refused") }, types.ErrInternal, "get pod"},
		{"unknown NAD", func(e *env, p *k8s.Pod, _ *string) { p.Annotations[k8s.NetworksAnnotation] = "nope" }, types.ErrInvalidNetworkConfig, `network "ns1/nope": NetworkAttachmentDefinition not found`},
		{"isolation", func(e *env, p *k8s.Pod, c *string) {
			p.Annotations[k8s.NetworksAnnotation] = "other/c"
			*c = `,"namespaceIsolation":true`
		}, types.ErrInvalidNetworkConfig, `may not use NetworkAttachmentDefinitions of namespace "other"`},
		{"missing binary", func(e *env, _ *k8s.Pod, _ *string) { e.exec.missing["tuning"] = true }, types.ErrInvalidNetworkConfig, `plugin "tuning" is not in`},
		{"NAD not JSON", func(e *env, _ *k8s.Pod, _ *string) { e.api.nads["ns1/a"] = "{nope" }, types.ErrDecodingFailure, `network "ns1/a"`},
		{"same ifname", func(e *env, p *k8s.Pod, _ *string) { p.Annotations[k8s.NetworksAnnotation] = "a@x,b@x" }, types.ErrInvalidNetworkConfig, "also requested"},
		{"ifname is CNI_IFNAME", func(e *env, p *k8s.Pod, _ *string) { p.Annotations[k8s.NetworksAnnotation] = "a@eth0" }, types.ErrInvalidNetworkConfig, "already used"},
		{"undeclared capability, strictCapabilities", func(e *env, p *k8s.Pod, c *string) {
			p.Annotations[k8s.NetworksAnnotation] = `[{"name":"a","mac":"02:00:00:00:00:01"}]`
			*c = `,"strictCapabilities":true`
		}, types.ErrInvalidNetworkConfig, `declares the "mac" capability`},
		{"no cluster network", func(e *env, _ *k8s.Pod, c *string) { *c = `,"clusterNetwork":"ghost"` }, types.ErrInvalidNetworkConfig, `network "ghost"`},
		{"default-network path", func(e *env, p *k8s.Pod, _ *string) { p.Annotations[k8s.DefaultNetworkAnnotation] = "/etc/passwd" }, types.ErrInvalidNetworkConfig, "not a network name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.withNADs()
			pod := e.addPod("ns1", "web", map[string]string{k8s.NetworksAnnotation: "a,b"})
			extra := ""
			tc.setup(e, pod, &extra)
			conf := e.conf(extra)
			_, err := e.eng.Add(t.Context(), conf, e.args("cid1", pod, conf.Raw))
			te := cniCode(t, err)
			if te.Code != tc.code || !strings.Contains(te.Msg, tc.msg) {
				t.Errorf("error %d %q, want code %d containing %q", te.Code, te.Msg, tc.code, tc.msg)
			}
			if calls := e.exec.seq(""); len(calls) > 0 {
				t.Errorf("something ran: %v", calls)
			}
			if e.cacheExists("cid1") {
				t.Error("cache written")
			}
		})
	}
}

func TestAddNeedsFreshContainer(t *testing.T) {
	e := newEnv(t)
	conf := e.conf("")
	if _, err := e.eng.Add(t.Context(), conf, e.args("cid1", nil, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	e.exec.reset()
	_, err := e.eng.Add(t.Context(), conf, e.args("cid1", nil, conf.Raw))
	if te := cniCode(t, err); !strings.Contains(te.Msg, "already attached") || len(e.exec.seq("")) > 0 {
		t.Errorf("second ADD: %v, calls %v", err, e.exec.seq(""))
	}
	for _, bad := range []string{"../../etc/x", ".hidden", "a/b"} {
		_, err := e.eng.Add(t.Context(), conf, e.args(bad, nil, conf.Raw))
		if te := cniCode(t, err); te.Code != types.ErrInvalidEnvironmentVariables {
			t.Errorf("container ID %q: %v", bad, err)
		}
	}
}

func TestAddWithoutKubernetes(t *testing.T) {
	e := newEnv(t)
	e.eng = New(Options{Exec: e.exec}) // no kubeconfig: no pod, no NADs, no status
	e.writeConf("20-d1.conf", `{"cniVersion":"1.1.0","name":"d1","type":"dflt"}`)
	conf := e.conf(`,"defaultNetworks":["d1"]`)
	args := e.args("cid1", nil, conf.Raw)
	args.Args = "K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=x"
	if _, err := e.eng.Add(t.Context(), conf, args); err != nil {
		t.Fatal(err)
	}
	// kube-system is a system namespace: no default networks.
	if got := e.exec.seq("ADD"); !slices.Equal(got, []string{"clusterplugin ADD eth0"}) {
		t.Errorf("calls %v", got)
	}
}

func TestDeviceInfo(t *testing.T) {
	e := newEnv(t)
	e.api.nads["ns1/sriov"] = `{"cniVersion":"1.0.0","type":"sriov","capabilities":{"CNIDeviceInfoFile":true}}`
	pod := e.addPod("ns1", "web", map[string]string{k8s.NetworksAnnotation: "sriov"})
	conf := e.conf("")
	if _, err := e.eng.Add(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	st := e.api.status["ns1/web"]
	if len(st) != 2 || !strings.Contains(string(st[1].DeviceInfo), "0000:03:00.1") {
		t.Fatalf("status %+v", st)
	}
	path := deviceInfoPath(conf.CNIDir, "cid1", "net1")
	if err := e.eng.Del(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	if fileExists(path) {
		t.Error("device-info file left after DEL")
	}
}
