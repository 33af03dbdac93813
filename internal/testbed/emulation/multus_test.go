package emulation

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/containernetworking/cni/libcni"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testutil/files"
	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/install"
	"github.com/steernet/steer/pkg/k8s"
)

// multusVersion is the Multus release the node runs before Steer (hack/install-multus.sh).
const multusVersion = "v4.3.0"

// multusBinary returns Multus' thin plugin, built and cached by hack/install-multus.sh.
func multusBinary(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("../../../hack/install-multus.sh")
	cmd.Env = append(os.Environ(), "MULTUS_VERSION="+multusVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("install Multus: %v\n%s", err, out)
	}
	cache := os.Getenv("STEER_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			t.Fatal(err)
		}
		cache = filepath.Join(home, ".cache", "steer")
	}
	return filepath.Join(cache, "multus", multusVersion, "multus")
}

// multusNode is an emulated node on which Multus' thin plugin was installed as its
// DaemonSet's entrypoint does: the binary in the bin dir, a kubeconfig in multus.d, and
// 00-multus.conflist wrapping the node's primary config (a conflist from CNI 1.0.0 on), with
// its cache in a cniDir of its own.
type multusNode struct {
	host      HostRoot
	kubelet   *Kubelet
	conf      []byte // 00-multus.conflist as written
	confPath  string
	cacheDir  string // Multus' cniDir
	nadIPAM   string // host-local's dir of the two NADs
	pinRoot   string
	steerdBin string
}

