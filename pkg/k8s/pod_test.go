package k8s_test

import (
	"encoding/json"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/dynamic"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/pkg/k8s"
)

func TestPodClientNetworkStatus(t *testing.T) {
	cluster := kubetest.Cluster(t)
	ns := kubetest.Namespace(t)
	dyn, err := dynamic.NewForConfig(cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	pods := k8s.NewPodClient(dyn)
	ctx := t.Context()
	created, err := cluster.Client().CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{k8s.NetworksAnnotation: "lan"}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	pod, err := pods.Get(ctx, ns, "web")
	if err != nil {
		t.Fatal(err)
	}
	if pod.UID != string(created.UID) || pod.Annotations[k8s.NetworksAnnotation] != "lan" {
		t.Errorf("Get = %+v", pod)
	}

	st := []k8s.NetworkStatus{
		{Name: "cbr0", Interface: "eth0", IPs: []string{"10.1.0.2"}, Mac: "02:00:00:00:00:01", Default: true, Gateway: []string{"10.1.0.1"}},
		{Name: ns + "/lan", Interface: "net1", IPs: []string{"192.168.1.5"}, DeviceInfo: json.RawMessage(`{"type":"pci"}`)},
	}
	if err := pods.SetNetworkStatus(ctx, ns, "web", pod.UID, st); err != nil {
		t.Fatal(err)
	}
	got, err := cluster.Client().CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var back []k8s.NetworkStatus
	if err := json.Unmarshal([]byte(got.Annotations[k8s.NetworkStatusAnnotation]), &back); err != nil {
		t.Fatalf("annotation %q: %v", got.Annotations[k8s.NetworkStatusAnnotation], err)
	}
	if len(back) != 2 || !back[0].Default || back[1].Interface != "net1" || string(back[1].DeviceInfo) != `{"type":"pci"}` {
		t.Errorf("read back %+v", back)
	}
	if got.Annotations[k8s.NetworksAnnotation] != "lan" {
		t.Error("the patch dropped another annotation")
	}

	// A pod re-created under the same name has another UID: not touched.
	if err := pods.SetNetworkStatus(ctx, ns, "web", "00000000-0000-0000-0000-000000000000", nil); err == nil {
		t.Error("SetNetworkStatus with a stale UID succeeded")
	}
	if err := pods.SetNetworkStatus(ctx, ns, "web", pod.UID, nil); err != nil {
		t.Fatal(err)
	}
	got, err = cluster.Client().CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Annotations[k8s.NetworkStatusAnnotation]; ok {
		t.Error("nil statuses did not remove the annotation")
	}
}

// Warn records a Warning event on the pod, as kubectl describe lists it.
func TestPodClientWarn(t *testing.T) {
	cluster := kubetest.Cluster(t)
	ns := kubetest.Namespace(t)
	dyn, err := dynamic.NewForConfig(cluster.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	created, err := cluster.Client().CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pod := &k8s.Pod{Namespace: ns, Name: "web", UID: string(created.UID)}
	if err := k8s.NewPodClient(dyn).Warn(ctx, pod, "steer", "UndeclaredCapability", "network x: mac"); err != nil {
		t.Fatal(err)
	}
	evs, err := cluster.Client().CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=web"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs.Items) != 1 {
		t.Fatalf("events %+v", evs.Items)
	}
	ev := evs.Items[0]
	if ev.Type != corev1.EventTypeWarning || ev.Reason != "UndeclaredCapability" || ev.Message != "network x: mac" ||
		ev.InvolvedObject.UID != created.UID || ev.Source.Component != "steer" || ev.Count != 1 {
		t.Errorf("event %+v", ev)
	}
}
