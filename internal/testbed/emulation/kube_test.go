package emulation

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/k8s"
)

func TestMain(m *testing.M) {
	kubetest.Main(m, func() {
		if plugin.dir != "" {
			_ = os.RemoveAll(plugin.dir) // the plugin and steerd binaries
		}
	})
}

var plugin struct {
	once sync.Once
	path string
	err  error
	dir  string
}

// steerPlugin builds the plugin once per test binary.
func steerPlugin(t *testing.T) string {
	plugin.once.Do(func() {
		plugin.dir, plugin.err = tempDirOutsideTest()
		if plugin.err == nil {
			plugin.path, plugin.err = BuildPlugin(context.Background(), plugin.dir)
		}
	})
	if plugin.err != nil {
		t.Fatal(plugin.err)
	}
	return plugin.path
}

// kubeEnv is a namespace in the real apiserver with the examples applied, and kubelets for both
// emulated nodes with Steer installed the way steerd installs it.
type kubeEnv struct {
	ns       string
	topo     *Topology
	kubelets [2]*Kubelet
	bpfRoot  string // the nodes' pin root
}

func newKubeEnv(t *testing.T, steer bool) *kubeEnv {
	return newKubeEnvOf(t, steer, DualStack)
}

// newKubeEnvOf is newKubeEnv with a primary network of the given address families.
func newKubeEnvOf(t *testing.T, steer bool, fams Families) *kubeEnv {
	cluster := kubetest.Cluster(t)
	ctx := context.Background()
	e := &kubeEnv{ns: kubetest.Namespace(t), topo: topology(t)}
	nads, err := k8s.NewNADClientForConfig(cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := ApplyExamples(ctx, nads, e.ns); err != nil {
		t.Fatal(err)
	}
	layout := nstest.BPFRoot(t)
	e.bpfRoot = layout.Root
	apiAddr := strings.TrimPrefix(cluster.Host(), "https://")
	for i := range e.kubelets {
		fwd, err := ForwardAPI(e.topo.Nodes[i], apiAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = fwd.Close() })
		host, err := NewHostRootOf(t.TempDir(), i, fams)
		if err != nil {
			t.Fatal(err)
		}
		err = host.InstallSteer(steerPlugin(t), SteerOptions{Kubeconfig: cluster.Kubeconfig(), BPFFSRoot: layout.Root, Steering: steer})
		if err != nil {
			t.Fatal(err)
		}
		e.kubelets[i] = NewKubelet(e.topo, i, host, cluster.Client(), "st")
	}
	return e
}

func (e *kubeEnv) run(t *testing.T, node int, name, networks string) *Pod {
	t.Helper()
	pod, err := e.runE(t, node, name, networks)
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// runE creates a pod and registers its removal; safe to call from any goroutine.
func (e *kubeEnv) runE(t *testing.T, node int, name, networks string) (*Pod, error) {
	return e.runObject(t, node, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{
		Name: name, Namespace: e.ns, Annotations: map[string]string{k8s.NetworksAnnotation: networks},
	}})
}

// runObject is runE with the pod object given (its namespace is the env's).
func (e *kubeEnv) runObject(t *testing.T, node int, obj *corev1.Pod) (*Pod, error) {
	obj = obj.DeepCopy()
	obj.Namespace = e.ns
	pod, err := e.kubelets[node].RunPod(context.Background(), obj)
	if err != nil {
		return nil, fmt.Errorf("run pod %s: %w", obj.Name, err)
	}
	t.Cleanup(func() {
		if err := e.kubelets[node].StopPod(context.Background(), pod); err != nil {
			t.Errorf("stop pod %s: %v", obj.Name, err)
		}
	})
	return pod, nil
}

// TestPluginSeed002: the same return-traffic case, with the pod created through the apiserver
// and the steer plugin as a runtime calls it, the NAD from examples/, and the network-status
// annotation read back.
func TestPluginSeed002(t *testing.T) {
	for _, steer := range modes() {
		t.Run(modeName(steer), func(t *testing.T) {
			e := newKubeEnv(t, steer)
			a4, a6 := DMZ.Addr(20)
			pod := e.run(t, 0, "web", ipsAnnotation("dmz", a4, a6))
			startEcho(t, pod)
			expectProbes(t, e.topo, "lanhost", true, a4, a6)
			expectProbes(t, e.topo, "client", steer, a4, a6)

			got, err := kubetest.Cluster(t).Client().CoreV1().Pods(e.ns).Get(context.Background(), "web", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			var status []k8s.NetworkStatus
			if err := json.Unmarshal([]byte(got.Annotations[k8s.NetworkStatusAnnotation]), &status); err != nil {
				t.Fatalf("network-status %q: %v", got.Annotations[k8s.NetworkStatusAnnotation], err)
			}
			if len(status) != 2 || status[1].Interface != "net1" || status[1].Name != e.ns+"/dmz" || len(status[1].IPs) != 2 {
				t.Errorf("network-status = %+v", status)
			}
		})
	}
}

// ipsAnnotation selects network with static addresses, as users write it.
func ipsAnnotation(network string, a4, a6 netip.Addr) string {
	return fmt.Sprintf(`[{"name":%q,"ips":["%s/24","%s/64"]}]`, network, a4, a6)
}
