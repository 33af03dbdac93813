// Package realnode runs a real Kubernetes node next to the local apiserver of package
// localcluster: containerd and kubelet (with kube-controller-manager and kube-scheduler), which
// run Steer's DaemonSet as operators deploy it and call the plugin for real pods.
//
// The node's daemons and its host-network pods live in a network namespace of their own, wired
// like the emulation's nodes: a reference-plugin bridge as the cluster network and an uplink
// into the DMZ LAN, behind which a router and a remote client sit. Stop removes everything the
// node made — processes, mounts, network namespaces and links, cgroups, files — and puts back
// what kubelet changes on the host (sysctls, fixed paths), also after a failure.
package realnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testbed/cniplugins"
	"github.com/steernet/steer/internal/testbed/emulation"
	"github.com/steernet/steer/internal/testbed/localcluster"
	"github.com/steernet/steer/internal/testbed/podns"
	"github.com/steernet/steer/internal/testutil/nstest"

	"github.com/steernet/steer/internal/testutil/child"
)

// Addresses of the node: its IP sits on an empty bridge (this kernel has no dummy links), the
// cluster network is a bridge with host-local IPAM (the flannel shape), IPv4-only unless
// Options.ClusterNetwork says otherwise.
const (
	NodeIP        = "198.19.0.1"
	ClusterBridge = "cni0"
)

// APIServerArgs are the flags the local apiserver needs for a real node: service-account
// admission (the DaemonSet's pods mount their token), and kubelet addresses it can use without
// DNS.
var APIServerArgs = []string{
	"--disable-admission-plugins=",
	"--kubelet-preferred-address-types=InternalIP,Hostname",
}

// Options configures Start.
type Options struct {
	// Logger receives progress; nil discards it. The daemons log to files in Dir.
	Logger *slog.Logger
	// ClusterNetwork is the cluster network's address families; nil is IPv4-only, as most
	// clusters run.
	ClusterNetwork *emulation.Families
	// Mgmt also wires a management LAN (emulation.Mgmt): a switch of its own, the node's uplink
	// emulation.Mgmt.Master, a router leg and a host on it.
	Mgmt bool
}

// Node is a running real node. Its methods are safe for concurrent use.
type Node struct {
	log        *slog.Logger
	name       string
	dir        string
	cgroupRoot string
	cluster    *localcluster.Cluster
	bins       Binaries
	host       *hostState
	lock       *os.File // the machine's lock, held until Stop
	left       []string // what Stop left, taken before it let the lock go
	images     Images
	families   emulation.Families // the cluster network's
	mgmt       bool

	netns *podns.NS
	lan   *LAN
	fwd   *emulation.APIForwarder

	nodeSpawner, hostSpawner *spawner

	mu                  sync.Mutex // guards containerd and kubelet, which tests restart
	containerd, kubelet *child.Process
	kcm, scheduler      *child.Process
	stopOnce            sync.Once
	stopErr             error
}

// Start brings up a node registered with cluster (started with APIServerArgs) and waits until
// it is Ready. Only one node runs on a machine at a time: it owns the host's CNI directories.
// On error nothing is left.
func Start(ctx context.Context, cluster *localcluster.Cluster, opts Options) (_ *Node, err error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	bins, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	lock, err := lockMachine(ctx, log)
	if err != nil {
		return nil, err
	}
	if err := sweepStale(); err != nil {
		return nil, errors.Join(err, lock.Close())
	}
	host, err := claimHost()
	if err != nil {
		return nil, errors.Join(err, lock.Close())
	}
	suffix := nstest.Suffix()
	n := &Node{
		log: log, name: "steer-node-" + suffix, cgroupRoot: "/steer-node-" + suffix,
		cluster: cluster, bins: bins, host: host, lock: lock,
		families: emulation.IPv4Only, mgmt: opts.Mgmt,
	}
	if opts.ClusterNetwork != nil {
		n.families = *opts.ClusterNetwork
	}
	if n.dir, err = os.MkdirTemp("", "steer-node-"); err != nil {
		return nil, errors.Join(err, host.restore(), lock.Close())
	}
	defer func() {
		if err != nil {
			err = errors.Join(fmt.Errorf("start real node: %w", err), n.Stop())
		}
	}()
	start := time.Now()
	if err := n.writeRecord(); err != nil {
		return nil, err
	}
	if err := n.wireNetwork(ctx); err != nil {
		return nil, err
	}
	if err := n.wireMgmt(ctx); err != nil {
		return nil, err
	}
	api, err := url.Parse(cluster.Host())
	if err != nil {
		return nil, err
	}
	if n.fwd, err = emulation.ForwardAPI(n.netns, api.Host); err != nil {
		return nil, fmt.Errorf("forward the apiserver into the node: %w", err)
	}
	if n.nodeSpawner, err = newSpawner(n.netns.Path()); err != nil {
		return nil, err
	}
	if n.hostSpawner, err = newSpawner(""); err != nil {
		return nil, err
	}
	if err := n.makeCgroupRoot(); err != nil {
		return nil, err
	}
	if err := host.shareBPFFS(); err != nil {
		return nil, err
	}
	if err := n.writeRecord(); err != nil {
		return nil, err
	}
	if err := n.layoutCNI(); err != nil {
		return nil, err
	}
	if err := n.prepareNetNSDir(); err != nil {
		return nil, err
	}
	podTar, refs, err := buildPodImages(ctx, n.dir, suffix)
	if err != nil {
		return nil, err
	}
	n.images.Pause, n.images.Echo = refs["pause"], refs["echo"]
	if err := n.startContainerd(ctx); err != nil {
		return nil, err
	}
	if _, err := n.ImportImage(ctx, podTar); err != nil {
		return nil, err
	}
	if err := n.startControlPlane(); err != nil {
		return nil, err
	}
	if err := n.startKubelet(); err != nil {
		return nil, err
	}
	if err := n.waitNodeReady(ctx); err != nil {
		return nil, err
	}
	log.Info("real node ready", "node", n.name, "dir", n.dir, "elapsed", time.Since(start).Round(time.Millisecond))
	return n, nil
}

