package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/svctest"
	"github.com/steernet/steer/pkg/service/agent"
)

// TestAPIServerRestart: kube-apiserver dies for longer than the controller's lease; the pods
// keep their entries meanwhile (nothing is cleared for want of the apiserver), and once it is
// back the controller is elected again and changes flow to the pods as before.
func TestAPIServerRestart(t *testing.T) {
	cluster := kubetest.Cluster(t)
	c := cluster.Client()
	ns := kubetest.Namespace(t)
	dmz := ns + "/dmz"
	startController(t, c, ns)
	svc, err := c.CoreV1().Services(ns).Create(t.Context(), svctest.Service(ns, "web-dmz", "dmz", corev1.IPv4Protocol), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	svctest.CreatePod(t, c, svctest.Pod(ns, "web-a", "node-a", map[string][]string{dmz: {"192.0.2.10"}}), true)
	b := svctest.CreatePod(t, c, svctest.Pod(ns, "web-b", "node-b", map[string][]string{dmz: {"192.0.2.11"}}), false)
	src := &source{}
	src.set(agent.Container{ID: "client", Namespace: ns, Pod: "client", Interfaces: []agent.Interface{{IfName: "net1", Network: dmz}}})
	rec := newRecorder()
	startAgent(t, c, src, rec)
	ip := svc.Spec.ClusterIP
	want := func(backends string) string {
		return ns + "/web-dmz UDP " + ip + ":53 via net1 -> [" + strings.ReplaceAll(backends, "PORT", "53") + "]\n" +
			ns + "/web-dmz TCP " + ip + ":80 via net1 -> [" + strings.ReplaceAll(backends, "PORT", "8080") + "]"
	}
	waitProgrammed(t, rec, "client", want("192.0.2.10:PORT"))

	if err := cluster.StopAPIServer(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // whatever happens, the next test gets an apiserver
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = cluster.StartAPIServer(ctx)
	})
	time.Sleep(6 * time.Second) // past the lease: the controller loses it
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := cluster.StartAPIServer(ctx); err != nil {
		t.Fatal(err)
	}
	back := time.Now()

	svctest.SetReady(t, c, b, true)
	// Informers come back within client-go's watch backoff (it doubles from 0.8 s while the
	// apiserver is away, up to 30 s, jittered).
	at := waitProgrammedWithin(t, 90*time.Second, rec, "client", want("192.0.2.10:PORT 192.0.2.11:PORT"))
	t.Logf("apiserver back to the change programmed: %s", at.Sub(back).Round(time.Millisecond))

	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, cl := range rec.calls["client"] {
		if len(cl.entries) == 0 || len(cl.entries[0].Backends) == 0 {
			t.Errorf("the pod's entries were emptied at %s:\n%s", cl.at.Format(time.StampMilli), render(cl.entries))
		}
	}
}