func newMultusNode(t *testing.T, topo *Topology, ns string) *multusNode {
	t.Helper()
	cluster := kubetest.Cluster(t)
	fwd, err := ForwardAPI(topo.Nodes[0], strings.TrimPrefix(cluster.Host(), "https://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fwd.Close() })
	host, err := NewHostRoot(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	n := &multusNode{host: host, cacheDir: filepath.Join(host.Dir, "var/lib/cni/multus"), nadIPAM: t.TempDir(),
		pinRoot: nstest.BPFRoot(t).Root, steerdBin: steerdBinary(t)}
	if err := os.Symlink(multusBinary(t), filepath.Join(host.BinDir(), "multus")); err != nil {
		t.Fatal(err)
	}
	kc, err := os.ReadFile(cluster.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	kcPath := filepath.Join(host.ConfDir(), "multus.d", "multus.kubeconfig")
	if err := os.MkdirAll(filepath.Dir(kcPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kcPath, kc, 0o600); err != nil {
		t.Fatal(err)
	}
	_, primary, err := install.Primary(host.ConfDir())
	if err != nil {
		t.Fatal(err)
	}
	n.conf = mustJSON(map[string]any{
		"cniVersion": "1.0.0", "name": "multus-cni-network",
		"plugins": []any{map[string]any{
			"type": "multus", "kubeconfig": kcPath, "confDir": host.NADConfDir(), "binDir": host.BinDir(),
			"cniDir": n.cacheDir, "logFile": filepath.Join(host.Dir, "multus.log"), "logLevel": "verbose", "logToStderr": false,
			"cniConf": "/host/etc/cni/multus/net.d", "delegates": []json.RawMessage{primary},
		}},
	})
	n.confPath = filepath.Join(host.ConfDir(), "00-multus.conflist")
	if err := os.WriteFile(n.confPath, n.conf, 0o644); err != nil {
		t.Fatal(err)
	}
	// The cluster network and two NADs, all with host-local IPAM: a leaked address shows.
	nads, err := k8s.NewNADClientForConfig(cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	for name, conf := range map[string][]byte{"dmz-hl": DMZ.HostLocalConf("dmz-hl", n.nadIPAM, 160), "mgmt-hl": Mgmt.HostLocalConf("mgmt-hl", n.nadIPAM, 160)} {
		nad := &k8s.NetworkAttachmentDefinition{Spec: k8s.NetworkAttachmentDefinitionSpec{Config: string(conf)}}
		nad.Namespace, nad.Name = ns, name
		if _, err := nads.Create(context.Background(), nad); err != nil {
			t.Fatal(err)
		}
	}
	n.kubelet = NewKubelet(topo, 0, host, cluster.Client(), "mu")
	return n
}

// run starts a pod on the node with the two NADs through whatever config the node has first.
func (n *multusNode) run(t *testing.T, ns, name string) *Pod {
	t.Helper()
	return n.runWith(t, ns, name, "dmz-hl,mgmt-hl@mgmt")
}

// runWith is run with the pod's selection annotation.
func (n *multusNode) runWith(t *testing.T, ns, name, networks string) *Pod {
	t.Helper()
	pod, err := n.kubelet.RunPod(context.Background(), &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: ns, Annotations: map[string]string{k8s.NetworksAnnotation: networks},
	}})
	if err != nil {
		t.Fatalf("run %s: %v\nmultus log:\n%s", name, err, tail(filepath.Join(n.host.Dir, "multus.log")))
	}
	t.Cleanup(func() { _ = pod.Remove() })
	links, err := pod.Exec(context.Background(), "ip", "-o", "link", "show")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"eth0", "net1", "mgmt"} {
		if !strings.Contains(links, " "+l+"@") {
			t.Errorf("pod %s has no %s: %s", name, l, links)
		}
	}
	return pod
}

// allocations lists host-local's allocated addresses: the cluster network's and the NADs'.
func (n *multusNode) allocations(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{n.host.IPAMDir(), n.nadIPAM} {
		for _, f := range files.Below(t, dir) {
			if b := filepath.Base(f); b != "lock" && !strings.HasPrefix(b, "last_reserved_ip") {
				out = append(out, f)
			}
		}
	}
	return out
}

// caches lists what is cached per container: Multus' files and libcni results, Steer's files,
// the pins.
func (n *multusNode) caches(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, dir := range []string{n.cacheDir, n.host.CNIDir(), n.pinRoot} {
		for _, f := range files.Below(t, dir) {
			if filepath.Base(f) != "lock" && !strings.HasSuffix(f, ".lock") {
				out = append(out, f)
			}
		}
	}
	return out
}

// steerd runs `steerd install` or `steerd uninstall` on the node, as the DaemonSet does.
func (n *multusNode) steerd(t *testing.T, verb string, args ...string) {
	t.Helper()
	base := []string{verb, "-cni-bin-dir", n.host.BinDir(), "-cni-conf-dir", n.host.ConfDir()}
	out, err := exec.Command(n.steerdBin, append(base, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("steerd %s: %v\n%s", verb, err, out)
	}
	t.Logf("steerd %s:\n%s", verb, out)
}

// watchFirstConfig checks, until stopped, that the config the runtime loads (the first by
// name) is always there and loads, and returns the network names it saw, in order.
func watchFirstConfig(t *testing.T, dir string) func() []string {
	var done atomic.Bool
	var wg sync.WaitGroup
	var seen, bad []string
	wg.Add(1)
	go func() {
		defer wg.Done()
		for last := false; !last; {
			last = done.Load()
			files, err := libcni.ConfFiles(dir, []string{".conf", ".conflist", ".json"})
			if err != nil || len(files) == 0 {
				bad = append(bad, "no config")
				continue
			}
			list, err := libcni.NetworkConfFromFile(files[0])
			if errors.Is(err, fs.ErrNotExist) {
				continue // renamed between listing and reading: the runtime lists again
			}
			if err != nil || len(list.Plugins) == 0 {
				bad = append(bad, files[0]+": "+err.Error())
				continue
			}
			typ := list.Plugins[0].Network.Type
			if len(seen) == 0 || seen[len(seen)-1] != typ {
				seen = append(seen, typ)
			}
		}
	}()
	return func() []string {
		done.Store(true)
		wg.Wait()
		if len(bad) > 0 {
			t.Errorf("the runtime's first config was missing or broken: %q", bad[:min(3, len(bad))])
		}
		return seen
	}
}

// TestReplaceMultusOnRunningNode: a node runs Multus v4.3.0 with pods on the cluster network
// and two NADs. Steer is installed over it (steerd install): the runtime's first config is
// Multus' or Steer's at every moment. The pods Multus attached are deleted through Steer:
// every delegate's DEL runs (no address left in host-local's dirs), and Multus' cache goes.
// New pods run under Steer and are steered. Steer is uninstalled (steerd uninstall): Multus'
// config is back byte for byte, and a new pod runs and is deleted under Multus. Nothing is
// left. On the way, a selection asking for a capability its network does not declare works
// under Steer as under Multus, with a Warning event.
func TestReplaceMultusOnRunningNode(t *testing.T) {
	topo := topology(t)
	ns := kubetest.Namespace(t)
	n := newMultusNode(t, topo, ns)
	ctx := context.Background()

	old := []*Pod{n.run(t, ns, "old-a"), n.run(t, ns, "old-b")}
	if got := n.allocations(t); len(got) != 2*3*2 { // two pods, three networks, two families
		t.Fatalf("allocations under Multus %v", got)
	}
	if _, err := os.Stat(filepath.Join(n.cacheDir, old[0].ContainerID)); err != nil {
		t.Fatalf("Multus did not cache the pod: %v", err)
	}

	// Steer over Multus, as its DaemonSet's init container: no kubeconfig of its own (Multus'
	// is carried), its own cache and pins.
	plugin := mustJSON(map[string]any{"cniDir": n.host.CNIDir(), "bpffsRoot": n.pinRoot})
	stop := watchFirstConfig(t, n.host.ConfDir())
	n.steerd(t, "install", "-plugin", steerPlugin(t), "-host-cni-conf-dir", n.host.ConfDir(), "-thin-kubeconfig=false", "-plugin-config", string(plugin))
	if seen := stop(); seen[len(seen)-1] != "steer" {
		t.Fatalf("first configs during install %v", seen)
	}
	steerConf, err := os.ReadFile(n.host.SteerConfig())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"multusCNIDir":"` + n.cacheDir + `"`, `"kubeconfig":"` + filepath.Join(n.host.ConfDir(), "multus.d", "multus.kubeconfig") + `"`, `"logLevel":"verbose"`, `"logToStderr":false`} {
		if !strings.Contains(string(steerConf), want) {
			t.Errorf("Steer's config lacks %s: %s", want, steerConf)
		}
	}

	// The pods Multus attached, deleted through Steer.
	for _, p := range old {
		if err := n.kubelet.StopPod(ctx, p); err != nil {
			t.Fatalf("DEL of %s through Steer: %v", p.Name, err)
		}
	}
	if got := n.allocations(t); len(got) != 0 {
		t.Errorf("addresses leaked by the DEL of Multus' pods: %v", got)
	}
	if got := n.caches(t); len(got) != 0 {
		t.Errorf("left in the caches: %v", got)
	}

	// A new pod under Steer, its DMZ address answering the remote client through the router.
	// Its selection asks for a MAC the DMZ's macvlan does not declare as a capability: as under
	// Multus, macvlan gets it in CNI_ARGS (MAC=) and the pod starts, with an event saying so.
	const mac = "02:00:00:00:5e:01"
	pod := n.runWith(t, ns, "new", `[{"name":"dmz-hl","mac":"`+mac+`"},{"name":"mgmt-hl","interface":"mgmt"}]`)
	startEcho(t, pod)
	expectProbes(t, topo, "client", true, globalAddrs(t, pod, "net1")...)
	if link, err := pod.Exec(ctx, "ip", "-o", "link", "show", "dev", "net1"); err != nil || !strings.Contains(link, mac) {
		t.Errorf("net1 has not the MAC asked for: %v %s", err, link)
	}
	evs, err := kubetest.Cluster(t).Client().CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=new,reason=UndeclaredCapability"})
	if err != nil || len(evs.Items) != 1 || evs.Items[0].Type != corev1.EventTypeWarning {
		t.Errorf("UndeclaredCapability events: %v %+v", err, evs)
	}
	if _, err := os.Stat(filepath.Join(n.host.CNIDir(), pod.ContainerID+".json")); err != nil {
		t.Errorf("the new pod is not Steer's: %v", err)
	}
	// Rolling back: the pods Steer attached go first (README), then Steer.
	if err := n.kubelet.StopPod(ctx, pod); err != nil {
		t.Fatal(err)
	}
	stop = watchFirstConfig(t, n.host.ConfDir())
	n.steerd(t, "uninstall")
	if seen := stop(); seen[len(seen)-1] != "multus" {
		t.Fatalf("first configs during uninstall %v", seen)
	}
	if b, err := os.ReadFile(n.confPath); err != nil || string(b) != string(n.conf) {
		t.Errorf("Multus' config not restored as it was: %v\n%s", err, b)
	}
	entries, _ := os.ReadDir(n.host.ConfDir())
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"00-multus.conflist", "10-overlay.conflist", "multus.d"}) {
		t.Errorf("conf dir after uninstall: %v", names)
	}

	// Multus again: a new pod runs and goes.
	back := n.run(t, ns, "back")
	if _, err := os.Stat(filepath.Join(n.cacheDir, back.ContainerID)); err != nil {
		t.Errorf("the pod after rollback is not Multus': %v", err)
	}
	if err := n.kubelet.StopPod(ctx, back); err != nil {
		t.Fatal(err)
	}
	if got := n.allocations(t); len(got) != 0 {
		t.Errorf("addresses left: %v", got)
	}
	if got := n.caches(t); len(got) != 0 {
		t.Errorf("left in the caches: %v", got)
	}
}
