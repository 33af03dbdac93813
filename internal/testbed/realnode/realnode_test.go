package realnode_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/localcluster"
	"github.com/steernet/steer/internal/testbed/realnode"
	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/k8s"
)

var long = flag.Bool("realnode.long", false, "also run the long cases (make soak): restarts and rollouts under traffic")

// env is one real node with Steer deployed, shared by a test's cases.
type env struct {
	cluster *localcluster.Cluster
	node    *realnode.Node
	client  kubernetes.Interface
	ns      string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	nstest.RequireRoot(t)
	tarball, err := realnode.SteerImageTarball()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, nil))
	cluster, err := localcluster.Start(ctx, localcluster.Options{Logger: log, ExtraAPIServerArgs: realnode.APIServerArgs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := cluster.Stop(); err != nil {
			t.Errorf("stop cluster: %v", err)
		}
	})
	start := time.Now()
	node, err := realnode.Start(ctx, cluster, realnode.Options{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, node)
		}
		if err := node.Stop(); err != nil {
			t.Errorf("stop node: %v", err)
		}
		if left := node.Leftovers(); len(left) > 0 {
			t.Errorf("the node left: %s", strings.Join(left, "; "))
		}
	})
	t.Logf("node %s Ready after %s", node.Name(), time.Since(start).Round(time.Millisecond))
	e := &env{cluster: cluster, node: node, client: cluster.Client(), ns: "realnode-" + nstest.Suffix()}

	deployed := time.Now()
	if err := node.LoadSteerImage(ctx, tarball, "v1"); err != nil {
		t.Fatal(err)
	}
	if err := node.ApplySteer(ctx, node.Images().Steer); err != nil {
		t.Fatal(err)
	}
	if err := node.WaitSteerRolledOut(ctx, node.Images().Steer); err != nil {
		t.Fatal(err)
	}
	t.Logf("Steer's DaemonSet rolled out after %s", time.Since(deployed).Round(time.Millisecond))

	if _, err := e.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: e.ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	nads, err := k8s.NewNADClientForConfig(cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := emulation.ApplyExamples(ctx, nads, e.ns); err != nil {
		t.Fatal(err)
	}
	// The control: the DMZ with Steer's steering off, Steer as a plain Multus replacement.
	dmz, err := nads.Get(ctx, e.ns, "dmz")
	if err != nil {
		t.Fatal(err)
	}
	var conf map[string]any
	if err := json.Unmarshal([]byte(dmz.Spec.Config), &conf); err != nil {
		t.Fatal(err)
	}
	conf["name"], conf["steer"] = "dmz-unsteered", map[string]any{"steering": false}
	b, err := json.Marshal(conf)
	if err != nil {
		t.Fatal(err)
	}
	unsteered := *dmz
	unsteered.ObjectMeta = metav1.ObjectMeta{Name: "dmz-unsteered", Namespace: e.ns}
	unsteered.Spec.Config = string(b)
	if _, err := nads.Create(ctx, &unsteered); err != nil {
		t.Fatal(err)
	}
	// Service-account admission wants the namespace's default account, which the
	// controller-manager creates.
	waitFor(t, ctx, "default service account", func() error {
		_, err := e.client.CoreV1().ServiceAccounts(e.ns).Get(ctx, "default", metav1.GetOptions{})
		return err
	})
	return e
}

// runPod creates an echo pod selecting networks and waits until kubelet reports it Ready.
func (e *env) runPod(t *testing.T, name, networks string) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "echo", Image: e.node.Images().Echo, ImagePullPolicy: corev1.PullNever,
			}},
			AutomountServiceAccountToken:  new(bool),
			TerminationGracePeriodSeconds: new(int64),
		},
	}
	if networks != "" {
		pod.Annotations = map[string]string{k8s.NetworksAnnotation: networks}
	}
	if _, err := e.client.CoreV1().Pods(e.ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	defer func() { t.Logf("pod %s Ready after %s", name, time.Since(start).Round(time.Millisecond)) }()
	var got *corev1.Pod
	waitFor(t, ctx, "pod "+name+" ready", func() (err error) {
		if got, err = e.client.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{}); err != nil {
			return err
		}
		for _, c := range got.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("pod %s is %s: %s", name, got.Status.Phase, e.podEvents(ctx, name))
	})
	return got
}

// podEvents summarises a pod's events, for failures (a sandbox that failed CNI ADD says why).
func (e *env) podEvents(ctx context.Context, name string) string {
	evs, err := e.client.CoreV1().Events(e.ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + name})
	if err != nil {
		return err.Error()
	}
	var out []string
	for _, ev := range evs.Items {
		out = append(out, ev.Reason+": "+ev.Message)
	}
	if len(out) > 3 {
		out = out[len(out)-3:]
	}
	return strings.Join(out, " | ")
}

