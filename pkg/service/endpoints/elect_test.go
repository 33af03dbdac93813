package endpoints_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/svctest"
	"github.com/steernet/steer/pkg/leader"
	"github.com/steernet/steer/pkg/metrics"
	"github.com/steernet/steer/pkg/service/endpoints"
)

// TestOneLeaderWrites: two steerds campaign for the lease; one writes the slices, the other
// writes nothing until the first stops, then takes over and keeps the slices current.
func TestOneLeaderWrites(t *testing.T) {
	c := kubetest.Cluster(t).Client()
	ns := kubetest.Namespace(t)
	dmz := ns + "/dmz"

	type candidate struct {
		m      *metrics.EndpointSlices
		cancel context.CancelFunc
		done   chan error
	}
	start := func(id string) *candidate {
		ctx, cancel := context.WithCancel(context.Background())
		cd := &candidate{m: metrics.NewEndpointSlices(prometheus.NewRegistry()), cancel: cancel, done: make(chan error, 1)}
		go func() {
			cd.done <- endpoints.RunElected(ctx, leader.Options{
				Client: c, Namespace: ns, Name: "steer-endpointslices", Identity: id,
				LeaseDuration: 3 * time.Second, RenewDeadline: 2 * time.Second, RetryPeriod: 200 * time.Millisecond,
			}, endpoints.Options{Client: c, Log: testLog(t).With("candidate", id), Metrics: cd.m})
		}()
		t.Cleanup(func() {
			cancel()
			if err := <-cd.done; err != nil {
				t.Errorf("candidate %s: %v", id, err)
			}
		})
		return cd
	}
	a, b := start("a"), start("b")

	if _, err := c.CoreV1().Services(ns).Create(t.Context(), svctest.Service(ns, "web-dmz", "dmz", corev1.IPv4Protocol), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svctest.CreatePod(t, c, svctest.Pod(ns, "web-a", "node-a", map[string][]string{dmz: {"192.0.2.10"}}), true)
	ports := " http/TCP:8080,dns/UDP:53"
	svctest.WaitSlices(t, c, ns, "web-dmz", "IPv4 web-a=192.0.2.10 ready=true serving=true terminating=false"+ports)

	leaderOf := func() (*candidate, *candidate) {
		la, lb := testutil.ToFloat64(a.m.Leader), testutil.ToFloat64(b.m.Leader)
		switch {
		case la == 1 && lb == 0:
			return a, b
		case la == 0 && lb == 1:
			return b, a
		}
		t.Fatalf("leader gauges a=%v b=%v: want exactly one leader", la, lb)
		return nil, nil
	}
	first, second := leaderOf()
	// The slice can be seen before its writer counts the write.
	for deadline := time.Now().Add(5 * time.Second); writes(first.m) == 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	if writes(first.m) == 0 || writes(second.m) != 0 {
		t.Fatalf("writes: leader %v, other %v; want the leader's alone", writes(first.m), writes(second.m))
	}
	lease, err := c.CoordinationV1().Leases(ns).Get(t.Context(), "steer-endpointslices", metav1.GetOptions{})
	if err != nil || lease.Spec.HolderIdentity == nil {
		t.Fatalf("lease: %v %+v", err, lease)
	}

	// The leader stops (a rolling update): it hands the lease over, the other carries on.
	first.cancel()
	if err := <-first.done; err != nil {
		t.Fatal(err)
	}
	first.done <- nil // for the cleanup
	svctest.Eventually(t, 10*time.Second, "the other candidate leads", func() (bool, string) {
		return testutil.ToFloat64(second.m.Leader) == 1, "not yet"
	})
	svctest.CreatePod(t, c, svctest.Pod(ns, "web-b", "node-b", map[string][]string{dmz: {"192.0.2.11"}}), true)
	svctest.WaitSlices(t, c, ns, "web-dmz", "IPv4 web-a=192.0.2.10 ready=true serving=true terminating=false"+ports+
		"\nIPv4 web-b=192.0.2.11 ready=true serving=true terminating=false"+ports)
	if got := len(svctest.SteerSlices(t, c, ns, "web-dmz")); got != 1 {
		t.Errorf("%d slices after the handover, want 1 (the new leader adopts the old one's)", got)
	}
}
