package k8s_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/steernet/steer/internal/testutil/kubetest"
	"github.com/steernet/steer/pkg/k8s"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

const macvlanConf = `{
  "cniVersion": "1.0.0",
  "name": "macvlan-conf",
  "type": "macvlan",
  "master": "eth1",
  "mode": "bridge",
  "ipam": {"type": "host-local", "subnet": "192.168.1.0/24"}
}`

func nadClient(t *testing.T) *k8s.NADClient {
	t.Helper()
	c, err := k8s.NewNADClientForConfig(kubetest.Cluster(t).RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNADClientRoundTrip(t *testing.T) {
	nads := nadClient(t)
	ns := kubetest.Namespace(t)
	ctx := t.Context()

	start := time.Now()
	created, err := nads.Create(ctx, &k8s.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "macvlan-conf", Namespace: ns},
		Spec:       k8s.NetworkAttachmentDefinitionSpec{Config: macvlanConf},
	})
	if err != nil {
		t.Fatal(err)
	}
	// The cluster waits out the apiserver's 2 s delay on fresh CRDs, so this is milliseconds.
	t.Logf("create took %s", time.Since(start).Round(time.Millisecond))
	if created.UID == "" || created.ResourceVersion == "" {
		t.Errorf("created object lacks server fields: %+v", created.ObjectMeta)
	}

	got, err := nads.Get(ctx, ns, "macvlan-conf")
	if err != nil {
		t.Fatal(err)
	}
	if got.APIVersion != "k8s.cni.cncf.io/v1" || got.Kind != "NetworkAttachmentDefinition" {
		t.Errorf("TypeMeta = %+v", got.TypeMeta)
	}
	if got.Name != "macvlan-conf" || got.Namespace != ns || got.UID != created.UID {
		t.Errorf("ObjectMeta = %s/%s uid %s, want %s/macvlan-conf uid %s", got.Namespace, got.Name, got.UID, ns, created.UID)
	}
	if got.Spec.Config != macvlanConf {
		t.Errorf("Spec.Config = %q, want %q", got.Spec.Config, macvlanConf)
	}
	var conf struct{ Type, Master string }
	if err := json.Unmarshal([]byte(got.Spec.Config), &conf); err != nil || conf.Type != "macvlan" || conf.Master != "eth1" {
		t.Errorf("config does not decode to the macvlan config: %+v, %v", conf, err)
	}

	list, err := nads.List(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "macvlan-conf" || list[0].Spec.Config != macvlanConf {
		t.Errorf("List(%s) = %+v, want only macvlan-conf", ns, list)
	}
	all, err := nads.List(ctx, metav1.NamespaceAll)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(all, func(n k8s.NetworkAttachmentDefinition) bool { return n.UID == created.UID }) {
		t.Errorf("List(all namespaces) lacks %s/macvlan-conf", ns)
	}

	_, err = nads.Create(ctx, &k8s.NetworkAttachmentDefinition{ObjectMeta: metav1.ObjectMeta{Name: "macvlan-conf", Namespace: ns}})
	if !apierrors.IsAlreadyExists(err) {
		t.Errorf("second Create error = %v, want AlreadyExists through the wrapping", err)
	}

	if err := nads.Delete(ctx, ns, "macvlan-conf"); err != nil {
		t.Fatal(err)
	}
	if _, err := nads.Get(ctx, ns, "macvlan-conf"); !apierrors.IsNotFound(err) {
		t.Errorf("Get after Delete error = %v, want NotFound", err)
	}
}

func TestPodSelectsNADByAnnotation(t *testing.T) {
	nads := nadClient(t)
	pods := kubetest.Cluster(t).Client().CoreV1()
	ns := kubetest.Namespace(t)
	ctx := t.Context()

	if _, err := nads.Create(ctx, &k8s.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "macvlan-conf", Namespace: ns},
		Spec:       k8s.NetworkAttachmentDefinitionSpec{Config: macvlanConf},
	}); err != nil {
		t.Fatal(err)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        "client",
			Namespace:   ns,
			Annotations: map[string]string{k8s.NetworksAnnotation: "macvlan-conf"},
		},
		Spec: corev1.PodSpec{
			// Bound already: no scheduler runs, and the harness plays this node's kubelet.
			NodeName:   "node-a",
			Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	if _, err := pods.Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	got, err := pods.Pods(ns).Get(ctx, "client", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Spec.NodeName != "node-a" || len(got.Spec.Containers) != 1 || got.Spec.Containers[0].Name != "app" {
		t.Errorf("pod spec = nodeName %q containers %+v", got.Spec.NodeName, got.Spec.Containers)
	}
	sel := got.Annotations[k8s.NetworksAnnotation]
	if sel != "macvlan-conf" {
		t.Fatalf("pod annotation %s = %q, want macvlan-conf", k8s.NetworksAnnotation, sel)
	}
	// What the engine does next: resolve the selection in the pod's namespace.
	nad, err := nads.Get(ctx, got.Namespace, sel)
	if err != nil {
		t.Fatal(err)
	}
	if nad.Spec.Config != macvlanConf {
		t.Errorf("resolved NAD config = %q, want %q", nad.Spec.Config, macvlanConf)
	}
}

func TestNADFromUnstructuredRejectsOtherKinds(t *testing.T) {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "x", "namespace": "y"},
	}}
	if _, err := k8s.NADFromUnstructured(u); err == nil {
		t.Error("NADFromUnstructured accepted a ConfigMap")
	}
}
