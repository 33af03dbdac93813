package k8s

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// Network selection annotations of the NPWG multi-net spec, as Multus reads and writes them.
const (
	// NetworksAnnotation on a pod selects its secondary networks: "a,ns/b@net2" or a JSON list
	// of network selection elements.
	NetworksAnnotation = "k8s.v1.cni.cncf.io/networks"
	// NetworkStatusAnnotation on a pod is the JSON list of attachments its CNI ADD produced.
	NetworkStatusAnnotation = "k8s.v1.cni.cncf.io/network-status"
	// DefaultNetworkAnnotation on a pod replaces the cluster's primary (eth0) network.
	DefaultNetworkAnnotation = "v1.multus-cni.io/default-network"
)

// NADResource is the NetworkAttachmentDefinition resource, for dynamic clients and informers.
var NADResource = schema.GroupVersionResource{
	Group: "k8s.cni.cncf.io", Version: "v1", Resource: "network-attachment-definitions",
}

// NADKind is the kind of a NetworkAttachmentDefinition.
const NADKind = "NetworkAttachmentDefinition"

// NetworkAttachmentDefinition is the NPWG custom resource naming a CNI configuration.
type NetworkAttachmentDefinition struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec NetworkAttachmentDefinitionSpec `json:"spec"`
}

// NetworkAttachmentDefinitionSpec holds the CNI configuration.
type NetworkAttachmentDefinitionSpec struct {
	// Config is a CNI network configuration or configuration list, as JSON. Empty means the
	// node's CNI configuration file whose "name" is the object's name.
	Config string `json:"config,omitempty"`
}

// NADClient reads and writes NetworkAttachmentDefinitions. It is built on the dynamic client so
// Steer needs no generated clientset for one small type.
type NADClient struct {
	dyn dynamic.Interface
}

// NewNADClient returns a client using dyn.
func NewNADClient(dyn dynamic.Interface) *NADClient { return &NADClient{dyn: dyn} }

// NewNADClientForConfig returns a client for the cluster cfg points at.
func NewNADClientForConfig(cfg *rest.Config) (*NADClient, error) {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("create dynamic client: %w", err)
	}
	return NewNADClient(dyn), nil
}

// Get returns one NetworkAttachmentDefinition. Errors keep the API status, so
// apierrors.IsNotFound works on them.
func (c *NADClient) Get(ctx context.Context, namespace, name string) (*NetworkAttachmentDefinition, error) {
	u, err := c.dyn.Resource(NADResource).Namespace(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("get NetworkAttachmentDefinition %s/%s: %w", namespace, name, err)
	}
	return NADFromUnstructured(u)
}

// List returns the NetworkAttachmentDefinitions of namespace (metav1.NamespaceAll for all).
func (c *NADClient) List(ctx context.Context, namespace string) ([]NetworkAttachmentDefinition, error) {
	list, err := c.dyn.Resource(NADResource).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list NetworkAttachmentDefinitions in %q: %w", namespace, err)
	}
	nads := make([]NetworkAttachmentDefinition, 0, len(list.Items))
	for i := range list.Items {
		nad, err := NADFromUnstructured(&list.Items[i])
		if err != nil {
			return nil, err
		}
		nads = append(nads, *nad)
	}
	return nads, nil
}

// Create stores nad in its namespace and returns the stored object.
func (c *NADClient) Create(ctx context.Context, nad *NetworkAttachmentDefinition) (*NetworkAttachmentDefinition, error) {
	obj := *nad
	obj.APIVersion, obj.Kind = NADResource.GroupVersion().String(), NADKind
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&obj)
	if err != nil {
		return nil, fmt.Errorf("encode NetworkAttachmentDefinition %s/%s: %w", nad.Namespace, nad.Name, err)
	}
	u, err := c.dyn.Resource(NADResource).Namespace(nad.Namespace).Create(ctx, &unstructured.Unstructured{Object: m}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create NetworkAttachmentDefinition %s/%s: %w", nad.Namespace, nad.Name, err)
	}
	return NADFromUnstructured(u)
}

// Delete removes one NetworkAttachmentDefinition.
func (c *NADClient) Delete(ctx context.Context, namespace, name string) error {
	if err := c.dyn.Resource(NADResource).Namespace(namespace).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
		return fmt.Errorf("delete NetworkAttachmentDefinition %s/%s: %w", namespace, name, err)
	}
	return nil
}

// NADFromUnstructured converts what a dynamic client or informer returns.
func NADFromUnstructured(u *unstructured.Unstructured) (*NetworkAttachmentDefinition, error) {
	if gvk := u.GroupVersionKind(); gvk.Kind != NADKind || gvk.Group != NADResource.Group {
		return nil, fmt.Errorf("%s %s/%s is not a NetworkAttachmentDefinition", gvk, u.GetNamespace(), u.GetName())
	}
	var nad NetworkAttachmentDefinition
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &nad); err != nil {
		return nil, fmt.Errorf("decode NetworkAttachmentDefinition %s/%s: %w", u.GetNamespace(), u.GetName(), err)
	}
	return &nad, nil
}
