// Package cninode is the test harness for the steer plugin: it plays kubelet and the
// container runtime. A Node is a network namespace standing in for the node (bridges and
// macvlan masters live there, never in the real host namespace), with its own CNI directories
// and a reverse proxy to the test binary's kube-apiserver (the apiserver listens on the real
// host's loopback, which the node namespace cannot reach). Pods are objects in the apiserver
// plus a network namespace each. Verbs go through libcni to the real, freshly built steer
// binary, exactly as containerd would call it, from inside the node namespace.
//
// Tests using it need `func TestMain(m *testing.M) { kubetest.Main(m) }`.
package cninode

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/steernet/steer/internal/testbed/cniplugins"
	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/pkg/api"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// BinDir returns a directory holding the steer binary, built once per test binary from this
// module, and links to the reference CNI plugins. It lives in the test cluster's directory,
// which kubetest.Main removes when the tests end.
func BinDir(t testing.TB) string {
	t.Helper()
	clusterDir := kubetest.Cluster(t).Dir()
	buildOnce.Do(func() {
		binDir, buildErr = buildBinDir(filepath.Join(clusterDir, "steer-cni-bin"))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func buildBinDir(dir string) (string, error) {
	plugins, err := cniplugins.Dir()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	for _, p := range cniplugins.Names {
		if err := os.Symlink(filepath.Join(plugins, p), filepath.Join(dir, p)); err != nil {
			return "", err
		}
	}
	for _, bin := range []string{api.PluginBinary, api.ShimBinary} {
		cmd := exec.Command("go", "build", "-o", filepath.Join(dir, bin), "github.com/steernet/steer/cmd/"+bin)
		cmd.Env = append(os.Environ(), "GOTOOLCHAIN=local", "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("build %s: %v\n%s", bin, err, out)
		}
	}
	return dir, nil
}
