package cni

import (
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testbed/cninode"
	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/delegate"
	"github.com/steernet/steer/pkg/k8s"
)

var iterations = flag.Int("iterations", 30, "pods per scenario and path")

func TestMain(m *testing.M) { kubetest.Main(m) }

// maxSecondaries is the largest number of secondary networks a pod gets.
const maxSecondaries = 3

type sample struct{ add, del []time.Duration }

func BenchmarkCNI(b *testing.B) {
	n := cninode.NewNode(b)
	namespace := kubetest.Namespace(b)
	clusterPath := n.WriteConfFile(b, "10-cbr0.conflist", n.BridgeConf("cbr0", "cni0", "10.10.0.0/16", "10.10.0.1"))
	cluster, err := os.ReadFile(clusterPath)
	if err != nil {
		b.Fatal(err)
	}
	secondaries := make([][]byte, maxSecondaries)
	for i := range secondaries {
		name := fmt.Sprintf("net-%d", i+1)
		c := n.MacvlanConf(name, cninode.Masters[i%len(cninode.Masters)], fmt.Sprintf("192.168.%d.0/24", 100+i))
		secondaries[i] = []byte(c)
		n.CreateNAD(b, namespace, name, c)
		n.WriteConfFile(b, fmt.Sprintf("20-%s.conf", name), c)
	}
	runner := delegate.NewRunner([]string{n.BinDir}, b.TempDir(), nil)
	// Production-like logging: info, to a file only.
	base := map[string]any{"clusterNetwork": clusterPath, "logLevel": "info", "apiTimeout": "60s"}
	for _, m := range []struct {
		name, about string
		conf        map[string]any
		api         bool // secondaries from the pod's annotation; else defaultNetworks in confDir
	}{
		{"noapi", "no apiserver: secondaries are defaultNetworks in confDir, steering off (process and engine cost)",
			map[string]any{"kubeconfig": nil, "steering": false}, false},
		{"plain", "thin mode: pod, NADs and network-status through the apiserver, steering off (what Multus does)",
			map[string]any{"steering": false}, true},
		{"steering", "thin mode with eBPF steering attached",
			map[string]any{"steering": true}, true},
	} {
		fmt.Printf("\n%s: %s\nlatency in ms, %d pods per row, %d CPUs\n", m.name, m.about, *iterations, nproc())
		fmt.Printf("%-12s %-18s %-18s %-10s %-18s %-18s %-10s\n", "secondaries", "steer ADD p50/p99", "direct ADD p50/p99", "overhead", "steer DEL p50/p99", "direct DEL p50/p99", "overhead")
		for k := 0; k <= maxSecondaries; k++ {
			nets := make([]string, k)
			for i := range nets {
				nets[i] = fmt.Sprintf("net-%d", i+1)
			}
			extra := maps.Clone(base)
			maps.Copy(extra, m.conf)
			annotation := strings.Join(nets, ",")
			if !m.api {
				extra["defaultNetworks"], annotation = nets, ""
			}
			conf := n.Conf(b, extra)
			var steer, direct sample
			for it := 0; it < *iterations; it++ {
				// Interleaved, so drift on a shared machine hits both paths alike.
				steerOnce(b, n, namespace, fmt.Sprintf("%s-k%d-%d", m.name, k, it), annotation, conf, &steer)
				directOnce(b, n, runner, append([][]byte{cluster}, secondaries[:k]...), &direct)
			}
			addOver := overhead(steer.add, direct.add)
			delOver := overhead(steer.del, direct.del)
			fmt.Printf("%-12d %-18s %-18s %-10s %-18s %-18s %-10s\n", k,
				pct(steer.add), pct(direct.add), fmt.Sprintf("%+.0f%%", addOver),
				pct(steer.del), pct(direct.del), fmt.Sprintf("%+.0f%%", delOver))
			b.ReportMetric(addOver, fmt.Sprintf("add-overhead-%%-%s-%dnets", m.name, k))
			b.ReportMetric(delOver, fmt.Sprintf("del-overhead-%%-%s-%dnets", m.name, k))
		}
	}
	n.AssertClean(b)
}

// steerOnce attaches one pod through steer and detaches it.
func steerOnce(b *testing.B, n *cninode.Node, namespace, name, networks string, conf []byte, s *sample) {
	ann := map[string]string{}
	if networks != "" {
		ann[k8s.NetworksAnnotation] = networks
	}
	pod, err := n.Client.CoreV1().Pods(namespace).Create(context.Background(), &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	netns := newNS(b)
	defer destroyNS(b, netns)
	p := &cninode.Pod{Namespace: namespace, Name: name, UID: string(pod.UID), ContainerID: "s" + nstest.Suffix() + nstest.Suffix(), NetNS: netns}
	start := time.Now()
	if _, err := n.Add(b, p, conf); err != nil {
		b.Fatal(err)
	}
	s.add = append(s.add, time.Since(start))
	start = time.Now()
	if err := n.Del(b, p, conf, false); err != nil {
		b.Fatal(err)
	}
	s.del = append(s.del, time.Since(start))
}

// directOnce runs the same delegates as steer would, straight through libcni.
func directOnce(b *testing.B, n *cninode.Node, runner *delegate.Runner, confs [][]byte, s *sample) {
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

func newNS(b *testing.B) ns.NetNS {
	n, err := testutils.NewNS()
	if err != nil {
		b.Fatal(err)
	}
	return n
}

func destroyNS(b *testing.B, n ns.NetNS) {
	_ = n.Close()
	if err := testutils.UnmountNS(n); err != nil {
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
