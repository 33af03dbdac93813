package cni

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testbed/cninode"
	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/datapath"
	"github.com/steernet/steer/pkg/delegate"
	"github.com/steernet/steer/pkg/k8s"
)

var iterations = flag.Int("iterations", 30, "pods per scenario and path")

func TestMain(m *testing.M) { kubetest.Main(m) }

// maxSecondaries is the largest number of secondary networks a pod gets.
const maxSecondaries = 3

type sample struct{ add, del []time.Duration }

// multusVersion is the Multus release measured next to steer; hack/install-multus.sh builds it.
const multusVersion = "v4.3.0"

// path is one way of attaching a pod measured against the delegates run directly.
type path struct {
	name, about string
	conf        []byte
	api         bool // secondaries from the pod's annotation; else defaultNetworks in confDir
	peer        string
}

// Multus' paths, the peers steer's rows are compared with: thin and thick.
const (
	multusThin  = "multus"
	multusThick = "multus-thick"
)

func BenchmarkCNI(b *testing.B) {
	n, namespace, clusterPath, cluster := newBenchNode(b)
	secondaries := make([][]byte, maxSecondaries)
	for i := range secondaries {
		name := fmt.Sprintf("net-%d", i+1)
		c := n.MacvlanConf(name, cninode.Masters[i%len(cninode.Masters)], fmt.Sprintf("192.168.%d.0/24", 100+i))
		secondaries[i] = []byte(c)
		n.CreateNAD(b, namespace, name, c)
		n.WriteConfFile(b, fmt.Sprintf("20-%s.conf", name), c)
	}
	multusBin, multus := multusConf(b, n, cluster)
	// Multus logs every event it posts to stderr: kept out of the tables, shown on failure.
	stderr, err := os.Create(filepath.Join(n.Dir, "plugins.stderr"))
	if err != nil {
		b.Fatal(err)
	}
	defer stderr.Close()
	n.SetPluginStderr(stderr)
	b.Cleanup(func() {
		if b.Failed() {
			if out, err := os.ReadFile(stderr.Name()); err == nil {
				b.Logf("plugins' stderr:\n%s", out)
			}
		}
	})
	runner := delegate.NewRunner([]string{n.BinDir}, b.TempDir(), nil)
	// Production-like logging: info, to a file only.
	base := map[string]any{"clusterNetwork": clusterPath, "logLevel": "info", "apiTimeout": "60s"}
	steerConf := func(extra map[string]any) []byte {
		c := maps.Clone(base)
		maps.Copy(c, extra)
		return n.Conf(b, c)
	}
	// One steerd serves both thick paths: the plugin's configuration travels with each verb.
	steerd, thick := startSteerd(b, n, cluster, steerConf(map[string]any{"steering": true}), datapath.ReadySets)
	thickPlain := withKey(b, thick, "steering", false)
	aloneRoot := nstest.BPFRoot(b).Root // no ready sets of steerd's
	_, shim := startMultusDaemon(b, n, multusBin, cluster, multus)
	paths := []path{
		{name: "noapi", about: "no apiserver: secondaries are defaultNetworks in confDir, steering off (process and engine cost)",
			conf: steerConf(map[string]any{"kubeconfig": nil, "steering": false}), peer: multusThin},
		{name: "plain", about: "thin mode: pod, NADs and network-status through steerd's lookups, steering off",
			conf: steerConf(map[string]any{"steering": false}), api: true, peer: multusThin},
		{name: "steering", about: "thin mode with eBPF steering attached: lookups through steerd, a collection steerd keeps ready",
			conf: steerConf(map[string]any{"steering": true}), api: true, peer: multusThin},
		// A cniDir where steerd does not answer: the plugin on its own, as when steerd is down.
		{name: "alone", about: "thin mode without steerd: pod, NADs and network-status through the apiserver (what Multus does), steering attached, the collection loaded by the plugin",
			conf: steerConf(map[string]any{"steering": true, "cniDir": filepath.Join(n.Dir, "cni-steer-alone"), "bpffsRoot": aloneRoot}), api: true, peer: multusThin},
		{name: "thick-plain", about: "thick mode: the plugin hands the verb to steerd (informer cache, engine), steering off",
			conf: thickPlain, api: true, peer: multusThick},
		{name: "thick", about: "thick mode with eBPF steering attached (by steerd)", conf: thick, api: true, peer: multusThick},
		{name: multusThin, about: "Multus " + multusVersion + " thin plugin, same delegates, NADs and kubeconfig", conf: multus, api: true},
		{name: multusThick, about: "Multus " + multusVersion + " thick plugin: multus-shim and multus-daemon, same delegates and NADs", conf: shim, api: true},
	}
	// Every path and the direct delegates are measured pod after pod, interleaved (the order
	// rotating), so drift on a shared machine hits them alike. An iteration's pods are created
	// first, so the daemons' informers have them when ADD comes, as on a node.
	samples := make([][]sample, len(paths)) // [path][k]
	for i := range samples {
		samples[i] = make([]sample, maxSecondaries+1)
	}
	direct := make([]sample, maxSecondaries+1)
	for k := 0; k <= maxSecondaries; k++ {
		nets := make([]string, k)
		for i := range nets {
			nets[i] = fmt.Sprintf("net-%d", i+1)
		}
		for it := 0; it < *iterations; it++ {
			pods := make([]*cninode.Pod, len(paths))
			for i, p := range paths {
				annotation := strings.Join(nets, ",")
				if !p.api {
					annotation = ""
				}
				pods[i] = createPod(b, n, namespace, fmt.Sprintf("%s-k%d-%d", p.name, k, it), annotation)
			}
			for j := range paths {
				i := (it + j) % len(paths)
				conf := paths[i].conf
				if !paths[i].api {
					conf = withDefaultNetworks(b, conf, nets)
				}
				podOnce(b, n, pods[i], conf, &samples[i][k])
			}
			directOnce(b, n, runner, append([][]byte{cluster}, secondaries[:k]...), &direct[k])
		}
	}
	index := map[string]int{}
	for i, p := range paths {
		index[p.name] = i
	}
	for i, p := range paths {
		fmt.Printf("\n%s: %s\nlatency in ms, %d pods per row, %d CPUs", p.name, p.about, *iterations, nproc())
		vs := p.peer != ""
		if vs {
			fmt.Printf("; vs %s: this overhead over %s's (same k, same run)", p.peer, p.peer)
		}
		fmt.Printf("\n%-12s %-18s %-18s %-10s", "secondaries", "ADD p50/p99", "direct ADD p50/p99", "overhead")
		if vs {
			fmt.Printf(" %-10s", "vs "+p.peer)
		}
		fmt.Printf(" %-18s %-18s %-10s", "DEL p50/p99", "direct DEL p50/p99", "overhead")
		if vs {
			fmt.Printf(" %-10s", "vs "+p.peer)
		}
		fmt.Println()
		for k := 0; k <= maxSecondaries; k++ {
			s, d := samples[i][k], direct[k]
			addOver, delOver := overhead(s.add, d.add), overhead(s.del, d.del)
			fmt.Printf("%-12d %-18s %-18s %-10s", k, pct(s.add), pct(d.add), fmt.Sprintf("%+.0f%%", addOver))
			var m sample
			if vs {
				m = samples[index[p.peer]][k]
				fmt.Printf(" %-10s", ratio(s.add, m.add, d.add))
			}
			fmt.Printf(" %-18s %-18s %-10s", pct(s.del), pct(d.del), fmt.Sprintf("%+.0f%%", delOver))
			if vs {
				fmt.Printf(" %-10s", ratio(s.del, m.del, d.del))
			}
			fmt.Println()
			b.ReportMetric(addOver, fmt.Sprintf("add-overhead-%%-%s-%dnets", p.name, k))
			b.ReportMetric(delOver, fmt.Sprintf("del-overhead-%%-%s-%dnets", p.name, k))
		}
	}
	fmt.Printf("\ngoals (p50s; the range pairs p40 of one side with p60 of the other: met when all of it meets the goal, within noise when part does)\n")
	for _, mode := range []struct{ steered, plain, peer string }{{"steering", "plain", multusThin}, {"thick", "thick-plain", multusThick}} {
		st, pl, mu := samples[index[mode.steered]], samples[index[mode.plain]], samples[index[mode.peer]]
		for k := 1; k <= maxSecondaries; k++ {
			goal(fmt.Sprintf("%s ADD overhead vs %s, %d secondaries", mode.steered, mode.peer, k), 0.5, "×",
				func(q float64) float64 { return overheadRatio(st[k].add, mu[k].add, direct[k].add, q) })
		}
		for k := 1; k <= maxSecondaries; k++ {
			goal(fmt.Sprintf("%s DEL overhead vs %s, %d secondaries", mode.steered, mode.peer, k), 1, "×",
				func(q float64) float64 { return overheadRatio(st[k].del, mu[k].del, direct[k].del, q) })
		}
		goal(fmt.Sprintf("%s: steering's cost per further secondary (1 to %d)", mode.steered, maxSecondaries), 2, " ms",
			func(q float64) float64 {
				cost := func(k int, q float64) time.Duration {
					return percentile(st[k].add, q) - percentile(pl[k].add, 1-q)
				}
				return float64((cost(maxSecondaries, q) - cost(1, 1-q)).Microseconds()) / 1000 / (maxSecondaries - 1)
			})
	}
	steerd.stop() // it unpins the collections it kept ready for the thin plugin
	n.AssertClean(b)
	if left, _ := os.ReadDir(aloneRoot); len(left) > 0 {
		b.Errorf("pins left by the thin plugin on its own under %s: %v", aloneRoot, left)
	}
}

