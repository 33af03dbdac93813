package service

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// The Kubernetes API of Services on secondary networks: the archived multus-service project's,
// unchanged, so its users migrate without touching a Service.
const (
	// ProxyNameLabel on a Service names the proxy that serves it; kube-proxy leaves Services
	// carrying it alone.
	ProxyNameLabel = "service.kubernetes.io/service-proxy-name"
	// MultusProxyName is multus-proxy's value of ProxyNameLabel; Steer serves it.
	MultusProxyName = "multus-proxy"
	// SteerProxyName is Steer's own value of ProxyNameLabel, accepted as well, never required.
	SteerProxyName = "steer"

	// NetworkAnnotation on a Service names its one network: a NetworkAttachmentDefinition,
	// "name" in the Service's namespace or "namespace/name".
	NetworkAnnotation = "k8s.v1.cni.cncf.io/service-network"

	// ManagedByLabel is the EndpointSlice label naming the controller that writes a slice.
	ManagedByLabel = "endpointslice.kubernetes.io/managed-by"
	// ServiceNameLabel on an EndpointSlice names its Service (in the slice's namespace).
	ServiceNameLabel = "kubernetes.io/service-name"
	// SteerManagedBy is the ManagedByLabel value of the EndpointSlices Steer's controller writes.
	SteerManagedBy = "endpointslice-controller.steernet.io"
	// MultusManagedBy is the value multus-service's controller wrote. Steer's node agent reads
	// those slices for a Service until Steer's controller has written its own, so a cluster can
	// move from multus-service one component at a time.
	MultusManagedBy = "multus-endpointslice-controller.npwg.k8s.io"
)

// ProxyNames are the ProxyNameLabel values that Steer serves.
var ProxyNames = []string{MultusProxyName, SteerProxyName}

// ManagedBy are the ManagedByLabel values of the EndpointSlices Steer's node agent reads, the
// preferred first.
var ManagedBy = []string{SteerManagedBy, MultusManagedBy}

// ParseNetwork resolves a NetworkAnnotation value to the "namespace/name" that a pod's
// network-status names the network by. A bare name is in the Service's namespace; spaces are
// ignored, as multus-service ignored them.
func ParseNetwork(value, serviceNamespace string) (string, error) {
	v := strings.ReplaceAll(value, " ", "")
	ns, name, found := strings.Cut(v, "/")
	if !found {
		ns, name = serviceNamespace, v
	}
	if v == "" {
		return "", fmt.Errorf("%s is empty: want a NetworkAttachmentDefinition, name or namespace/name", NetworkAnnotation)
	}
	if strings.Contains(name, "/") {
		return "", fmt.Errorf("%s %q: want name or namespace/name", NetworkAnnotation, value)
	}
	if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
		return "", fmt.Errorf("%s %q: namespace %q: %s", NetworkAnnotation, value, ns, strings.Join(errs, "; "))
	}
	if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
		return "", fmt.Errorf("%s %q: name %q: %s", NetworkAnnotation, value, name, strings.Join(errs, "; "))
	}
	return ns + "/" + name, nil
}
