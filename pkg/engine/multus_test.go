package engine

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/steernet/steer/pkg/k8s"
	"github.com/steernet/steer/pkg/netconf"
)

// Delegate configurations of a pod Multus attached: the cluster network (master), a NAD
// selected with ips and mac and no interface name (net1), and a conflist NAD as ext0.
const (
	multusCluster = `{"cniVersion":"1.1.0","name":"cluster","type":"clusterplugin","capabilities":{"portMappings":true}}`
	multusNet1    = `{"cniVersion":"1.0.0","name":"a","type":"macvlan","capabilities":{"ips":true,"mac":true},"ipam":{"type":"static"}}`
	multusExt0    = `{"cniVersion":"1.0.0","name":"b-net","plugins":[{"type":"macvlan"},{"type":"tuning"}]}`
)

// multusDelegateJSON is one element as Multus v4.3.0's saveDelegates writes it:
// json.Marshal of its types.DelegateNetConf (exported fields without tags keep their Go names).
func multusDelegateJSON(conf, name, ifname, extra string) string {
	var c struct {
		CNIVersion string            `json:"cniVersion"`
		Name       string            `json:"name"`
		Type       string            `json:"type"`
		Plugins    []json.RawMessage `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(conf), &c); err != nil {
		panic(err)
	}
	single, list := fmt.Sprintf(`{"cniVersion":%q,"name":%q,"type":%q,"ipam":{},"dns":{}}`, c.CNIVersion, c.Name, c.Type),
		`{"cniVersion":"","name":"","plugins":null}`
	if c.Plugins != nil {
		single = `{"name":"","type":"","ipam":{},"dns":{}}`
		list = fmt.Sprintf(`{"cniVersion":%q,"name":%q,"plugins":%s}`, c.CNIVersion, c.Name, mustJSON(c.Plugins))
	}
	ifreq := ""
	if ifname != "" {
		ifreq = fmt.Sprintf(`"ifnameRequest":%q,`, ifname)
	}
	return fmt.Sprintf(`{"Conf":%s,"ConfList":%s,"CNINetworkConfigList":{"Name":"","CNIVersion":"","DisableCheck":false,"DisableGC":false,"Plugins":null,"Bytes":null},`+
		`"Name":%q,%s%s"IsFilterV4Gateway":false,"IsFilterV6Gateway":false,"Bytes":%q}`,
		single, list, name, ifreq, extra, base64.StdEncoding.EncodeToString([]byte(conf)))
}

// writeMultusCache leaves the cache Multus' ADD leaves for cid under dir.
func writeMultusCache(t *testing.T, dir, cid string) string {
	t.Helper()
	data := "[" + multusDelegateJSON(multusCluster, "cluster", "", "") + "," +
		multusDelegateJSON(multusNet1, "ns1/a", "", `"macRequest":"02:11:22:33:44:55","ipRequest":["192.0.2.7/24"],`) + "," +
		multusDelegateJSON(multusExt0, "ns1/b", "ext0", "") + "]"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, cid)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func (e *env) multusConf() string {
	return fmt.Sprintf(`,"multusCNIDir":%q`, filepath.Join(e.dir, "multus"))
}

// A pod Multus attached is deleted from Multus' cache, as Multus' own DEL would: every
// delegate, last to first, under Multus' interface names, CNI_ARGS and runtimeConfig.
func TestDelFromMultusCache(t *testing.T) {
	e := newEnv(t)
	conf := e.conf(e.multusConf())
	path := writeMultusCache(t, conf.MultusCNIDir, "cidm")
	args := e.args("cidm", e.addPod("ns1", "web", nil), conf.Raw)
	if err := e.eng.Del(t.Context(), conf, args); err != nil {
		t.Fatal(err)
	}
	want := []string{"tuning DEL ext0", "macvlan DEL ext0", "macvlan DEL net1", "clusterplugin DEL eth0"}
	if got := e.exec.seq(""); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	for _, c := range e.exec.calls {
		if c.Args != "IgnoreUnknown=true;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=;K8S_POD_UID=uid-web;IgnoreUnknown=1" {
			t.Errorf("%s: CNI_ARGS %q", c, c.Args)
		}
		var in struct {
			RuntimeConfig map[string]any `json:"runtimeConfig"`
			IPAM          map[string]any `json:"ipam"`
		}
		_ = json.Unmarshal(c.Stdin, &in)
		if c.IfName == "net1" && (mustJSON(in.RuntimeConfig) != `{"ips":["192.0.2.7/24"],"mac":"02:11:22:33:44:55"}` || in.IPAM["type"] != "static") {
			t.Errorf("%s: runtimeConfig %v, ipam %v", c, in.RuntimeConfig, in.IPAM)
		}
	}
	if fileExists(path) {
		t.Error("Multus' cache file left")
	}
	// A second DEL has no cache left: as Multus', it deletes what the apiserver says the pod
	// has (here the cluster network only), which is idempotent.
	e.exec.reset()
	if err := e.eng.Del(t.Context(), conf, args); err != nil || !slices.Equal(e.exec.seq(""), []string{"steering DETACH ", "clusterplugin DEL eth0"}) {
		t.Errorf("second DEL: %v, calls %v", err, e.exec.seq(""))
	}
}

// Under retryDeleteOnError Multus keeps its file whole when a DEL failed, for the next DEL.
func TestDelFromMultusCacheRetry(t *testing.T) {
	for _, retry := range []bool{false, true} {
		e := newEnv(t)
		extra := e.multusConf()
		if retry {
			extra += `,"retryDeleteOnError":true`
		}
		conf := e.conf(extra)
		path := writeMultusCache(t, conf.MultusCNIDir, "cidm")
		e.exec.fail["macvlan DEL net1"] = true
		err := e.eng.Del(t.Context(), conf, e.args("cidm", nil, conf.Raw))
		if te := cniCode(t, err); te.Code != types.ErrTryAgainLater {
			t.Errorf("retry=%v: %+v", retry, te)
		}
		if got := e.exec.seq("DEL"); len(got) != 4 {
			t.Errorf("retry=%v: DELs %v, want all of them", retry, got)
		}
		if fileExists(path) != retry {
			t.Errorf("retry=%v: Multus' cache file kept: %v", retry, fileExists(path))
		}
	}
}

// A cluster network given to Multus as a .conflist path is cached twice: Bytes re-encoded
// (ipam.ranges lost) and CNINetworkConfigList, the list ADD ran. DEL runs the latter.
func TestDelFromMultusCacheConflistFile(t *testing.T) {
	e := newEnv(t)
	conf := e.conf(e.multusConf())
	orig := `{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"bridge","ipam":{"type":"host-local","ranges":[[{"subnet":"10.10.0.0/24"}]]}}]}`
	lossy := `{"cniVersion":"1.0.0","name":"cbr0","plugins":[{"type":"bridge","ipam":{"type":"host-local"},"dns":{}}]}`
	elem := fmt.Sprintf(`{"Conf":{"name":"","type":"","ipam":{},"dns":{}},"ConfList":%s,`+
		`"CNINetworkConfigList":{"Name":"cbr0","CNIVersion":"1.0.0","DisableCheck":false,"DisableGC":false,"LoadOnlyInlinedPlugins":false,"Plugins":[{"Network":{"type":"bridge"},"Bytes":%q}],"Bytes":%q},`+
		`"Name":"cbr0","IsFilterV4Gateway":false,"IsFilterV6Gateway":false,"Bytes":%q}`,
		lossy, base64.StdEncoding.EncodeToString([]byte(`{"type":"bridge"}`)), base64.StdEncoding.EncodeToString([]byte(orig)),
		base64.StdEncoding.EncodeToString([]byte(lossy)))
	if err := os.MkdirAll(conf.MultusCNIDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(conf.MultusCNIDir, "cidm"), []byte("["+elem+"]"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.eng.Del(t.Context(), conf, e.args("cidm", nil, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	if len(e.exec.calls) != 1 || !strings.Contains(string(e.exec.calls[0].Stdin), `"ranges":[[{"subnet":"10.10.0.0/24"}]]`) {
		t.Errorf("calls %v, stdin %s", e.exec.seq(""), e.exec.calls[0].Stdin)
	}
}

// A Multus file that is not Multus' delegate list cannot be deleted from; DEL does not fail
// the sandbox's removal for it (Multus does not either), CHECK does.
func TestDelUnreadableMultusCache(t *testing.T) {
	e := newEnv(t)
	conf := e.conf(e.multusConf())
	if err := os.MkdirAll(conf.MultusCNIDir, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, data := range []string{`{"not":"a list"}`, `[]`, `[{"Name":"x"}]`} {
		if err := os.WriteFile(filepath.Join(conf.MultusCNIDir, "cidm"), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := e.eng.Del(t.Context(), conf, e.args("cidm", nil, conf.Raw)); err != nil || len(e.exec.calls) > 0 {
			t.Errorf("%s: DEL %v, calls %v", data, err, e.exec.seq(""))
		}
		if err := e.eng.Check(t.Context(), conf, e.args("cidm", nil, conf.Raw)); err == nil {
			t.Errorf("%s: CHECK passed", data)
		}
	}
}

// Steer's own entry wins over Multus' file for the same container.
func TestDelPrefersSteerCache(t *testing.T) {
	e, pod := added(t, "")
	conf := e.conf(e.multusConf())
	path := writeMultusCache(t, conf.MultusCNIDir, "cid1")
	if err := e.eng.Del(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	if got := e.exec.seq("DEL"); len(got) != 4 || got[0] != "tuning DEL net2" {
		t.Errorf("DELs %v", got)
	}
	if !fileExists(path) {
		t.Error("Multus' file removed by a DEL that did not use it")
	}
}

func TestCheckFromMultusCache(t *testing.T) {
	e := newEnv(t)
	conf := e.conf(e.multusConf())
	writeMultusCache(t, conf.MultusCNIDir, "cidm")
	if err := e.eng.Check(t.Context(), conf, e.args("cidm", nil, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	want := []string{"clusterplugin CHECK eth0", "macvlan CHECK net1", "macvlan CHECK ext0", "tuning CHECK ext0"}
	if got := e.exec.seq(""); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
}

// GC keeps the attachments of valid pods Multus attached (their IPs stay allocated) and
// deletes stale ones from Multus' cache.
func TestGCWithMultusCache(t *testing.T) {
	e, _ := added(t, "")
	conf := e.conf(e.multusConf())
	writeMultusCache(t, conf.MultusCNIDir, "cidm")
	stale := writeMultusCache(t, conf.MultusCNIDir, "cids")
	old := time.Now().Add(-2 * addGrace)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(conf.MultusCNIDir, "results"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := e.eng.GC(t.Context(), conf, e.args("", nil, gcArgs(t, conf.Raw, "cid1", "cidm"))); err != nil {
		t.Fatal(err)
	}
	dels, _, valid := gcCalls(e.exec)
	wantDels := []string{"cids tuning DEL ext0", "cids macvlan DEL ext0", "cids macvlan DEL net1", "cids clusterplugin DEL eth0"}
	if !slices.Equal(dels, wantDels) {
		t.Errorf("DELs %v, want %v", dels, wantDels)
	}
	if valid["a"] != `[{"containerID":"cid1","ifname":"net1"},{"containerID":"cidm","ifname":"net1"}]` ||
		valid["b-net"] != `[{"containerID":"cid1","ifname":"net2"},{"containerID":"cidm","ifname":"ext0"}]` {
		t.Errorf("valid attachments per network: %v", valid)
	}
	if fileExists(stale) || !fileExists(filepath.Join(conf.MultusCNIDir, "cidm")) {
		t.Error("GC removed the wrong Multus caches")
	}
}

// With "delegates", the pod's default-network annotation replaces delegates[0] as eth0 and
// delegates[1:] stay (Multus' TryLoadPodDelegates overwrites Delegates[0]).
func TestDefaultNetworkAnnotationWithDelegates(t *testing.T) {
	e := newEnv(t)
	e.withNADs()
	raw := fmt.Sprintf(`{"cniVersion":"1.1.0","name":"steer-net","type":"steer","confDir":%q,"cniDir":%q,"binDir":"/opt/cni/bin",
	 "delegates":[{"cniVersion":"1.1.0","name":"mynet2","type":"mynet2"},{"cniVersion":"1.1.0","name":"extra","type":"extraplugin"}]}`,
		filepath.Join(e.dir, "net.d"), filepath.Join(e.dir, "cni"))
	conf, err := netconf.ParseConf([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	pod := e.addPod("kube-system", "web", map[string]string{k8s.DefaultNetworkAnnotation: "d1"})
	if _, err := e.eng.Add(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	want := []string{"steering PREPARE ", "dflt ADD eth0", "extraplugin ADD net1", "steering ATTACH "}
	if got := e.exec.seq(""); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	// Without the annotation delegates[0] is eth0.
	e.exec.reset()
	plain := e.addPod("kube-system", "plain", nil)
	if _, err := e.eng.Add(t.Context(), conf, e.args("cid2", plain, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	if got := e.exec.seq("ADD"); len(got) == 0 || got[0] != "mynet2 ADD eth0" {
		t.Errorf("calls %v, want mynet2 on eth0", got)
	}
}

// An element asking for capabilities its network does not declare is accepted as Multus
// accepts it: the declared ones go in runtimeConfig, and ADD (only) gets MAC= and IP= in
// CNI_ARGS, as from Multus' DelegateAdd, for the undeclared ones.
func TestUndeclaredCapabilitiesAsMultus(t *testing.T) {
	e := newEnv(t)
	e.withNADs()
	pod := e.addPod("ns1", "web", map[string]string{
		k8s.NetworksAnnotation: `[{"name":"a","mac":"02:00:00:00:00:01","ips":["10.9.0.7/24","fd00::7/64"],"bandwidth":{"ingressRate":5}},{"name":"b","mac":"02:00:00:00:00:02"}]`,
	})
	conf := e.conf("")
	if _, err := e.eng.Add(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	base := "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web;K8S_POD_UID=uid-web"
	for _, c := range e.exec.calls {
		var in struct {
			RuntimeConfig map[string]any `json:"runtimeConfig"`
		}
		_ = json.Unmarshal(c.Stdin, &in)
		want, wantRC := base, "null"
		switch c.String() {
		case "macvlan ADD net1":
			want += ";MAC=02:00:00:00:00:01;IP=10.9.0.7/24,fd00::7/64"
		case "macvlan ADD net2", "tuning ADD net2":
			if c.Type == "macvlan" { // b declares mac: runtimeConfig, no MAC=
				wantRC = `{"mac":"02:00:00:00:00:02"}`
			}
		}
		if c.Type != "steering" && (c.Args != want || mustJSON(in.RuntimeConfig) != wantRC) {
			t.Errorf("%s: CNI_ARGS %q, runtimeConfig %s; want %q, %s", c, c.Args, mustJSON(in.RuntimeConfig), want, wantRC)
		}
	}
	// One warning event on the pod, for the element asking for what its network lacks.
	if len(e.api.events) != 1 || !strings.HasPrefix(e.api.events[0], `ns1/web UndeclaredCapability: network "ns1/a": the selection asks for ips, mac, bandwidth,`) {
		t.Errorf("events %q", e.api.events)
	}
	// DEL gets the runtime's CNI_ARGS only, as from Multus.
	e.exec.reset()
	if err := e.eng.Del(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	for _, c := range e.exec.calls {
		if c.Type != "steering" && c.Args != base {
			t.Errorf("%s: CNI_ARGS %q", c, c.Args)
		}
	}
}

// DEL of a container with neither Steer's nor Multus' cache (a node whose caches were lost, a
// DEL after the cache went) resolves the pod's networks from the apiserver, as Multus' DEL
// does, and deletes each, last to first, on the names ADD gives them. Best effort, and DEL
// always succeeds.
func TestDelFromAPIServer(t *testing.T) {
	e := newEnv(t)
	e.withNADs()
	pod := e.addPod("ns1", "web", map[string]string{
		k8s.NetworksAnnotation: `[{"name":"a"},{"name":"b","interface":"custom","mac":"02:11:22:33:44:55"}]`,
	})
	conf := e.conf(`,"defaultNetworks":["d1"]`)
	del := func(pod *k8s.Pod) []string {
		t.Helper()
		e.exec.reset()
		if err := e.eng.Del(t.Context(), conf, e.args("cidx", pod, conf.Raw)); err != nil {
			t.Fatalf("DEL: %v", err)
		}
		return e.exec.seq("")
	}
	want := []string{"steering DETACH ", "tuning DEL custom", "macvlan DEL custom", "macvlan DEL net2", "dflt DEL net1", "clusterplugin DEL eth0"}
	if got := del(pod); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	for _, c := range e.exec.calls {
		var in struct {
			RuntimeConfig map[string]any `json:"runtimeConfig"`
		}
		_ = json.Unmarshal(c.Stdin, &in)
		if c.Type == "macvlan" && c.IfName == "custom" && mustJSON(in.RuntimeConfig) != `{"mac":"02:11:22:33:44:55"}` {
			t.Errorf("%s: runtimeConfig %s", c, mustJSON(in.RuntimeConfig))
		}
	}
	// A selection that no longer resolves: the cluster and default networks still go.
	e.addPod("ns1", "gone-nad", map[string]string{k8s.NetworksAnnotation: "a,missing"})
	if got := del(e.api.pods["ns1/gone-nad"]); !slices.Equal(got, []string{"steering DETACH ", "dflt DEL net1", "clusterplugin DEL eth0"}) {
		t.Errorf("calls with a missing NAD %v", got)
	}
	// A NAD that nests a meta plugin (refused by ADD) is not run by DEL either: it would run
	// with the NAD's own binDir and delegates.
	e.api.nads["ns1/nested"] = `{"cniVersion":"1.0.0","name":"nested","type":"steer","binDir":"/tmp/evil","delegates":[{"cniVersion":"1.0.0","name":"x","type":"evil"}]}`
	e.addPod("ns1", "nested", map[string]string{k8s.NetworksAnnotation: "a,nested"})
	if got := del(e.api.pods["ns1/nested"]); !slices.Equal(got, []string{"steering DETACH ", "macvlan DEL net2", "dflt DEL net1", "clusterplugin DEL eth0"}) {
		t.Errorf("calls with a nested steer NAD %v", got)
	}
	// The pod is gone, or is another pod of the same name, or the apiserver fails: its
	// networks are unknown, nothing runs.
	if got := del(&k8s.Pod{Namespace: "ns1", Name: "nobody", UID: "u"}); len(got) != 0 {
		t.Errorf("calls for a pod that is gone %v", got)
	}
	if got := del(&k8s.Pod{Namespace: "ns1", Name: "web", UID: "another"}); len(got) != 0 {
		t.Errorf("calls for another pod of the name %v", got)
	}
	e.api.err = errors.New("apiserver down")
	if got := del(pod); len(got) != 0 {
		t.Errorf("calls with the apiserver down %v", got)
	}
}

// auxiliaryCNIChainName as in Multus v4.3.0: passthru and the plugin files of the directory
// named after it, beside the clusterNetwork file, run as one more network after the pod's.
func TestAuxiliaryChain(t *testing.T) {
	e := newEnv(t)
	e.withNADs()
	cluster := filepath.Join(e.dir, "net.d", "10-cluster.conf")
	e.writeConf("vendor-chain/20-second.conf", `{"type":"sbr","name":"s"}`)
	e.writeConf("vendor-chain/10-first.conf", `{"type":"tuning","name":"t","sysctl":{"net.ipv4.conf.IFNAME.arp_filter":"1"}}`)
	e.writeConf("vendor-chain/ignored.json", `{"type":"nope"}`)
	conf := e.conf(fmt.Sprintf(`,"clusterNetwork":%q,"auxiliaryCNIChainName":"vendor-chain"`, cluster))
	pod := e.addPod("ns1", "web", map[string]string{k8s.NetworksAnnotation: "a"})
	if _, err := e.eng.Add(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	want := []string{"steering PREPARE ", "clusterplugin ADD eth0", "macvlan ADD net1", "passthru ADD net2", "tuning ADD net2", "sbr ADD net2", "steering ATTACH "}
	if got := e.exec.seq(""); !slices.Equal(got, want) {
		t.Errorf("calls %v, want %v", got, want)
	}
	for _, a := range e.dp.atts {
		if a.IfName == "net2" && a.Policy.Steering {
			t.Error("the auxiliary chain is steered")
		}
	}
	e.exec.reset()
	if err := e.eng.Del(t.Context(), conf, e.args("cid1", pod, conf.Raw)); err != nil {
		t.Fatal(err)
	}
	if got := e.exec.seq("DEL"); !slices.Equal(got[:3], []string{"sbr DEL net2", "tuning DEL net2", "passthru DEL net2"}) {
		t.Errorf("DEL calls %v", got)
	}

	// No plugin file: no chain. A clusterNetwork that is not a path: ADD fails, as in Multus.
	e.exec.reset()
	none := e.conf(fmt.Sprintf(`,"clusterNetwork":%q,"auxiliaryCNIChainName":"absent"`, cluster))
	if _, err := e.eng.Add(t.Context(), none, e.args("cid2", pod, none.Raw)); err != nil {
		t.Fatal(err)
	}
	if got := e.exec.seq("ADD"); len(got) != 2 {
		t.Errorf("calls without chain files %v", got)
	}
	named := e.conf(`,"auxiliaryCNIChainName":"vendor-chain"`)
	_, err := e.eng.Add(t.Context(), named, e.args("cid3", pod, named.Raw))
	if te := cniCode(t, err); te.Code != types.ErrInvalidNetworkConfig || !strings.Contains(te.Msg, `"clusterNetwork" to be a config file path`) {
		t.Errorf("ADD with a named clusterNetwork: %v", err)
	}
}