// goal prints a goal's verdict: f(q) is the figure with the measured side at quantile q and the
// side it is compared with at 1-q, so f(0.5) is the p50 figure and f(0.4), f(0.6) bound it.
func goal(what string, limit float64, unit string, f func(q float64) float64) {
	mid, lo, hi := f(0.5), f(0.4), f(0.6)
	lo, hi = min(lo, hi), max(lo, hi)
	fmt.Printf("%-62s %7.2f%s (%.2f…%.2f)  goal ≤ %.2f%s  %s\n", what, mid, unit, lo, hi, limit, unit,
		verdict(hi <= limit, lo <= limit))
}

// overheadRatio is the overhead of s over direct's p50 at quantile q, as a multiple of m's at
// 1-q.
func overheadRatio(s, m, direct []time.Duration, q float64) float64 {
	d := percentile(direct, 0.5)
	so, mo := percentile(s, q)-d, percentile(m, 1-q)-d
	if mo <= 0 {
		return math.Inf(1)
	}
	return float64(so) / float64(mo)
}

// withDefaultNetworks is a steer configuration with nets as its defaultNetworks.
// newBenchNode is a node with its namespace on the apiserver and its cluster network: a bridge
// conflist, its path and its bytes.
func newBenchNode(b *testing.B) (n *cninode.Node, namespace, clusterPath string, cluster []byte) {
	b.Helper()
	n = cninode.NewNode(b)
	namespace = kubetest.Namespace(b)
	clusterPath = n.WriteConfFile(b, "10-cbr0.conflist", n.BridgeConf("cbr0", "cni0", "10.10.0.0/16", "10.10.0.1"))
	cluster, err := os.ReadFile(clusterPath)
	if err != nil {
		b.Fatal(err)
	}
	return n, namespace, clusterPath, cluster
}

