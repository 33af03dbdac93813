package endpoints

import (
	"testing"
	"time"

	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// TestTracker: a Service is stale until the cache shows the controller's writes, and no longer
// than the tracker's ttl (a slice deleted by someone else never shows).
func TestTracker(t *testing.T) {
	idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
	tr := newTracker(200 * time.Millisecond)
	s := &discovery.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-1", Generation: 2}}
	tr.wrote("shop/web", s)
	if !tr.stale("shop/web", idx) {
		t.Fatal("fresh after a create the cache has not seen")
	}
	old := s.DeepCopy()
	old.Generation = 1
	_ = idx.Add(old)
	if !tr.stale("shop/web", idx) {
		t.Fatal("fresh with an older generation in the cache")
	}
	_ = idx.Update(s)
	if tr.stale("shop/web", idx) || len(tr.written) != 0 {
		t.Fatalf("stale once the cache caught up (%d tracked)", len(tr.written))
	}
	tr.deleted("shop/web", s)
	if !tr.stale("shop/web", idx) {
		t.Fatal("fresh after a delete the cache has not seen")
	}
	time.Sleep(300 * time.Millisecond)
	if tr.stale("shop/web", idx) || len(tr.written) != 0 {
		t.Fatal("still stale past the ttl")
	}
}
