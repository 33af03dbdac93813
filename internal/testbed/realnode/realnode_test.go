package realnode_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	corev1 "k8s.io/api/core/v1"
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

// envOptions shape a test's node and how Steer is deployed on it.
type envOptions struct {
	node realnode.Options // its Logger is the test's
	// helm, when set, deploys Steer with the Helm chart and these values (`--set mode=thin`),
	// else with the kustomize manifests.
	helm []string
}

func newEnv(t *testing.T) *env { return newEnvWith(t, envOptions{}) }

func newEnvWith(t *testing.T, opts envOptions) *env {
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
	opts.node.Logger = log
	node, err := realnode.Start(ctx, cluster, opts.node)
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
	if opts.helm != nil {
		helm, err := realnode.Helm()
		if err != nil {
			t.Fatal(err)
		}
		cmd, err := node.HelmSteer(ctx, helm, node.Images().Steer, opts.helm...)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("$ %s", cmd)
	} else if err := node.ApplySteer(ctx, node.Images().Steer); err != nil {
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
	if err := node.WaitNamespaceReady(ctx, e.ns); err != nil {
		t.Fatal(err)
	}
	return e
}

// runPod creates an echo pod selecting networks and waits until kubelet reports it Ready.
func (e *env) runPod(t *testing.T, name, networks string) *realnode.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	pod, err := e.node.RunPod(ctx, e.node.EchoPod(e.ns, name, networks, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("pod %s Ready after %s", name, time.Since(start).Round(time.Millisecond))
	// Ready comes before duplicate address detection ends (about a second after ADD, up to two
	// with its random delay): until then the pod answers no neighbour solicitation for its IPv6
	// addresses, and probes from a router time out whatever Steer does.
	waitFor(t, ctx, "the pod's IPv6 addresses to settle", func() error {
		out, err := exec.CommandContext(ctx, "nsenter", "--net="+pod.NetNS, "ip", "-6", "-o", "addr", "show", "tentative").CombinedOutput()
		if err != nil {
			return fmt.Errorf("%w: %s", err, out)
		}
		if s := strings.TrimSpace(string(out)); s != "" {
			return fmt.Errorf("tentative: %s", s)
		}
		return nil
	})
	return pod
}

// deletePod deletes a pod and waits until its sandbox is stopped (its CNI DEL follows at once).
func (e *env) deletePod(t *testing.T, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := e.node.DeletePod(ctx, e.ns, name); err != nil {
		t.Fatal(err)
	}
}

// deleteLeavingNothing deletes a pod and waits until its network is gone: no pin, network
// namespace or entry of Steer's cache left.
func (e *env) deleteLeavingNothing(t *testing.T, pod *realnode.Pod) {
	t.Helper()
	e.deletePod(t, pod.Object.Name)
	// Stopping the sandbox runs CNI DEL and removes its network namespace right after.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	id := pod.SandboxID
	waitFor(t, ctx, "the pod's network to be gone", func() error {
		if left := pinsOf(id); len(left) > 0 {
			return fmt.Errorf("pins left after the pod's deletion: %v", left)
		}
		if _, err := os.Stat(pod.NetNS); !os.IsNotExist(err) {
			return fmt.Errorf("network namespace %s left: %v", pod.NetNS, err)
		}
		if left, _ := filepath.Glob(filepath.Join("/var/lib/cni/steer", id+"*")); len(left) > 0 {
			return fmt.Errorf("Steer's cache left: %v", left)
		}
		return nil
	})
}

// netns opens a running pod's network namespace.
func netns(t *testing.T, pod *realnode.Pod) ns.NetNS {
	t.Helper()
	n, err := ns.GetNS(pod.NetNS)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
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

// expectReachesClient checks the other direction: the pod opens TCP and UDP exchanges with the
// remote client, over IPv6 (which the IPv4-only cluster network lacks) by the default route
// Steer gives it through the DMZ, and over IPv4 from its DMZ address, which Steer sends via the
// DMZ's gateway. With steering off (want false) none gets through.
func (e *env) expectReachesClient(t *testing.T, podNS ns.NetNS, dmz4 netip.Addr, want bool) {
	t.Helper()
	echo, err := emulation.StartEcho(e.node.LAN().Client)
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	for _, c := range []struct {
		from netip.Addr // unset: the kernel picks
		to   netip.Addr
	}{{netip.Addr{}, emulation.Client6}, {dmz4, emulation.Client4}} {
		for network, port := range map[string]uint16{"tcp": emulation.EchoTCPPort, "udp": emulation.EchoUDPPort} {
			err := exchange(podNS, network, c.from, netip.AddrPortFrom(c.to, port))
			if want && err != nil {
				t.Errorf("pod (from %v) -> client %s: %v", c.from, network, err)
			}
			if !want && err == nil {
				t.Errorf("pod (from %v) -> client %s answered with steering off: the control shows nothing", c.from, network)
			}
		}
	}
}

// exchange sends a line from n (from a local address, when set) to an echo server at to and
// expects it back.
func exchange(n ns.NetNS, network string, from netip.Addr, to netip.AddrPort) error {
	d := net.Dialer{Timeout: emulation.ProbeTimeout}
	if from.IsValid() {
		if network == "tcp" {
			d.LocalAddr = &net.TCPAddr{IP: from.AsSlice()}
		} else {
			d.LocalAddr = &net.UDPAddr{IP: from.AsSlice()}
		}
	}
	var c net.Conn
	if err := n.Do(func(ns.NetNS) (err error) {
		c, err = d.Dial(network, to.String())
		return err
	}); err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(emulation.ProbeTimeout))
	msg := []byte("steer probe\n")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		return fmt.Errorf("no reply: %w", err)
	}
	return nil
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
