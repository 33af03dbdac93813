package realnode

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/steernet/steer/internal/testutil/child"
)

// containerdConfig is containerd 2.x's configuration for the node: everything under dir, CNI
// from the standard directories (where Steer's DaemonSet installs), and this host's answers:
// cgroupfs (cgroup v1), no CAP_SYS_RESOURCE for raising oom_score_adj, no loopback plugin.
func (n *Node) containerdConfig() string {
	return fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q
disabled_plugins = ["io.containerd.nri.v1.nri"]

[metrics]
  address = %[10]q

[grpc]
  address = %[3]q

[ttrpc]
  address = %[4]q

[plugins."io.containerd.internal.v1.opt"]
  path = %[5]q

[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = %[6]q

[plugins."io.containerd.cri.v1.runtime"]
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = [%[7]q]
    conf_dir = %[8]q
    use_internal_loopback = true
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
    SystemdCgroup = false
    Root = %[9]q
`, n.containerdRoot(), n.containerdState(), n.CRISocket(), n.CRISocket()+".ttrpc",
		filepath.Join(n.dir, "containerd-opt"), n.images.Pause, CNIBinDir, CNIConfDir,
		filepath.Join(n.dir, "runc"), containerdMetricsAddr)
}

// CNI directories of the node, the defaults of containerd and of Steer's DaemonSet.
const (
	CNIBinDir  = "/opt/cni/bin"
	CNIConfDir = "/etc/cni/net.d"
)

func (n *Node) containerdRoot() string  { return filepath.Join(n.dir, "containerd") }
func (n *Node) containerdState() string { return filepath.Join(n.dir, "containerd-state") }

// NetNSDir is where containerd bind-mounts pod network namespaces (netns_mounts_under_state_dir):
// under the node's own directory, so nothing of a run is left in /run/netns.
func (n *Node) NetNSDir() string {
	return filepath.Join(n.containerdState(), "io.containerd.grpc.v1.cri", "netns")
}

// CRISocket is containerd's socket.
func (n *Node) CRISocket() string { return filepath.Join(n.dir, "containerd.sock") }

// prepareNetNSDir makes the netns directory a shared mount of its own before containerd starts:
// the DaemonSet mounts it into steerd with HostToContainer propagation, which needs a shared or
// slave source, and this host's root mount is private.
func (n *Node) prepareNetNSDir() error {
	d := n.NetNSDir()
	if err := os.MkdirAll(d, 0o755); err != nil {
		return err
	}
	if out, err := exec.Command("mount", "--bind", d, d).CombinedOutput(); err != nil {
		return fmt.Errorf("bind %s: %w: %s", d, err, out)
	}
	if out, err := exec.Command("mount", "--make-shared", d).CombinedOutput(); err != nil {
		return fmt.Errorf("make %s shared: %w: %s", d, err, out)
	}
	return nil
}

// startContainerd starts containerd in the node's network namespace and waits for its API.
func (n *Node) startContainerd(ctx context.Context) error {
	cfg := filepath.Join(n.dir, "containerd.toml")
	if err := os.WriteFile(cfg, []byte(n.containerdConfig()), 0o644); err != nil {
		return err
	}
	// The shim and runc are found on PATH: the cached build first, then Debian's runc.
	env := []string{"PATH=" + n.bins.dir(n.bins.Containerd) + ":" + os.Getenv("PATH")}
	p, err := n.nodeSpawner.start("containerd", n.bins.Containerd, []string{"--config", cfg}, env, filepath.Join(n.dir, "containerd.log"))
	if err != nil {
		return err
	}
	n.containerd = p
	return poll(ctx, 30*time.Second, func() error {
		if p.Exited() {
			return permanent(fmt.Errorf("containerd exited: %s", child.TailFile(p.LogPath, 20)))
		}
		_, err := n.Crictl(ctx, "info")
		return err
	})
}

// Ctr runs ctr against the node's containerd, in Kubernetes' namespace.
func (n *Node) Ctr(ctx context.Context, args ...string) (string, error) {
	return run(ctx, n.bins.Ctr, append([]string{"--address", n.CRISocket(), "--namespace", "k8s.io"}, args...)...)
}

// Crictl runs crictl against the node's containerd.
func (n *Node) Crictl(ctx context.Context, args ...string) (string, error) {
	return run(ctx, n.bins.Crictl, append(n.crictlFlags(), args...)...)
}

func (n *Node) crictlFlags() []string {
	return []string{"--runtime-endpoint", "unix://" + n.CRISocket(), "--image-endpoint", "unix://" + n.CRISocket(), "--timeout", "20s"}
}

// CrictlCommand is the crictl command line for the node's containerd, for a person to type.
func (n *Node) CrictlCommand() string {
	return n.bins.Crictl + " " + strings.Join(n.crictlFlags(), " ")
}

// ImportImage imports an image tarball (docker archive or OCI layout, one platform or an
// index) into containerd and returns the references it holds.
func (n *Node) ImportImage(ctx context.Context, tarPath string) ([]string, error) {
	before, err := n.imageRefs(ctx)
	if err != nil {
		return nil, err
	}
	// The node's platform only: an index's other platforms have no content to unpack.
	if out, err := n.Ctr(ctx, "images", "import", "--platform", "linux/amd64", tarPath); err != nil {
		return nil, fmt.Errorf("import %s: %w: %s", tarPath, err, out)
	}
	after, err := n.imageRefs(ctx)
	if err != nil {
		return nil, err
	}
	var added []string
	for r := range after {
		if !before[r] {
			added = append(added, r)
		}
	}
	return added, nil
}

func (n *Node) imageRefs(ctx context.Context) (map[string]bool, error) {
	out, err := n.Ctr(ctx, "images", "list", "--quiet")
	if err != nil {
		return nil, fmt.Errorf("list images: %w: %s", err, out)
	}
	refs := map[string]bool{}
	for _, l := range strings.Fields(out) {
		if !strings.HasPrefix(l, "sha256:") {
			refs[l] = true
		}
	}
	return refs, nil
}

// TagImage gives an imported image another reference.
func (n *Node) TagImage(ctx context.Context, src, dst string) error {
	if out, err := n.Ctr(ctx, "images", "tag", "--force", src, dst); err != nil {
		return fmt.Errorf("tag %s as %s: %w: %s", src, dst, err, out)
	}
	return nil
}

// Sandbox is a pod sandbox as crictl sees it.
type Sandbox struct {
	ID, Name, Namespace, State string
}

// Sandboxes lists the node's pod sandboxes.
func (n *Node) Sandboxes(ctx context.Context) ([]Sandbox, error) {
	out, err := n.Crictl(ctx, "pods", "-o", "json")
	if err != nil {
		return nil, fmt.Errorf("crictl pods: %w: %s", err, out)
	}
	var resp struct {
		Items []struct {
			ID       string `json:"id"`
			State    string `json:"state"`
			Metadata struct {
				Name, Namespace string
			} `json:"metadata"`
		} `json:"items"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return nil, fmt.Errorf("crictl pods: %w", err)
	}
	var sbs []Sandbox
	for _, it := range resp.Items {
		sbs = append(sbs, Sandbox{ID: it.ID, Name: it.Metadata.Name, Namespace: it.Metadata.Namespace, State: it.State})
	}
	return sbs, nil
}

