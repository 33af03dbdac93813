package cni

import (
	"flag"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/steernet/steer/internal/testbed/cninode"
)

var (
	scalePods = flag.Int("scale-pods", 250, "pods attached through steerd before its memory is read")
	burstPods = flag.Int("burst", 100, "ADDs of the burst, run all at once and one after the other")
)

// Goals of steerd at scale.
const (
	maxSteerdRSS = 40 << 20 // bytes, with scalePods pods attached
)

// BenchmarkSteerdScale attaches scalePods steered pods (one macvlan secondary each) through
// steerd and reads its resident memory; then, with them attached, times burstPods ADDs sent
// all at once against as many sent one after the other (the plugin's own process included, as
// a runtime starts it), in the order sequential, burst, burst, sequential with half the pods
// each, so drift on a shared machine hits both alike.
func BenchmarkSteerdScale(b *testing.B) {
	n, namespace, clusterPath, cluster := newBenchNode(b)
	// A /20: room for every pod of the run at once.
	n.CreateNAD(b, namespace, "net-1", n.MacvlanConf("net-1", cninode.Masters[0], "192.168.96.0/20"))
	stderr, err := os.Create(n.Dir + "/plugins.stderr")
	if err != nil {
		b.Fatal(err)
	}
	defer stderr.Close()
	n.SetPluginStderr(stderr)
	conf := n.Conf(b, map[string]any{"clusterNetwork": clusterPath, "logLevel": "info", "apiTimeout": "60s", "steering": true})
	steerd, thick := startSteerd(b, n, cluster, conf, 0) // thick mode alone

	idle, err := steerd.rss()
	if err != nil {
		b.Fatal(err)
	}
	var attached []*cninode.Pod
	defer func() { delAll(b, n, attached, thick) }()
	for i := range *scalePods {
		p := createPod(b, n, namespace, fmt.Sprintf("scale-%d", i), "net-1")
		if _, err := n.Add(b, p, thick); err != nil {
			destroyNS(b, p.NetNS)
			b.Fatalf("ADD %s: %v", p.Name, err)
		}
		attached = append(attached, p)
	}
	rss, err := steerd.rss()
	if err != nil {
		b.Fatal(err)
	}

	var seq, burst time.Duration
	for round, concurrent := range []bool{false, true, true, false} {
		pods := make([]*cninode.Pod, *burstPods/2)
		for i := range pods {
			pods[i] = createPod(b, n, namespace, fmt.Sprintf("burst-%d-%d", round, i), "net-1")
		}
		elapsed := addAll(b, n, pods, thick, concurrent)
		if concurrent {
			burst += elapsed
		} else {
			seq += elapsed
		}
		delAll(b, n, pods, thick)
	}
	delAll(b, n, attached, thick)
	attached = nil
	steerd.stop() // it removes the socket it answers the thin plugin on
	n.AssertClean(b)

	fmt.Printf("\nsteerd at scale: thick mode, steering on, one macvlan secondary per pod, %d CPUs\n", nproc())
	fmt.Printf("%-44s %-12s %-10s %s\n", "measure", "value", "goal", "verdict")
	fmt.Printf("%-44s %-12s %-10s %s\n", "RSS idle (informers synced, no pod)", mib(idle), "", "")
	fmt.Printf("%-44s %-12s %-10s %s\n", fmt.Sprintf("RSS with %d pods attached", *scalePods), mib(rss), mib(maxSteerdRSS), verdict(rss <= maxSteerdRSS, false))
	fmt.Printf("%-44s %-12s %-10s %s\n", fmt.Sprintf("%d ADDs one after the other", *burstPods), fmt.Sprintf("%.1f s", seq.Seconds()), "", "")
	// Within noise: up to 5% slower, the spread of sequential runs on this machine.
	ratio := float64(burst) / float64(seq)
	fmt.Printf("%-44s %-12s %-10s %s\n", fmt.Sprintf("%d ADDs at once (burst / sequential)", *burstPods),
		fmt.Sprintf("%.1f s %.2f×", burst.Seconds(), ratio), "≤ 1.00×", verdict(ratio <= 1, ratio <= 1.05))
	b.ReportMetric(float64(rss)/(1<<20), "steerd-rss-MiB")
	b.ReportMetric(ratio, "burst/sequential")
}

// addAll runs ADD of every pod, all at once or one after the other, and returns the time until
// the last one is done.
func addAll(b *testing.B, n *cninode.Node, pods []*cninode.Pod, conf []byte, concurrent bool) time.Duration {
	start := time.Now()
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	for i, p := range pods {
		if !concurrent {
			_, errs[i] = n.Add(b, p, conf)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = n.Add(b, p, conf)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	for i, err := range errs {
		if err != nil {
			b.Errorf("ADD %s: %v", pods[i].Name, err)
		}
	}
	return elapsed
}

// delAll runs DEL of every pod and removes its netns.
func delAll(b *testing.B, n *cninode.Node, pods []*cninode.Pod, conf []byte) {
	for _, p := range pods {
		if err := n.Del(b, p, conf, false); err != nil {
			b.Errorf("DEL %s: %v", p.Name, err)
		}
		destroyNS(b, p.NetNS)
	}
}

func mib(bytes int64) string { return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20)) }

func verdict(met, withinNoise bool) string {
	switch {
	case met:
		return "met"
	case withinNoise:
		return "within noise"
	}
	return "not met"
}
