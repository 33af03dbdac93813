package agent_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/svctest"
	"github.com/steernet/steer/pkg/leader"
	"github.com/steernet/steer/pkg/metrics"
	"github.com/steernet/steer/pkg/service"
	"github.com/steernet/steer/pkg/service/agent"
	"github.com/steernet/steer/pkg/service/endpoints"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// recorder is a Programmer that records each pod's entries as the datapath would receive
// them, failing on demand.
type recorder struct {
	mu    sync.Mutex
	calls map[string][]call // by container
	fail  map[string]int    // calls to fail, by container
	bare  map[string]bool   // containers without a datapath
}

type call struct {
	at      time.Time
	entries []service.Entry
}

func newRecorder() *recorder {
	return &recorder{calls: map[string][]call{}, fail: map[string]int{}, bare: map[string]bool{}}
}

func (r *recorder) Program(id string, entries []service.Entry) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls[id] = append(r.calls[id], call{at: time.Now(), entries: slices.Clone(entries)})
	if r.bare[id] {
		return fmt.Errorf("container %s: %w", id, service.ErrNoDatapath)
	}
	if r.fail[id] > 0 {
		r.fail[id]--
		return fmt.Errorf("programming %s failed on purpose", id)
	}
	return nil
}

// last is the container's last call: its entries rendered, and when.
func (r *recorder) last(id string) (string, time.Time, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := r.calls[id]
	if len(cs) == 0 {
		return "(never programmed)", time.Time{}, 0
	}
	return render(cs[len(cs)-1].entries), cs[len(cs)-1].at, len(cs)
}

// render is one line per entry: "svc proto frontend via ifname -> backends affinity".
func render(entries []service.Entry) string {
	var lines []string
	for _, e := range entries {
		var be []string
		for _, b := range e.Backends {
			be = append(be, b.String())
		}
		line := fmt.Sprintf("%s %s %s via %s -> [%s]", e.Service, e.Frontend.Proto, e.Frontend.Addr, e.IfName, strings.Join(be, " "))
		if e.AffinityTimeout > 0 {
			line += " affinity " + e.AffinityTimeout.String()
		}
		lines = append(lines, line)
	}
	if len(lines) == 0 {
		return "(none)"
	}
	return strings.Join(lines, "\n")
}

// source is the node's attachments, set by the test.
type source struct {
	mu sync.Mutex
	cs []agent.Container
}

func (s *source) Containers() ([]agent.Container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cs), nil
}

func (s *source) set(cs ...agent.Container) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cs = cs
}

func startAgent(t *testing.T, c kubernetes.Interface, src agent.Source, p service.Programmer) *metrics.ServiceProxy {
	t.Helper()
	m := metrics.NewServiceProxy(prometheus.NewRegistry())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- agent.New(agent.Options{Client: c, Source: src, Programmer: p, Log: testLog(t), Metrics: m,
			RetryMin: 100 * time.Millisecond, RetryMax: 400 * time.Millisecond}).Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent: %v", err)
		}
	})
	return m
}

// startController runs the elected EndpointSlice controller with short lease times.
func startController(t *testing.T, c kubernetes.Interface, ns string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- endpoints.RunElected(ctx, leader.Options{
			Client: c, Namespace: ns, Name: "steer-endpointslices", Identity: t.Name(),
			LeaseDuration: 4 * time.Second, RenewDeadline: 3 * time.Second, RetryPeriod: 500 * time.Millisecond,
		}, endpoints.Options{Client: c, Log: testLog(t)})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
}

func waitProgrammed(t *testing.T, r *recorder, id, want string) time.Time {
	t.Helper()
	return waitProgrammedWithin(t, 30*time.Second, r, id, want)
}

func waitProgrammedWithin(t *testing.T, timeout time.Duration, r *recorder, id, want string) time.Time {
	t.Helper()
	var at time.Time
	svctest.Eventually(t, timeout, "entries of "+id, func() (bool, string) {
		got, when, _ := r.last(id)
		at = when
		return got == want, got
	})
	return at
}

func clusterIPs(t *testing.T, c kubernetes.Interface, ns, name string) (v4, v6 netip.Addr) {
	t.Helper()
	svc, err := c.CoreV1().Services(ns).Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range svc.Spec.ClusterIPs {
		a := netip.MustParseAddr(s)
		if a.Is4() {
			v4 = a
		} else {
			v6 = a
		}
	}
	return
}

