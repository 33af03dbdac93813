package endpoints

import (
	"encoding/json"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	discovery "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/steernet/steer/pkg/k8s"
)

// trimPod keeps of a pod only what endpoints are made of, so that the cluster-wide pod cache
// costs little: a pod attached to no secondary network keeps its identity alone, as object
// metadata (it cannot be an endpoint; the update that attaches it brings it back), the others
// their labels, node, deletion, Ready condition, container ports and network-status.
func trimPod(obj any) (any, error) {
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil // a tombstone
	}
	meta := metav1.ObjectMeta{
		Namespace:       pod.Namespace,
		Name:            pod.Name,
		UID:             pod.UID,
		ResourceVersion: pod.ResourceVersion,
	}
	status, ok := pod.Annotations[k8s.NetworkStatusAnnotation]
	if !ok || !hasSecondary(status) {
		return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"}, ObjectMeta: meta}, nil
	}
	out := &corev1.Pod{ObjectMeta: meta}
	out.Labels = pod.Labels
	out.Annotations = map[string]string{k8s.NetworkStatusAnnotation: status}
	out.DeletionTimestamp = pod.DeletionTimestamp
	out.Spec.NodeName = pod.Spec.NodeName
	for _, c := range pod.Spec.Containers {
		if len(c.Ports) > 0 {
			out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name, Ports: c.Ports})
		}
	}
	out.Status.Phase = pod.Status.Phase
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			out.Status.Conditions = []corev1.PodCondition{{Type: c.Type, Status: c.Status}}
		}
	}
	return out, nil
}

// hasSecondary reports whether a network-status annotation lists a network besides the default.
func hasSecondary(annotation string) bool {
	var st []k8s.NetworkStatus
	if json.Unmarshal([]byte(annotation), &st) != nil {
		return false
	}
	for _, s := range st {
		if !s.Default {
			return true
		}
	}
	return false
}

// addressesOn returns the pod's first IPv4 and first IPv6 address on network ("namespace/name"),
// from its network-status; a pod not on it has none.
func addressesOn(pod *corev1.Pod, network string) (v4, v6 netip.Addr) {
	var st []k8s.NetworkStatus
	if json.Unmarshal([]byte(pod.Annotations[k8s.NetworkStatusAnnotation]), &st) != nil {
		return
	}
	for _, s := range st {
		if s.Name != network || s.Default {
			continue
		}
		for _, ip := range s.IPs {
			a, err := netip.ParseAddr(ip)
			if err != nil {
				continue
			}
			a = a.Unmap()
			switch {
			case a.Is4() && !v4.IsValid():
				v4 = a
			case a.Is6() && !v6.IsValid():
				v6 = a
			}
		}
	}
	return
}

// isEndpoint reports whether a selected pod belongs in the slices at all: a pod that ran to
// completion serves nothing; a terminating one stays, marked, until it is gone.
func isEndpoint(pod *corev1.Pod) bool {
	return pod.Status.Phase != corev1.PodSucceeded && pod.Status.Phase != corev1.PodFailed
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// endpointFor is the pod's endpoint at addr: serving when the pod is Ready, terminating once
// it is being deleted, ready when serving and not terminating (or whenever the Service
// publishes not-ready addresses), as Kubernetes' own controller sets them.
func endpointFor(pod *corev1.Pod, svc *corev1.Service, addr netip.Addr) discovery.Endpoint {
	serving := podReady(pod)
	terminating := pod.DeletionTimestamp != nil
	ready := svc.Spec.PublishNotReadyAddresses || (serving && !terminating)
	ep := discovery.Endpoint{
		Addresses: []string{addr.String()},
		Conditions: discovery.EndpointConditions{
			Ready:       &ready,
			Serving:     &serving,
			Terminating: &terminating,
		},
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID},
	}
	if pod.Spec.NodeName != "" {
		node := pod.Spec.NodeName
		ep.NodeName = &node
	}
	return ep
}

// portsFor resolves the Service's ports on the pod: a numeric targetPort as it is, a named one
// by the pod's container port of that name and protocol. A port the pod does not have is left
// out, as Kubernetes' controller leaves it out.
func portsFor(svc *corev1.Service, pod *corev1.Pod) []discovery.EndpointPort {
	out := make([]discovery.EndpointPort, 0, len(svc.Spec.Ports))
	for _, sp := range svc.Spec.Ports {
		num, ok := targetPort(pod, sp)
		if !ok {
			continue
		}
		name, proto := sp.Name, sp.Protocol
		out = append(out, discovery.EndpointPort{Name: &name, Port: &num, Protocol: &proto, AppProtocol: sp.AppProtocol})
	}
	return out
}

func targetPort(pod *corev1.Pod, sp corev1.ServicePort) (int32, bool) {
	switch tp := sp.TargetPort; {
	case tp.Type == intstr.String && tp.StrVal != "":
		for _, c := range pod.Spec.Containers {
			for _, p := range c.Ports {
				if p.Name == tp.StrVal && p.Protocol == sp.Protocol {
					return p.ContainerPort, true
				}
			}
		}
		return 0, false
	case tp.Type == intstr.Int && tp.IntVal != 0:
		return tp.IntVal, true
	default: // unset: the Service's port
		return sp.Port, true
	}
}
