package node

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"github.com/steernet/steer/internal/testbed/localcluster"
	"github.com/steernet/steer/internal/testbed/realnode"
	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/api"
	"github.com/steernet/steer/pkg/install"
	"github.com/steernet/steer/pkg/k8s"
)

var (
	podsPerRow  = flag.Int("pods", 20, "measured pods per row and peer (after one unmeasured pod each)")
	out         = flag.String("out", "", "write the results (markdown) to this file as well as to stdout")
	only        = flag.String("peers", "", "measure only these peers (comma-separated) next to the baseline; default all")
	multusThick = flag.Bool("multus-thick", true, "also measure Multus' thick plugin (multus-daemon and multus-shim)")
)

// multusVersion is the Multus release measured next to Steer; hack/install-multus.sh builds it.
const multusVersion = "v4.3.0"

// maxSecondaries is the largest number of secondary networks a pod gets.
const maxSecondaries = 2

// steerAside is the host directory Steer's DaemonSet uses as its CNI conf dir here.
const steerAside = "/etc/cni/steer-aside"

// peer is one network the node runs pods with.
type peer struct {
	name, about string
	file        string // its config's name in /etc/cni/net.d
	conf        []byte
	meta        bool   // a meta plugin: rows with secondaries; else the baseline, row 0 only
	versus      string // the peer Steer's goals compare it with
}

// sample is one pod's figures.
type sample struct{ add, del, ready, gone time.Duration }

func BenchmarkNode(b *testing.B) { run(b, *podsPerRow) }

func run(tb testing.TB, pods int) {
	nstest.RequireRoot(tb)
	h := newHarness(tb)
	jobs := h.jobs()
	samples := map[string][][]sample{} // [peer][k]
	for _, p := range h.peers {
		samples[p.name] = make([][]sample, maxSecondaries+1)
	}
	start := time.Now()
	// Round -1 warms every peer and row up (first use of a binary, a config, a NAD) unmeasured;
	// then the order rotates from round to round, so each peer follows each other.
	for round := -1; round < pods; round++ {
		for j := range jobs {
			job := jobs[(j+max(round, 0))%len(jobs)]
			name := fmt.Sprintf("%s-k%d-%d", job.peer.name, job.k, round+1)
			s, err := h.once(job.peer, job.k, name)
			if err != nil {
				tb.Fatalf("%s: %v", name, err)
			}
			if round >= 0 {
				samples[job.peer.name][job.k] = append(samples[job.peer.name][job.k], s)
			}
		}
	}
	elapsed := time.Since(start)
	res := render(h, samples, pods, elapsed)
	fmt.Print(res)
	if *out != "" {
		if err := os.WriteFile(*out, []byte(res), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}

// harness is the node with every peer installed.
type harness struct {
	node   *realnode.Node
	client kubernetes.Interface
	ns     string
	peers  []peer
}

func newHarness(tb testing.TB) *harness {
	tb.Helper()
	tarball, err := realnode.SteerImageTarball()
	if err != nil {
		tb.Fatal(err)
	}
	multusDir := buildMultus(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cluster, err := localcluster.Start(ctx, localcluster.Options{Logger: log, ExtraAPIServerArgs: realnode.APIServerArgs})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := cluster.Stop(); err != nil {
			tb.Errorf("stop cluster: %v", err)
		}
	})
	node, err := realnode.Start(ctx, cluster, realnode.Options{Logger: log})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if tb.Failed() {
			for _, f := range []string{"kubelet.log", "containerd.log", "multus-daemon.log"} {
				tb.Logf("--- %s (last lines)\n%s", f, tail(filepath.Join(node.Dir(), f), 30))
			}
		}
		if err := node.Stop(); err != nil {
			tb.Errorf("stop node: %v", err)
		}
		if left := node.Leftovers(); len(left) > 0 {
			tb.Errorf("the node left: %s", strings.Join(left, "; "))
		}
	})
	multus, err := node.InstallMultus(ctx, multusDir, *multusThick)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := multus.Close(); err != nil {
			tb.Errorf("stop multus-daemon: %v", err)
		}
	})
	if err := node.LoadSteerImage(ctx, tarball, "bench"); err != nil {
		tb.Fatal(err)
	}
	image := node.Images().Steer
	if err := node.ApplySteerAside(ctx, image, steerAside); err != nil {
		tb.Fatal(err)
	}
	if err := node.WaitSteerAside(ctx, image, steerAside); err != nil {
		tb.Fatal(err)
	}
	thick, err := os.ReadFile(realnode.SteerAsideConfig(steerAside))
	if err != nil {
		tb.Fatal(err)
	}
	thin, err := withoutSocket(thick)
	if err != nil {
		tb.Fatal(err)
	}
	h := &harness{node: node, client: cluster.Client(), ns: "node-bench-" + nstest.Suffix()}
	h.peers = []peer{
		{name: "cluster", about: "the cluster network's bridge conflist alone, no meta plugin (the baseline)",
			file: realnode.ClusterConfigName},
		{name: "steer-thick", about: "Steer's DaemonSet (kustomize manifests): its shim hands each call to steerd", file: install.ConfigName,
			conf: thick, meta: true, versus: "multus-thick"},
		{name: "steer-thin", about: "the same config without socketPath, the plugin instead of its shim (Helm's mode: thin): the plugin does the work", file: install.ConfigName,
			conf: thin, meta: true, versus: "multus-thin"},
		{name: "multus-thin", about: "Multus " + multusVersion + " thin plugin: 00-multus.conf, its kubeconfig and RBAC", file: realnode.MultusConfigName,
			conf: multus.Thin, meta: true},
	}
	if *multusThick {
		h.peers = append(h.peers, peer{name: "multus-thick", about: "Multus " + multusVersion + " thick plugin: multus-shim, multus-daemon as a host process",
			file: realnode.MultusConfigName, conf: multus.Thick, meta: true})
	} else {
		h.peers[1].versus = ""
	}
	if *only != "" {
		want := strings.Split(*only, ",")
		h.peers = slices.DeleteFunc(h.peers, func(p peer) bool { return p.meta && !slices.Contains(want, p.name) })
		for i := range h.peers {
			if !slices.ContainsFunc(h.peers, func(q peer) bool { return q.name == h.peers[i].versus }) {
				h.peers[i].versus = ""
			}
		}
	}
	client := cluster.Client()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: h.ns}}, metav1.CreateOptions{}); err != nil {
		tb.Fatal(err)
	}
	nads, err := k8s.NewNADClientForConfig(cluster.RESTConfig())
	if err != nil {
		tb.Fatal(err)
	}
	for i := 1; i <= maxSecondaries; i++ {
		conf := fmt.Sprintf(`{"cniVersion":"1.0.0","name":"%s","type":"macvlan","master":%q,"mode":"bridge","capabilities":{"ips":true},"ipam":{"type":"static"}}`,
			secondary(i), realnode.Uplink)
		if _, err := nads.Create(ctx, &k8s.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: secondary(i), Namespace: h.ns},
			Spec: k8s.NetworkAttachmentDefinitionSpec{Config: conf}}); err != nil {
			tb.Fatal(err)
		}
	}
	if err := node.WaitNamespaceReady(ctx, h.ns); err != nil {
		tb.Fatal(err)
	}
	return h
}

