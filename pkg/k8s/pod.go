package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	apitypes "k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// PodResource is the core/v1 pods resource.
var PodResource = schema.GroupVersionResource{Version: "v1", Resource: "pods"}

// Pod is the part of a pod the CNI plugin needs. A trimmed type keeps the plugin free of the
// typed clientset (its scheme costs every plugin exec milliseconds) and lets an informer
// cache store less.
type Pod struct {
	Namespace   string            `json:"namespace"`
	Name        string            `json:"name"`
	UID         string            `json:"uid,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// NetworkStatus is one element of the NetworkStatusAnnotation (NPWG specification v1.3,
// section 4.1.2.1), as Multus writes it.
type NetworkStatus struct {
	Name      string   `json:"name"`
	Interface string   `json:"interface,omitempty"`
	IPs       []string `json:"ips,omitempty"`
	Mac       string   `json:"mac,omitempty"`
	Mtu       int      `json:"mtu,omitempty"`
	Default   bool     `json:"default,omitempty"`
	// DNS is always present, possibly empty, as Multus writes it.
	DNS DNS `json:"dns"`
	// DeviceInfo is the device-info object a device plugin or CNI plugin provided, verbatim.
	DeviceInfo json.RawMessage `json:"device-info,omitempty"`
	Gateway    []string        `json:"gateway,omitempty"`
}

// DNS is the DNS configuration of one attachment.
type DNS struct {
	Nameservers []string `json:"nameservers,omitempty"`
	Domain      string   `json:"domain,omitempty"`
	Search      []string `json:"search,omitempty"`
	Options     []string `json:"options,omitempty"`
}

// PodClient reads pods and writes their network status through the dynamic client.
type PodClient struct {
	dyn dynamic.Interface
}

// NewPodClient returns a client using dyn.
func NewPodClient(dyn dynamic.Interface) *PodClient { return &PodClient{dyn: dyn} }

// Get returns the pod. Errors keep the API status, so apierrors.IsNotFound works on them.
func (c *PodClient) Get(ctx context.Context, namespace, name string) (*Pod, error) {
	u, err := c.dyn.Resource(PodResource).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get pod %s/%s: %w", namespace, name, err)
	}
	return &Pod{
		Namespace:   u.GetNamespace(),
		Name:        u.GetName(),
		UID:         string(u.GetUID()),
		Annotations: u.GetAnnotations(),
	}, nil
}

// SetNetworkStatus sets the NetworkStatusAnnotation of the pod to statuses, or removes it
// when statuses is nil.
//
// It is one merge patch of the status subresource: a node's credentials may update pod
// status (NodeRestriction) but not pod metadata, and status updates keep annotation changes
// (Multus relies on the same). No read-modify-write, so no conflict retries. A non-empty uid
// is a precondition: a pod deleted and re-created under the same name is not touched.
func (c *PodClient) SetNetworkStatus(ctx context.Context, namespace, name, uid string, statuses []NetworkStatus) error {
	var value any // nil removes the annotation
	if statuses != nil {
		b, err := json.Marshal(statuses)
		if err != nil {
			return fmt.Errorf("encode network status: %w", err)
		}
		value = string(b)
	}
	meta := map[string]any{"annotations": map[string]any{NetworkStatusAnnotation: value}}
	if uid != "" {
		meta["uid"] = uid
	}
	patch, err := json.Marshal(map[string]any{"metadata": meta})
	if err != nil {
		return fmt.Errorf("encode network status patch: %w", err)
	}
	_, err = c.dyn.Resource(PodResource).Namespace(namespace).
		Patch(ctx, name, apitypes.MergePatchType, patch, metav1.PatchOptions{}, "status")
	if err != nil {
		return fmt.Errorf("patch network status of pod %s/%s: %w", namespace, name, err)
	}
	return nil
}

// RESTConfigFromKubeconfig loads a kubeconfig file. timeout bounds every request made with
// the configuration (callers add tighter context deadlines per call).
func RESTConfigFromKubeconfig(path string, timeout time.Duration) (*rest.Config, error) {
	// client-go's read of a FIFO would block for ever.
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("load kubeconfig %s: not a regular file (%s)", path, fi.Mode().Type())
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig %s: %w", path, err)
	}
	cfg.Timeout = timeout
	return cfg, nil
}

// EventResource is the core/v1 events resource.
var EventResource = schema.GroupVersionResource{Version: "v1", Resource: "events"}

// Warn records a Warning event on the pod (core/v1, as kubectl describe shows it), from
// component.
func (c *PodClient) Warn(ctx context.Context, pod *Pod, component, reason, message string) error {
	now := metav1.Now().UTC().Format(time.RFC3339)
	host, _ := os.Hostname()
	ev := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1",
		"kind":       "Event",
		"metadata":   map[string]any{"generateName": pod.Name + ".", "namespace": pod.Namespace},
		"involvedObject": map[string]any{
			"apiVersion": "v1", "kind": "Pod", "namespace": pod.Namespace, "name": pod.Name, "uid": pod.UID,
		},
		"type": "Warning", "reason": reason, "message": message, "count": int64(1),
		"firstTimestamp": now, "lastTimestamp": now,
		"source":             map[string]any{"component": component, "host": host},
		"reportingComponent": component, "reportingInstance": host,
	}}
	if _, err := c.dyn.Resource(EventResource).Namespace(pod.Namespace).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("record event on pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
