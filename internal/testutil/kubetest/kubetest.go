// Package kubetest gives a test binary one local Kubernetes control plane (see localcluster),
// started by the first test that asks for it and stopped when the tests end:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		c := kubetest.Cluster(t)
//		ns := kubetest.Namespace(t)
//		...
//	}
//
// Missing binaries fail the test with the fix ("run `make deps`"): CI must not pass by skipping.
// Only -short (`make unit`) skips these tests.
package kubetest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/steernet/steer/internal/testbed/localcluster"
)

// startTimeout bounds the start (about 5 s on an idle 2-core machine).
const startTimeout = 2 * time.Minute

// One cluster per test binary: starting one costs seconds, a namespace per test isolates enough.
var (
	mu       sync.Mutex
	inMain   bool
	cluster  *localcluster.Cluster
	startErr error
)

// Main runs the tests, then cleanups (for what lives as long as the test binary), stops the
// cluster if one was started, and exits with the tests' code. Call it from TestMain.
func Main(m *testing.M, cleanups ...func()) {
	mu.Lock()
	inMain = true
	mu.Unlock()

	code := m.Run()
	for _, f := range cleanups {
		f()
	}

	mu.Lock()
	defer mu.Unlock()
	if cluster != nil {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "kubetest: stop the local cluster: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// RequireCluster skips t under -short: `make unit` builds and starts no kube-apiserver. Without
// -short nothing skips, so a missing binary fails the test.
func RequireCluster(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs the local kube-apiserver and etcd: skipped under -short")
	}
}

// Cluster returns the test binary's cluster, starting it on first use. It fails t when the
// cluster cannot start, including when the binaries are missing.
func Cluster(t testing.TB) *localcluster.Cluster {
	t.Helper()
	RequireCluster(t)
	mu.Lock()
	defer mu.Unlock()
	if !inMain {
		// Without Main nobody stops the cluster: its files would be left behind.
		t.Fatal("kubetest.Cluster needs `func TestMain(m *testing.M) { kubetest.Main(m) }` in this test package")
	}
	if cluster == nil && startErr == nil {
		// Not t.Context(): the cluster outlives the test that happens to start it.
		ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
		defer cancel()
		start := time.Now()
		cluster, startErr = localcluster.Start(ctx, localcluster.Options{Logger: logger()})
		if startErr == nil {
			t.Logf("kubetest: local cluster started in %s (%s)", time.Since(start).Round(time.Millisecond), cluster.Dir())
		}
	}
	if startErr != nil {
		// Every later test fails the same way, without paying for another attempt.
		t.Fatalf("kubetest: %v", startErr)
	}
	return cluster
}

// logger shows the cluster's progress with go test -v only.
func logger() *slog.Logger {
	var w io.Writer = io.Discard
	if testing.Verbose() {
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, nil))
}