// Name is the node's name in the cluster.
func (n *Node) Name() string { return n.name }

// Dir holds the node's state and the daemons' logs until Stop.
func (n *Node) Dir() string { return n.dir }

// Images are the node's local images.
func (n *Node) Images() Images { return n.images }

// LAN is the DMZ LAN wired to the node.
func (n *Node) LAN() *LAN { return n.lan }

// ClusterFamilies are the address families of the node's cluster network.
func (n *Node) ClusterFamilies() emulation.Families { return n.families }

// NetNS is the node's network namespace, where its daemons and host-network pods run.
func (n *Node) NetNS() *podns.NS { return n.netns }

// layoutCNI installs the reference plugins into the node's CNI bin directory, as a node's
// package would, and writes the cluster network's config (what flannel would write).
func (n *Node) layoutCNI() error {
	for _, d := range []string{CNIBinDir, CNIConfDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	src, err := cniplugins.Dir()
	if err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		// Copies, not links into the cache: the DaemonSet's containers see only the host path.
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(CNIBinDir, e.Name()), data, 0o755); err != nil {
			return err
		}
	}
	// CNI 1.1.0, so that containerd 2.x asks the network for its STATUS.
	var conf map[string]any
	if err := json.Unmarshal(emulation.ClusterNetworkOf(0, "/var/lib/cni/networks", n.families), &conf); err != nil {
		return err
	}
	conf["cniVersion"] = "1.1.0"
	data, err := json.Marshal(conf)
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(CNIConfDir, ClusterConfigName), data, 0o644)
}

// ClusterConfigName is the cluster network's config file in CNIConfDir.
const ClusterConfigName = "10-cluster.conflist"

// Stop tears the node down and leaves the machine as Start found it. It is idempotent.
func (n *Node) Stop() error {
	n.stopOnce.Do(func() {
		var errs []error
		add := func(err error) {
			if err != nil {
				errs = append(errs, err)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		n.mu.Lock()
		add(n.kubelet.StopGroup(10 * time.Second))
		if n.containerd != nil && !n.containerd.Exited() {
			add(n.removeSandboxes(ctx))
		}
		add(n.containerd.StopGroup(10 * time.Second))
		n.mu.Unlock()
		add(n.killLeftovers())
		add(n.kcm.StopGroup(5 * time.Second))
		add(n.scheduler.StopGroup(5 * time.Second))
		if n.cluster != nil {
			dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
			_ = n.cluster.Client().CoreV1().Nodes().Delete(dctx, n.name, metav1.DeleteOptions{})
			dcancel()
		}
		if n.fwd != nil {
			add(n.fwd.Close())
		}
		for _, s := range []*spawner{n.nodeSpawner, n.hostSpawner} {
			if s != nil {
				s.close()
			}
		}
		if n.dir != "" {
			add(unmountBelow(n.dir))
		}
		add(n.removeCgroupRoot())
		if n.lan != nil {
			add(n.lan.Close())
		}
		if n.netns != nil {
			add(n.netns.Remove())
		}
		add(n.host.restore())
		if n.dir != "" {
			add(os.RemoveAll(n.dir))
		}
		n.left = n.leftovers()
		if n.lock != nil {
			add(n.lock.Close())
		}
		n.stopErr = errors.Join(errs...)
		n.log.Info("real node stopped", "node", n.name, "err", n.stopErr)
	})
	return n.stopErr
}

// machineLock is held by the node running on this machine: a node owns the host's CNI
// directories, so another (a second test package of one `go test`, the demo) waits its turn.
var machineLock = filepath.Join(os.TempDir(), "steer-realnode.lock")

// lockMachine waits until this process holds machineLock; closing the file releases it (as
// does the process's death).
func lockMachine(ctx context.Context, log *slog.Logger) (*os.File, error) {
	f, err := os.OpenFile(machineLock, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	for waited := false; ; waited = true {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, unix.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", machineLock, err)
		}
		if !waited {
			log.Info("waiting for the real node already running on this machine", "lock", machineLock)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("waiting for %s: %w", machineLock, ctx.Err())
		case <-time.After(time.Second):
		}
	}
}