func withDefaultNetworks(b testing.TB, conf []byte, nets []string) []byte {
	return withKey(b, conf, "defaultNetworks", nets)
}

// withKey is a plugin configuration with key set to v.
func withKey(b testing.TB, conf []byte, key string, v any) []byte {
	var c map[string]any
	if err := json.Unmarshal(conf, &c); err != nil {
		b.Fatal(err)
	}
	c[key] = v
	out, err := json.Marshal(c)
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// multusConf builds Multus (hack/install-multus.sh, cached), links its thin plugin into the
// node's bin dir and returns the cached binary and the thin plugin's configuration: the node's kubeconfig, delegates and bin dir, and
// the cluster network as a directory holding only cluster. A directory, because Multus re-encodes
// a .conflist path through structs that drop fields, so its DEL of the cluster network fails.
func multusConf(b testing.TB, n *cninode.Node, cluster []byte) (bin string, _ []byte) {
	b.Helper()
	cmd := exec.Command("../../hack/install-multus.sh")
	cmd.Env = append(os.Environ(), "MULTUS_VERSION="+multusVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("install Multus: %v\n%s", err, out)
	}
	cache := os.Getenv("STEER_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			b.Fatal(err)
		}
		cache = filepath.Join(home, ".cache", "steer")
	}
	cached := filepath.Join(cache, "multus", multusVersion, "multus")
	if err := os.Symlink(cached, filepath.Join(n.BinDir, "multus")); err != nil && !os.IsExist(err) {
		b.Fatal(err)
	}
	dir := filepath.Join(n.Dir, "multus-cluster")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "10-cbr0.conflist"), cluster, 0o644); err != nil {
		b.Fatal(err)
	}
	conf, err := json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": "multus-cni-network", "type": "multus",
		"kubeconfig": n.Kubeconfig, "clusterNetwork": dir, "confDir": n.ConfDir, "binDir": n.BinDir,
		"cniDir": filepath.Join(n.Dir, "cni-multus"),
		// Quieter than steer's info: Multus is not charged for logging steer does.
		"logFile": filepath.Join(n.Dir, "multus.log"), "logLevel": "error",
	})
	if err != nil {
		b.Fatal(err)
	}
	return cached, conf
}