// SandboxNetNS is the network namespace path of a pod sandbox.
func (n *Node) SandboxNetNS(ctx context.Context, id string) (string, error) {
	out, err := n.Crictl(ctx, "inspectp", "-o", "json", id)
	if err != nil {
		return "", fmt.Errorf("crictl inspectp: %w: %s", err, out)
	}
	var resp struct {
		Info struct {
			RuntimeSpec struct {
				Linux struct {
					Namespaces []struct{ Type, Path string } `json:"namespaces"`
				} `json:"linux"`
			} `json:"runtimeSpec"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return "", err
	}
	for _, ns := range resp.Info.RuntimeSpec.Linux.Namespaces {
		if ns.Type == "network" && ns.Path != "" {
			return ns.Path, nil
		}
	}
	return "", fmt.Errorf("sandbox %s has no network namespace of its own", id)
}

// removeSandboxes stops and removes every pod sandbox, pods on the pod network first, so their
// CNI DEL still reaches the DaemonSet's steerd.
func (n *Node) removeSandboxes(ctx context.Context) error {
	sbs, err := n.Sandboxes(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for pass := 0; pass < 2; pass++ {
		for _, sb := range sbs {
			isSteer := sb.Namespace == SteerNamespace
			if (pass == 0) == isSteer {
				continue
			}
			if out, err := n.Crictl(ctx, "rmp", "--force", sb.ID); err != nil {
				errs = append(errs, fmt.Errorf("remove sandbox %s/%s: %w: %s", sb.Namespace, sb.Name, err, out))
			}
		}
	}
	return errors.Join(errs...)
}

// run returns a command's standard output; on failure, its standard error too (ctr and crictl
// warn there, on this host about cgroup v1, which must not reach parsed output).
func run(ctx context.Context, bin string, args ...string) (string, error) {
	var stderr strings.Builder
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out) + stderr.String(), err
	}
	return string(out), nil
}

// RestartContainerd stops containerd (SIGTERM, as a service manager does) and starts it again;
// the shims and containers keep running meanwhile.
func (n *Node) RestartContainerd(ctx context.Context) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.containerd.Stop(15 * time.Second); err != nil {
		return err
	}
	return n.startContainerd(ctx)
}

// NetworkReady is containerd's NetworkReady condition (what kubelet reports as the node's
// network readiness): the STATUS of the CNI config it loaded, and the message when not ready.
func (n *Node) NetworkReady(ctx context.Context) (bool, string, error) {
	out, err := n.Crictl(ctx, "info")
	if err != nil {
		return false, "", fmt.Errorf("crictl info: %w: %s", err, out)
	}
	var info struct {
		Status struct {
			Conditions []struct {
				Type    string `json:"type"`
				Status  bool   `json:"status"`
				Reason  string `json:"reason"`
				Message string `json:"message"`
			} `json:"conditions"`
		} `json:"status"`
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		return false, "", fmt.Errorf("crictl info: %w", err)
	}
	for _, c := range info.Status.Conditions {
		if c.Type == "NetworkReady" {
			return c.Status, strings.TrimSpace(c.Reason + " " + c.Message), nil
		}
	}
	return false, "", errors.New("crictl info: no NetworkReady condition")
}

// ContainerPID is the host PID of the running container named name in a pod of namespace.
func (n *Node) ContainerPID(ctx context.Context, namespace, name string) (int, error) {
	out, err := n.Crictl(ctx, "ps", "--state", "running", "--name", "^"+name+"$", "--namespace", namespace, "-q")
	if err != nil {
		return 0, fmt.Errorf("crictl ps: %w: %s", err, out)
	}
	ids := strings.Fields(out)
	if len(ids) != 1 {
		return 0, fmt.Errorf("%d running containers named %s in %s", len(ids), name, namespace)
	}
	out, err = n.Crictl(ctx, "inspect", "-o", "json", ids[0])
	if err != nil {
		return 0, fmt.Errorf("crictl inspect: %w: %s", err, out)
	}
	var resp struct {
		Info struct {
			PID int `json:"pid"`
		} `json:"info"`
	}
	if err := json.Unmarshal([]byte(out), &resp); err != nil {
		return 0, err
	}
	if resp.Info.PID == 0 {
		return 0, fmt.Errorf("container %s has no pid", ids[0])
	}
	return resp.Info.PID, nil
}
