package realnode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/steernet/steer/internal/testbed/localcluster"
)

// Binaries are the node's programs, built into the cache by hack/install-node.sh at the releases
// of internal/testbed/localcluster/versions.txt; runc and iptables come from the distribution.
type Binaries struct {
	Kubelet, ControllerManager, Scheduler string
	Containerd, Shim, Ctr, Crictl         string
}

func (Binaries) dir(bin string) string { return filepath.Dir(bin) }

// FindBinaries locates the cached binaries, naming the fix when any is missing.
func FindBinaries() (Binaries, error) {
	cache, err := localcluster.CacheDir()
	if err != nil {
		return Binaries{}, err
	}
	kube := filepath.Join(cache, "kube-node", envOr("KUBE_VERSION", localcluster.DefaultKubeVersion))
	ctrd := filepath.Join(cache, "containerd", envOr("CONTAINERD_VERSION", localcluster.Version("containerd")))
	b := Binaries{
		Kubelet:           filepath.Join(kube, "kubelet"),
		ControllerManager: filepath.Join(kube, "kube-controller-manager"),
		Scheduler:         filepath.Join(kube, "kube-scheduler"),
		Containerd:        filepath.Join(ctrd, "containerd"),
		Shim:              filepath.Join(ctrd, "containerd-shim-runc-v2"),
		Ctr:               filepath.Join(ctrd, "ctr"),
		Crictl:            filepath.Join(cache, "cri-tools", envOr("CRI_TOOLS_VERSION", localcluster.Version("cri-tools")), "crictl"),
	}
	var errs []error
	for _, p := range []string{b.Kubelet, b.ControllerManager, b.Scheduler, b.Containerd, b.Shim, b.Ctr, b.Crictl} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm()&0o111 == 0 {
			errs = append(errs, fmt.Errorf("%s missing", p))
		}
	}
	for _, tool := range []string{"runc", "iptables", "mount"} {
		if _, err := lookPath(tool); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Binaries{}, fmt.Errorf("real node binaries missing, run `make deps` (hack/install-node.sh, apt runc iptables): %w", err)
	}
	return b, nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
