package cninode

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/steernet/steer/internal/testbed/podns"
	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/nstest"
	"github.com/steernet/steer/pkg/k8s"
)

// Masters are the links every node has for macvlan networks (one end of a veth pair each).
var Masters = []string{"eth1", "eth2"}

// Node is a node namespace with its CNI directories, as kubelet and containerd see it.
type Node struct {
	Host    ns.NetNS
	Dir     string // the test's temp dir; everything below is in it
	BinDir  string // steer and the reference plugins
	ConfDir string // steer's confDir
	CNIDir  string // steer's cniDir (its cache)
	IPAMDir string // host-local dataDir of every network the helpers make
	LogFile string
	// BPFRoot is the node's own pin root on the host bpffs (steer's bpffsRoot).
	BPFRoot string
	// Proxy reaches the test cluster from inside Host; Kubeconfig points at it.
	Proxy      *APIProxy
	Kubeconfig string
	Client     kubernetes.Interface // direct admin client, for the test itself
	NADs       *k8s.NADClient

	runtimeCache string
	cni          *libcni.CNIConfig
	exec         invoke.Exec
	raw          *invoke.RawExec
}

// NewNode makes a node namespace with links eth1 and eth2, temp CNI directories and an
// apiserver proxy. Everything is removed when the test ends.
func NewNode(t testing.TB) *Node {
	t.Helper()
	cluster := kubetest.Cluster(t)
	dir := t.TempDir()
	n := &Node{
		Host:         nstest.NewNS(t),
		Dir:          dir,
		BinDir:       BinDir(t),
		ConfDir:      filepath.Join(dir, "net.d"),
		CNIDir:       filepath.Join(dir, "cni-steer"),
		IPAMDir:      filepath.Join(dir, "ipam"),
		LogFile:      filepath.Join(dir, "steer.log"),
		BPFRoot:      nstest.BPFRoot(t).Root,
		Client:       cluster.Client(),
		runtimeCache: filepath.Join(dir, "runtime-cache"),
	}
	for _, d := range []string{n.ConfDir, n.IPAMDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err := n.Host.Do(func(ns.NetNS) error {
		for _, name := range append([]string{"lo"}, Masters...) {
			if name != "lo" {
				// A veth pair: this kernel has no dummy links, and macvlan works on veth.
				veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: name}, PeerName: name + "-peer"}
				if err := netlink.LinkAdd(veth); err != nil {
					return err
				}
				if err := setUp(name + "-peer"); err != nil {
					return err
				}
			}
			if err := setUp(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("node links: %v", err)
	}
	n.Proxy = StartAPIProxy(t, n.Host, cluster.RESTConfig())
	n.Kubeconfig = n.Proxy.WriteKubeconfig(t, dir)
	var nerr error
	if n.NADs, nerr = k8s.NewNADClientForConfig(cluster.RESTConfig()); nerr != nil {
		t.Fatal(nerr)
	}
	n.raw = &invoke.RawExec{Stderr: os.Stderr}
	n.exec = &invoke.DefaultExec{RawExec: n.raw, PluginDecoder: version.PluginDecoder{}}
	n.cni = libcni.NewCNIConfigWithCacheDir([]string{n.BinDir}, n.runtimeCache, n.exec)
	t.Cleanup(func() {
		if t.Failed() {
			if log, err := os.ReadFile(n.LogFile); err == nil {
				t.Logf("steer log:\n%s", log)
			}
		}
	})
	return n
}

// SetPluginStderr sends the stderr of the plugins the node runs to w (os.Stderr by default).
// Not safe while a verb runs.
func (n *Node) SetPluginStderr(w io.Writer) { n.raw.Stderr = w }

// Conf returns a steer configuration for this node: its directories, kubeconfig and pin root,
// debug logging to LogFile only, cniVersion 1.1.0, and the keys of extra on top (a nil value
// removes a key).
func (n *Node) Conf(t testing.TB, extra map[string]any) []byte {
	t.Helper()
	c := map[string]any{
		"cniVersion":  "1.1.0",
		"name":        "steer-net",
		"type":        "steer",
		"kubeconfig":  n.Kubeconfig,
		"confDir":     n.ConfDir,
		"cniDir":      n.CNIDir,
		"binDir":      n.BinDir,
		"logFile":     n.LogFile,
		"logLevel":    "debug",
		"logToStderr": false,
		"apiTimeout":  "20s", // generous: the test machine is shared; tests of timeouts set theirs
		"bpffsRoot":   n.BPFRoot,
	}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BridgeConf is a bridge + host-local configuration list with "ranges" (the fields Multus
// 4.3's cache loses), on bridge br, in the node's IPAM dir.
func (n *Node) BridgeConf(name, br, subnet, gw string) string {
	return fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"plugins":[{"type":"bridge","bridge":%q,"isGateway":true,
 "ipam":{"type":"host-local","dataDir":%q,"ranges":[[{"subnet":%q,"gateway":%q}]],"routes":[{"dst":"0.0.0.0/0"}]}}]}`,
		name, br, n.IPAMDir, subnet, gw)
}

// MacvlanConf is a single-plugin macvlan + host-local configuration on master.
func (n *Node) MacvlanConf(name, master, subnet string) string {
	return fmt.Sprintf(`{"cniVersion":"1.1.0","name":%q,"type":"macvlan","master":%q,"mode":"bridge",
 "ipam":{"type":"host-local","dataDir":%q,"subnet":%q}}`, name, master, n.IPAMDir, subnet)
}

// WriteConfFile writes conf into ConfDir and returns its path.
func (n *Node) WriteConfFile(t testing.TB, file, conf string) string {
	t.Helper()
	path := filepath.Join(n.ConfDir, file)
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// CreateNAD stores a NetworkAttachmentDefinition (config may be "").
func (n *Node) CreateNAD(t testing.TB, namespace, name, config string) {
	t.Helper()
	_, err := n.NADs.Create(context.Background(), &k8s.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec:       k8s.NetworkAttachmentDefinitionSpec{Config: config},
	})
	if err != nil {
		t.Fatal(err)
	}
}

// Pod is a pod object and its sandbox network namespace.
type Pod struct {
	Namespace, Name, UID string
	ContainerID          string
	NetNS                ns.NetNS
}

// NewPod creates the pod in the apiserver (no scheduler runs: it stays Pending) and a
// network namespace for its sandbox.
func (n *Node) NewPod(t testing.TB, namespace, name string, annotations map[string]string) *Pod {
	t.Helper()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Annotations: annotations},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}
	created, err := n.Client.CoreV1().Pods(namespace).Create(context.Background(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &Pod{
		Namespace: namespace, Name: name, UID: string(created.UID),
		ContainerID: "c" + nstest.Suffix() + nstest.Suffix() + nstest.Suffix(),
		NetNS:       nstest.NewNS(t),
	}
}

func (p *Pod) runtimeConf() *libcni.RuntimeConf {
	return podns.RuntimeConf(p.ContainerID, p.NetNS.Path(), p.Namespace, p.Name, p.UID)
}

// list wraps a steer configuration the way a runtime loads a single-plugin .conf.
func confList(t testing.TB, conf []byte) *libcni.NetworkConfigList {
	t.Helper()
	pc, err := libcni.NetworkPluginConfFromBytes(conf)
	if err != nil {
		t.Fatal(err)
	}
	return &libcni.NetworkConfigList{Name: pc.Network.Name, CNIVersion: pc.Network.CNIVersion, Plugins: []*libcni.PluginConfig{pc}, Bytes: conf}
}

// inHost runs f with the calling thread in the node namespace, so the plugins exec'd from it
// start there (as they would on a node).
func (n *Node) inHost(t testing.TB, f func() error) error {
	t.Helper()
	var ferr error
	if err := n.Host.Do(func(ns.NetNS) error { ferr = f(); return nil }); err != nil {
		t.Fatal(err)
	}
	return ferr
}

// Add runs CNI ADD of the steer configuration for the pod.
func (n *Node) Add(t testing.TB, p *Pod, conf []byte) (*current.Result, error) {
	t.Helper()
	res, err := n.AddRaw(t, p, conf)
	if err != nil {
		return nil, err
	}
	return current.NewResultFromResult(res)
}

// AddRaw is Add returning the result in the version steer printed it.
func (n *Node) AddRaw(t testing.TB, p *Pod, conf []byte) (types.Result, error) {
	t.Helper()
	var res types.Result
	err := n.inHost(t, func() (err error) {
		res, err = n.cni.AddNetworkList(context.Background(), confList(t, conf), p.runtimeConf())
		return err
	})
	return res, err
}

// MustAdd is Add failing the test on error.
func (n *Node) MustAdd(t testing.TB, p *Pod, conf []byte) *current.Result {
	t.Helper()
	res, err := n.Add(t, p, conf)
	if err != nil {
		t.Fatalf("ADD %s/%s: %v", p.Namespace, p.Name, err)
	}
	return res
}

// Del runs CNI DEL; netnsGone passes an empty CNI_NETNS as a runtime does when it is gone.
func (n *Node) Del(t testing.TB, p *Pod, conf []byte, netnsGone bool) error {
	t.Helper()
	rt := p.runtimeConf()
	if netnsGone {
		rt.NetNS = ""
	}
	return n.inHost(t, func() error {
		return n.cni.DelNetworkList(context.Background(), confList(t, conf), rt)
	})
}

// Check runs CNI CHECK.
func (n *Node) Check(t testing.TB, p *Pod, conf []byte) error {
	t.Helper()
	return n.inHost(t, func() error {
		return n.cni.CheckNetworkList(context.Background(), confList(t, conf), p.runtimeConf())
	})
}

// Status runs CNI STATUS.
func (n *Node) Status(t testing.TB, conf []byte) error {
	t.Helper()
	return n.inHost(t, func() error {
		return n.cni.GetStatusNetworkList(context.Background(), confList(t, conf))
	})
}

// GC runs the runtime's GC: libcni deletes the steer attachments it cached that are not in
// valid, then sends GC with valid to steer. ForgetRuntimeCache makes a pod vanish from it.
func (n *Node) GC(t testing.TB, conf []byte, valid ...*Pod) error {
	t.Helper()
	args := &libcni.GCArgs{ValidAttachments: []types.GCAttachment{}}
	for _, p := range valid {
		args.ValidAttachments = append(args.ValidAttachments, types.GCAttachment{ContainerID: p.ContainerID, IfName: "eth0"})
	}
	return n.inHost(t, func() error {
		return n.cni.GCNetworkList(context.Background(), confList(t, conf), args)
	})
}

// ForgetRuntimeCache removes the runtime's own record of the pod, as if the runtime lost it:
// then only steer can clean the pod up.
func (n *Node) ForgetRuntimeCache(t testing.TB, p *Pod) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(n.runtimeCache, "results", "*-"+p.ContainerID+"-*"))
	for _, f := range files {
		if err := os.Remove(f); err != nil {
			t.Fatal(err)
		}
	}
}

// NetworkStatus reads the pod's network-status annotation back through client-go; nil when
// it has none.
func (n *Node) NetworkStatus(t testing.TB, p *Pod) []k8s.NetworkStatus {
	t.Helper()
	pod, err := n.Client.CoreV1().Pods(p.Namespace).Get(context.Background(), p.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw, ok := pod.Annotations[k8s.NetworkStatusAnnotation]
	if !ok {
		return nil
	}
	var st []k8s.NetworkStatus
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("network-status %q: %v", raw, err)
	}
	return st
}

func setUp(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}
