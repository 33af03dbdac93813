package realnode

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testutil/child"
)

// kubeletConfig answers this host's quirks: cgroup v1 (deprecated, so allowed explicitly) with
// the cgroupfs driver under a cgroup root of the run's own; no swap check, no image GC or
// eviction on a shared disk; everything kubelet lets be moved lives under the node's directory.
func (n *Node) kubeletConfig() string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %[1]s
containerRuntimeEndpoint: unix://%[2]s
address: %[3]s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
volumePluginDir: %[4]s
podLogsDir: %[5]s
failSwapOn: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "1Mi", nodefs.available: "1%%", imagefs.available: "1%%", nodefs.inodesFree: "1%%"}
resolvConf: ""
serializeImagePulls: false
syncFrequency: 10s
nodeStatusUpdateFrequency: 2s
localStorageCapacityIsolation: false
`, n.cgroupRoot, n.CRISocket(), NodeIP, filepath.Join(n.dir, "volume-plugins"), filepath.Join(n.dir, "pod-logs"))
}

func (n *Node) startKubelet() error {
	cfg := filepath.Join(n.dir, "kubelet.yaml")
	if err := os.WriteFile(cfg, []byte(n.kubeletConfig()), 0o644); err != nil {
		return err
	}
	args := []string{
		"--config=" + cfg,
		"--kubeconfig=" + n.cluster.Kubeconfig(),
		"--root-dir=" + filepath.Join(n.dir, "kubelet"),
		"--hostname-override=" + n.name,
		"--node-ip=" + NodeIP,
		"--v=2",
	}
	env := []string{"PATH=" + os.Getenv("PATH")}
	p, err := n.nodeSpawner.start("kubelet", n.bins.Kubelet, args, env, filepath.Join(n.dir, "kubelet.log"))
	if err != nil {
		return err
	}
	n.kubelet = p
	return nil
}

// waitNodeReady waits until the node reports Ready.
func (n *Node) waitNodeReady(ctx context.Context) error {
	return poll(ctx, 90*time.Second, func() error {
		if n.kubelet.Exited() {
			return permanent(fmt.Errorf("kubelet exited: %s", child.TailFile(n.kubelet.LogPath, 30)))
		}
		node, err := n.cluster.Client().CoreV1().Nodes().Get(ctx, n.name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range node.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("node %s not ready: %s", n.name, c.Message)
			}
		}
		return fmt.Errorf("node %s has no Ready condition yet", n.name)
	})
}

// startControlPlane runs kube-controller-manager (DaemonSets, namespaces, service accounts,
// garbage collection; no node IPAM, the pod network's IPAM is host-local) and kube-scheduler on
// the machine's loopback, next to the apiserver.
func (n *Node) startControlPlane() error {
	kc := n.cluster.Kubeconfig()
	var err error
	n.kcm, err = n.hostSpawner.start("kube-controller-manager", n.bins.ControllerManager, []string{
		"--kubeconfig=" + kc,
		"--controllers=*,-nodeipam",
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		"--concurrent-daemonset-syncs=2",
	}, nil, filepath.Join(n.dir, "kube-controller-manager.log"))
	if err != nil {
		return err
	}
	n.scheduler, err = n.hostSpawner.start("kube-scheduler", n.bins.Scheduler, []string{
		"--kubeconfig=" + kc,
		"--leader-elect=false",
		"--secure-port=0",
	}, nil, filepath.Join(n.dir, "kube-scheduler.log"))
	return err
}
