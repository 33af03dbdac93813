package localcluster_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testbed/localcluster"
	"github.com/steernet/steer/internal/testutil/kubetest"
)

func TestBinariesMissingSaysMakeDeps(t *testing.T) {
	t.Setenv("STEER_CACHE", t.TempDir())
	_, err := localcluster.Binaries()
	if err == nil || !strings.Contains(err.Error(), "run `make deps`") {
		t.Fatalf("Binaries() error = %v, want one saying to run `make deps`", err)
	}
	_, err = localcluster.Start(t.Context(), localcluster.Options{})
	if err == nil || !strings.Contains(err.Error(), "run `make deps`") {
		t.Fatalf("Start() error = %v, want one saying to run `make deps`", err)
	}
}

func TestStartStop(t *testing.T) {
	kubetest.RequireCluster(t)
	parent := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	c, err := localcluster.Start(ctx, localcluster.Options{TempDir: parent, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("started in %s", time.Since(start).Round(time.Millisecond))
	stopped := false
	defer func() {
		if !stopped {
			_ = c.Stop()
		}
	}()

	v, err := c.Client().Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if want := os.Getenv("KUBE_VERSION"); want != "" && v.GitVersion != want {
		t.Errorf("server version %s, want %s", v.GitVersion, want)
	}
	if c.RESTConfig().Insecure {
		t.Error("client skips TLS verification: the apiserver's serving CA was not found or did not verify")
	}
	resources, err := c.Client().Discovery().ServerResourcesForGroupVersion("k8s.cni.cncf.io/v1")
	if err != nil {
		t.Fatalf("NetworkAttachmentDefinition CRD not served: %v", err)
	}
	if !slices.ContainsFunc(resources.APIResources, func(r metav1.APIResource) bool {
		return r.Name == "network-attachment-definitions" && r.Namespaced && slices.Contains(r.ShortNames, "net-attach-def")
	}) {
		t.Errorf("k8s.cni.cncf.io/v1 resources = %+v, want namespaced network-attachment-definitions (net-attach-def)", resources.APIResources)
	}

	// The kubeconfig is what the demo and humans use: prove kubectl accepts it as written.
	kubectl, err := localcluster.Kubectl()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig", c.Kubeconfig(), "get", "net-attach-def", "-A").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get net-attach-def: %v\n%s", err, out)
	}

	restartAPIServer(ctx, t, c)

	pids := c.PIDs()
	dir := c.Dir()
	start = time.Now()
	if err := c.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	stopped = true
	t.Logf("stopped in %s", time.Since(start).Round(time.Millisecond))
	for _, pid := range pids {
		// Each child leads its own group: -pid covers anything it may have spawned.
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d still exists after Stop (kill 0: %v)", pid, err)
		}
	}
	if procs := processesMentioning(t, dir); len(procs) > 0 {
		t.Errorf("processes still running from %s after Stop: %q", dir, procs)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster dir %s still exists after Stop (stat: %v)", dir, err)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// restartAPIServer: with the apiserver killed, clients fail; started again, the same client
// (same URL, CA and token) works and the objects written before are still there (etcd kept them).
func restartAPIServer(ctx context.Context, t *testing.T, c *localcluster.Cluster) {
	t.Helper()
	nss := c.Client().CoreV1().Namespaces()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "survives-restart"}}
	if _, err := nss.Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := c.StopAPIServer(); err != nil {
		t.Fatalf("StopAPIServer: %v", err)
	}
	if _, err := c.Client().Discovery().ServerVersion(); err == nil {
		t.Fatal("the apiserver still answers after StopAPIServer")
	}
	start := time.Now()
	if err := c.StartAPIServer(ctx); err != nil {
		t.Fatalf("StartAPIServer: %v", err)
	}
	t.Logf("apiserver restarted in %s", time.Since(start).Round(time.Millisecond))
	if _, err := nss.Get(ctx, ns.Name, metav1.GetOptions{}); err != nil {
		t.Errorf("after the restart: %v", err)
	}
}

func TestStartFailureLeavesNothing(t *testing.T) {
	kubetest.RequireCluster(t)
	parent := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	_, err := localcluster.Start(ctx, localcluster.Options{
		TempDir:            parent,
		Logger:             testLogger(t),
		ExtraAPIServerArgs: []string{"--no-such-flag"},
	})
	if err == nil {
		t.Fatal("Start succeeded with an unknown kube-apiserver flag")
	}
	// The reason is only in the child's log: the error must carry its tail.
	if !strings.Contains(err.Error(), "kube-apiserver exited") || !strings.Contains(err.Error(), "no-such-flag") {
		t.Errorf("Start error lacks the apiserver's log tail:\n%v", err)
	}
	if procs := processesMentioning(t, parent); len(procs) > 0 {
		t.Errorf("processes left after a failed Start: %q", procs)
	}
	if entries, _ := os.ReadDir(parent); len(entries) > 0 {
		t.Errorf("files left after a failed Start: %v", entries)
	}
}

// processesMentioning lists the command lines of live processes whose arguments contain s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	cmdlines, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, f := range cmdlines {
		b, err := os.ReadFile(f)
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue // gone meanwhile, or unrelated
		}
		found = append(found, string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
	}
	return found
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), nil))
}