// buildMultus builds Multus (cached) and returns the directory of its binaries.
func buildMultus(tb testing.TB) string {
	tb.Helper()
	cmd := exec.Command("../../hack/install-multus.sh")
	cmd.Env = append(os.Environ(), "MULTUS_VERSION="+multusVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("install Multus: %v\n%s", err, out)
	}
	cache, err := localcluster.CacheDir()
	if err != nil {
		tb.Fatal(err)
	}
	return filepath.Join(cache, "multus", multusVersion)
}

// withoutSocket is Steer's config with its plugin's socketPath removed and the plugin itself
// named instead of its shim: thin mode, as steerd renders it without a socket.
func withoutSocket(conf []byte) ([]byte, error) {
	var c map[string]any
	if err := json.Unmarshal(conf, &c); err != nil {
		return nil, err
	}
	plugins, _ := c["plugins"].([]any)
	for _, p := range plugins {
		if m, ok := p.(map[string]any); ok {
			if typ, _ := m["type"].(string); api.IsSteerType(typ) {
				if _, ok := m["socketPath"]; !ok {
					return nil, errors.New("Steer's config has no socketPath: not thick mode")
				}
				delete(m, "socketPath")
				m["type"] = api.PluginBinary
				return json.Marshal(c)
			}
		}
	}
	return nil, errors.New("Steer's config has no steer plugin")
}

// secondary is the i-th secondary network: a macvlan on the DMZ uplink.
func secondary(i int) string { return fmt.Sprintf("bench-net-%d", i) }

// secondaryAddrs are the secondaries' addresses: one pod runs at a time. Nothing on the LAN
// uses them.
var secondaryAddrs = []string{"192.0.2.200/24", "198.51.100.200/24"}