// TestAgentProgramsPods: with the real controller writing the slices, each attached pod of the
// node gets the entries of the Services on its networks (both families, both protocols, named
// target port resolved, session affinity), through its interface on that network; a pod off
// the network gets nothing; a change of a backend reaches the Programmer within about a second.
func TestAgentProgramsPods(t *testing.T) {
	c := kubetest.Cluster(t).Client()
	ns := kubetest.Namespace(t)
	dmz, mgmt := ns+"/dmz", ns+"/mgmt"
	startController(t, c, ns)

	svc := svctest.Service(ns, "web-dmz", "dmz", corev1.IPv4Protocol, corev1.IPv6Protocol)
	svc.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	timeout := int32(60)
	svc.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &timeout}}
	if _, err := c.CoreV1().Services(ns).Create(t.Context(), svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svctest.CreatePod(t, c, svctest.Pod(ns, "web-a", "node-a", map[string][]string{dmz: {"192.0.2.10", "2001:db8:2::a"}}), true)
	b := svctest.CreatePod(t, c, svctest.Pod(ns, "web-b", "node-b", map[string][]string{dmz: {"192.0.2.11", "2001:db8:2::b"}}), false)
	v4, v6 := clusterIPs(t, c, ns, "web-dmz")

	src := &source{}
	src.set(
		agent.Container{ID: "client", Namespace: ns, Pod: "client", Interfaces: []agent.Interface{{IfName: "net1", Network: dmz}}},
		agent.Container{ID: "off-dmz", Namespace: ns, Pod: "off-dmz", Interfaces: []agent.Interface{{IfName: "net1", Network: mgmt}}},
		agent.Container{ID: "twice", Namespace: ns, Pod: "twice", Interfaces: []agent.Interface{
			{IfName: "net1", Network: mgmt}, {IfName: "net2", Network: dmz}, {IfName: "net3", Network: dmz}}},
	)
	rec := newRecorder()
	m := startAgent(t, c, src, rec)

	entries := func(ifName string, v4b, v6b string) string {
		aff := " affinity 1m0s"
		return strings.Join([]string{
			fmt.Sprintf("%s/web-dmz UDP %s:53 via %s -> [%s]%s", ns, v4, ifName, strings.ReplaceAll(v4b, "PORT", "53"), aff),
			fmt.Sprintf("%s/web-dmz TCP %s:80 via %s -> [%s]%s", ns, v4, ifName, strings.ReplaceAll(v4b, "PORT", "8080"), aff),
			fmt.Sprintf("%s/web-dmz UDP [%s]:53 via %s -> [%s]%s", ns, v6, ifName, strings.ReplaceAll(v6b, "PORT", "53"), aff),
			fmt.Sprintf("%s/web-dmz TCP [%s]:80 via %s -> [%s]%s", ns, v6, ifName, strings.ReplaceAll(v6b, "PORT", "8080"), aff),
		}, "\n")
	}
	waitProgrammed(t, rec, "client", entries("net1", "192.0.2.10:PORT", "[2001:db8:2::a]:PORT"))
	waitProgrammed(t, rec, "twice", entries("net2", "192.0.2.10:PORT", "[2001:db8:2::a]:PORT"))

	// web-b turns ready: the controller updates the slices, the agent the pods.
	changed := time.Now()
	svctest.SetReady(t, c, b, true)
	at := waitProgrammed(t, rec, "client", entries("net1", "192.0.2.10:PORT 192.0.2.11:PORT", "[2001:db8:2::a]:PORT [2001:db8:2::b]:PORT"))
	latency := at.Sub(changed)
	t.Logf("pod Ready to entries programmed: %s", latency.Round(time.Millisecond))
	if latency > 3*time.Second {
		t.Errorf("a backend change took %s to reach the Programmer; the design target is about a second", latency)
	}
	if got, _, n := rec.last("off-dmz"); n != 0 {
		t.Errorf("the pod off the network was programmed %d times, last with:\n%s", n, got)
	}
	if got := testutil.ToFloat64(m.Pods); got != 2 {
		t.Errorf("steer_service_pods = %v, want 2", got)
	}

	// The Service goes: its pods' entries are cleared.
	if err := c.CoreV1().Services(ns).Delete(t.Context(), "web-dmz", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitProgrammed(t, rec, "client", "(none)")
}
