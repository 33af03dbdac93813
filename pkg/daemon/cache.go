package daemon

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/tools/cache"

	"github.com/steernet/steer/pkg/k8s"
)

// Cache answers the engine's pod and NAD questions from informers: pods of this node only,
// and NetworkAttachmentDefinitions, trimmed to what the engine reads so a node with many pods
// costs little memory. A pod the informer has not seen yet (ADD races the watch event) is
// read from the apiserver.
type Cache struct {
	pods, nads cache.GenericLister
	api        *k8s.PodClient
	nadAPI     *k8s.NADClient
}

// resync is how often informers replay their cache; the watch keeps it current between.
const resync = 10 * time.Minute

// NewCache starts the informers, which run until ctx ends, and waits at most syncTimeout for
// their first sync. The two must not share a deadline: informers stopped by a start-up timeout
// leave a cache that silently stops following the cluster.
func NewCache(ctx context.Context, dyn dynamic.Interface, node string, syncTimeout time.Duration) (*Cache, error) {
	podFactory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, resync, metav1.NamespaceAll,
		func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", node).String()
		})
	nadFactory := dynamicinformer.NewDynamicSharedInformerFactory(dyn, resync)
	pods := podFactory.ForResource(k8s.PodResource)
	nads := nadFactory.ForResource(k8s.NADResource)
	for _, inf := range []cache.SharedIndexInformer{pods.Informer(), nads.Informer()} {
		if err := inf.SetTransform(trim); err != nil {
			return nil, err
		}
	}
	podFactory.Start(ctx.Done())
	nadFactory.Start(ctx.Done())
	sctx, cancel := context.WithTimeout(ctx, syncTimeout)
	defer cancel()
	if !cache.WaitForCacheSync(sctx.Done(), pods.Informer().HasSynced, nads.Informer().HasSynced) {
		return nil, fmt.Errorf("informer caches did not sync within %s: %w", syncTimeout, sctx.Err())
	}
	return &Cache{pods: pods.Lister(), nads: nads.Lister(), api: k8s.NewPodClient(dyn), nadAPI: k8s.NewNADClient(dyn)}, nil
}

// trim keeps what the engine reads: identity, annotations, and a NAD's spec.
func trim(obj any) (any, error) {
	u, ok := obj.(*unstructured.Unstructured)
	if !ok {
		return obj, nil
	}
	out := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": u.GetAPIVersion(),
		"kind":       u.GetKind(),
	}}
	out.SetNamespace(u.GetNamespace())
	out.SetName(u.GetName())
	out.SetUID(u.GetUID())
	out.SetResourceVersion(u.GetResourceVersion())
	out.SetAnnotations(u.GetAnnotations())
	if spec, ok := u.Object["spec"].(map[string]any); ok && u.GetKind() == k8s.NADKind {
		out.Object["spec"] = spec
	}
	return out, nil
}

// Get returns a pod of this node.
func (c *Cache) Get(ctx context.Context, namespace, name string) (*k8s.Pod, error) {
	obj, err := c.pods.ByNamespace(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return c.api.Get(ctx, namespace, name)
	}
	if err != nil {
		return nil, err
	}
	u := obj.(*unstructured.Unstructured)
	return &k8s.Pod{Namespace: u.GetNamespace(), Name: u.GetName(), UID: string(u.GetUID()), Annotations: u.GetAnnotations()}, nil
}

// SetNetworkStatus writes through to the apiserver.
func (c *Cache) SetNetworkStatus(ctx context.Context, namespace, name, uid string, st []k8s.NetworkStatus) error {
	return c.api.SetNetworkStatus(ctx, namespace, name, uid, st)
}

// Warn records an event through to the apiserver.
func (c *Cache) Warn(ctx context.Context, pod *k8s.Pod, component, reason, message string) error {
	return c.api.Warn(ctx, pod, component, reason, message)
}

// NADs answers NetworkAttachmentDefinition lookups.
func (c *Cache) NADs() NADLookup { return NADLookup{c} }

// NADLookup is the engine's NADSource over the cache.
type NADLookup struct{ c *Cache }

// Get returns a NetworkAttachmentDefinition, from the cache or, when just created, the API.
func (n NADLookup) Get(ctx context.Context, namespace, name string) (*k8s.NetworkAttachmentDefinition, error) {
	obj, err := n.c.nads.ByNamespace(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return n.c.nadAPI.Get(ctx, namespace, name)
	}
	if err != nil {
		return nil, err
	}
	return k8s.NADFromUnstructured(obj.(*unstructured.Unstructured))
}