// networks is the networks annotation of a pod with k secondaries.
func networks(k int) string {
	if k == 0 {
		return ""
	}
	var sel []map[string]any
	for i := 1; i <= k; i++ {
		sel = append(sel, map[string]any{"name": secondary(i), "ips": []string{secondaryAddrs[i-1]}})
	}
	b, _ := json.Marshal(sel)
	return string(b)
}

type job struct {
	peer peer
	k    int
}

// jobs is one round: every peer with every row it has.
func (h *harness) jobs() []job {
	var jobs []job
	for k := 0; k <= maxSecondaries; k++ {
		for _, p := range h.peers {
			if k == 0 || p.meta {
				jobs = append(jobs, job{p, k})
			}
		}
	}
	return jobs
}

// once runs one pod with k secondaries on p's network: create, Ready, delete, gone.
func (h *harness) once(p peer, k int, name string) (s sample, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n := h.node
	if err := n.UseCNIConfig(ctx, p.file, p.conf); err != nil {
		return s, err
	}
	pods := h.client.CoreV1().Pods(h.ns)
	w, err := pods.Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		return s, err
	}
	defer w.Stop()
	pod := n.EchoPod(h.ns, name, networks(k), nil)
	pod.Spec.NodeName = n.Name() // bound here: the scheduler's delay is not the network's
	before, err := n.CNIOps(ctx)
	if err != nil {
		return s, err
	}
	start := time.Now()
	if _, err := pods.Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		return s, err
	}
	if err := waitEvent(ctx, w, func(ev watch.Event) bool {
		p, ok := ev.Object.(*corev1.Pod)
		return ok && ready(p)
	}); err != nil {
		return s, fmt.Errorf("waiting for Ready: %w", err)
	}
	s.ready = time.Since(start)
	added, err := n.CNIOps(ctx)
	if err != nil {
		return s, err
	}
	d := added.Sub(before)
	if d.SetUps != 1 {
		return s, fmt.Errorf("containerd set up %d networks for one pod (a failed ADD is retried)", d.SetUps)
	}
	s.add = d.SetUpTime
	sandbox, err := h.sandboxOf(ctx, name)
	if err != nil {
		return s, err
	}
	start = time.Now()
	if err := pods.Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return s, err
	}
	if err := waitEvent(ctx, w, func(ev watch.Event) bool { return ev.Type == watch.Deleted }); err != nil {
		return s, fmt.Errorf("waiting for the pod to go: %w", err)
	}
	// The pod object goes at once (no grace period); kubelet then stops the containers and the
	// sandbox, and containerd tears the network down and removes the netns last.
	var d2 realnode.CNIOps
	for {
		deleted, err := n.CNIOps(ctx)
		if err != nil {
			return s, err
		}
		if d2 = deleted.Sub(added); d2.TearDowns > 0 {
			break
		}
		if ctx.Err() != nil {
			return s, fmt.Errorf("sandbox %s not torn down after its pod was deleted", sandbox)
		}
		time.Sleep(5 * time.Millisecond)
	}
	s.gone = time.Since(start)
	if d2.TearDowns != 1 {
		return s, fmt.Errorf("containerd tore down %d networks for one pod", d2.TearDowns)
	}
	d = d2
	s.del = d.TearDownTime
	// kubelet would remove the stopped sandbox at its next garbage collection, and containerd
	// call DEL once more then, with whatever network is loaded: done here, for this peer, and
	// outside the figures.
	// kubelet removes the pod's containers meanwhile, which the removal may run into: retried.
	for {
		out, err := n.Crictl(ctx, "rmp", sandbox)
		if err == nil || strings.Contains(out, "not found") {
			return s, nil
		}
		if ctx.Err() != nil {
			return s, fmt.Errorf("remove sandbox %s: %w: %s", sandbox, err, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (h *harness) sandboxOf(ctx context.Context, name string) (string, error) {
	sbs, err := h.node.Sandboxes(ctx)
	if err != nil {
		return "", err
	}
	for _, sb := range sbs {
		if sb.Namespace == h.ns && sb.Name == name && sb.State == "SANDBOX_READY" {
			return sb.ID, nil
		}
	}
	return "", fmt.Errorf("pod %s is Ready without a ready sandbox", name)
}

func ready(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// waitEvent waits for an event of w that done accepts.
func waitEvent(ctx context.Context, w watch.Interface, done func(watch.Event) bool) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case ev, ok := <-w.ResultChan():
			if !ok {
				return errors.New("the watch ended")
			}
			if ev.Type == watch.Error {
				return fmt.Errorf("watch: %v", ev.Object)
			}
			if done(ev) {
				return nil
			}
		}
	}
}

func tail(path string, lines int) string {
	b, _ := os.ReadFile(path)
	l := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(l[max(0, len(l)-lines):], "\n")
}
