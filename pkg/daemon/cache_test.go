package daemon

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynfake "k8s.io/client-go/dynamic/fake"

	"github.com/steernet/steer/pkg/k8s"
)

// TestCacheOutlivesSyncTimeout: the informers keep following the cluster after the time
// allowed for their first sync has passed. (steerd once started them with its start-up
// deadline: two minutes later its cache froze, and every pod cost an apiserver round trip.)
func TestCacheOutlivesSyncTimeout(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{
		k8s.PodResource: "PodList",
		k8s.NADResource: "NetworkAttachmentDefinitionList",
	})
	const syncTimeout = 200 * time.Millisecond
	c, err := NewCache(ctx, dyn, "node-a", syncTimeout)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * syncTimeout)

	pod := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Pod",
		"metadata": map[string]any{"namespace": "ns", "name": "late"},
		"spec":     map[string]any{"nodeName": "node-a"},
	}}
	if _, err := dyn.Resource(k8s.PodResource).Namespace("ns").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := c.pods.ByNamespace("ns").Get("late"); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("a pod created after the sync timeout never reached the cache: the informers stopped")
		}
	}
}
