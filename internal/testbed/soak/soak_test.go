package soak

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"reflect"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/k8s"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// The short campaign runs in `make test`; `make soak` passes the full figures.
var (
	cycles     = flag.Int("soak.cycles", 60, "ADD/DEL cycles per mode (thin, thick)")
	workers    = flag.Int("soak.workers", 4, "concurrent pods, spread over both nodes")
	faultEvery = flag.Int("soak.fault-every", 5, "every n-th cycle carries a per-pod fault")
	reportFile = flag.String("soak.report", "", "also write the Markdown table to this file")
)

// TestSoak churns pods with two secondary networks through the real plugin, thin and then
// thick mode, with faults injected, and proves that nothing is left behind and new pods work.
func TestSoak(t *testing.T) {
	nstest.RequireRoot(t)
	cluster := kubetest.Cluster(t)
	ctx := context.Background()
	bin := t.TempDir()
	plugin, err := emulation.BuildPlugin(ctx, bin)
	if err != nil {
		t.Fatal(err)
	}
	steerd, err := emulation.BuildCommand(ctx, bin, "steerd")
	if err != nil {
		t.Fatal(err)
	}
	e, err := NewEnv(ctx, EnvOptions{
		Cluster: cluster, Namespace: kubetest.Namespace(t), Dir: t.TempDir(),
		Layout: nstest.BPFRoot(t), Prefix: "sk" + nstest.Suffix(), Plugin: plugin, Steerd: steerd,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	logf := func(format string, args ...any) { t.Logf(format, args...) }
	opts := Options{Cycles: *cycles, Workers: *workers, FaultEvery: *faultEvery, Log: logf}

	// Thin mode: the plugin does everything itself.
	if err := e.UseThin(); err != nil {
		t.Fatal(err)
	}
	// The first pod on a node creates the primary's bridge, which stays: part of the baseline.
	if r := Churn(ctx, e, Options{Mode: "warm-up", Cycles: 2, Workers: 2}); r.ErrorsAll > 0 {
		t.Fatalf("warm-up: %v", r.Errors)
	}
	base := baseline(t, e)
	thin := opts
	thin.Mode, thin.Disrupt = "thin", []Fault{APIServerDown}
	phases := []Phase{{Result: Churn(ctx, e, thin), Leftovers: settle(t, e, base)}}

	// Thick mode: steerd serves the plugin; node 1's daemon runs through the whole phase.
	if err := e.UseThick(ctx); err != nil {
		t.Fatal(err)
	}
	// The first steered pod has steerd load the next pod's collection ahead (datapath.Spares),
	// which it then holds: part of its idle baseline.
	if r := Churn(ctx, e, Options{Mode: "warm-up", Cycles: 2, Workers: 2}); r.ErrorsAll > 0 {
		t.Fatalf("thick warm-up: %v", r.Errors)
	}
	base = baseline(t, e)
	stats := &DaemonStats{Node: 1}
	watched := e.Daemons[1]
	node := e.Topo.Nodes[1]
	if stats.FDsStart, stats.GoroutinesStart, err = Sample(watched, node); err != nil {
		t.Fatal(err)
	}
	thick := opts
	thick.Mode, thick.Disrupt = "thick", []Fault{APIServerDown, SteerdRestarted}
	thick.Warm = func() { stats.RSSStartKiB, _, _ = watched.RSS() }
	res := Churn(ctx, e, thick)
	left := settle(t, e, base)
	stats.RSSEndKiB, _, _ = watched.RSS()
	if stats.FDsEnd, stats.GoroutinesEnd, err = Sample(watched, node); err != nil {
		t.Error(err)
	}
	phases = append(phases, Phase{Result: res, Leftovers: left, Daemon: stats})

	var table bytes.Buffer
	WriteTable(&table, phases)
	t.Logf("soak campaign:\n%s", table.String())
	fmt.Print(table.String())
	if *reportFile != "" {
		head := fmt.Sprintf("# Soak campaign, %s\n\n`make soak`: %d ADD/DEL cycles per mode, %d pods at a time, a per-pod fault every %d cycles; pods with the cluster network and two secondary networks (macvlan, host-local IPv4 + IPv6, steered). Leftovers are counted against the nodes before the churn; latencies are of cycles without a fault.\n\n",
			time.Now().Format("2006-01-02"), *cycles, *workers, *faultEvery)
		if err := os.WriteFile(*reportFile, append([]byte(head), table.Bytes()...), 0o644); err != nil {
			t.Error(err)
		}
	}
	if progs, maps := e.BPF.Recorded(); progs == 0 || maps == 0 {
		t.Errorf("recorded %d BPF programs and %d maps of the campaign: the leftover count is blind", progs, maps)
	} else {
		t.Logf("BPF objects of the campaign: %d programs, %d maps", progs, maps)
	}
	for _, p := range phases {
		for _, pid := range p.Leftovers.Orphans {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, msg := range p.Errors {
			t.Errorf("%s mode: %s", p.Mode, msg)
		}
		if !p.Leftovers.Zero() {
			t.Errorf("%s mode left: %+v", p.Mode, p.Leftovers)
		}
		if p.Cycles != *cycles {
			t.Errorf("%s mode ran %d of %d cycles", p.Mode, p.Cycles, *cycles)
		}
	}
	// A leak grows with the cycles; the apiserver restart alone may leave a client connection
	// with a different number of goroutines behind it. Far fewer goroutines means stopped
	// informers: a cache that no longer follows the cluster.
	const goroutineSlack = 5
	if stats.FDsEnd > stats.FDsStart || abs(stats.GoroutinesEnd-stats.GoroutinesStart) > goroutineSlack {
		t.Errorf("steerd changed while idle: fds %d → %d, goroutines %d → %d",
			stats.FDsStart, stats.FDsEnd, stats.GoroutinesStart, stats.GoroutinesEnd)
	}
	newPodsWork(t, e)
}

// baseline is the inventory once the node has settled: addresses of new links (the primary's
// bridge) finish DAD and add their routes a moment after the link appears.
func baseline(t *testing.T, e *Env) Inventory {
	t.Helper()
	prev := take(t, e)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); {
		time.Sleep(time.Second)
		cur := take(t, e)
		if reflect.DeepEqual(cur, prev) {
			return cur
		}
		prev = cur
	}
	t.Fatalf("the nodes did not settle: %+v", prev)
	return prev
}

func take(t *testing.T, e *Env) Inventory {
	t.Helper()
	inv, err := Take(e.Scope())
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// settle waits (bounded) for what a phase left to go, and returns what remains beyond base.
// Nothing asynchronous should remain; the wait only covers steerd's GC tick.
func settle(t *testing.T, e *Env, base Inventory) Inventory {
	t.Helper()
	var left Inventory
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		if left = take(t, e).Sub(base); left.Zero() {
			return left
		}
	}
	for _, obj := range []string{"prog", "map"} {
		out, _ := exec.Command("bpftool", obj, "show").CombinedOutput()
		t.Logf("bpftool %s show:\n%s", obj, out)
	}
	for _, n := range e.Topo.Nodes {
		out, _ := exec.Command("ip", "-n", n.Name(), "-d", "-all", "route", "show", "table", "all").CombinedOutput()
		o6, _ := exec.Command("ip", "-n", n.Name(), "-6", "-d", "route", "show", "table", "all").CombinedOutput()
		t.Logf("routes in %s:\n%s\n%s", n.Name(), out, o6)
	}
	return left
}

// newPodsWork: after the campaign, a pod on each node is reachable through its secondary
// network from the remote client, so steering works again end to end.
func newPodsWork(t *testing.T, e *Env) {
	ctx := context.Background()
	nads, err := k8s.NewNADClientForConfig(e.Cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := emulation.ApplyExamples(ctx, nads, e.Namespace); err != nil {
		t.Fatal(err)
	}
	for node := range e.Kubelets {
		a4, a6 := emulation.DMZ.Addr(40 + node)
		pod, err := e.Kubelets[node].RunPod(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("after-%d", node), Namespace: e.Namespace,
			Annotations: map[string]string{k8s.NetworksAnnotation: fmt.Sprintf(`[{"name":"dmz","ips":["%s/24","%s/64"]}]`, a4, a6)},
		}})
		if err != nil {
			t.Fatalf("node %d: pod after the campaign: %v", node, err)
		}
		t.Cleanup(func() { _ = e.Kubelets[node].StopPod(ctx, pod) })
		echo, err := emulation.StartEcho(pod.NS)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(echo.Close)
		for _, a := range []netip.Addr{a4, a6} {
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := emulation.ProbeTCP(pctx, e.Topo.Client, netip.AddrPortFrom(a, emulation.EchoTCPPort))
			cancel()
			if err != nil {
				t.Errorf("node %d: remote client → %s through net1 after the campaign: %v", node, a, err)
			}
		}
	}
}

func abs(n int) int { return max(n, -n) }
