package endpoints_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/svctest"
	"github.com/steernet/steer/pkg/metrics"
	"github.com/steernet/steer/pkg/service"
	"github.com/steernet/steer/pkg/service/endpoints"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// startController runs a controller until the test ends.
func startController(t *testing.T, c kubernetes.Interface) *metrics.EndpointSlices {
	t.Helper()
	m := metrics.NewEndpointSlices(prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- endpoints.New(endpoints.Options{Client: c, Log: testLog(t), Metrics: m}).Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
	return m
}

// TestSlicesOfSecondaryAddresses: the selected pods' addresses on the Service's network, IPv4
// and IPv6, with the conditions of their pods and the named target port resolved; pods off
// the network, without network-status or not selected are left out.
func TestSlicesOfSecondaryAddresses(t *testing.T) {
	c := kubetest.Cluster(t).Client()
	ns := kubetest.Namespace(t)
	m := startController(t, c)
	dmz := ns + "/dmz"

	svc, err := c.CoreV1().Services(ns).Create(t.Context(),
		svctest.Service(ns, "web-dmz", "dmz", corev1.IPv4Protocol, corev1.IPv6Protocol), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// No pod yet: a placeholder per family, so readers tell "none" from "not yet".
	svctest.WaitSlices(t, c, ns, "web-dmz", "IPv4 (none)\nIPv6 (none)")

	svctest.CreatePod(t, c, svctest.Pod(ns, "web-a", "node-a", map[string][]string{dmz: {"192.0.2.10", "2001:db8:2::a"}}), true)
	b := svctest.CreatePod(t, c, svctest.Pod(ns, "web-b", "node-b", map[string][]string{dmz: {"192.0.2.11"}}), false)
	svctest.CreatePod(t, c, svctest.Pod(ns, "web-nostatus", "node-a", nil), true)
	svctest.CreatePod(t, c, svctest.Pod(ns, "web-mgmt", "node-a", map[string][]string{ns + "/mgmt": {"198.51.100.7"}}), true)
	other := svctest.Pod(ns, "other", "node-a", map[string][]string{dmz: {"192.0.2.99"}})
	other.Labels = map[string]string{"app": "other"}
	svctest.CreatePod(t, c, other, true)
	held := svctest.Pod(ns, "web-e", "node-b", map[string][]string{dmz: {"192.0.2.12"}})
	held.Finalizers = []string{svctest.HoldFinalizer}
	svctest.CreatePod(t, c, held, true)
	t.Cleanup(func() { svctest.ReleasePod(t, c, ns, "web-e") })
	if err := c.CoreV1().Pods(ns).Delete(t.Context(), "web-e", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	ports := " http/TCP:8080,dns/UDP:53"
	svctest.WaitSlices(t, c, ns, "web-dmz", strings.Join([]string{
		"IPv4 web-a=192.0.2.10 ready=true serving=true terminating=false" + ports,
		"IPv4 web-b=192.0.2.11 ready=false serving=false terminating=false" + ports,
		"IPv4 web-e=192.0.2.12 ready=false serving=true terminating=true" + ports,
		"IPv6 web-a=2001:db8:2::a ready=true serving=true terminating=false" + ports,
	}, "\n"))

	// Settled, the controller writes nothing more (what it reads back equals what it wrote).
	// The listing can show the final endpoints a moment before the sync that wrote them has
	// deleted an emptied placeholder (deletions go last), so settled is when writes stop.
	settled := writes(m)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); {
		time.Sleep(300 * time.Millisecond)
		n := writes(m)
		if n == settled {
			break
		}
		settled = n
	}
	time.Sleep(time.Second)
	if n := writes(m); n != settled {
		t.Errorf("%v writes with nothing changing", n-settled)
	}

	// Slices carry the Service's labels (multus-proxy selected them by its proxy name), their
	// own manager and an owner reference to the Service.
	for _, s := range svctest.SteerSlices(t, c, ns, "web-dmz") {
		if s.Labels[service.ProxyNameLabel] != service.MultusProxyName || s.Labels["tier"] != "dmz" || s.Labels[service.ServiceNameLabel] != "web-dmz" {
			t.Errorf("slice %s labels %v: want the Service's, service-name and managed-by", s.Name, s.Labels)
		}
		if len(s.OwnerReferences) != 1 || s.OwnerReferences[0].UID != svc.UID || s.OwnerReferences[0].Controller == nil || !*s.OwnerReferences[0].Controller {
			t.Errorf("slice %s owners %+v: want the Service as controller", s.Name, s.OwnerReferences)
		}
	}

	// web-b becomes ready; web-a leaves the network (its network-status loses dmz).
	svctest.SetReady(t, c, b, true)
	a, err := c.CoreV1().Pods(ns).Get(t.Context(), "web-a", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a.Annotations = svctest.Pod(ns, "web-a", "", map[string][]string{ns + "/mgmt": {"198.51.100.8"}}).Annotations
	if _, err := c.CoreV1().Pods(ns).Update(t.Context(), a, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	svctest.WaitSlices(t, c, ns, "web-dmz", strings.Join([]string{
		"IPv4 web-b=192.0.2.11 ready=true serving=true terminating=false" + ports,
		"IPv4 web-e=192.0.2.12 ready=false serving=true terminating=true" + ports,
		"IPv6 (none)",
	}, "\n"))
	if n := testutil.ToFloat64(m.Writes.WithLabelValues("create")); n < 2 {
		t.Errorf("steer_endpointslice_writes_total{operation=create} = %v, want >= 2", n)
	}
	if got := testutil.ToFloat64(m.Endpoints.WithLabelValues("ready")); got != 1 {
		t.Errorf("steer_endpointslice_endpoints{state=ready} = %v, want 1", got)
	}
	wantEvent(t, c, ns, "web-dmz", endpoints.ReasonServing)

	// The Service leaves the proxy (label removed): its slices go.
	svc, err = c.CoreV1().Services(ns).Get(t.Context(), "web-dmz", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	delete(svc.Labels, service.ProxyNameLabel)
	if _, err := c.CoreV1().Services(ns).Update(t.Context(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	svctest.WaitSlices(t, c, ns, "web-dmz", "")
}

// TestIgnoredAndInvalid: a Service without the annotation or without the label gets no slices;
// a bad annotation gets a Warning Event, not a crash, and slices once it is fixed; a NAD in
// another namespace ("ns/name") is matched by that name; IPv6-only Services get IPv6 slices.
func TestIgnoredAndInvalid(t *testing.T) {
	c := kubetest.Cluster(t).Client()
	ns := kubetest.Namespace(t)
	startController(t, c)

	noAnnotation := svctest.Service(ns, "no-annotation", "")
	noLabel := svctest.Service(ns, "no-label", "dmz")
	noLabel.Labels = nil
	bad := svctest.Service(ns, "bad", "a/b/c")
	crossNS := svctest.Service(ns, "cross-ns", "lan-ns/lan", corev1.IPv6Protocol)
	steerLabel := svctest.Service(ns, "steer-label", "dmz")
	steerLabel.Labels[service.ProxyNameLabel] = service.SteerProxyName
	for _, svc := range []*corev1.Service{noAnnotation, noLabel, bad, crossNS, steerLabel} {
		if _, err := c.CoreV1().Services(ns).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	svctest.CreatePod(t, c, svctest.Pod(ns, "web-a", "node-a", map[string][]string{
		ns + "/dmz": {"192.0.2.10"}, "lan-ns/lan": {"2001:db8:5::a", "198.51.100.10"},
	}), true)

	ports := " http/TCP:8080,dns/UDP:53"
	svctest.WaitSlices(t, c, ns, "steer-label", "IPv4 web-a=192.0.2.10 ready=true serving=true terminating=false"+ports)
	svctest.WaitSlices(t, c, ns, "cross-ns", "IPv6 web-a=2001:db8:5::a ready=true serving=true terminating=false"+ports)
	wantEvent(t, c, ns, "bad", endpoints.ReasonInvalidNetwork)
	for _, name := range []string{"no-annotation", "no-label", "bad"} {
		if got := svctest.Summary(svctest.SteerSlices(t, c, ns, name)); got != "" {
			t.Errorf("Service %s has slices:\n%s\nwant none", name, got)
		}
	}

	// Fixed, the bad Service gets its slices.
	svc, err := c.CoreV1().Services(ns).Get(t.Context(), "bad", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svc.Annotations[service.NetworkAnnotation] = " " + ns + "/dmz " // spaces ignored, as multus-service did
	if _, err := c.CoreV1().Services(ns).Update(t.Context(), svc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	svctest.WaitSlices(t, c, ns, "bad", "IPv4 web-a=192.0.2.10 ready=true serving=true terminating=false"+ports)

	// Selected pods, none on the network: a Warning says so.
	lonely := svctest.Service(ns, "lonely", "nowhere")
	if _, err := c.CoreV1().Services(ns).Create(t.Context(), lonely, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantEvent(t, c, ns, "lonely", endpoints.ReasonNoEndpoints)
}

func writes(m *metrics.EndpointSlices) float64 {
	n := 0.0
	for _, op := range []string{"create", "update", "delete"} {
		n += testutil.ToFloat64(m.Writes.WithLabelValues(op))
	}
	return n
}

func wantEvent(t *testing.T, c kubernetes.Interface, ns, svc, reason string) {
	t.Helper()
	svctest.Eventually(t, 15*time.Second, "Event "+reason+" on "+svc, func() (bool, string) {
		list, err := c.CoreV1().Events(ns).List(t.Context(), metav1.ListOptions{
			FieldSelector: fields.Set{"involvedObject.name": svc, "involvedObject.kind": "Service"}.String(),
		})
		if err != nil {
			return false, err.Error()
		}
		var seen []string
		for _, e := range list.Items {
			if e.Reason == reason && e.Source.Component == endpoints.Component {
				return true, ""
			}
			seen = append(seen, e.Reason+": "+e.Message)
		}
		return false, strings.Join(seen, "\n")
	})
}
