package agent_test

import (
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/internal/testutil/svctest"
	"github.com/steernet/steer/pkg/service"
	"github.com/steernet/steer/pkg/service/agent"
)

// TestAgentRetriesAndFollowsAttachments: a pod whose programming fails is retried until it
// succeeds, a pod without Steer's datapath is not; a pod attached later is programmed within
// about a second; a pod that goes is forgotten.
func TestAgentRetriesAndFollowsAttachments(t *testing.T) {
	c := kubetest.Cluster(t).Client()
	ns := kubetest.Namespace(t)
	dmz := ns + "/dmz"
	svc, err := c.CoreV1().Services(ns).Create(t.Context(), svctest.Service(ns, "web-dmz", "dmz", corev1.IPv4Protocol), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DiscoveryV1().EndpointSlices(ns).Create(t.Context(), slice(svc, service.SteerManagedBy, "192.0.2.40"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	ip := svc.Spec.ClusterIP
	want := func(ifName string) string {
		return ns + "/web-dmz UDP " + ip + ":53 via " + ifName + " -> []\n" + ns + "/web-dmz TCP " + ip + ":80 via " + ifName + " -> [192.0.2.40:8080]"
	}

	first := agent.Container{ID: "first", Namespace: ns, Pod: "first", Interfaces: []agent.Interface{{IfName: "net1", Network: dmz}}}
	bare := agent.Container{ID: "bare", Namespace: ns, Pod: "bare", Interfaces: []agent.Interface{{IfName: "net1", Network: dmz}}}
	src := &source{}
	src.set(first, bare)
	rec := newRecorder()
	rec.fail["first"] = 3
	rec.bare["bare"] = true
	startAgent(t, c, src, rec)
	waitProgrammed(t, rec, "first", want("net1"))
	svctest.Eventually(t, 10*time.Second, "retries", func() (bool, string) {
		_, _, n := rec.last("first")
		return n == 4, fmt.Sprintf("%d calls so far", n)
	})

	// A new pod on the node.
	second := agent.Container{ID: "second", Namespace: ns, Pod: "second", Interfaces: []agent.Interface{{IfName: "dmz0", Network: dmz}}}
	added := time.Now()
	src.set(first, bare, second)
	at := waitProgrammed(t, rec, "second", want("dmz0"))
	t.Logf("attachment to entries programmed: %s", at.Sub(added).Round(time.Millisecond))

	// The first pod goes; it is not programmed again (its pins went with it), nor retried.
	src.set(second, bare)
	time.Sleep(1500 * time.Millisecond)
	if _, _, n := rec.last("bare"); n != 1 {
		t.Errorf("the pod without a datapath was called %d times, want once", n)
	}
	if _, _, n := rec.last("first"); n != 4 {
		t.Errorf("the removed pod was programmed again: %d calls, want 4", n)
	}
}