// createPod creates a pod bound to the node, with networks as its annotation, and a netns for
// its sandbox.
func createPod(b testing.TB, n *cninode.Node, namespace, name, networks string) *cninode.Pod {
	ann := map[string]string{}
	if networks != "" {
		ann[k8s.NetworksAnnotation] = networks
	}
	pod, err := n.Client.CoreV1().Pods(namespace).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec:       corev1.PodSpec{NodeName: nodeName, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return &cninode.Pod{Namespace: namespace, Name: name, UID: string(pod.UID), ContainerID: "s" + nstest.Suffix() + nstest.Suffix(), NetNS: newNS(b)}
}

// podOnce attaches the pod through the plugin conf names (steer or Multus), detaches it and
// removes its netns.
func podOnce(b testing.TB, n *cninode.Node, p *cninode.Pod, conf []byte, s *sample) {
	defer destroyNS(b, p.NetNS)
	start := time.Now()
	if _, err := n.Add(b, p, conf); err != nil {
		b.Fatalf("ADD %s: %v", p.Name, err)
	}
	s.add = append(s.add, time.Since(start))
	start = time.Now()
	if err := n.Del(b, p, conf, false); err != nil {
		b.Fatalf("DEL %s: %v", p.Name, err)
	}
	s.del = append(s.del, time.Since(start))
}

// directOnce runs the same delegates as steer would, straight through libcni.
func directOnce(b testing.TB, n *cninode.Node, runner *delegate.Runner, confs [][]byte, s *sample) {
	netns := newNS(b)
	defer destroyNS(b, netns)
	id := "d" + nstest.Suffix() + nstest.Suffix()
	nets := make([]*delegate.Network, len(confs))
	targets := make([]delegate.Target, len(confs))
	for i, c := range confs {
		var err error
		if nets[i], err = delegate.Parse(c, "1.1.0"); err != nil {
			b.Fatal(err)
		}
		ifName := "eth0"
		if i > 0 {
			ifName = fmt.Sprintf("net%d", i)
		}
		targets[i] = delegate.Target{ContainerID: id, NetNS: netns.Path(), IfName: ifName, Args: [][2]string{{"IgnoreUnknown", "1"}}}
	}
	ctx := context.Background()
	var elapsedAdd, elapsedDel time.Duration
	err := n.Host.Do(func(ns.NetNS) error {
		start := time.Now()
		for i := range nets {
			if _, err := runner.Add(ctx, nets[i], targets[i]); err != nil {
				return err
			}
		}
		elapsedAdd = time.Since(start)
		start = time.Now()
		for i := len(nets) - 1; i >= 0; i-- {
			if err := runner.Del(ctx, nets[i], targets[i]); err != nil {
				return err
			}
		}
		elapsedDel = time.Since(start)
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	s.add = append(s.add, elapsedAdd)
	s.del = append(s.del, elapsedDel)
}

// newNS and destroyNS go through nstest, whose lock keeps parallel test binaries from stacking
// /run/netns mounts (a namespace made in between could not be removed).
func newNS(b testing.TB) ns.NetNS {
	n, err := nstest.Create()
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func destroyNS(b testing.TB, n ns.NetNS) {
	_ = n.Close()
	if err := nstest.RemoveNS(n.Path()); err != nil {
		b.Error(err)
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(p*float64(len(s))+0.5) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }

func pct(d []time.Duration) string {
	return ms(percentile(d, 0.50)) + " / " + ms(percentile(d, 0.99))
}

// ratio is the overhead of s (p50 over direct's) as a multiple of m's, "n/a" when m has none.
func ratio(s, m, direct []time.Duration) string {
	d := percentile(direct, 0.5)
	so, mo := percentile(s, 0.5)-d, percentile(m, 0.5)-d
	if mo <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f×", float64(so)/float64(mo))
}

// overhead is steer's p50 over the delegates' own p50, in percent.
func overhead(steer, direct []time.Duration) float64 {
	s, d := percentile(steer, 0.5), percentile(direct, 0.5)
	return 100 * float64(s-d) / float64(d)
}

func nproc() int {
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(data), "processor\t:")
}
