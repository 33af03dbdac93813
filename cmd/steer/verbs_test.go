package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testbed/cninode"
	"github.com/steernet/steer/internal/testbed/localcluster"
	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/k8s"
)

// destroyNetNS removes a pod's namespace the way a crashed runtime might, before any DEL.
func destroyNetNS(t *testing.T, p *cninode.Pod) {
	t.Helper()
	if err := p.NetNS.Close(); err != nil {
		t.Fatal(err)
	}
	if err := testutils.UnmountNS(p.NetNS); err != nil {
		t.Fatal(err)
	}
}

func TestDelIdempotentAndNetnsGone(t *testing.T) {
	f := setup(t)
	conf := f.conf(t, nil)
	p := f.pod(t, "lan,mgmt")
	f.MustAdd(t, p, conf)
	if len(f.IPAMAllocations(t)) != 3 {
		t.Fatalf("allocations %v", f.IPAMAllocations(t))
	}
	// The pod object is gone too, and its namespace: DEL needs neither.
	if err := f.Client.CoreV1().Pods(p.Namespace).Delete(context.Background(), p.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	destroyNetNS(t, p)
	for i := range 2 {
		if err := f.Del(t, p, conf, true); err != nil {
			t.Fatalf("DEL %d without netns: %v", i, err)
		}
	}
	f.AssertClean(t)
	// A container steer never saw.
	q := &cninode.Pod{Namespace: f.ns, Name: "ghost", ContainerID: "never-added", NetNS: p.NetNS}
	if err := f.Del(t, q, conf, true); err != nil {
		t.Errorf("DEL of an unknown container: %v", err)
	}
}

func TestCheckDetectsMissingInterface(t *testing.T) {
	f := setup(t)
	conf := f.conf(t, nil)
	p := f.pod(t, "lan,mgmt")
	f.MustAdd(t, p, conf)
	if err := f.Check(t, p, conf); err != nil {
		t.Fatalf("CHECK of a healthy pod: %v", err)
	}
	err := p.NetNS.Do(func(ns.NetNS) error {
		l, err := netlink.LinkByName("net2")
		if err != nil {
			return err
		}
		return netlink.LinkDel(l)
	})
	if err != nil {
		t.Fatal(err)
	}
	err = f.Check(t, p, conf)
	if err == nil || !strings.Contains(err.Error(), `network "`+f.ns+`/mgmt" (net2)`) {
		t.Errorf("CHECK after net2 vanished: %v", err)
	}
	// DEL copes with the missing interface.
	f.del(t, p, conf)
}

// closedPort is a loopback port in the node namespace that nothing listens on.
func closedPort(t *testing.T, host ns.NetNS) string {
	var addr string
	err := host.Do(func(ns.NetNS) error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr = ln.Addr().String()
		return ln.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

func TestDelWithApiserverUnreachable(t *testing.T) {
	f := setup(t)
	conf := f.conf(t, nil)
	p := f.pod(t, "lan")
	f.MustAdd(t, p, conf)

	dead := cninode.WriteKubeconfig(t, filepath.Join(f.Dir, "dead.kubeconfig"), "https://"+closedPort(t, f.Host), nil, "x")
	deadConf := f.conf(t, map[string]any{"kubeconfig": dead})
	start := time.Now()
	_, err := f.Add(t, f.NewPod(t, f.ns, "never", map[string]string{k8s.NetworksAnnotation: "lan"}), deadConf)
	if te := cninode.CNIError(t, err); te.Code != types.ErrTryAgainLater || !strings.Contains(te.Msg, "connection refused") {
		t.Errorf("ADD with the apiserver down: %+v", te)
	}
	t.Logf("ADD failed after %s", time.Since(start))
	if err := f.Del(t, p, deadConf, false); err != nil {
		t.Fatalf("DEL with the apiserver down: %v", err)
	}
	f.AssertClean(t, p)
}

// The acceptance case: a cluster of its own, stopped between ADD and DEL.
func TestDelWithApiserverStopped(t *testing.T) {
	f := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cluster, err := localcluster.Start(ctx, localcluster.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Stop() })
	proxy := cninode.StartAPIProxy(t, f.Host, cluster.RESTConfig())
	conf := f.conf(t, map[string]any{"kubeconfig": proxy.WriteKubeconfig(t, t.TempDir())})

	nads, err := k8s.NewNADClientForConfig(cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nads.Create(ctx, &k8s.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "lan"},
		Spec:       k8s.NetworkAttachmentDefinitionSpec{Config: f.MacvlanConf("lan", "eth1", "192.168.50.0/24")},
	}); err != nil {
		t.Fatal(err)
	}
	pod, err := cluster.Client().CoreV1().Pods("default").Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{k8s.NetworksAnnotation: "lan"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := &cninode.Pod{Namespace: "default", Name: "web", UID: string(pod.UID), ContainerID: "stopped" + nstest.Suffix(), NetNS: nstest.NewNS(t)}
	f.MustAdd(t, p, conf)
	addrPrefix(t, p, "net1", "192.168.50.")

	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	proxy.Close()
	start := time.Now()
	if err := f.Del(t, p, conf, false); err != nil {
		t.Fatalf("DEL with the apiserver stopped: %v", err)
	}
	t.Logf("DEL took %s", time.Since(start))
	f.AssertClean(t, p)
}

// Multus 4.3 re-encodes a clusterNetwork given as a .conflist path through structs that drop
// bridge and ipam.ranges, so every DEL fails ("no IP ranges specified") and the IP leaks.
// Steer caches the bytes: DEL works even after the file changed on disk.
func TestConflistClusterNetworkDelReleasesIP(t *testing.T) {
	f := setup(t)
	conf := f.conf(t, nil)
	p := f.pod(t, "")
	f.MustAdd(t, p, conf)
	ip := strings.Split(addrPrefix(t, p, "eth0", "10.10.0."), "/")[0]
	if got := f.IPAMAllocations(t); !slices.Equal(got, []string{"cbr0/" + ip}) {
		t.Fatalf("allocations %v", got)
	}
	onDisk, err := os.ReadFile(f.clusterPath)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join(f.CNIDir, p.ContainerID+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var cache struct {
		Attachments []struct {
			Config []byte `json:"config"`
		} `json:"attachments"`
	}
	if err := json.Unmarshal(raw, &cache); err != nil {
		t.Fatal(err)
	}
	if len(cache.Attachments) != 1 || !bytes.Equal(cache.Attachments[0].Config, onDisk) {
		t.Fatalf("cached config is not the file's bytes:\n%s\nvs\n%s", cache.Attachments[0].Config, onDisk)
	}
	// The operator edits the file; DEL must still use what ADD used.
	if err := os.WriteFile(f.clusterPath, []byte(`{"cniVersion":"1.1.0","name":"cbr0","plugins":[{"type":"bridge"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	f.del(t, p, conf)
}

// A pod that vanished without DEL (netns gone, the runtime lost track of it): GC with the
// remaining valid attachments frees its cluster and secondary addresses, and only those.
func TestGCReclaimsVanishedPod(t *testing.T) {
	f := setup(t)
	conf := f.conf(t, nil)
	alive := f.NewPod(t, f.ns, "alive", map[string]string{k8s.NetworksAnnotation: "lan"})
	gone := f.NewPod(t, f.ns, "gone", map[string]string{k8s.NetworksAnnotation: "lan"})
	f.MustAdd(t, alive, conf)
	f.MustAdd(t, gone, conf)
	aliveIPs := []string{
		"cbr0/" + strings.Split(addrPrefix(t, alive, "eth0", "10.10.0."), "/")[0],
		"lan/" + strings.Split(addrPrefix(t, alive, "net1", "192.168.50."), "/")[0],
	}
	if n := len(f.IPAMAllocations(t)); n != 4 {
		t.Fatalf("%d allocations", n)
	}
	destroyNetNS(t, gone)
	f.ForgetRuntimeCache(t, gone)

	if err := f.GC(t, conf, alive); err != nil {
		t.Fatalf("GC: %v", err)
	}
	got := f.IPAMAllocations(t)
	slices.Sort(got)
	slices.Sort(aliveIPs)
	if !slices.Equal(got, aliveIPs) {
		t.Errorf("allocations after GC %v, want only the live pod's %v", got, aliveIPs)
	}
	if cninode.FileExists(filepath.Join(f.CNIDir, gone.ContainerID+".json")) {
		t.Error("cache of the vanished pod kept")
	}
	if err := f.Check(t, alive, conf); err != nil {
		t.Errorf("live pod broken by GC: %v", err)
	}
	f.del(t, alive, conf)
}

func TestStatus(t *testing.T) {
	f := setup(t)
	ready := filepath.Join(f.Dir, "flannel-subnet.env")
	conf := f.conf(t, map[string]any{"readinessindicatorfile": ready, "apiTimeout": "500ms"})
	err := f.Status(t, conf)
	if te := cninode.CNIError(t, err); te.Code != types.ErrPluginNotAvailable || !strings.Contains(te.Msg, "readiness indicator file") {
		t.Errorf("STATUS before the primary CNI is ready: %+v", te)
	}
	// ADD waits for the file, boundedly.
	start := time.Now()
	_, err = f.Add(t, f.pod(t, ""), conf)
	if te := cninode.CNIError(t, err); te.Code != types.ErrTryAgainLater || time.Since(start) > 10*time.Second {
		t.Errorf("ADD before ready: %+v after %s", te, time.Since(start))
	}
	f.AssertClean(t)
	if err := os.WriteFile(ready, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Status(t, conf); err != nil {
		t.Errorf("STATUS when ready: %v", err)
	}

	// The cluster network's delegate reports not ready: its IPAM plugin is missing.
	broken := f.WriteConfFile(t, "90-broken.conf", `{"cniVersion":"1.1.0","name":"broken","type":"bridge","bridge":"cni9","ipam":{"type":"no-such-ipam"}}`)
	if err := f.Status(t, f.conf(t, map[string]any{"clusterNetwork": broken})); err == nil || !strings.Contains(err.Error(), `cluster network "broken"`) {
		t.Errorf("STATUS with a broken cluster network: %v", err)
	}
	// Its binary is missing.
	missing := f.WriteConfFile(t, "91-missing.conf", `{"cniVersion":"1.1.0","name":"missing","type":"flannel"}`)
	err = f.Status(t, f.conf(t, map[string]any{"clusterNetwork": missing}))
	if te := cninode.CNIError(t, err); te.Code != types.ErrPluginNotAvailable || !strings.Contains(te.Msg, `plugin "flannel" is not in`) {
		t.Errorf("STATUS with the cluster network's binary missing: %+v", te)
	}
}