// deletePod deletes a pod and waits until its sandbox is stopped (its CNI DEL follows at once).
func (e *env) deletePod(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.client.CoreV1().Pods(e.ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	waitFor(t, ctx, "pod "+name+" gone", func() error {
		if _, err := e.client.CoreV1().Pods(e.ns).Get(ctx, name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("pod %s still exists (%v)", name, err)
		}
		sbs, err := e.node.Sandboxes(ctx)
		if err != nil {
			return err
		}
		// Stopped is enough: stopping ran CNI DEL and removed the network namespace; kubelet
		// removes dead sandboxes later, in its garbage collection.
		for _, sb := range sbs {
			if sb.Namespace == e.ns && sb.Name == name && sb.State == "SANDBOX_READY" {
				return fmt.Errorf("sandbox %s of pod %s still running", sb.ID, name)
			}
		}
		return nil
	})
}

// sandbox returns the id and network namespace of a running pod's sandbox.
func (e *env) sandbox(t *testing.T, name string) (string, ns.NetNS) {
	t.Helper()
	ctx := context.Background()
	sbs, err := e.node.Sandboxes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sb := range sbs {
		if sb.Namespace == e.ns && sb.Name == name && sb.State == "SANDBOX_READY" {
			path, err := e.node.SandboxNetNS(ctx, sb.ID)
			if err != nil {
				t.Fatal(err)
			}
			n, err := ns.GetNS(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = n.Close() })
			return sb.ID, n
		}
	}
	t.Fatalf("no ready sandbox for pod %s", name)
	return "", nil
}

// expectReachable probes addr from the remote client (through the router: replies must leave by
// the DMZ) and from the host on the LAN.
func (e *env) expectReachable(t *testing.T, addr netip.Addr) {
	t.Helper()
	ctx := context.Background()
	lan := e.node.LAN()
	for _, from := range []struct {
		name string
		n    ns.NetNS
	}{{"client", lan.Client}, {"lanhost", lan.Host}} {
		for _, p := range []emulation.Probe{emulation.ICMP, emulation.TCP, emulation.UDP} {
			name := from.n.(interface{ Name() string }).Name()
			if err := p.Run(ctx, from.n, name, addr); err != nil {
				t.Errorf("%s -> %s %s: %v", from.name, addr, p, err)
			}
		}
	}
}

// expectUnreachableFromClient checks the control: without steering the remote client gets no
// reply (it leaves by eth0, where nothing routes it).
func (e *env) expectUnreachableFromClient(t *testing.T, addr netip.Addr) {
	t.Helper()
	err := emulation.ProbeUDP(context.Background(), e.node.LAN().Client, netip.AddrPortFrom(addr, emulation.EchoUDPPort))
	if !emulation.IsTimeout(err) {
		t.Errorf("client -> %s udp without steering: %v, want no reply", addr, err)
	}
}

func networkStatus(t *testing.T, pod *corev1.Pod) []k8s.NetworkStatus {
	t.Helper()
	var status []k8s.NetworkStatus
	if err := json.Unmarshal([]byte(pod.Annotations[k8s.NetworkStatusAnnotation]), &status); err != nil {
		t.Fatalf("network-status %q: %v", pod.Annotations[k8s.NetworkStatusAnnotation], err)
	}
	return status
}

func ipsAnnotation(network string, a4, a6 netip.Addr) string {
	return fmt.Sprintf(`[{"name":%q,"ips":["%s/24","%s/64"]}]`, network, a4, a6)
}

func waitFor(t *testing.T, ctx context.Context, what string, f func() error) {
	t.Helper()
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// pinsOf lists Steer's pins of a container (empty once it is gone).
func pinsOf(id string) []string {
	entries, _ := os.ReadDir("/sys/fs/bpf/steer/" + id)
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

func dumpLogs(t *testing.T, node *realnode.Node) {
	containerLogs, _ := filepath.Glob(filepath.Join(node.Dir(), "pod-logs", "*", "*", "*.log"))
	for _, f := range append([]string{"kubelet.log", "containerd.log"}, containerLogs...) {
		if !filepath.IsAbs(f) {
			f = filepath.Join(node.Dir(), f)
		}
		b, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > 40 {
			lines = lines[len(lines)-40:]
		}
		t.Logf("--- %s (last lines)\n%s", f, strings.Join(lines, "\n"))
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
